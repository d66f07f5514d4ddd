"""``train TASK --data PATH --out DIR [--config FILE] [--folds K] [--device ...] [--epochs N]``.

Trains one of the registered tasks (engine.train.tasks) with engine.train.loop.fit. Under ``torchrun`` the same
command trains with DDP (``torchrun --nproc_per_node=2 -m engine train ...``). ``--folds K --set fold=k`` trains
only fold k of the K-fold split (the same split whatever k: one fold per machine, or per set of pseudo labels).

Exit codes: 0 trained, 1 the data folder / config / checkpoint is unusable (one stderr line), 2 bad usage,
130 interrupted (``last.pt`` stays: the same command resumes).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

NAME = "train"


def tasks_epilog() -> str:
    """The task list for ``--help`` (no torch import: engine.train.tasks is standard-library only)."""
    from engine.train.tasks import TASK_SUMMARIES

    width = max(map(len, TASK_SUMMARIES))
    return "tasks:\n" + "\n".join(f"  {name:<{width}}  {text}" for name, text in TASK_SUMMARIES.items())


def add_common_options(p: argparse.ArgumentParser) -> None:
    """Options shared by train and tune."""
    p.add_argument("task", metavar="TASK", help="disc-cup, layers, grader, odir, glioma, bone, classfolders")
    p.add_argument("--data", required=True, type=Path, metavar="PATH", help="dataset folder in its published layout")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder (resumed when it holds last.pt)")
    p.add_argument("--config", type=Path, metavar="FILE", help="TOML or YAML config (overrides the task's defaults)")
    p.add_argument("--folds", type=int, metavar="K", help="K-fold cross-validation (default: config, 1 = hold-out)")
    p.add_argument("--device", metavar="DEV", help="auto (default), cpu, cuda, cuda:N")
    p.add_argument("--epochs", type=int, metavar="N", help="override the config's epochs (quick runs)")
    p.add_argument("--batch-size", type=int, metavar="B", help="override the config's batch_size")
    p.add_argument("--seed", type=int, help="override the config's seed")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", default=[],
                   help="override any config key, e.g. --set lr=1e-3 --set model.backbone=resnet18 (repeatable)")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        NAME,
        help="train a task's model (K-fold, DDP under torchrun, resumable)",
        description="Train TASK on a dataset folder. Writes metrics.csv, learning_curves.png, config.toml, "
        "best.pt + best.card.json, evaluation.json and confusion_matrix.png (per fold with --folds K).",
        epilog=tasks_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common_options(p)
    p.add_argument("--by-source", action="store_true", help="leave-one-source-out instead of K-fold")
    p.add_argument("--no-resume", action="store_true", help="start afresh even when DIR holds last.pt")
    p.add_argument("--bootstrap", type=int, default=2000, metavar="N", help="bootstrap resamples for the kappa CI")
    return p


def resolve_config(task: Any, args: argparse.Namespace) -> Any:
    from engine.train.config import load_config, parse_set_option
    from engine.train.tasks import default_config_file

    overrides = {"task": task.name, "folds": args.folds, "device": args.device, "epochs": args.epochs,
                 "batch_size": getattr(args, "batch_size", None), "seed": args.seed}
    overrides.update(parse_set_option(args.set))
    if getattr(args, "no_resume", False):
        overrides["resume"] = False
    return load_config(default_config_file(task), args.config, overrides=overrides)


def run(args: argparse.Namespace) -> int:
    import logging

    from engine.models.checkpoint import CheckpointError
    from engine.progress import Cancelled
    from engine.train.config import ConfigError
    from engine.train.datasets.common import LayoutError
    from engine.train.loop import TrainingError
    from engine.train.run import train_task
    from engine.train.splits import SplitError
    from engine.train.tasks import TaskUnavailable, get_task

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        task = get_task(args.task)
        config = resolve_config(task, args)
        outcome = train_task(task, args.data, args.out, config, by_source=args.by_source, n_boot=args.bootstrap)
    except (TaskUnavailable, ConfigError, LayoutError, SplitError, TrainingError, CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except Cancelled:
        print("cancelled", file=sys.stderr)
        return 130
    import os

    if int(os.environ.get("RANK", "0")) == 0:
        for fold in outcome.folds:
            held = ", ".join(f"{k} {v:.4f}" for k, v in fold.held_out.items()
                             if k in ("kappa", "kappa_ci_low", "kappa_ci_high", "accuracy", "odir_score", "dice_mean"))
            print(f"{fold.out_dir}: best epoch {fold.best_epoch}; held-out {held}; {fold.checkpoint}")
        if len(outcome.folds) > 1 and task.monitor in outcome.summary:
            s = outcome.summary[task.monitor]
            print(f"{task.monitor} over {s['n']} folds: {s['mean']:.4f} +- {s['sd']:.4f}")
    return 0
