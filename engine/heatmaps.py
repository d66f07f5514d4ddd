"""Grad-CAM maps as results: :class:`CamMap` (made by :mod:`engine.explain`, shown by the viewer).

Every ``heatmap`` is uint8, 0..255 = relevance 0..1 (min-max normalised per map), in the original array's
coordinates: ``fundus``: ``(H, W)`` of the photo; ``disc``: ``(H, W)`` of the photo, zero outside the crop box;
``oct``: ``(N, H, W)`` of the volume, one slice per B-scan.

Kept apart from :mod:`engine.explain` so that code which only receives maps (the viewer process unpickling a
grading result) never imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class CamMap:
    """One Grad-CAM map.

    Attributes:
        level: ``fundus``, ``disc`` or ``oct``.
        modality: the exam array it overlays (``fundus`` for both 2D levels, ``oct``).
        heatmap: uint8 map in original coordinates (see the module docstring).
        raw: float32 map in [0, 1] at the feature-map resolution (``(h', w')`` or ``(d', h', w')``).
        box: ``(row0, col0, row1, col1)`` px of the network input in the original (the crop for ``disc``).
        target_class: the class index explained.
        model: the grader's name.
    """

    level: str
    modality: str
    heatmap: np.ndarray
    raw: np.ndarray
    box: tuple[int, int, int, int]
    target_class: int
    model: str = ""

    def as_float(self) -> np.ndarray:
        """``heatmap`` as float32 in [0, 1]."""
        return self.heatmap.astype(np.float32) / 255.0
