"""tune_task(): the search space, pruning of hopeless trials, and a best config that loads back."""

from __future__ import annotations

from pathlib import Path

import pytest
from train_helpers import ToyDataset, toy_loss, toy_metrics, toy_model

from engine.train.config import ConfigError, TrainConfig, load_config
from engine.train.tasks import Cohort, SimpleTask
from engine.train.tune import apply_params, suggest, tune_task


def _toy_task() -> SimpleTask:
    data = ToyDataset(64, 0)
    items = [data[i] for i in range(len(data))]

    def read(root: Path, config: TrainConfig) -> Cohort:
        return Cohort(root=root, items=items, classes=["neg", "pos"], labels=[int(it["label"]) for it in items])

    def datasets(cohort: Cohort, train_idx, val_idx, config):
        return [cohort.items[i] for i in train_idx], [cohort.items[i] for i in val_idx]

    def unused(*args):
        raise AssertionError("not needed by tune")

    return SimpleTask(
        name="toy", description="toy", kind="classification", monitor="accuracy", mode="max",
        read_cohort_fn=read, build_model_fn=lambda config, cohort: (toy_model(), {"task": "toy", "architecture": "mlp"}),
        datasets_fn=datasets, loss_fn_factory=lambda config, cohort, idx: toy_loss,
        metrics_fn_factory=lambda config, cohort: toy_metrics, card_fn=lambda config, cohort: {"name": "toy"},
        load_model_fn=unused, eval_dataset_fn=unused,
    )


def test_hopeless_trials_are_pruned_and_the_best_config_reloads(tmp_path: Path) -> None:
    # lr 1e-7 cannot learn in 4 epochs, lr 3e-2 can: once one of each finished, the median pruner stops the
    # hopeless ones after their first epoch
    config = TrainConfig(epochs=4, batch_size=8, device="cpu", warmup_epochs=0,
                         tune={"n_trials": 8, "startup_trials": 2, "warmup_epochs": 0,
                               "space": {"lr": [1e-7, 3e-2]}})
    outcome = tune_task(_toy_task(), tmp_path, tmp_path / "study", config)
    assert outcome.n_complete + outcome.n_pruned == 8
    assert outcome.n_pruned >= 1
    assert outcome.best_params == {"lr": 3e-2} and outcome.best_value > 0.8
    best = load_config(outcome.best_config)
    assert best.lr == 3e-2 and best.epochs == 4
    assert (tmp_path / "study" / "trials" / "trial_0" / "metrics.csv").is_file()


def test_space_rules() -> None:
    import optuna

    trial = optuna.trial.FixedTrial({"lr": 1e-3, "batch_size": 16, "model.depth": 3})
    space = {"lr": {"low": 1e-5, "high": 1e-2, "log": True}, "batch_size": [8, 16], "model.depth": {"low": 1, "high": 4}}
    params = suggest(trial, space)
    assert params == {"lr": 1e-3, "batch_size": 16, "model.depth": 3}
    config = apply_params(TrainConfig(model={"backbone": "small2d"}), params)
    assert config.batch_size == 16 and config.model == {"backbone": "small2d", "depth": 3}
    with pytest.raises(ConfigError, match="expected a list of choices"):
        suggest(trial, {"lr": 0.1})
