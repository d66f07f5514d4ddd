"""Toy data, model, loss and metrics for the training tests (a module of its own, not ``conftest``: several
test folders have a conftest, so ``from conftest import`` is ambiguous)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn


class ToyDataset(torch.utils.data.Dataset):
    """``n`` items ``{"image": (8,) float, "label": 0/1, "id": str}``; the label is the sign of feature 0."""

    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 8, generator=g)
        self.y = (self.x[:, 0] > 0).long()

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.x[i], "label": self.y[i], "id": f"S{i:03d}"}


def toy_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 2))


def toy_loss(outputs: torch.Tensor, batch: dict) -> torch.Tensor:
    return nn.functional.cross_entropy(outputs, batch["label"])


def toy_metrics(outputs: torch.Tensor, batch: dict) -> dict:
    return {"accuracy": float((outputs.argmax(1) == batch["label"]).float().mean())}


def write_class_folders(root: Path, per_class: int = 8, size: int = 40) -> Path:
    """Three classes of drawn discs of growing radius, two images per 'patient' (``p<k>_<i>.png``)."""
    import cv2

    rng = np.random.default_rng(0)
    for c, name in enumerate(["small", "medium", "large"]):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image = (rng.random((size, size, 3)) * 60).astype(np.uint8)
            cv2.circle(image, (size // 2, size // 2), 4 + 5 * c, (200, 180, 90), -1)
            cv2.imwrite(str(root / name / f"p{c}{i // 2}_{i}.png"), image)
    return root
