"""The shipped sibling-task weights: hash-checked, loadable, and honest cards (synthetic phantoms, demo only)."""

from __future__ import annotations

import pytest

import engine.tasks as tasks
from engine.models.checkpoint import read_card
from engine.resources import models_dir

SHIPPED = ("odir.pt", "glioma.pt", "glioma_flair_t1ce_t2.pt", "bone.pt")


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_weights_load_and_say_they_are_demo_only(name, monkeypatch):
    monkeypatch.delenv("GV_RESOURCES", raising=False)
    path = models_dir() / name
    if not path.is_file():
        pytest.skip(f"{name} not installed")
    task = read_card(path)["task"]
    model = tasks.load_model(task, path, "cpu")
    card = model.card
    assert card["synthetic_training_data"] is True and card["clinical_validity"] == "none"
    assert "DEMO ONLY" in card["notice"] and "synthetic" in card["test_data"]
    assert card["synthetic_test"]["model"] and card["synthetic_test"]["baseline_histogram_logreg"]
    assert path.stat().st_size < 5_000_000
    if task == "odir":
        assert {f"auc_{k}" for k in "ndgcahmo"} <= set(card["synthetic_test"]["model"])
        assert {f"f1_{k}" for k in "ndgcahmo"} <= set(card["synthetic_test"]["model"])
