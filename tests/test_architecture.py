"""Layering rules from ARCHITECTURE.md, checked on the real import graph."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QT_MODULES = ("PySide6", "pyqtgraph", "shiboken6", "glaucoma_viewer")
HEAVY_MODULES = ("torch", "monai", "torchvision", "pytorch_grad_cam")


def _top_level_imports(path: Path) -> set[str]:
    """Modules imported at module level (not inside functions) by one source file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_engine_never_imports_qt_or_the_viewer():
    offenders = []
    for path in (ROOT / "engine").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            mods = []
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                mods = [node.module]
            offenders += [f"{path.relative_to(ROOT)}: {m}" for m in mods if m.split(".")[0] in QT_MODULES]
    assert offenders == []


def test_viewer_modules_do_not_import_torch_at_module_level():
    offenders = []
    for path in (ROOT / "glaucoma_viewer").rglob("*.py"):
        bad = _top_level_imports(path) & set(HEAVY_MODULES)
        offenders += [f"{path.relative_to(ROOT)}: {sorted(bad)}" for _ in [0] if bad]
    assert offenders == []


def test_cli_help_does_not_import_torch_or_monai():
    code = (
        "import sys, contextlib, io\n"
        "from engine.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try: main(['--help'])\n"
        "    except SystemExit: pass\n"
        f"print(sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"
