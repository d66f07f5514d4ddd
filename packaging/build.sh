#!/usr/bin/env bash
# Build the one-folder desktop app into dist/glaucoma-viewer/ (executable dist/glaucoma-viewer/glaucoma-viewer).
# Uses the torch that is installed in .venv (see packaging/README.md for the CPU-only variant).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
bash packaging/dev.sh engine --version >/dev/null  # creates/updates .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[build]'
.venv/bin/python -m PyInstaller --noconfirm ${GV_BUILD_CLEAN:+--clean} --log-level WARN \
    --distpath dist --workpath build/pyinstaller packaging/glaucoma_viewer.spec
app=dist/glaucoma-viewer
install -m 644 packaging/glaucoma-viewer.desktop "$app/glaucoma-viewer.desktop"
install -m 644 resources/icons/glaucoma-viewer.png "$app/glaucoma-viewer.png"
torch_variant=$(.venv/bin/python -c "import torch; print('cuda ' + torch.version.cuda if torch.version.cuda else 'cpu')")
echo "built $app/glaucoma-viewer in $(( $(date +%s) - start )) s (torch: $torch_variant)"
echo "bundle size: $(du -sh "$app" | cut -f1)"
