"""Glioma grade (HGG vs LGG) from brain MRI: an attention-gated VGG16 on axial slices, voted per patient.

The design follows the reference work: a VGG16-style 2D network takes one axial slice with the MRI sequences
as channels; two attention gates combine the global features (the last conv block, upsampled) with the
pool-3 and pool-4 feature maps; the two attended vectors are concatenated with the global feature vector and
a linear layer gives softmax probabilities over ``("HGG", "LGG")``. Training uses a focal loss for the class
imbalance (BraTS has about three HGG cases for one LGG). A patient's grade is the mean probability (or the
vote) over the informative slices; slices with (almost) no brain are skipped. No segmentation is needed.

A model is built for a fixed tuple of sequences (its "variant", ``spec["inputs"]["sequences"]``): an exam
must hold every sequence of the variant; extra sequences are left unused, and :func:`pick_variant` chooses
among several checkpoints the one that fits what an exam holds (for example FLAIR + T1ce when T2 is missing).

Shapes: every MRI sequence is ``(D, H, W)`` (D axial slices, as ``engine.io`` loads them); network input
``(B, C, h, w)`` float32 with C = number of sequences; the attention map returned for the viewer is
``(D, H, W)`` float32 in [0, 1] (zeros on skipped slices).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

import numpy as np

import torch
import torch.nn.functional as F
from torch import nn

from engine.progress import CancelToken, ProgressCallback, check, report

CLASSES = ("HGG", "LGG")
SEQUENCES = ("flair", "t1ce", "t2", "t1")
"""Sequence keys of ``Exam.mri`` in their canonical channel order."""
SEQUENCE_NAMES = {"flair": "FLAIR", "t1ce": "T1ce", "t2": "T2", "t1": "T1"}
ARCHITECTURE = "attention_vgg16"
VGG16_BLOCKS = ((2, 1), (2, 2), (3, 4), (3, 8), (3, 8))
"""VGG16 conv blocks as (convolutions, channel multiple of ``width``); VGG16 proper has width 64."""
DEFAULT_SIZE = (128, 128)
DEFAULT_MIN_BRAIN_FRACTION = 0.05
"""A slice is informative when at least this fraction of its pixels is brain."""
CLIP = 5.0
"""Intensities are z-scored inside the brain and clipped to +-CLIP."""


class GliomaInputError(ValueError):
    """The exam does not hold what the model needs (a sequence, any brain). ``str()`` is user-readable."""


# ----------------------------------------------------------------------------------------------- network


def build_model(spec: Mapping[str, Any]) -> Any:
    """The network a ``glioma`` checkpoint spec describes (random weights)."""
    if spec.get("architecture", ARCHITECTURE) != ARCHITECTURE:
        raise ValueError(f"unknown glioma architecture {spec.get('architecture')!r}; expected {ARCHITECTURE!r}")
    return AttentionVGG(**dict(spec.get("kwargs", {})))


def make_spec(
    sequences: Sequence[str] = ("flair", "t1ce", "t2"),
    *,
    width: int = 64,
    size: Sequence[int] = DEFAULT_SIZE,
    dropout: float = 0.5,
    aggregation: str = "mean",
    min_brain_fraction: float = DEFAULT_MIN_BRAIN_FRACTION,
) -> dict[str, Any]:
    """A checkpoint spec for the variant on ``sequences`` (VGG16 proper at ``width=64``)."""
    sequences = canonical_sequences(sequences)
    if int(size[0]) % 32 or int(size[1]) % 32:
        raise ValueError(f"slice size must be a multiple of 32 (five 2x poolings), got {tuple(size)}")
    if aggregation not in ("mean", "vote"):
        raise ValueError(f"aggregation must be 'mean' or 'vote', got {aggregation!r}")
    return {
        "task": "glioma",
        "architecture": ARCHITECTURE,
        "kwargs": {"in_channels": len(sequences), "num_classes": 2, "width": int(width), "dropout": float(dropout)},
        "inputs": {
            "sequences": list(sequences),
            "size": [int(size[0]), int(size[1])],
            "normalisation": f"z-score inside the brain per sequence and volume, clipped to +-{CLIP:g}",
            "min_brain_fraction": float(min_brain_fraction),
        },
        "classes": list(CLASSES),
        "aggregation": aggregation,
        "cam_target_layers": ["gate3", "gate4"],
    }


def canonical_sequences(sequences: Sequence[str]) -> tuple[str, ...]:
    """Validate sequence names and put them in the canonical channel order (flair, t1ce, t2, t1)."""
    names = [str(s).lower() for s in sequences]
    unknown = [s for s in names if s not in SEQUENCES]
    if unknown or not names or len(set(names)) != len(names):
        raise ValueError(f"sequences must be distinct names from {SEQUENCES}, got {list(sequences)}")
    return tuple(s for s in SEQUENCES if s in names)


class AttentionGate(nn.Module):
    """Additive attention of a local feature map, gated by the (coarser) global features.

    ``local`` (B, Cl, h, w) and ``gate`` (B, Cg, h', w') -> attended vector (B, Cl) and attention
    (B, 1, h, w) in [0, 1]: ``a = sigmoid(psi(relu(theta(local) + up(phi(gate)))))``, the vector is the
    attention-weighted mean of ``local``.
    """

    def __init__(self, local_channels: int, gate_channels: int, inter_channels: int) -> None:
        super().__init__()
        self.theta = nn.Conv2d(local_channels, inter_channels, 1, bias=False)
        self.phi = nn.Conv2d(gate_channels, inter_channels, 1)
        self.psi = nn.Conv2d(inter_channels, 1, 1)

    def forward(self, local: torch.Tensor, gate: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        g = F.interpolate(self.phi(gate), size=local.shape[2:], mode="bilinear", align_corners=False)
        attention = torch.sigmoid(self.psi(F.relu(self.theta(local) + g)))
        vector = (attention * local).sum(dim=(2, 3)) / attention.sum(dim=(2, 3)).clamp_min(1e-6)
        return vector, attention


class AttentionVGG(nn.Module):
    """VGG16-style trunk (batch-normalised) with attention gates on the pool-3 and pool-4 maps.

    Input ``(B, in_channels, h, w)`` with h, w multiples of 32; output logits ``(B, num_classes)``.
    ``forward_with_attention`` also returns the two attention maps (B, 1, h/8, w/8) and (B, 1, h/16, w/16).
    """

    def __init__(
        self, in_channels: int = 3, num_classes: int = 2, width: int = 64, dropout: float = 0.5
    ) -> None:
        super().__init__()
        blocks = []
        c_in = int(in_channels)
        for n_conv, mult in VGG16_BLOCKS:
            layers: list[nn.Module] = []
            for _ in range(n_conv):
                c_out = int(width) * mult
                layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
                c_in = c_out
            blocks.append(nn.Sequential(*layers))
        self.block1, self.block2, self.block3, self.block4, self.block5 = blocks
        self.pool = nn.MaxPool2d(2)
        c3, c4, c5 = 4 * width, 8 * width, 8 * width
        inter = max(4, c3 // 2)
        self.gate3 = AttentionGate(c3, c5, inter)
        self.gate4 = AttentionGate(c4, c5, inter)
        self.dropout = nn.Dropout(float(dropout))
        self.classifier = nn.Linear(c5 + c3 + c4, int(num_classes))

    def forward_with_attention(self, x: Any) -> tuple[Any, Any, Any]:
        x = self.pool(self.block1(x))
        x = self.pool(self.block2(x))
        pool3 = self.pool(self.block3(x))
        pool4 = self.pool(self.block4(pool3))
        gate = self.pool(self.block5(pool4))
        global_vec = gate.mean(dim=(2, 3))
        vec3, att3 = self.gate3(pool3, gate)
        vec4, att4 = self.gate4(pool4, gate)
        logits = self.classifier(self.dropout(torch.cat([global_vec, vec3, vec4], dim=1)))
        return logits, att3, att4

    def forward(self, x: Any) -> Any:
        return self.forward_with_attention(x)[0]


def focal_loss(logits: Any, target: Any, gamma: float = 2.0, alpha: Optional[Sequence[float]] = None) -> Any:
    """Mean focal loss ``-alpha_t (1 - p_t)^gamma log p_t`` over a batch (softmax over classes).

    Args:
        logits: (B, K) float; target: (B,) int64 class indices.
        gamma: focusing parameter (0 gives the cross-entropy).
        alpha: optional per-class weights (K,), e.g. inverse class frequencies.
    """
    log_p = F.log_softmax(logits, dim=1).gather(1, target.view(-1, 1)).squeeze(1)
    loss = -((1.0 - log_p.exp()) ** gamma) * log_p
    if alpha is not None:
        loss = loss * torch.as_tensor(alpha, dtype=loss.dtype, device=loss.device)[target]
    return loss.mean()


# ----------------------------------------------------------------------------------------------- preprocessing


def background_value(volume: np.ndarray) -> float:
    """The value of the air around the head: the median of the in-plane border of a (D, H, W) volume."""
    border = np.concatenate(
        [volume[:, 0, :].ravel(), volume[:, -1, :].ravel(), volume[:, :, 0].ravel(), volume[:, :, -1].ravel()]
    )
    return float(np.median(border))


def brain_mask(volumes: Mapping[str, np.ndarray]) -> np.ndarray:
    """(D, H, W) bool: voxels that differ from the background in any sequence.

    Works for raw scans (air near 0) and for intensity-normalised ones whose background is a constant
    (BraTS-style z-scored volumes put the air at the minimum).
    """
    mask: Optional[np.ndarray] = None
    for volume in volumes.values():
        v = np.asarray(volume, np.float32)
        tol = max(1e-6, 1e-3 * float(v.max() - v.min()))
        m = np.abs(v - background_value(v)) > tol
        mask = m if mask is None else (mask | m)
    if mask is None:
        raise GliomaInputError("the exam holds no MRI sequence")
    return mask


def normalise_sequence(volume: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(D, H, W) -> float32 z-scored inside ``mask``, clipped to +-CLIP, 0 outside the brain."""
    v = np.asarray(volume, np.float32)
    inside = v[mask]
    if inside.size == 0:
        return np.zeros_like(v)
    mean, std = float(inside.mean()), float(inside.std())
    out = np.clip((v - mean) / (std if std > 1e-6 else 1.0), -CLIP, CLIP)
    out[~mask] = 0.0
    return out


def check_sequences(mri: Mapping[str, np.ndarray], sequences: Sequence[str]) -> None:
    """Raise :class:`GliomaInputError` naming what is missing when ``mri`` lacks a needed sequence."""
    missing = [s for s in sequences if s not in mri]
    if missing:
        have = ", ".join(SEQUENCE_NAMES.get(s, s) for s in mri) or "none"
        need = ", ".join(SEQUENCE_NAMES[s] for s in sequences)
        raise GliomaInputError(
            f"missing MRI sequence(s) {', '.join(SEQUENCE_NAMES[s] for s in missing)}: this glioma model needs "
            f"{need}; the exam has {have}"
        )
    shapes = {s: tuple(mri[s].shape) for s in sequences}
    if len(set(shapes.values())) != 1 or len(next(iter(shapes.values()))) != 3:
        raise GliomaInputError(f"MRI sequences must be (D, H, W) volumes of one shape, got {shapes}")


@dataclass
class SliceStack:
    """Network-ready axial slices of one exam.

    Attributes:
        slices: (n, C, h, w) float32, the informative slices only, channels in the variant's order.
        indices: (n,) int, the slice index (0..D-1) of each.
        brain_fraction: (D,) float32, fraction of brain pixels in every slice.
        shape: (D, H, W) of the source volumes.
        brain: (D, H, W) bool brain mask.
    """

    slices: np.ndarray
    indices: np.ndarray
    brain_fraction: np.ndarray
    shape: tuple[int, int, int]
    brain: np.ndarray


def prepare_slices(
    mri: Mapping[str, np.ndarray],
    sequences: Sequence[str],
    size: Sequence[int] = DEFAULT_SIZE,
    min_brain_fraction: float = DEFAULT_MIN_BRAIN_FRACTION,
    stride: int = 1,
) -> SliceStack:
    """Mask, z-score, pick informative slices (every ``stride``-th) and resize them to ``size``.

    Raises:
        GliomaInputError: a sequence is missing, shapes differ, or no slice holds enough brain.
    """
    check_sequences(mri, sequences)
    chosen = {s: mri[s] for s in sequences}
    mask = brain_mask(chosen)
    d, h, w = mask.shape
    fraction = mask.reshape(d, -1).mean(axis=1).astype(np.float32)
    indices = np.flatnonzero(fraction >= min_brain_fraction)[:: max(1, int(stride))]
    if indices.size == 0:
        raise GliomaInputError(
            f"no axial slice holds brain on at least {min_brain_fraction:.0%} of its area (is it a brain MRI?)"
        )
    stack = np.stack([normalise_sequence(chosen[s], mask)[indices] for s in sequences], axis=1)  # (n, C, H, W)
    t = torch.from_numpy(stack)
    if (h, w) != (int(size[0]), int(size[1])):
        t = F.interpolate(t, size=(int(size[0]), int(size[1])), mode="bilinear", align_corners=False, antialias=True)
    return SliceStack(t.contiguous().numpy(), indices, fraction, (d, h, w), mask)


# ----------------------------------------------------------------------------------------------- inference


@dataclass
class GliomaResult:
    """What :func:`grade_glioma` found for one exam.

    Attributes:
        probabilities: {"HGG": p, "LGG": 1 - p}, the mean of the slice probabilities.
        grade: "HGG" or "LGG" by the model's aggregation rule.
        aggregation: "mean" (mean probability > 0.5) or "vote" (majority of slices; a tie goes to the mean).
        vote_share: fraction of informative slices whose argmax is HGG.
        slice_indices: (n,) int, the informative slices used.
        slice_probabilities: (n, 2) float32, per-slice (HGG, LGG) probabilities.
        attention: (D, H, W) float32 in [0, 1], mean of the two attention gates, 0 outside the brain and on
            skipped slices.
        sequences: the sequences the model ran on.
        model: the model's name; notes: plain sentences for the user (variant chosen, sequences unused).
    """

    probabilities: dict[str, float]
    grade: str
    aggregation: str
    vote_share: float
    slice_indices: np.ndarray
    slice_probabilities: np.ndarray
    attention: np.ndarray
    sequences: tuple[str, ...]
    model: str
    notes: list[str] = field(default_factory=list)


def variant_note(mri: Mapping[str, np.ndarray], sequences: Sequence[str]) -> list[str]:
    """Sentences saying which variant ran and which present or standard sequences it did not use."""
    used = " + ".join(SEQUENCE_NAMES[s] for s in sequences)
    notes = [f"glioma model variant for {used}"]
    absent = [SEQUENCE_NAMES[s] for s in ("flair", "t1ce", "t2") if s not in mri]
    if absent:
        notes.append(f"{', '.join(absent)} not in the exam: ran the variant built for the sequences present ({used})")
    unused = [SEQUENCE_NAMES.get(s, s) for s in mri if s not in sequences]
    if unused:
        notes.append(f"{', '.join(unused)} present but not used by this variant")
    return notes


def grade_glioma(
    mri: Mapping[str, np.ndarray],
    model: Any,
    *,
    aggregation: Optional[str] = None,
    batch_size: int = 16,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
) -> GliomaResult:
    """Grade one MRI exam with a loaded glioma :class:`~engine.tasks._common.TaskModel`.

    Args:
        mri: ``{"flair" | "t1ce" | "t2" | "t1": (D, H, W) array}`` (``Exam.mri``).
        aggregation: override the model's rule ("mean" or "vote").

    Raises:
        GliomaInputError: a needed sequence is missing or the volume holds no brain.
        Cancelled: ``cancel`` was set (checked between batches).
    """
    spec = model.spec
    inputs = spec["inputs"]
    sequences = tuple(inputs["sequences"])
    rule = aggregation or spec.get("aggregation", "mean")
    report(progress, 0.0, "glioma: preparing slices")
    stack = prepare_slices(mri, sequences, inputs["size"], float(inputs.get("min_brain_fraction", 0.05)))
    d, h, w = stack.shape
    net, device = model.module, model.device
    probs = np.empty((len(stack.indices), 2), np.float32)
    attention = np.zeros((d, h, w), np.float32)
    n = len(stack.indices)
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            check(cancel)
            x = torch.from_numpy(stack.slices[start : start + batch_size]).to(device)
            logits, att3, att4 = net.forward_with_attention(x)
            probs[start : start + len(x)] = torch.softmax(logits.float(), dim=1).cpu().numpy()
            att = 0.5 * (
                F.interpolate(att3, size=(h, w), mode="bilinear", align_corners=False)
                + F.interpolate(att4, size=(h, w), mode="bilinear", align_corners=False)
            )
            rows = stack.indices[start : start + len(x)]
            attention[rows] = att[:, 0].float().cpu().numpy() * stack.brain[rows]
            report(progress, min(n, start + batch_size) / n, f"glioma: slice {min(n, start + batch_size)}/{n}")
    mean = probs.mean(axis=0)
    vote_share = float((probs[:, 0] > probs[:, 1]).mean())
    if rule == "vote" and vote_share != 0.5:
        grade = CLASSES[0] if vote_share > 0.5 else CLASSES[1]
    else:
        grade = CLASSES[0] if mean[0] >= mean[1] else CLASSES[1]
    notes = variant_note(mri, sequences) + [f"{n} of {d} axial slices hold brain and were graded ({rule})"]
    return GliomaResult(
        probabilities={CLASSES[0]: float(mean[0]), CLASSES[1]: float(mean[1])},
        grade=grade,
        aggregation=rule,
        vote_share=vote_share,
        slice_indices=stack.indices,
        slice_probabilities=probs,
        attention=attention,
        sequences=sequences,
        model=model.name,
        notes=notes,
    )


def pick_variant(mri: Mapping[str, np.ndarray], models: Sequence[Any]) -> Any:
    """The model whose sequences the exam holds, preferring the one that uses the most of them.

    Raises:
        GliomaInputError: no model fits; the message lists what each would need.
    """
    fitting = [m for m in models if all(s in mri for s in m.spec["inputs"]["sequences"])]
    if not fitting:
        needs = "; ".join(" + ".join(SEQUENCE_NAMES[s] for s in m.spec["inputs"]["sequences"]) for m in models)
        have = ", ".join(SEQUENCE_NAMES.get(s, s) for s in mri) or "none"
        raise GliomaInputError(f"no glioma model fits this exam: the exam has {have}; the models need {needs}")
    return max(fitting, key=lambda m: len(m.spec["inputs"]["sequences"]))


def __getattr__(name: str) -> Any:
    # ``TRAIN_TASK`` (the engine.train adapter) is imported on first use: inference never loads the training code.
    if name == "TRAIN_TASK":
        from engine.tasks.training import GLIOMA_TASK

        return GLIOMA_TASK
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
