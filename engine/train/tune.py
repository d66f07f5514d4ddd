"""Hyper-parameter search with Optuna: ``python -m engine tune TASK --data PATH --out DIR [--trials N]``.

The search space is the config's ``[tune.space]`` table; each key is a config key (dotted for the task
tables) and its value says how to draw it::

    [tune]
    n_trials = 20          # total trials of the study (a resumed study only runs the missing ones)
    epochs = 8             # epochs per trial (default: the config's epochs)
    startup_trials = 4     # MedianPruner: no pruning before this many trials finished ...
    warmup_epochs = 2      # ... nor before this many epochs of a trial
    [tune.space]
    lr = { low = 1e-5, high = 3e-3, log = true }     # float range (log-uniform)
    batch_size = [4, 8, 16]                          # categorical
    "model.backbone" = ["small2d", "resnet18"]
    "model.dropout" = { low = 0.0, high = 0.5 }
    "model.fusion" = ["concat", "add"]
    "data.input_size" = [192, 256, 320]

Each trial trains on one stratified, patient-grouped hold-out split with :func:`engine.train.loop.fit`,
reporting the task's monitor after every epoch; a MedianPruner stops trials that fall below the median of
earlier trials at the same epoch. The study lives in ``DIR/study.db`` (SQLite) with Optuna heartbeats, so an
interrupted search resumes with the same command: finished trials are kept, a trial killed mid-way is marked
failed and retried once. Outputs: ``DIR/trials/trial_<n>/`` (each trial's fit outputs), ``DIR/trials.csv`` and
``DIR/best_config.toml`` (the full config of the best trial, ready for ``train --config``).
"""

from __future__ import annotations

import csv
import io
import logging
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

from engine.progress import CancelToken, check
from engine.train.config import ConfigError, TrainConfig, merge, write_config

log = logging.getLogger(__name__)

DEFAULT_SPACE: dict[str, Any] = {
    "lr": {"low": 1e-5, "high": 3e-3, "log": True},
    "batch_size": [4, 8, 16],
    "model.dropout": {"low": 0.0, "high": 0.5},
}


@dataclass
class TuneOutcome:
    study_name: str
    storage: str
    best_value: float
    best_params: dict[str, Any]
    best_config: Path
    n_complete: int
    n_pruned: int


def suggest(trial: Any, space: Mapping[str, Any]) -> dict[str, Any]:
    """Draw one value per key of ``space`` (see the module docstring) -> flat ``{dotted key: value}``."""
    params: dict[str, Any] = {}
    for key, rule in space.items():
        if isinstance(rule, (list, tuple)):
            if not rule:
                raise ConfigError(f"[tune.space] {key}: empty list of choices")
            params[key] = trial.suggest_categorical(key, list(rule))
        elif isinstance(rule, Mapping) and "low" in rule and "high" in rule:
            low, high, log_scale = rule["low"], rule["high"], bool(rule.get("log", False))
            if isinstance(low, int) and isinstance(high, int) and not isinstance(low, bool) and rule.get("type") != "float":
                params[key] = trial.suggest_int(key, low, high, log=log_scale, step=int(rule.get("step", 1)))
            else:
                params[key] = trial.suggest_float(key, float(low), float(high), log=log_scale)
        else:
            raise ConfigError(f"[tune.space] {key}: expected a list of choices or {{low, high[, log]}}, got {rule!r}")
    return params


def apply_params(config: TrainConfig, params: Mapping[str, Any]) -> TrainConfig:
    """``config`` with the dotted ``params`` set (``"model.backbone"`` goes into the ``[model]`` table)."""
    nested: dict[str, Any] = {}
    for key, value in params.items():
        if "." in key:
            table, sub = key.split(".", 1)
            nested.setdefault(table, {})[sub] = value
        else:
            nested[key] = value
    return merge(config, nested, source="tune").validate()


def _write_trials_csv(study: Any, path: Path) -> None:
    from engine.models.checkpoint import atomic_write_bytes

    keys: list[str] = []
    for t in study.trials:
        keys += [k for k in t.params if k not in keys]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["number", "state", "value", "epochs", *keys])
    for t in study.trials:
        epochs = max(t.intermediate_values) + 1 if t.intermediate_values else 0
        value = "" if t.value is None else f"{t.value:.6g}"
        writer.writerow([t.number, t.state.name, value, epochs, *[t.params.get(k, "") for k in keys]])
    atomic_write_bytes(path, buffer.getvalue().encode())


def tune_task(
    task: Any,
    data: Path,
    out_dir: Path,
    config: TrainConfig,
    *,
    n_trials: Optional[int] = None,
    timeout_s: Optional[float] = None,
    cancel: Optional[CancelToken] = None,
) -> TuneOutcome:
    """Run (or resume) the Optuna study of ``task`` on ``data``; see the module docstring."""
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    from engine.train.loop import fit, seed_everything
    from engine.train.run import make_splits

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tune = dict(config.tune)
    space = dict(tune.get("space") or DEFAULT_SPACE)
    total = int(n_trials if n_trials is not None else tune.get("n_trials", 20))
    trial_epochs = int(tune.get("epochs", config.epochs))
    base = config.replace(epochs=trial_epochs, folds=1)
    cohort = task.read_cohort(Path(data), base)
    (name, (train_idx, val_idx)), *_ = make_splits(cohort, base)

    url = f"sqlite:///{(out_dir / 'study.db').resolve()}"
    with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna 5 but are what makes resuming safe
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = RDBStorage(url, heartbeat_interval=30, grace_period=90,
                             heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1))
    direction = "maximize" if task.mode == "max" else "minimize"
    study = optuna.create_study(
        study_name=f"{task.name}",
        storage=storage,
        load_if_exists=True,
        direction=direction,
        sampler=optuna.samplers.TPESampler(seed=config.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=int(tune.get("startup_trials", 4)),
                                           n_warmup_steps=int(tune.get("warmup_epochs", 2))),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    state = optuna.trial.TrialState
    done = len([t for t in study.trials if t.state in (state.COMPLETE, state.PRUNED)])
    remaining = max(0, total - done)
    log.info("study %s: %d trials done, %d to run (%s)", study.study_name, done, remaining, url)

    def objective(trial: Any) -> float:
        check(cancel)
        params = suggest(trial, space)
        trial_config = apply_params(base, params)
        trial_dir = out_dir / "trials" / f"trial_{trial.number}"
        seed_everything(trial_config.seed, trial_config.deterministic)
        model, spec = task.build_model(trial_config, cohort)
        train_ds, val_ds = task.datasets(cohort, train_idx, val_idx, trial_config)
        card = {**task.card(trial_config, cohort), "tuning": {"study": study.study_name, "trial": trial.number}}

        def on_epoch(row: Mapping[str, float]) -> None:
            value = float(row[task.monitor])
            step = int(row["epoch"]) - 1
            if math.isfinite(value):
                trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {step + 1} ({task.monitor} {value:.4f})")

        result = fit(
            model, train_ds, val_ds, config=trial_config, loss_fn=task.loss_fn(trial_config, cohort, train_idx),
            metrics_fn=task.metrics_fn(trial_config, cohort), monitor=task.monitor, mode=task.mode, spec=spec,
            card=card, out_dir=trial_dir, forward=getattr(task, "forward", None), cancel=cancel, on_epoch=on_epoch,
        )
        value = float(result.best_metrics.get(task.monitor, float("nan")))
        if not math.isfinite(value):
            raise optuna.TrialPruned(f"{task.monitor} was never finite")
        return value

    if remaining:
        study.optimize(objective, n_trials=remaining, timeout=timeout_s, gc_after_trial=True)
    _write_trials_csv(study, out_dir / "trials.csv")
    complete = [t for t in study.trials if t.state == state.COMPLETE]
    if not complete:
        raise ConfigError("no trial finished: every trial was pruned or failed (see trials.csv)")
    best = study.best_trial
    best_config = apply_params(base.replace(epochs=config.epochs), best.params)
    path = write_config(best_config, out_dir / "best_config.toml",
                        header=f"best of study {study.study_name} (trial {best.number}, {task.monitor} {best.value:.4f})")
    return TuneOutcome(study.study_name, url, float(best.value), dict(best.params), path, len(complete),
                       len([t for t in study.trials if t.state == state.PRUNED]))
