"""The layer network wrapper, the ``layers`` training task and the polygon -> mask converter."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from engine.models.checkpoint import save_checkpoint  # noqa: E402
from engine.oct import N_CLASSES  # noqa: E402
from engine.oct.labels import labels_from_boundaries  # noqa: E402
from engine.oct.layers import (  # noqa: E402
    LayerModelMissing, boundaries_from_probabilities, build_network, load_layer_network, make_spec,
)
from engine.oct.train_task import TRAIN_TASK, boundary_error, find_samples, load_sample  # noqa: E402
from engine.synthetic import synthetic_bscan  # noqa: E402
from engine.train.config import TrainConfig  # noqa: E402
from engine.train.tasks import get_task  # noqa: E402

TINY = dict(size=(64, 64), features=(4, 4, 8, 8, 8, 4))


def test_boundaries_from_perfect_probabilities():
    scan = synthetic_bscan((120, 50), rnfl_px=10, seed=1)
    labels = labels_from_boundaries(scan.boundaries, 120)
    probs = np.eye(N_CLASSES, dtype=np.float32)[labels].transpose(2, 0, 1)  # one-hot (9, H, W)
    b = boundaries_from_probabilities(probs)
    assert np.isnan(b[8]).all()
    err = np.abs(b[:8] - np.ceil(scan.boundaries[:8] - 1e-3))
    assert err.max() <= 1 and err.mean() < 0.1  # exact but for the path's smoothness penalty
    assert (np.diff(b[:8], axis=0) >= 0).all()


def test_checkpoint_round_trip_and_inference(tmp_path):
    spec = make_spec(**TINY)
    net = build_network(spec)
    path = tmp_path / "oct_layers.pt"
    save_checkpoint(path, spec, net.state_dict(), {"name": "tiny", "task": "layers"})
    loaded = load_layer_network(path)
    vol = np.stack([synthetic_bscan((100, 80), seed=s).image for s in range(3)])
    b = loaded.find_boundaries(vol, batch_size=2)
    assert b.shape == (3, 9, 80) and (np.diff(b[:, :8], axis=1) >= 0).all()
    with pytest.raises(LayerModelMissing, match="--method graph"):
        load_layer_network(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="multiple of 16"):
        make_spec(size=(100, 64))


def _write_dataset(root):
    """masks/ (our labels), Cirrus-convention masks, a VGG JSON, and one unlabelled B-scan."""
    (root / "a" / "images").mkdir(parents=True)
    (root / "a" / "masks").mkdir()
    (root / "a" / "fluid_masks").mkdir()
    scan = synthetic_bscan((96, 64), rnfl_px=8, seed=3)
    labels = labels_from_boundaries(scan.boundaries, 96)
    cv2.imwrite(str(root / "a" / "images" / "s1.png"), scan.image)
    cv2.imwrite(str(root / "a" / "masks" / "s1.png"), labels)
    cv2.imwrite(str(root / "a" / "fluid_masks" / "s1.png"), np.full((96, 64), 255, np.uint8))
    (root / "b").mkdir()
    cv2.imwrite(str(root / "b" / "p1.png"), scan.image)
    doc = {"p1.png1": {"filename": "p1.png", "regions": [
        {"shape_attributes": {"name": "polygon", "all_points_x": [0, 63, 63, 0], "all_points_y": [30, 30, 40, 40]},
         "region_attributes": {"label": "RNFL"}}]}}
    (root / "b" / "via.json").write_text(json.dumps(doc))
    cv2.imwrite(str(root / "b" / "unlabelled.png"), scan.image)
    return scan, labels


def test_find_samples_and_converters(tmp_path):
    scan, labels = _write_dataset(tmp_path)
    kinds = {s["id"]: s["kind"] for s in find_samples(tmp_path)}
    assert kinds == {"a_images_s1": "mask", "b_p1": "polygons"}
    with_pseudo = {s["id"]: s["kind"] for s in find_samples(tmp_path, "graph")}
    assert with_pseudo["b_unlabelled"] == "graph" and len(with_pseudo) == 3
    items = {s["id"]: s for s in find_samples(tmp_path, "graph")}
    assert np.array_equal(load_sample(items["a_images_s1"])[1], labels)
    poly = load_sample(items["b_p1"])[1]
    assert (poly[30:41, :] == 1).all() and poly[29].max() == 0 and (poly[41:] == 1).all()  # monotone below
    graph = load_sample(items["b_unlabelled"])[1]
    assert np.abs(graph.astype(int) - labels.astype(int)).astype(bool).mean() < 0.1


def test_training_task_one_epoch(tmp_path):
    _write_dataset(tmp_path / "data")
    from engine.train.loop import fit

    task = get_task("layers")
    assert task is TRAIN_TASK and task.kind == "segmentation"
    cfg = TrainConfig.from_dict({"epochs": 1, "batch_size": 2, "device": "cpu", "data": {
        "pseudo_labels": "graph", "input_size": [64, 64], "samples_per_scan": 2},
        "model": {"features": [4, 4, 8, 8, 8, 4]}})
    cohort = task.read_cohort(tmp_path / "data", cfg)
    assert len(cohort) == 3 and "pseudo-labels" in cohort.description
    model, spec = task.build_model(cfg, cohort)
    train, val = task.datasets(cohort, [0, 1], [2], cfg)
    item = train[0]
    assert item["image"].shape == (1, 64, 64) and item["mask"].shape == (64, 64)
    result = fit(model, train, val, config=cfg, loss_fn=task.loss_fn(cfg, cohort, [0, 1]),
                 metrics_fn=task.metrics_fn(cfg, cohort), monitor=task.monitor, mode=task.mode, spec=spec,
                 card=task.card(cfg, cohort), out_dir=tmp_path / "run")
    assert np.isfinite(result.best_metrics["val_loss"]) and "boundary_mae_px" in result.best_metrics
    net = load_layer_network(tmp_path / "run" / "best.pt")
    assert net.card["task"] == "layers" and "graph" in net.card["data"]


def test_boundary_error():
    a = np.zeros((2, 9, 5))
    b = a + 2.0
    b[:, 3, 0] = np.nan
    err = boundary_error(a, b)
    assert err.shape == (8,) and np.allclose(err, 2.0)


def test_layout_error_without_labels(tmp_path):
    from engine.train.datasets.common import LayoutError

    (tmp_path / "x").mkdir()
    cv2.imwrite(str(tmp_path / "x" / "a.png"), np.zeros((40, 40), np.uint8))
    with pytest.raises(LayoutError, match="pseudo_labels"):
        TRAIN_TASK.read_cohort(tmp_path, TrainConfig())
