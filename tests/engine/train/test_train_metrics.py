from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import cohen_kappa_score

from engine.train.metrics import (
    SegmentationMetrics, _kappa_from_confusions, bootstrap_kappa_ci, classification_metrics, confusion,
    multilabel_metrics, plot_confusion, quadratic_kappa, segmentation_metrics,
)


def test_kappa_known_value_and_sklearn() -> None:
    # hand-computed: O = {(0,0): 2, (1,2): 1, (2,2): 1}; weighted observed 0.25, expected 1.75 -> 1 - 1/7
    assert quadratic_kappa([0, 1, 2, 0], [0, 2, 2, 0]) == pytest.approx(6 / 7)
    rng = np.random.default_rng(0)
    for _ in range(20):
        y = rng.integers(0, 3, 40)
        p = np.where(rng.random(40) < 0.6, y, rng.integers(0, 3, 40))
        expected = cohen_kappa_score(y, p, weights="quadratic")
        assert quadratic_kappa(y, p, 3) == pytest.approx(expected)
        assert _kappa_from_confusions(confusion(y, p, 3)[None])[0] == pytest.approx(expected)
    assert quadratic_kappa([1, 1, 1], [1, 1, 1]) == 1.0


def test_bootstrap_interval() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 60)
    p = np.where(rng.random(60) < 0.7, y, rng.integers(0, 3, 60))
    low, high = bootstrap_kappa_ci(y, p, 3, n_boot=1000, seed=0)
    assert low < quadratic_kappa(y, p, 3) < high
    assert (low, high) == bootstrap_kappa_ci(y, p, 3, n_boot=1000, seed=0)
    assert np.isnan(bootstrap_kappa_ci([1], [1], 3)[0])


def test_classification_metrics_and_confusion_png(tmp_path: Path) -> None:
    classes = ["non", "early", "mid_advanced"]
    y = np.array([0, 0, 1, 1, 2, 2])
    probs = np.eye(3)[[0, 0, 1, 2, 2, 2]] * 0.7 + 0.1
    m = classification_metrics(probs, y, classes, n_boot=200)
    assert m["accuracy"] == pytest.approx(5 / 6)
    assert m["kappa"] == pytest.approx(cohen_kappa_score(y, probs.argmax(1), weights="quadratic"))
    assert {"f1_non", "f1_early", "f1_mid_advanced", "auc_macro", "kappa_ci_low", "kappa_ci_high"} <= set(m)
    assert m["f1_non"] == 1.0
    png = plot_confusion(confusion(y, probs.argmax(1), 3), classes, tmp_path / "cm.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_segmentation_metrics() -> None:
    target = torch.zeros(2, 16, 16, dtype=torch.long)
    target[:, 4:12, 4:12] = 1
    target[:, 6:10, 6:10] = 2
    perfect = segmentation_metrics(target, target, ["background", "disc", "cup"])
    assert perfect["dice_disc"] == perfect["dice_cup"] == perfect["iou_mean"] == 1.0
    pred = target.clone()
    pred[:, 6:10, 6:10] = 1  # cup missed entirely
    m = segmentation_metrics(pred, target, ["background", "disc", "cup"])
    assert m["dice_cup"] == 0.0 and 0 < m["dice_disc"] < 1
    stream = SegmentationMetrics(["background", "disc", "cup"])
    logits = torch.nn.functional.one_hot(pred, 3).permute(0, 3, 1, 2).float()
    stream.update(logits[:1], {"mask": target[:1]})
    stream.update(logits[1:], {"mask": target[1:]})
    assert stream.compute() == pytest.approx(m)


def test_multilabel_metrics() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, (30, 8))
    probs = np.clip(y * 0.6 + rng.random((30, 8)) * 0.5, 0, 1)
    m = multilabel_metrics(probs, y, list("NDGCAHMO"))
    assert m["auc_g"] > 0.8 and 0 < m["odir_score"] <= 1
