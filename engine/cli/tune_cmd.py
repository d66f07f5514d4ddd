"""``tune TASK --data PATH --out DIR [--trials N] [--config FILE] ...``: Optuna search, resumable (SQLite).

Exit codes: 0 done (best config written), 1 unusable data / config, 2 bad usage, 130 interrupted (rerun the
same command to resume the study).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

NAME = "tune"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    from engine.cli.train_cmd import add_common_options, tasks_epilog

    p = subparsers.add_parser(
        NAME,
        help="hyper-parameter search with Optuna (pruning; study stored in DIR/study.db, resumable)",
        description="Search backbone, input size, lr, batch size, dropout, fusion ... as set in the config's "
        "[tune.space] table. Writes DIR/trials.csv and DIR/best_config.toml.",
        epilog=tasks_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common_options(p)
    p.add_argument("--trials", type=int, metavar="N", help="total trials of the study (default: config tune.n_trials)")
    p.add_argument("--timeout", type=float, metavar="S", help="stop starting new trials after S seconds")
    return p


def run(args: argparse.Namespace) -> int:
    import logging

    from engine.progress import Cancelled
    from engine.train.config import ConfigError
    from engine.train.datasets.common import LayoutError
    from engine.train.loop import TrainingError
    from engine.train.splits import SplitError
    from engine.train.tasks import TaskUnavailable, get_task
    from engine.train.tune import tune_task
    from engine.cli.train_cmd import resolve_config

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        task = get_task(args.task)
        config = resolve_config(task, args)
        outcome = tune_task(task, args.data, args.out, config, n_trials=args.trials, timeout_s=args.timeout)
    except (TaskUnavailable, ConfigError, LayoutError, SplitError, TrainingError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except Cancelled:
        print("cancelled", file=sys.stderr)
        return 130
    print(f"study {outcome.study_name} ({outcome.storage}): {outcome.n_complete} complete, {outcome.n_pruned} pruned")
    print(f"best {task.monitor} {outcome.best_value:.4f} with {outcome.best_params}")
    print(f"best config: {outcome.best_config}  (train with: python -m engine train {task.name} --config {outcome.best_config} ...)")
    return 0
