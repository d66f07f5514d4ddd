"""Test helpers for the disc/cup tests (a module of its own: several test folders have a conftest)."""

from __future__ import annotations

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
