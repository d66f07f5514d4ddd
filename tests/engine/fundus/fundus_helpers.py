"""Test helpers for the disc/cup tests (a module of its own: several test folders have a conftest)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class ColourOracle:
    """Stands in for the network on :func:`engine.synthetic.synthetic_fundus` photos, whose disc and cup have
    known colours: disc = yellow (R > 200, G > 135), cup = pale (G > 190, B > 125). Same interface as
    :class:`engine.fundus.segmenter.Segmenter`; returns one-hot (B, 3, S, S) probabilities."""

    size = 128
    crop_scale = 2.0
    sha256 = "colour-oracle"

    def __init__(self, empty: bool = False) -> None:
        self.empty = empty
        self.calls = 0

    def predict(self, crops: np.ndarray) -> np.ndarray:
        self.calls += 1
        c = np.asarray(crops).astype(np.int16)
        r, g, b = c[..., 0], c[..., 1], c[..., 2]
        disc = (r > 200) & (g > 135) & (b > 50)
        cup = disc & (g > 190) & (b > 125)
        if self.empty:
            disc = cup = np.zeros_like(disc)
        out = np.zeros((c.shape[0], 3) + c.shape[1:3], np.float32)
        out[:, 2] = cup
        out[:, 1] = disc & ~cup
        out[:, 0] = ~disc
        return out


def write_gamma_tree(root: Path, n: int = 4, size: tuple[int, int] = (240, 240)) -> list:
    """``n`` synthetic fundi in the GAMMA disc/cup layout under ``root`` (vertical CDR 0.3, 0.4, ...); returns
    the :func:`engine.synthetic.synthetic_fundus` truths."""
    import cv2

    from engine.fundus import label_mask
    from engine.synthetic import synthetic_fundus

    (root / "Disc_Cup_Mask").mkdir(parents=True)
    truths = []
    for k in range(n):
        f = synthetic_fundus(size, cdr=0.3 + 0.1 * k, eye="OD" if k % 2 else "OS", seed=k)
        (root / f"{k:04d}").mkdir()
        cv2.imwrite(str(root / f"{k:04d}" / f"{k:04d}.jpg"), f.image[:, :, ::-1])
        cv2.imwrite(str(root / "Disc_Cup_Mask" / f"{k:04d}.png"), label_mask(f.disc_mask, f.cup_mask))
        truths.append(f)
    return truths
