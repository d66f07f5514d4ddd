"""fit(): outputs, model card, resume after an interrupted run, early stopping, cancellation, errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from train_helpers import ToyDataset, toy_loss, toy_metrics, toy_model

from engine.models.checkpoint import load_checkpoint
from engine.progress import CancelToken, Cancelled
from engine.train.config import TrainConfig
from engine.train.loop import TrainingError, cosine_warmup_lambda, fit, load_state

SPEC = {"task": "toy", "architecture": "mlp", "kwargs": {}}


def _fit(out: Path, epochs: int = 4, **kwargs):
    config = kwargs.pop("config", TrainConfig(epochs=epochs, batch_size=8, lr=1e-2, device="cpu"))
    return fit(toy_model(), ToyDataset(48, 0), ToyDataset(24, 1), config=config, loss_fn=toy_loss,
               metrics_fn=toy_metrics, monitor=kwargs.pop("monitor", "accuracy"), mode=kwargs.pop("mode", "max"),
               spec=SPEC, card={"name": "toy", "metrics": {"note": 1.0}}, out_dir=out, **kwargs)


def _rows(path: Path) -> list[dict]:
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_smoke_outputs_and_card(tmp_path: Path) -> None:
    result = _fit(tmp_path / "run")
    out = tmp_path / "run"
    for name in ("metrics.csv", "learning_curves.png", "config.toml", "best.pt", "best.card.json", "last.pt"):
        assert (out / name).is_file(), name
    rows = _rows(out / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    assert {"train_loss", "val_loss", "accuracy", "lr", "epoch_time_s"} <= set(rows[0])
    assert len(result.history) == 4 and 1 <= result.best_epoch <= 4
    assert result.best_metrics["accuracy"] == max(r["accuracy"] for r in result.history)
    ckpt = load_checkpoint(result.checkpoint_path, expected_task="toy")  # hash-checked, weights_only
    card = ckpt.card
    assert card["metrics"]["accuracy"] == result.best_metrics["accuracy"] and card["metrics"]["note"] == 1.0
    assert card["training"]["best_epoch"] == result.best_epoch and card["training"]["command"]
    assert card["training"]["config"]["epochs"] == 4
    state = load_state(out / "last.pt")  # plain data: loads with weights_only=True
    assert state["epoch"] == 4 and len(state["history"]) == 4
    assert (out / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"


def test_resume_after_interruption_repeats_the_same_run(tmp_path: Path) -> None:
    full = _fit(tmp_path / "full", epochs=5)
    token = CancelToken()

    def progress(fraction: float, message: str) -> None:
        if message.startswith("epoch 4/"):
            token.cancel()  # "crash" during epoch 4

    with pytest.raises(Cancelled):
        _fit(tmp_path / "cut", epochs=5, progress=progress, cancel=token)
    assert load_state(tmp_path / "cut" / "last.pt")["epoch"] == 3
    resumed = _fit(tmp_path / "cut", epochs=5)
    keys = ("train_loss", "val_loss", "accuracy", "lr")
    assert [[row[k] for k in keys] for row in resumed.history] == [[row[k] for k in keys] for row in full.history]
    assert resumed.best_epoch == full.best_epoch
    # a finished run asked again returns its result without training
    again = _fit(tmp_path / "cut", epochs=5)
    assert len(again.history) == 5


def test_early_stopping_and_min_mode(tmp_path: Path) -> None:
    config = TrainConfig(epochs=30, batch_size=8, lr=1e-9, warmup_epochs=0, patience=2, device="cpu")
    result = _fit(tmp_path / "es", config=config, monitor="val_loss", mode="min")
    assert result.stopped_early and len(result.history) < 30


def test_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="monitor 'kappa'"):
        _fit(tmp_path / "a", epochs=1, monitor="kappa")
    with pytest.raises(TrainingError, match="mode"):
        _fit(tmp_path / "b", epochs=1, mode="up")

    def nan_loss(outputs, batch):
        return outputs.sum() * float("nan")

    with pytest.raises(TrainingError, match="loss is nan"):
        fit(toy_model(), ToyDataset(8, 0), ToyDataset(8, 1), config=TrainConfig(epochs=1, device="cpu"),
            loss_fn=nan_loss, metrics_fn=None, monitor="val_loss", mode="min", spec=SPEC, card={}, out_dir=tmp_path / "c")


def test_incompatible_resume_state_is_refused(tmp_path: Path) -> None:
    _fit(tmp_path / "r", epochs=1)
    bigger = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))
    with pytest.raises(TrainingError, match="does not fit"):
        fit(bigger, ToyDataset(8, 0), ToyDataset(8, 1), config=TrainConfig(epochs=2, device="cpu"), loss_fn=toy_loss,
            metrics_fn=toy_metrics, monitor="accuracy", mode="max", spec=SPEC, card={}, out_dir=tmp_path / "r")


def test_schedule_warms_up_then_decays() -> None:
    f = cosine_warmup_lambda(total_steps=100, warmup_steps=10, min_ratio=0.01)
    values = [f(s) for s in range(100)]
    assert values[0] < values[5] < values[9] <= 1.0
    assert values[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(values[10:], values[11:]))
    assert values[-1] == pytest.approx(0.01, abs=0.01)


def test_streaming_metrics_object(tmp_path: Path) -> None:
    class Acc:
        def reset(self):
            self.right = self.n = 0

        def update(self, outputs, batch):
            self.right += int((outputs.argmax(1) == batch["label"]).sum())
            self.n += len(batch["label"])

        def compute(self):
            return {"accuracy": self.right / self.n}

    config = TrainConfig(epochs=2, batch_size=8, lr=1e-2, device="cpu")
    streamed = fit(toy_model(), ToyDataset(48, 0), ToyDataset(24, 1), config=config, loss_fn=toy_loss, metrics_fn=Acc(),
                   monitor="accuracy", mode="max", spec=SPEC, card={}, out_dir=tmp_path / "s")
    plain = _fit(tmp_path / "p", config=config)
    assert [r["accuracy"] for r in streamed.history] == pytest.approx([r["accuracy"] for r in plain.history])
    assert json.loads((tmp_path / "s" / "best.card.json").read_text())["metrics"]["accuracy"] >= 0
