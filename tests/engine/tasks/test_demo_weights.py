"""The demo-weights builder end to end on a tiny plan: phantoms -> train -> synthetic test -> honest card."""

from __future__ import annotations

import json

from engine.models.checkpoint import load_checkpoint
from engine.tasks import demo_weights


def test_build_writes_weights_with_a_demo_card(tmp_path, monkeypatch):
    tiny = {
        "train": {"n": 24, "shape": (64, 64), "seed": 0},
        "test": {"n": 12, "shape": (64, 64), "seed": 900},
        "config": {"epochs": 1, "batch_size": 8, "val_fraction": 0.25,
                   "model": {"backbone": "tiny2d"}, "data": {"input_size": 32}},
    }
    monkeypatch.setitem(demo_weights.PLANS, "odir", tiny)
    card = demo_weights.build("odir", tmp_path / "work", tmp_path / "out")
    ckpt = load_checkpoint(tmp_path / "out" / "odir.pt", expected_task="odir")
    assert ckpt.card["notice"] == demo_weights.DEMO_NOTICE and ckpt.card["synthetic_training_data"] is True
    test = card["synthetic_test"]
    assert test["n"] == 12 and set(test["model"]) == set(test["baseline_histogram_logreg"])
    assert "f1_g" in test["model"] and "other seeds" in card["test_data"]
    assert json.loads((tmp_path / "out" / "odir.card.json").read_text())["name"] == "odir-phantom-demo"
