"""Evaluate a checkpoint on a dataset folder: ``python -m engine evaluate TASK --data PATH --checkpoint FILE``.

Writes into ``--out``:

- ``evaluation.json``: every metric of the task's kind (classification: quadratic kappa with its bootstrap 95 %
  interval, accuracy, per-class F1 and AUC, confusion matrix; multi-label: per-label AUC, F1, ODIR score;
  segmentation: Dice / IoU per class), the checkpoint's hash and the data folder;
- ``predictions.csv``: one row per sample (id, truth, prediction, probabilities);
- ``confusion_matrix.png`` (classification);
- ``submission.csv`` for the GAMMA grades (``data,non,early,mid_advanced``, one-hot of the predicted grade,
  4-digit ids), written for a folder without labels or when asked.

The same code evaluates each fold's best checkpoint on its held-out fold at the end of ``train``.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import torch

from engine.models.checkpoint import atomic_write_bytes
from engine.progress import CancelToken, ProgressCallback, check, report

GAMMA_CLASSES = ("non", "early", "mid_advanced")


@dataclass
class Evaluation:
    """What an evaluation found. ``metrics`` is flat (``{name: float}``); ``files`` are the written outputs."""

    metrics: dict[str, float]
    n: int
    confusion: Optional[list[list[int]]] = None
    files: dict[str, str] = field(default_factory=dict)


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    dataset: Any,
    *,
    forward: Any = None,
    batch_size: int = 8,
    device: Any = "cpu",
    num_workers: int = 0,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
) -> tuple[Any, Any]:
    """Run ``model`` over ``dataset``; return ``(outputs, batch)`` concatenated over the set (CPU, float32)."""
    from torch.utils.data import DataLoader

    from engine.train.loop import _default_forward, _detach_cpu, concat_batches, to_device

    forward = forward or _default_forward
    model = model.to(device).eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    outs, batches = [], []
    total = max(1, len(loader))
    for i, batch in enumerate(loader):
        check(cancel)
        dev_batch = to_device(batch, torch.device(device))
        outs.append(_detach_cpu(forward(model, dev_batch)))
        batches.append(_detach_cpu(batch))
        report(progress, (i + 1) / total, f"predicting {i + 1}/{total}")
    return concat_batches(outs), concat_batches(batches)


def _logits(outputs: Any) -> torch.Tensor:
    return outputs if isinstance(outputs, torch.Tensor) else outputs["logits"]


def write_gamma_submission(ids: Sequence[str], probs: Any, path: Path) -> Path:
    """GAMMA grading submission: ``data,non,early,mid_advanced`` with the predicted grade one-hot, 4-digit ids."""
    prob = np.asarray(probs)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["data", *GAMMA_CLASSES])
    for case, row in sorted(zip(ids, prob), key=lambda item: str(item[0])):
        onehot = [0, 0, 0]
        onehot[int(np.argmax(row))] = 1
        text = str(case)
        writer.writerow([text.zfill(4) if text.isdigit() else text, *onehot])
    atomic_write_bytes(Path(path), buffer.getvalue().encode("utf-8"))
    return Path(path)


def _write_predictions(path: Path, ids: Sequence[str], truth: Optional[np.ndarray], probs: np.ndarray,
                       classes: Sequence[str], multilabel: bool) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if multilabel:
        writer.writerow(["id", *[f"true_{c}" for c in classes], *[f"p_{c}" for c in classes]])
        for i, case in enumerate(ids):
            t = [] if truth is None else [int(v) for v in truth[i]]
            writer.writerow([case, *t, *[f"{p:.5f}" for p in probs[i]]])
    else:
        writer.writerow(["id", "true", "predicted", *[f"p_{c}" for c in classes]])
        for i, case in enumerate(ids):
            t = "" if truth is None or truth[i] < 0 else classes[int(truth[i])]
            writer.writerow([case, t, classes[int(np.argmax(probs[i]))], *[f"{p:.5f}" for p in probs[i]]])
    atomic_write_bytes(path, buffer.getvalue().encode("utf-8"))


def evaluate_outputs(
    outputs: Any,
    batch: Mapping[str, Any],
    *,
    kind: str,
    classes: Sequence[str],
    out_dir: Optional[Path] = None,
    n_boot: int = 2000,
    seed: int = 0,
    submission: Optional[bool] = None,
    title: str = "",
) -> Evaluation:
    """Metrics (and files in ``out_dir``) from concatenated model outputs and their batch.

    ``submission``: write the GAMMA ``submission.csv`` (default: when the classes are the GAMMA grades and the
    samples carry no labels).
    """
    from engine.train import metrics as M

    classes = list(classes)
    ids = [str(v) for v in batch.get("id", range(len(_logits(outputs))))]
    files: dict[str, str] = {}
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    logits = _logits(outputs).float()
    if kind == "classification":
        probs = torch.softmax(logits, dim=1).numpy()
        labels = batch.get("label")
        truth = None if labels is None else np.asarray(labels).astype(int)
        labelled = truth is not None and (truth >= 0).all()
        metrics: dict[str, float] = {}
        confusion = None
        if labelled:
            metrics = M.classification_metrics(probs, truth, classes, n_boot=n_boot, seed=seed)
            cm = M.confusion(truth, probs.argmax(1), len(classes))
            confusion = cm.tolist()
            if out_dir is not None:
                files["confusion_matrix"] = str(M.plot_confusion(cm, classes, out_dir / "confusion_matrix.png",
                                                                 title or "Confusion matrix"))
        if out_dir is not None:
            _write_predictions(out_dir / "predictions.csv", ids, truth, probs, classes, multilabel=False)
            files["predictions"] = str(out_dir / "predictions.csv")
            if submission is None:
                submission = tuple(classes) == GAMMA_CLASSES and not labelled
            if submission:
                files["submission"] = str(write_gamma_submission(ids, probs, out_dir / "submission.csv"))
        return Evaluation(metrics, len(ids), confusion, files)
    if kind == "multilabel":
        probs = torch.sigmoid(logits).numpy()
        targets = batch.get("labels")
        truth = None if targets is None else np.asarray(targets).astype(int)
        metrics = M.multilabel_metrics(probs, truth, classes) if truth is not None else {}
        if out_dir is not None:
            _write_predictions(out_dir / "predictions.csv", ids, truth, probs, classes, multilabel=True)
            files["predictions"] = str(out_dir / "predictions.csv")
        return Evaluation(metrics, len(ids), None, files)
    if kind == "segmentation":
        mask = batch.get("mask")
        metrics = M.segmentation_metrics(logits, mask, classes) if mask is not None else {}
        return Evaluation(metrics, len(ids), None, files)
    raise ValueError(f"unknown task kind {kind!r}; expected classification, multilabel or segmentation")


def write_evaluation(path: Path, evaluation: Evaluation, extra: Optional[Mapping[str, Any]] = None) -> Path:
    """``evaluation.json``: metrics, n, confusion matrix, files, plus ``extra`` (checkpoint, data ...)."""
    payload = {**dict(extra or {}), "n": evaluation.n, "metrics": evaluation.metrics,
               "confusion_matrix": evaluation.confusion, "files": evaluation.files}
    atomic_write_bytes(path, (json.dumps(payload, indent=2, default=float) + "\n").encode("utf-8"))
    return path


def add_evaluation_to_card(checkpoint: Path, block: Mapping[str, Any]) -> None:
    """Record a held-out evaluation in the model card beside ``checkpoint`` (the weights and their hash are
    untouched: the card's ``sha256`` is of the .pt file)."""
    from engine.models.checkpoint import card_path_for, read_card

    card = read_card(checkpoint)
    card["evaluation"] = json.loads(json.dumps(dict(block), default=float))
    atomic_write_bytes(card_path_for(checkpoint), (json.dumps(card, indent=2) + "\n").encode("utf-8"))


def evaluate_checkpoint(
    task: Any,
    checkpoint: Path,
    data: Path,
    *,
    out_dir: Path,
    device: str = "auto",
    batch_size: int = 8,
    n_boot: int = 2000,
    seed: int = 0,
    submission: Optional[bool] = None,
    indices: Optional[Sequence[int]] = None,
    config: Any = None,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
) -> Evaluation:
    """Load ``checkpoint`` with the task, read ``data`` in the task's layout, predict, score, write files."""
    from engine.train.config import TrainConfig
    from engine.train.loop import resolve_device

    dev = resolve_device(device)
    model, spec, card = task.load_model(Path(checkpoint), dev)
    if config is None:
        trained = card.get("training", {}).get("config")
        config = TrainConfig.from_dict({k: v for k, v in trained.items() if k in TrainConfig.__dataclass_fields__}) \
            if isinstance(trained, dict) else TrainConfig()
    # a test folder without labels (GAMMA submission) may need a laxer reader than training's
    reader = getattr(task, "read_eval_cohort", None) or task.read_cohort
    cohort = reader(Path(data), config)
    idx = list(range(len(cohort))) if indices is None else list(indices)
    dataset = task.eval_dataset(cohort, idx, spec)
    outputs, batch = predict(model, dataset, forward=getattr(task, "forward", None), batch_size=batch_size,
                             device=dev, progress=progress, cancel=cancel)
    classes = spec.get("classes") or cohort.classes
    evaluation = evaluate_outputs(outputs, batch, kind=task.kind, classes=classes, out_dir=out_dir, n_boot=n_boot,
                                  seed=seed, submission=submission)
    from engine.models.checkpoint import sha256_file

    write_evaluation(out_dir / "evaluation.json", evaluation, {
        "task": task.name, "checkpoint": str(checkpoint), "sha256": sha256_file(Path(checkpoint)),
        "data": str(data), "n_boot": n_boot,
    })
    return evaluation
