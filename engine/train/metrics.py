"""Evaluation metrics, computed with scikit-learn and MONAI, returned as flat ``{name: float}`` dicts.

- Classification (the GAMMA grades): quadratic-weighted Cohen's kappa (the GAMMA challenge metric) with a
  bootstrap 95 % interval, accuracy, balanced accuracy, per-class and macro F1, one-vs-rest AUC per class and
  macro, and the confusion matrix (rows = truth, columns = prediction) with a PNG.
- Segmentation: Dice and IoU per class and their mean (MONAI ``DiceMetric`` / ``MeanIoU``, background excluded).
- Multi-label (ODIR-5K): AUC per label, micro/macro F1, and the ODIR challenge score
  ``(kappa + F1 + AUC) / 3`` on the flattened label matrix.

Keys are lower_snake: ``kappa``, ``kappa_ci_low``, ``kappa_ci_high``, ``accuracy``, ``f1_macro``,
``f1_<class>``, ``auc_macro``, ``auc_<class>``, ``dice_<class>``, ``dice_mean``, ``iou_<class>``, ``iou_mean``.
A value that is undefined for the data (AUC with one class present) is ``nan`` and is left out of CSV means.

Shapes: ``probs`` ``(N, K)`` float (rows sum to 1), ``labels`` ``(N,)`` int in ``[0, K)``; segmentation
``pred`` / ``target`` ``(N, *spatial)`` int class maps (or ``(N, C, *spatial)`` logits for ``pred``).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

ArrayLike = Any


def _np(x: ArrayLike) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu()
        if hasattr(x, "as_tensor"):
            x = x.as_tensor()
        x = x.numpy()
    return np.asarray(x)


def key_of(name: str) -> str:
    """A class / label name as a metric-key suffix: ``"mid_advanced"``, ``"Mid advanced"`` -> ``"mid_advanced"``."""
    return re.sub(r"[^0-9a-z]+", "_", str(name).lower()).strip("_") or "class"


# ---------------------------------------------------------------------------------------------- kappa
def quadratic_kappa(labels: ArrayLike, preds: ArrayLike, n_classes: Optional[int] = None) -> float:
    """Quadratic-weighted Cohen's kappa (scikit-learn). 1 = perfect, 0 = chance. ``nan`` for < 2 samples;
    1.0 when truth and prediction agree on a single class (sklearn's 0/0)."""
    from sklearn.metrics import cohen_kappa_score

    y, p = _np(labels).astype(int).ravel(), _np(preds).astype(int).ravel()
    if len(y) < 2:
        return float("nan")
    k = n_classes or int(max(y.max(), p.max()) + 1)
    if np.array_equal(y, p):
        return 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        value = cohen_kappa_score(y, p, labels=list(range(k)), weights="quadratic")
    return float(value)


def _kappa_from_confusions(cms: np.ndarray) -> np.ndarray:
    """Quadratic kappa of a stack of confusion matrices ``(B, K, K)`` (vectorised, for the bootstrap)."""
    k = cms.shape[-1]
    idx = np.arange(k)
    w = (idx[:, None] - idx[None, :]) ** 2 / max(1, (k - 1) ** 2)
    n = cms.sum(axis=(1, 2), keepdims=True).astype(np.float64)
    expected = cms.sum(axis=2, keepdims=True) * cms.sum(axis=1, keepdims=True) / np.maximum(n, 1)
    num = (w * cms).sum(axis=(1, 2))
    den = (w * expected).sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = 1.0 - num / den
    kappa[den == 0] = np.where(num[den == 0] == 0, 1.0, np.nan)
    return kappa


def bootstrap_kappa_ci(
    labels: ArrayLike,
    preds: ArrayLike,
    n_classes: Optional[int] = None,
    *,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the quadratic kappa, resampling samples with replacement.

    Returns ``(low, high)``; ``(nan, nan)`` for fewer than 2 samples or ``n_boot < 1``.
    """
    y, p = _np(labels).astype(int).ravel(), _np(preds).astype(int).ravel()
    n = len(y)
    if n < 2 or n_boot < 1:
        return float("nan"), float("nan")
    k = n_classes or int(max(y.max(), p.max()) + 1)
    rng = np.random.default_rng(seed)
    values = []
    for start in range(0, n_boot, 500):  # chunks bound memory at 500 * n indices
        b = min(500, n_boot - start)
        idx = rng.integers(0, n, size=(b, n))
        flat = (y[idx] * k + p[idx]) + (np.arange(b)[:, None] * k * k)
        cms = np.bincount(flat.ravel(), minlength=b * k * k).reshape(b, k, k)
        values.append(_kappa_from_confusions(cms))
    kappas = np.concatenate(values)
    kappas = kappas[np.isfinite(kappas)]
    if kappas.size == 0:
        return float("nan"), float("nan")
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(kappas, [tail, 100.0 - tail])
    return float(low), float(high)


# ---------------------------------------------------------------------------------------------- classification
def confusion(labels: ArrayLike, preds: ArrayLike, n_classes: int) -> np.ndarray:
    """``(K, K)`` int64 confusion matrix, rows = truth, columns = prediction."""
    from sklearn.metrics import confusion_matrix

    return confusion_matrix(_np(labels).astype(int), _np(preds).astype(int), labels=list(range(n_classes)))


def classification_metrics(
    probs: ArrayLike,
    labels: ArrayLike,
    classes: Sequence[str],
    *,
    n_boot: int = 0,
    seed: int = 0,
) -> dict[str, float]:
    """Every classification metric above from probabilities ``(N, K)`` and true classes ``(N,)``.

    ``n_boot > 0`` adds ``kappa_ci_low`` / ``kappa_ci_high`` (percentile bootstrap, 95 %).
    """
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, roc_auc_score

    prob = _np(probs).astype(np.float64)
    y = _np(labels).astype(int).ravel()
    k = len(classes)
    if prob.ndim != 2 or prob.shape[1] != k:
        raise ValueError(f"probs must be (N, {k}), got {prob.shape}")
    if len(y) != len(prob):
        raise ValueError(f"{len(prob)} predictions for {len(y)} labels")
    pred = prob.argmax(axis=1)
    out: dict[str, float] = {
        "kappa": quadratic_kappa(y, pred, k),
        "accuracy": float(accuracy_score(y, pred)),
    }
    if n_boot > 0:
        out["kappa_ci_low"], out["kappa_ci_high"] = bootstrap_kappa_ci(y, pred, k, n_boot=n_boot, seed=seed)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns for classes absent from y; values are still defined
        out["balanced_accuracy"] = float(balanced_accuracy_score(y, pred)) if len(set(y.tolist())) > 1 else float("nan")
        f1s = f1_score(y, pred, labels=list(range(k)), average=None, zero_division=0)
        out["f1_macro"] = float(np.mean(f1s))
        for name, value in zip(classes, f1s):
            out[f"f1_{key_of(name)}"] = float(value)
        aucs = []
        for c, name in enumerate(classes):
            positive = y == c
            if positive.all() or not positive.any():
                auc = float("nan")
            else:
                auc = float(roc_auc_score(positive, prob[:, c]))
                aucs.append(auc)
            out[f"auc_{key_of(name)}"] = auc
        out["auc_macro"] = float(np.mean(aucs)) if len(aucs) == k else float("nan")
    return out


def plot_confusion(
    matrix: ArrayLike, classes: Sequence[str], path: Union[str, Path], title: str = "Confusion matrix"
) -> Path:
    """Write the confusion matrix (counts, row-normalised shading) as a PNG; Agg canvas, no pyplot state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from engine.models.checkpoint import atomic_write_bytes

    cm = _np(matrix).astype(np.int64)
    rows = cm.sum(axis=1, keepdims=True)
    shade = np.divide(cm, np.maximum(rows, 1), dtype=np.float64)
    side = 1.2 + 0.9 * len(classes)
    fig = Figure(figsize=(side + 1.2, side), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(shade, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    ax.set_xticks(range(len(classes)), labels=list(classes), rotation=30, ha="right")
    ax.set_yticks(range(len(classes)), labels=list(classes))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", color="white" if shade[i, j] > 0.5 else "black")
    fig.tight_layout()
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    atomic_write_bytes(Path(path), buffer.getvalue())
    return Path(path)


# ---------------------------------------------------------------------------------------------- segmentation
def segmentation_metrics(
    pred: ArrayLike, target: ArrayLike, classes: Sequence[str], *, include_background: bool = False
) -> dict[str, float]:
    """Dice and IoU per class (MONAI), from class maps ``(N, *spatial)`` or logits ``(N, C, *spatial)``.

    ``classes[0]`` is the background and is skipped unless ``include_background``. A class absent from both
    prediction and truth of a sample does not count for that sample (MONAI ``ignore_empty``).
    """
    import torch
    from monai.metrics import DiceMetric, MeanIoU
    from monai.networks.utils import one_hot

    c = len(classes)
    p = torch.as_tensor(_np(pred))
    t = torch.as_tensor(_np(target)).long()
    if p.dim() == t.dim() + 1:  # logits / probabilities
        p = p.argmax(dim=1)
    p = p.long()
    if p.shape != t.shape:
        raise ValueError(f"prediction {tuple(p.shape)} and target {tuple(t.shape)} differ in shape")
    p1 = one_hot(p.unsqueeze(1), num_classes=c, dim=1)
    t1 = one_hot(t.unsqueeze(1), num_classes=c, dim=1)
    dice = DiceMetric(include_background=include_background, reduction="mean_batch", ignore_empty=True)
    iou = MeanIoU(include_background=include_background, reduction="mean_batch", ignore_empty=True)
    dice(p1, t1)
    iou(p1, t1)
    dice_values = dice.aggregate().cpu().numpy().ravel()
    iou_values = iou.aggregate().cpu().numpy().ravel()
    names = list(classes) if include_background else list(classes)[1:]
    out: dict[str, float] = {}
    for name, d, j in zip(names, dice_values, iou_values):
        out[f"dice_{key_of(name)}"] = float(d)
        out[f"iou_{key_of(name)}"] = float(j)
    out["dice_mean"] = float(np.nanmean(dice_values)) if np.isfinite(dice_values).any() else float("nan")
    out["iou_mean"] = float(np.nanmean(iou_values)) if np.isfinite(iou_values).any() else float("nan")
    return out


# ---------------------------------------------------------------------------------------------- multi-label
def multilabel_metrics(
    probs: ArrayLike, targets: ArrayLike, labels: Sequence[str], *, threshold: float = 0.5
) -> dict[str, float]:
    """Per-label AUC, micro / macro F1 and the ODIR-5K score from probabilities and 0/1 targets ``(N, L)``.

    ``odir_score`` = mean of Cohen's kappa, micro F1 and AUC on the flattened ``(N * L)`` matrix (the ODIR
    challenge's evaluation).
    """
    from sklearn.metrics import cohen_kappa_score, f1_score, roc_auc_score

    prob = _np(probs).astype(np.float64)
    y = _np(targets).astype(int)
    if prob.shape != y.shape or prob.ndim != 2 or prob.shape[1] != len(labels):
        raise ValueError(f"probs {prob.shape} and targets {y.shape} must both be (N, {len(labels)})")
    binary = (prob >= threshold).astype(int)
    out: dict[str, float] = {}
    aucs = []
    for j, name in enumerate(labels):
        col = y[:, j]
        if col.min() == col.max():
            auc = float("nan")
        else:
            auc = float(roc_auc_score(col, prob[:, j]))
            aucs.append(auc)
        out[f"auc_{key_of(name)}"] = auc
    out["auc_macro"] = float(np.mean(aucs)) if aucs else float("nan")
    out["f1_micro"] = float(f1_score(y, binary, average="micro", zero_division=0))
    out["f1_macro"] = float(f1_score(y, binary, average="macro", zero_division=0))
    flat_y, flat_p, flat_b = y.ravel(), prob.ravel(), binary.ravel()
    if flat_y.min() != flat_y.max():
        kappa = float(cohen_kappa_score(flat_y, flat_b))
        auc_flat = float(roc_auc_score(flat_y, flat_p))
        out["kappa"] = kappa
        out["auc_flat"] = auc_flat
        out["odir_score"] = (kappa + out["f1_micro"] + auc_flat) / 3.0
    else:
        out["kappa"] = out["auc_flat"] = out["odir_score"] = float("nan")
    return out


# ---------------------------------------------------------------------------------------------- fit() adapters
class ClassificationMetrics:
    """``metrics_fn`` for fit(): softmax of ``outputs`` ``(N, K)`` logits against ``batch["label"]``."""

    def __init__(self, classes: Sequence[str], *, label_key: str = "label", n_boot: int = 0, seed: int = 0) -> None:
        self.classes = list(classes)
        self.label_key = label_key
        self.n_boot = n_boot
        self.seed = seed

    def __call__(self, outputs: Any, batch: Mapping[str, Any]) -> dict[str, float]:
        import torch

        logits = outputs if isinstance(outputs, torch.Tensor) else outputs["logits"]
        probs = torch.softmax(logits.float(), dim=1)
        return classification_metrics(probs, batch[self.label_key], self.classes, n_boot=self.n_boot, seed=self.seed)


class MultiLabelMetrics:
    """``metrics_fn`` for fit(): sigmoid of ``outputs`` ``(N, L)`` against ``batch["labels"]`` ``(N, L)``."""

    def __init__(self, labels: Sequence[str], *, target_key: str = "labels", threshold: float = 0.5) -> None:
        self.labels = list(labels)
        self.target_key = target_key
        self.threshold = threshold

    def __call__(self, outputs: Any, batch: Mapping[str, Any]) -> dict[str, float]:
        import torch

        logits = outputs if isinstance(outputs, torch.Tensor) else outputs["logits"]
        return multilabel_metrics(torch.sigmoid(logits.float()), batch[self.target_key], self.labels,
                                  threshold=self.threshold)


class SegmentationMetrics:
    """Streaming ``metrics_fn`` for fit(): argmax of ``(N, C, *spatial)`` logits against ``batch["mask"]``.

    Streaming (reset / update / compute) so full-resolution masks of a large validation set are never held at
    once; per-sample Dice / IoU are accumulated with MONAI and averaged per class.
    """

    def __init__(self, classes: Sequence[str], *, mask_key: str = "mask", include_background: bool = False) -> None:
        self.classes = list(classes)
        self.mask_key = mask_key
        self.include_background = include_background
        self.reset()

    def reset(self) -> None:
        self._dice: list[np.ndarray] = []
        self._iou: list[np.ndarray] = []

    def update(self, outputs: Any, batch: Mapping[str, Any]) -> None:
        import torch
        from monai.metrics import DiceMetric, MeanIoU
        from monai.networks.utils import one_hot

        logits = outputs if isinstance(outputs, torch.Tensor) else outputs["logits"]
        c = len(self.classes)
        p = logits.argmax(dim=1, keepdim=True)
        t = torch.as_tensor(batch[self.mask_key]).long()
        if t.dim() == p.dim() - 1:
            t = t.unsqueeze(1)
        p1, t1 = one_hot(p, c, dim=1), one_hot(t, c, dim=1)
        kwargs = dict(include_background=self.include_background, reduction="none", ignore_empty=True)
        self._dice.append(DiceMetric(**kwargs)(p1, t1).cpu().numpy())
        self._iou.append(MeanIoU(**kwargs)(p1, t1).cpu().numpy())

    def compute(self) -> dict[str, float]:
        if not self._dice:
            return {}
        dice = np.concatenate(self._dice, axis=0)
        iou = np.concatenate(self._iou, axis=0)
        names = self.classes if self.include_background else self.classes[1:]
        out: dict[str, float] = {}
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-nan column: class never present
            d_mean, j_mean = np.nanmean(dice, axis=0), np.nanmean(iou, axis=0)
        for name, d, j in zip(names, d_mean, j_mean):
            out[f"dice_{key_of(name)}"] = float(d)
            out[f"iou_{key_of(name)}"] = float(j)
        out["dice_mean"] = float(np.nanmean(d_mean)) if np.isfinite(d_mean).any() else float("nan")
        out["iou_mean"] = float(np.nanmean(j_mean)) if np.isfinite(j_mean).any() else float("nan")
        return out

    def __call__(self, outputs: Any, batch: Mapping[str, Any]) -> dict[str, float]:
        self.reset()
        self.update(outputs, batch)
        return self.compute()


def finite_mean(values: Sequence[float]) -> float:
    """Mean of the finite values (``nan`` when none): for averaging metrics over folds."""
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return float(np.mean(vals)) if vals else float("nan")
