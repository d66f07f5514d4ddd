"""Grad-CAM per branch: shapes in original coordinates (non-square 2D, (D, H, W) volumes), hooks released."""

import numpy as np
import pytest
import torch

from engine.explain import explain, raw_cams
from engine.models.preprocess import InputSpec, prepare_disc, prepare_fundus, prepare_oct
from engine.models.tiny import tiny_grader


def _prepared(grader, fundus, volume, box=(10, 60, 50, 100)):
    specs = grader.inputs
    out = {}
    if "fundus" in specs:
        out["fundus"] = prepare_fundus(fundus, specs["fundus"])
    if "disc" in specs:
        out["disc"] = prepare_disc(fundus, box, specs["disc"])
    if "oct" in specs:
        out["oct"] = prepare_oct(volume, specs["oct"])
    return out


def _hooks(module):
    return sum(len(m._forward_hooks) + len(m._backward_hooks) + len(m._forward_pre_hooks) for m in module.modules())


@pytest.mark.parametrize("fusion", ["concat", "add"])
def test_three_level_maps_in_original_coordinates(fusion):
    rng = np.random.default_rng(0)
    fundus = rng.integers(0, 255, (90, 130, 3), dtype=np.uint8)  # non-square
    volume = rng.integers(0, 255, (12, 40, 56), dtype=np.uint8)  # (N, H, W)
    grader = tiny_grader(("fundus", "disc", "oct"), fusion, inputs={"fundus": InputSpec((48, 72), (0.5,) * 3, (0.25,) * 3)})
    cams = explain(grader, _prepared(grader, fundus, volume))
    assert cams["fundus"].heatmap.shape == (90, 130) and cams["fundus"].heatmap.dtype == np.uint8
    assert cams["disc"].heatmap.shape == (90, 130) and cams["disc"].box == (10, 60, 50, 100)
    assert cams["disc"].heatmap[60:].max() == 0 and cams["disc"].heatmap[:, :60].max() == 0  # zero outside the crop
    assert cams["oct"].heatmap.shape == (12, 40, 56) and cams["oct"].raw.ndim == 3
    for cam in cams.values():
        assert 0.0 <= cam.raw.min() and cam.raw.max() <= 1.0 + 1e-6
        assert cam.modality == ("oct" if cam.level == "oct" else "fundus")
    assert _hooks(grader.module) == 0


def test_maps_are_deterministic_and_follow_the_target_class():
    fundus = np.random.default_rng(1).integers(0, 255, (64, 80, 3), dtype=np.uint8)
    grader = tiny_grader(("fundus",), seed=4)
    p = _prepared(grader, fundus, None)
    a = explain(grader, p, target_class=0)["fundus"]
    b = explain(grader, p, target_class=0)["fundus"]
    assert np.array_equal(a.heatmap, b.heatmap) and a.target_class == 0


def test_target_layer_inside_the_trunk_uses_the_general_path():
    grader = tiny_grader(("fundus", "oct"))
    fundus = np.random.default_rng(2).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    volume = np.random.default_rng(3).integers(0, 255, (8, 16, 16), dtype=np.uint8)
    p = _prepared(grader, fundus, volume)
    inputs = {lv: p[lv].tensor for lv in p}
    cache = grader.module.forward_cached(inputs)
    maps = raw_cams(grader.module, cache, 1, inputs=inputs,
                    target_layers={"fundus": "branches.fundus.trunk.0", "oct": "branches.oct.trunk.0"})
    assert maps["fundus"].ndim == 2 and maps["oct"].ndim == 3
    assert _hooks(grader.module) == 0


def test_hooks_are_released_when_cam_fails():
    grader = tiny_grader(("fundus",))
    inputs = {"fundus": torch.zeros(1, 3, 64, 64)}
    cache = grader.module.forward_cached(inputs)
    with pytest.raises(Exception):
        raw_cams(grader.module, cache, 7)  # no class 7
    assert _hooks(grader.module) == 0
