"""The built-in task adapter ``classfolders``: single-label image classification from class-per-folder sets,
with one 2D backbone from ``engine.models.branches`` and a dropout + linear head.

It doubles as a worked example of the adapter interface in :mod:`engine.train.tasks` (and as the tiny task
the framework's own tests train).

Network input ``(B, 3, h, w)`` float32 standardised with ``spec["inputs"]["image"]``; output logits ``(B, K)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import torch
from torch import nn

from engine.train.tasks import Cohort, SimpleTask

ARCHITECTURE = "image_classifier"


class ImageClassifier(nn.Module):
    """A ``Branch`` backbone (its ``trunk`` is the Grad-CAM target) + ``Dropout -> Linear(num_classes)``."""

    def __init__(self, backbone: str = "small2d", num_classes: int = 2, dropout: float = 0.2, in_channels: int = 3) -> None:
        super().__init__()
        from engine.models.branches import build_branch

        self.branch = build_branch(backbone, 2, in_channels)
        self.head = nn.Sequential(nn.Dropout(float(dropout)), nn.Linear(self.branch.out_dim, int(num_classes)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.branch(x))


def build_image_classifier(spec: Mapping[str, Any]) -> ImageClassifier:
    """The network an ``image_classifier`` spec describes (random weights)."""
    if spec.get("architecture") != ARCHITECTURE:
        raise ValueError(f"unknown architecture {spec.get('architecture')!r}; expected {ARCHITECTURE!r}")
    return ImageClassifier(**dict(spec.get("kwargs", {})))


def _input_spec(config: Any) -> dict[str, Any]:
    from engine.train.datasets.common import DEFAULT_MEAN, DEFAULT_STD, size_pair

    data = config.data
    return {
        "size": list(size_pair(data.get("input_size", 224))),
        "mean": list(data.get("mean", DEFAULT_MEAN)),
        "std": list(data.get("std", DEFAULT_STD)),
    }


def _spec(task: str, config: Any, classes: Sequence[str], multilabel: bool) -> dict[str, Any]:
    model = config.model
    return {
        "task": task,
        "architecture": ARCHITECTURE,
        "kwargs": {
            "backbone": str(model.get("backbone", "small2d")),
            "num_classes": len(classes),
            "dropout": float(model.get("dropout", 0.2)),
        },
        "inputs": {"image": _input_spec(config)},
        "classes": list(classes),
        "multilabel": multilabel,
        "cam_target_layers": ["branch.trunk"],
    }


def _build(task: str, multilabel: bool):
    def build(config: Any, cohort: Cohort) -> tuple[nn.Module, dict[str, Any]]:
        spec = _spec(task, config, cohort.classes, multilabel)
        return build_image_classifier(spec), spec

    return build


def _datasets(keep: Sequence[str]):
    def make(cohort: Cohort, train_idx: Sequence[int], val_idx: Sequence[int], config: Any) -> tuple[Any, Any]:
        from engine.train.datasets.transforms import image_dataset

        inputs = _input_spec(config)
        common = dict(keep_keys=keep, size=inputs["size"], options=config.data, mean=inputs["mean"], std=inputs["std"])
        train = image_dataset([cohort.items[i] for i in train_idx], train=True, **common)
        val = image_dataset([cohort.items[i] for i in val_idx], train=False, **common)
        return train, val

    return make


def _eval_dataset(keep: Sequence[str]):
    def make(cohort: Cohort, indices: Sequence[int], spec: Mapping[str, Any]) -> Any:
        from engine.train.datasets.transforms import image_dataset

        inputs = spec["inputs"]["image"]
        return image_dataset([cohort.items[i] for i in indices], keep_keys=keep, size=inputs["size"],
                             options={"cache_rate": 0}, mean=inputs["mean"], std=inputs["std"], train=False)

    return make


def _load(task: str):
    def load(checkpoint: Path, device: Any) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
        from engine.models.checkpoint import load_checkpoint

        ckpt = load_checkpoint(checkpoint, expected_task=task)
        model = build_image_classifier(ckpt.spec)
        model.load_state_dict(ckpt.state_dict)
        return model.to(device).eval(), ckpt.spec, ckpt.card

    return load


def _card(task: str, description: str):
    def card(config: Any, cohort: Cohort) -> dict[str, Any]:
        return {
            "name": f"{task}-{config.model.get('backbone', 'small2d')}",
            "task": task,
            "description": description,
            "classes": list(cohort.classes),
            "data": cohort.description or str(cohort.root),
            "samples": len(cohort),
            "intended_use": "research only; not a medical device",
        }

    return card


# ---------------------------------------------------------------------------------------------- classfolders
def _read_classfolders(data: Path, config: Any) -> Cohort:
    from engine.train.datasets.classfolders import read_classfolders

    items, classes = read_classfolders(data, config.data.get("classes"))
    return Cohort(
        root=data, items=items, classes=classes, labels=[it["label"] for it in items],
        groups=[it["patient"] for it in items],
        description=f"{data.name}: {len(items)} images in {len(classes)} class folders",
    )


def class_weights(labels: Sequence[int], n_classes: int) -> torch.Tensor:
    """Inverse-frequency class weights ``(K,)`` normalised to mean 1 (absent classes get weight 1)."""
    counts = torch.bincount(torch.as_tensor(list(labels), dtype=torch.long), minlength=n_classes).float()
    weights = torch.where(counts > 0, counts.sum() / (n_classes * counts.clamp(min=1)), torch.ones_like(counts))
    return weights / weights.mean()


def _ce_loss(config: Any, cohort: Cohort, train_idx: Sequence[int]):
    weight = None
    if config.data.get("class_weights", "balanced") == "balanced" and cohort.labels is not None:
        weight = class_weights([cohort.labels[i] for i in train_idx], len(cohort.classes))
    smoothing = float(config.model.get("label_smoothing", 0.0))

    def loss(outputs: torch.Tensor, batch: Mapping[str, Any]) -> torch.Tensor:
        w = weight.to(outputs.device) if weight is not None else None
        return nn.functional.cross_entropy(outputs.float(), batch["label"].long(), weight=w, label_smoothing=smoothing)

    return loss


def _cls_metrics(config: Any, cohort: Cohort):
    from engine.train.metrics import ClassificationMetrics

    return ClassificationMetrics(cohort.classes)


CLASSFOLDERS_TASK = SimpleTask(
    name="classfolders",
    description="image classification from a class-per-folder set (e.g. the dental panoramic set)",
    kind="classification",
    monitor="kappa",
    mode="max",
    read_cohort_fn=_read_classfolders,
    build_model_fn=_build("classfolders", multilabel=False),
    datasets_fn=_datasets(("image", "label", "id")),
    loss_fn_factory=_ce_loss,
    metrics_fn_factory=_cls_metrics,
    card_fn=_card("classfolders", "single-label image classifier"),
    load_model_fn=_load("classfolders"),
    eval_dataset_fn=_eval_dataset(("image", "label", "id")),
)
