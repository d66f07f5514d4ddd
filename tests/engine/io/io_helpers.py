"""Helpers for the reader tests (their fixtures are in conftest.py): tree snapshots and small image writers.

A module of its own, not ``conftest``: test folders each have a conftest, and ``from conftest import`` picks
whichever was imported last when several folders are collected in one run.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import cv2
import numpy as np


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """``{relative path: (size, mtime_ns)}`` of everything below ``root`` (links not followed)."""
    out: dict[str, tuple[int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            out[str(p.relative_to(root))] = (st.st_size if not stat.S_ISDIR(st.st_mode) else 0, st.st_mtime_ns)
    return out


def _chmod_tree(root: Path, file_mode: int, dir_mode: int) -> None:
    for dirpath, dirnames, filenames in os.walk(root, topdown=False, followlinks=False):
        for name in filenames:
            p = Path(dirpath) / name
            if not p.is_symlink():
                os.chmod(p, file_mode if os.stat(p).st_mode & 0o777 else 0)
        for name in dirnames:
            p = Path(dirpath) / name
            if not p.is_symlink():
                os.chmod(p, dir_mode)
    os.chmod(root, dir_mode)


def write_image(path: Path, array: np.ndarray, params: list[int] | None = None) -> Path:
    """Write ``array`` (grey, or RGB which is stored as BGR) with OpenCV; create parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = array if array.ndim == 2 else cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(path.suffix if path.suffix.lower() != ".jpeg" else ".jpg", data, params or [])
    assert ok
    path.write_bytes(buf.tobytes())
    return path


def bscan(k: int, shape: tuple[int, int] = (160, 200)) -> np.ndarray:
    """A grey B-scan-like test image whose slice index ``k`` can be read back from its mean brightness."""
    rng = np.random.default_rng(k)
    img = rng.integers(0, 20, shape, dtype=np.uint8)
    img[shape[0] // 3 : shape[0] // 2] = 40 + 3 * k  # a bright "layer" whose level encodes k
    return img


def photo(shape: tuple[int, int] = (240, 320), seed: int = 0) -> np.ndarray:
    """A colourful RGB test photo (reddish, like a fundus) with a green marker in the top-left corner."""
    rng = np.random.default_rng(seed)
    img = np.zeros(shape + (3,), np.uint8)
    img[..., 0] = 150 + rng.integers(0, 40, shape)
    img[..., 1] = 60
    img[..., 2] = 30
    img[:20, :20] = (0, 255, 0)
    return img
