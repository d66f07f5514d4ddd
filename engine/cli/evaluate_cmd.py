"""``evaluate TASK --data PATH --checkpoint FILE [--out DIR]``: metrics of a trained model on a dataset folder.

Writes evaluation.json, predictions.csv, confusion_matrix.png and (GAMMA grades on a folder without labels,
or ``--submission``) a GAMMA submission.csv. Exit codes: 0 done, 1 unusable data / checkpoint, 2 bad usage.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

NAME = "evaluate"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    from engine.cli.train_cmd import tasks_epilog

    p = subparsers.add_parser(
        NAME,
        help="evaluate a checkpoint (kappa with 95%% CI, F1, AUC, Dice; GAMMA submission CSV)",
        description="Evaluate CHECKPOINT of TASK on the dataset folder PATH.",
        epilog=tasks_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("task", metavar="TASK", help="disc-cup, layers, grader, odir, glioma, bone, classfolders")
    p.add_argument("--data", required=True, type=Path, metavar="PATH")
    p.add_argument("--checkpoint", required=True, type=Path, metavar="FILE", help="a .pt with its .card.json")
    p.add_argument("--out", type=Path, metavar="DIR", help="output folder (default: beside the checkpoint)")
    p.add_argument("--device", default="auto", metavar="DEV")
    p.add_argument("--batch-size", type=int, default=8, metavar="B")
    p.add_argument("--bootstrap", type=int, default=2000, metavar="N", help="bootstrap resamples for the kappa CI")
    p.add_argument("--submission", action="store_true", help="also write a GAMMA submission.csv")
    return p


def run(args: argparse.Namespace) -> int:
    from engine.models.checkpoint import CheckpointError
    from engine.train.datasets.common import LayoutError
    from engine.train.evaluate import evaluate_checkpoint
    from engine.train.loop import TrainingError
    from engine.train.tasks import TaskUnavailable, get_task

    out = args.out or args.checkpoint.parent / f"evaluation-{args.data.name or 'data'}"
    try:
        task = get_task(args.task)
        evaluation = evaluate_checkpoint(task, args.checkpoint, args.data, out_dir=out, device=args.device,
                                         batch_size=args.batch_size, n_boot=args.bootstrap,
                                         submission=True if args.submission else None)
    except (TaskUnavailable, LayoutError, CheckpointError, TrainingError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    m = evaluation.metrics
    print(f"{evaluation.n} samples")
    if "kappa" in m and "kappa_ci_low" in m:
        print(f"quadratic kappa {m['kappa']:.4f} (95% CI {m['kappa_ci_low']:.4f} .. {m['kappa_ci_high']:.4f})")
    for key in ("accuracy", "f1_macro", "auc_macro", "odir_score", "dice_mean", "iou_mean"):
        if key in m:
            print(f"{key} {m[key]:.4f}")
    for name, path in evaluation.files.items():
        print(f"{name}: {path}")
    print(f"evaluation: {out / 'evaluation.json'}")
    return 0
