"""Multi-label fundus disease (ODIR-5K labels): one sigmoid per label, class-weighted BCE, Grad-CAM per label.

Labels, in output order: N normal, D diabetes, G glaucoma, C cataract, A AMD, H hypertension, M myopia,
O other. A backbone from :mod:`engine.models.branches` (torchvision ResNet / DenseNet / EfficientNet ...,
random init) gives an image feature vector; optionally the disc/cup biomarkers (vertical, horizontal and area
cup-to-disc ratios, rim, disc eccentricity, cup centroid shift; plus a "measured" flag) pass through a small
layer and are concatenated with it; a linear layer gives 8 logits. Training uses binary cross-entropy with a
per-label ``pos_weight`` (negatives / positives in the training fold).

Shapes: fundus ``(H, W, 3)`` uint8 RGB; network input ``(B, 3, h, w)``; biomarkers ``(B, 7)`` float32;
outputs ``(B, 8)`` logits; Grad-CAM maps ``(H, W)`` float32 in [0, 1] in the photo's pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.models.branches import build_branch
from engine.models.preprocess import DEFAULT_2D_MEAN, DEFAULT_2D_STD, InputSpec, map_to_original_2d, prepare_fundus

LABELS = ("N", "D", "G", "C", "A", "H", "M", "O")
LABEL_NAMES = ("normal", "diabetes", "glaucoma", "cataract", "AMD", "hypertension", "myopia", "other")
BIOMARKERS = ("vcdr", "hcdr", "acdr", "rim", "eccentricity", "centroid_shift")
"""Biomarker features in input order; a seventh input is 1 when they were measured, else 0 (all zeros)."""
BIOMARKER_ALIASES = {
    "vcdr": ("vcdr",), "hcdr": ("hcdr",), "acdr": ("acdr", "area_cdr"), "rim": ("rim", "rim_to_disc"),
    "eccentricity": ("eccentricity", "cup_eccentricity"), "centroid_shift": ("centroid_shift",),
}
"""Names each biomarker goes by (the first is ours; the others are those of ``engine.fundus.biomarkers``)."""
ARCHITECTURE = "odir_multilabel"
BIOMARKER_WIDTH = 16


class OdirNet(nn.Module):
    """Backbone branch -> (image features [+ biomarker features]) -> dropout -> linear -> 8 logits."""

    def __init__(
        self, backbone: str = "resnet18", num_labels: int = len(LABELS), biomarkers: bool = False, dropout: float = 0.2
    ) -> None:
        super().__init__()
        self.branch = build_branch(backbone, 2)
        self.uses_biomarkers = bool(biomarkers)
        extra = 0
        if self.uses_biomarkers:
            self.biomarker_layer = nn.Sequential(nn.Linear(len(BIOMARKERS) + 1, BIOMARKER_WIDTH), nn.ReLU())
            extra = BIOMARKER_WIDTH
        self.dropout = nn.Dropout(float(dropout))
        self.head = nn.Linear(self.branch.out_dim + extra, int(num_labels))

    def forward(self, image: torch.Tensor, biomarkers: Optional[torch.Tensor] = None) -> torch.Tensor:
        features = self.branch(image)
        if self.uses_biomarkers:
            if biomarkers is None:
                biomarkers = features.new_zeros((features.shape[0], len(BIOMARKERS) + 1))
            features = torch.cat([features, self.biomarker_layer(biomarkers.to(features.dtype))], dim=1)
        return self.head(self.dropout(features))


def build_model(spec: Mapping[str, Any]) -> OdirNet:
    """The network an ``odir`` checkpoint spec describes (random weights)."""
    if spec.get("architecture", ARCHITECTURE) != ARCHITECTURE:
        raise ValueError(f"unknown odir architecture {spec.get('architecture')!r}; expected {ARCHITECTURE!r}")
    return OdirNet(**dict(spec.get("kwargs", {})))


def make_spec(
    backbone: str = "resnet18", *, size: Sequence[int] = (224, 224), biomarkers: bool = False, dropout: float = 0.2
) -> dict[str, Any]:
    """A checkpoint spec for the ODIR classifier (``threshold`` 0.5 per label unless a run tunes it)."""
    return {
        "task": "odir",
        "architecture": ARCHITECTURE,
        "kwargs": {"backbone": backbone, "num_labels": len(LABELS), "biomarkers": bool(biomarkers), "dropout": float(dropout)},
        "inputs": {
            "fundus": InputSpec(tuple(int(s) for s in size), DEFAULT_2D_MEAN, DEFAULT_2D_STD).to_dict(),
            "biomarkers": list(BIOMARKERS) if biomarkers else [],
        },
        "classes": list(LABELS),
        "label_names": list(LABEL_NAMES),
        "thresholds": [0.5] * len(LABELS),
        "cam_target_layers": ["branch.trunk"],
    }


# ----------------------------------------------------------------------------------------------- loss


def biomarker_vector(values: Optional[Mapping[str, Any]]) -> np.ndarray:
    """``{"vcdr": ..., ...}`` (or the aliases of :data:`BIOMARKER_ALIASES`) -> (7,) float32: the six biomarkers
    then 1; all zeros when any is missing/NaN."""
    out = np.zeros(len(BIOMARKERS) + 1, np.float32)
    if not values:
        return out
    try:
        numbers = [float(next(values[a] for a in BIOMARKER_ALIASES[name] if a in values)) for name in BIOMARKERS]
    except (StopIteration, TypeError, ValueError):
        return out
    if not all(math.isfinite(v) for v in numbers):
        return out
    out[: len(BIOMARKERS)] = numbers
    out[-1] = 1.0
    return out


def pos_weights(targets: np.ndarray, cap: float = 50.0) -> np.ndarray:
    """Per-label ``negatives / positives`` of ``targets`` (N, L) 0/1, as (L,) float32 clipped to [1/cap, cap];
    1 for a label without positives."""
    t = np.asarray(targets, np.float32)
    pos = t.sum(axis=0)
    neg = (1.0 - t).sum(axis=0)
    weights = np.where(pos > 0, neg / np.maximum(pos, 1e-6), 1.0)
    return np.clip(weights, 1.0 / cap, cap).astype(np.float32)


def weighted_bce(logits: torch.Tensor, targets: torch.Tensor, pos_weight: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Binary cross-entropy with logits, positives of label j weighted by ``pos_weight[j]``, mean over entries."""
    return F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype), pos_weight=pos_weight)


# ----------------------------------------------------------------------------------------------- inference


class _WithBiomarkers(nn.Module):
    """Grad-CAM wrapper: image-only input, the exam's biomarker vector held fixed."""

    def __init__(self, net: OdirNet, biomarkers: Optional[torch.Tensor]) -> None:
        super().__init__()
        self.net = net
        self._bio = biomarkers

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        bio = None if self._bio is None else self._bio.expand(image.shape[0], -1)
        return self.net(image, bio)


@dataclass
class OdirResult:
    """Per-label probabilities for one fundus photo.

    Attributes:
        probabilities: {letter: p} for N D G C A H M O.
        positive: letters at or above the model's threshold.
        cams: {letter: (H, W) float32 in [0, 1]} Grad-CAM per label in the photo's pixels (empty unless asked).
        used_biomarkers: whether measured biomarkers entered the model.
        model: the model's name; notes: plain sentences.
    """

    probabilities: dict[str, float]
    positive: list[str]
    cams: dict[str, np.ndarray]
    used_biomarkers: bool
    model: str
    notes: list[str] = field(default_factory=list)


def classify_fundus(
    image: np.ndarray,
    model: Any,
    *,
    biomarkers: Optional[Mapping[str, Any]] = None,
    cams: bool | Sequence[str] = False,
) -> OdirResult:
    """Per-label probabilities (and optionally Grad-CAM per label) for one ``(H, W, 3)`` uint8 RGB photo.

    Args:
        model: a loaded odir :class:`~engine.tasks._common.TaskModel`.
        biomarkers: ``{"vcdr", "hcdr", "acdr", "rim", "eccentricity", "centroid_shift"}`` from the disc/cup
            analysis, used when the model was built with them (missing ones = "not measured").
        cams: True for all 8 labels, or a list of letters.
    """
    from engine.explain import gradcam

    spec = model.spec
    net: OdirNet = model.module
    device = model.device
    prepared = prepare_fundus(image, InputSpec.from_dict(spec["inputs"]["fundus"]))
    x = prepared.tensor.to(device)
    bio_vec = biomarker_vector(biomarkers) if net.uses_biomarkers else None
    bio = None if bio_vec is None else torch.from_numpy(bio_vec)[None].to(device)
    with torch.inference_mode():
        probs = torch.sigmoid(net(x, bio).float())[0].cpu().numpy()
    thresholds = spec.get("thresholds", [0.5] * len(LABELS))
    letters = list(spec.get("classes", LABELS))
    result = OdirResult(
        probabilities={k: float(p) for k, p in zip(letters, probs)},
        positive=[k for k, p, t in zip(letters, probs, thresholds) if p >= t],
        cams={},
        used_biomarkers=bool(bio_vec is not None and bio_vec[-1] > 0),
        model=model.name,
    )
    if net.uses_biomarkers and not result.used_biomarkers:
        result.notes.append("disc/cup biomarkers not measured: the model ran without them")
    wanted = letters if cams is True else [k for k in (cams or []) if k in letters]
    if wanted:
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        wrapper = _WithBiomarkers(net, bio)
        batch = x.expand(len(wanted), -1, -1, -1).contiguous()  # one backward pass explains every label
        targets = [ClassifierOutputTarget(letters.index(k)) for k in wanted]
        with torch.enable_grad(), gradcam(wrapper, net.branch.trunk) as cam:
            raw = cam(input_tensor=batch, targets=targets)
        for k, grey in zip(wanted, raw):
            result.cams[k] = np.clip(map_to_original_2d(grey, prepared.placement), 0.0, 1.0).astype(np.float32)
    return result


def __getattr__(name: str) -> Any:
    # ``TRAIN_TASK`` (the engine.train adapter) is imported on first use: inference never loads the training code.
    if name == "TRAIN_TASK":
        from engine.tasks.training import ODIR_TASK

        return ODIR_TASK
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
