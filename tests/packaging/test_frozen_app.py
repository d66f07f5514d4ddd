"""Smoke test of the PyInstaller build: runs only when dist/ holds one (or GV_TEST_FROZEN=1 demands it)."""

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "dist" / "glaucoma-viewer" / "glaucoma-viewer"

pytestmark = pytest.mark.frozen


@pytest.fixture(scope="module")
def app() -> Path:
    if not APP.is_file():
        if os.environ.get("GV_TEST_FROZEN") == "1":
            pytest.fail(f"GV_TEST_FROZEN=1 but {APP} does not exist: run bash packaging/build.sh")
        pytest.skip("no frozen build in dist/ (bash packaging/build.sh makes one)")
    return APP


def test_frozen_app_grades_demo_and_writes_screenshot(app, tmp_path):
    import cv2

    out = tmp_path / "shot.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run(
        [str(app), "--screenshot", str(out), "--timeout", "300"], env=env, capture_output=True, text=True, timeout=420
    )
    assert done.returncode == 0, done.stderr[-2000:]
    image = cv2.imread(str(out))
    assert image is not None and image.shape[0] > 300 and image.shape[1] > 500
    assert float(np.std(image)) > 10.0  # not a blank window
