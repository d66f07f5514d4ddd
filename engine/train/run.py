"""``train TASK``: config -> cohort -> folds -> fit() per fold -> held-out evaluation -> CV summary.

Output folder (``--out DIR``):

- one split (``folds = 1``): everything of :func:`engine.train.loop.fit` in ``DIR`` plus ``evaluation.json``,
  ``predictions.csv`` and ``confusion_matrix.png`` of the best checkpoint on its held-out split;
- K folds: the same in ``DIR/fold1`` ... ``DIR/foldK`` and ``DIR/cv_summary.json`` / ``cv_summary.csv`` (mean
  and standard deviation of each metric over the folds);
- ``DIR/split.json``: which sample ids went to which fold (so a run can be audited and repeated).

Under ``torchrun`` every rank runs this; fit() shares the work; rank 0 alone evaluates and writes files.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from engine.progress import CancelToken, ProgressCallback, sub_progress
from engine.train.config import TrainConfig

log = logging.getLogger(__name__)


@dataclass
class FoldOutcome:
    fold: int
    out_dir: Path
    checkpoint: Path
    best_epoch: int
    best_metrics: dict[str, float]
    held_out: dict[str, float] = field(default_factory=dict)


@dataclass
class TrainOutcome:
    task: str
    out_dir: Path
    folds: list[FoldOutcome]
    summary: dict[str, dict[str, float]]


def make_splits(cohort: Any, config: TrainConfig, *, by_source: bool = False) -> list[tuple[str, tuple[list[int], list[int]]]]:
    """``[(name, (train_idx, val_idx)), ...]`` for the cohort: K-fold, one hold-out split or leave-one-source-out.
    Items marked ``cohort.train_only`` are left out of the splitting and added to every training side."""
    from engine.train import splits

    only = cohort.train_only or [False] * len(cohort)
    idx = [i for i, t in enumerate(only) if not t]
    extra = [i for i, t in enumerate(only) if t]

    def pick(values: Optional[Sequence[Any]]) -> Optional[list[Any]]:
        return None if values is None else [values[i] for i in idx]

    def widen(split: tuple[Sequence[int], Sequence[int]]) -> tuple[list[int], list[int]]:
        train, val = split
        if not extra:
            return list(train), list(val)
        return sorted([idx[i] for i in train] + extra), [idx[i] for i in val]

    if by_source:
        if not cohort.sources:
            raise splits.SplitError("this dataset does not say which source each sample came from")
        return [(f"source-{name}", widen(split)) for name, split in splits.leave_one_source_out(pick(cohort.sources))]
    if config.folds > 1:
        folds = splits.kfold(len(idx), config.folds, labels=pick(cohort.labels), groups=pick(cohort.groups),
                             seed=config.seed)
        return [(f"fold{i + 1}", widen(split)) for i, split in enumerate(folds)]
    return [("holdout", widen(splits.holdout(len(idx), config.val_fraction, labels=pick(cohort.labels),
                                             groups=pick(cohort.groups), seed=config.seed)))]


def _summary(rows: Sequence[Mapping[str, float]]) -> dict[str, dict[str, float]]:
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    out = {}
    for key in keys:
        values = [float(r[key]) for r in rows if isinstance(r.get(key), (int, float)) and math.isfinite(float(r[key]))]
        if values:
            mean = sum(values) / len(values)
            sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
            out[key] = {"mean": mean, "sd": sd, "n": len(values)}
    return out


def train_task(
    task: Any,
    data: Path,
    out_dir: Path,
    config: TrainConfig,
    *,
    by_source: bool = False,
    n_boot: int = 2000,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
) -> TrainOutcome:
    """Train ``task`` on the folder ``data`` into ``out_dir`` with ``config`` (already resolved)."""
    import torch

    from engine.models.checkpoint import atomic_write_bytes
    from engine.train.evaluate import add_evaluation_to_card, evaluate_outputs, predict, write_evaluation
    from engine.train.loop import _barrier, fit, resolve_device, seed_everything, setup_distributed
    from engine.train.datasets.common import LayoutError

    data, out_dir = Path(data), Path(out_dir)
    cohort = task.read_cohort(data, config)
    if not cohort.has_labels:
        raise LayoutError(data, "training needs labels for every sample, and some have none")
    device = resolve_device(config.device, int(__import__("os").environ.get("LOCAL_RANK", "0")))
    info = setup_distributed(device)  # one process group for every fold
    try:
        split_list = make_splits(cohort, config, by_source=by_source)
        ids = cohort.ids
        if info.is_main:
            out_dir.mkdir(parents=True, exist_ok=True)
            split_doc = {name: {"train": [ids[i] for i in tr], "val": [ids[i] for i in va]} for name, (tr, va) in split_list}
            atomic_write_bytes(out_dir / "split.json", (json.dumps(split_doc, indent=1) + "\n").encode())
        outcomes: list[FoldOutcome] = []
        for k, (name, (train_idx, val_idx)) in enumerate(split_list):
            if config.fold and k + 1 != config.fold:
                continue
            fold_dir = out_dir if len(split_list) == 1 else out_dir / name
            seed_everything(config.seed, config.deterministic)  # identical initial weights in every fold / rank
            model, spec = task.build_model(config, cohort)
            train_ds, val_ds = task.datasets(cohort, train_idx, val_idx, config)
            card = dict(task.card(config, cohort))
            card["split"] = {"name": name, "folds": len(split_list), "train_samples": len(train_idx),
                             "val_samples": len(val_idx), "seed": config.seed}
            if info.is_main:
                log.info("%s: %d training / %d validation samples", name, len(train_idx), len(val_idx))
            result = fit(
                model, train_ds, val_ds, config=config, loss_fn=task.loss_fn(config, cohort, train_idx),
                metrics_fn=task.metrics_fn(config, cohort), monitor=task.monitor, mode=task.mode, spec=spec,
                card=card, out_dir=fold_dir, forward=getattr(task, "forward", None),
                progress=sub_progress(progress, k / len(split_list), (k + 1) / len(split_list)), cancel=cancel,
            )
            held: dict[str, float] = {}
            if info.is_main:
                # the best checkpoint on its held-out fold, with the bootstrap interval and the confusion matrix
                eval_ds = task.eval_dataset(cohort, val_idx, spec) if hasattr(task, "eval_dataset") else val_ds
                outputs, batch = predict(model, eval_ds, forward=getattr(task, "forward", None),
                                         batch_size=config.val_batch_size or config.batch_size, device=device)
                evaluation = evaluate_outputs(outputs, batch, kind=task.kind, classes=spec.get("classes", cohort.classes),
                                              out_dir=fold_dir, n_boot=n_boot, seed=config.seed,
                                              submission=False, title=f"{task.name} {name} (held out)")
                write_evaluation(fold_dir / "evaluation.json", evaluation,
                                 {"task": task.name, "split": name, "checkpoint": str(result.checkpoint_path)})
                held = evaluation.metrics
                block = {"split": f"{name} held-out ({len(val_idx)} samples)", "n": evaluation.n,
                         "metrics": evaluation.metrics, "confusion_matrix": evaluation.confusion}
                add_evaluation_to_card(result.checkpoint_path, block)
            _barrier(info)
            outcomes.append(FoldOutcome(k + 1, fold_dir, result.checkpoint_path, result.best_epoch,
                                        result.best_metrics, held))
            del model, train_ds, val_ds
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        summary = _summary([o.held_out or o.best_metrics for o in outcomes])
        if info.is_main and len(outcomes) > 1:
            doc = {"task": task.name, "folds": [{"fold": o.fold, "dir": str(o.out_dir), "best_epoch": o.best_epoch,
                                                  "held_out": o.held_out} for o in outcomes], "summary": summary}
            atomic_write_bytes(out_dir / "cv_summary.json", (json.dumps(doc, indent=2, default=float) + "\n").encode())
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerow(["metric", "mean", "sd", "n"])
            for key, stats in summary.items():
                writer.writerow([key, f"{stats['mean']:.5g}", f"{stats['sd']:.5g}", stats["n"]])
            atomic_write_bytes(out_dir / "cv_summary.csv", buffer.getvalue().encode())
        return TrainOutcome(task.name, out_dir, outcomes, summary)
    finally:
        if info.created_group:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
