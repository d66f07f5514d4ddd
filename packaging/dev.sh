#!/usr/bin/env bash
# One entry point for a fresh machine: creates .venv (once), installs the pinned project (again only when
# pyproject.toml changed), then runs what was asked:
#   bash packaging/dev.sh viewer [PATH...] [--screenshot OUT.png]   open the viewer (demo exam by default)
#   bash packaging/dev.sh test [PYTEST ARGS...]                    run the test suite
#   bash packaging/dev.sh engine ARGS...                           the engine CLI (python -m engine)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    echo "[dev.sh] installing pinned dependencies into .venv (first run: a few minutes)" >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
    rm -f .venv/.installed-*
    touch "$stamp"
fi

need_display() {
    # Qt needs a display for a real window: use Xvfb when there is none (headless servers, CI).
    if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ] || [ "${QT_QPA_PLATFORM:-}" = offscreen ]; then
        return 1
    fi
    if ! command -v xvfb-run >/dev/null; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            echo "[dev.sh] no display: installing Xvfb and Qt's xcb libraries" >&2
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq xvfb xauth \
                libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-cursor0 \
                libxkbcommon-x11-0 libxcb-xinerama0 libxcb-randr0 libxcb-shape0 libegl1 libgl1 >/dev/null
        else
            echo "[dev.sh] no display and no xvfb-run: set DISPLAY or QT_QPA_PLATFORM=offscreen" >&2
            exit 2
        fi
    fi
    return 0
}

command=${1:-viewer}
[ $# -gt 0 ] && shift
case "$command" in
    viewer)
        if need_display; then
            echo "[dev.sh] no display found: running the viewer on a virtual X screen (Xvfb)" >&2
            exec xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python -m glaucoma_viewer "$@"
        fi
        exec .venv/bin/python -m glaucoma_viewer "$@"
        ;;
    test)
        exec .venv/bin/python -m pytest "$@"
        ;;
    engine)
        exec .venv/bin/python -m engine "$@"
        ;;
    *)
        echo "usage: bash packaging/dev.sh [viewer|test|engine] [ARGS...]" >&2
        exit 2
        ;;
esac
