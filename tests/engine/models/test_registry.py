"""Graders rebuilt from checkpoint specs, refused when tampered, and picked by an exam's modalities."""

import json

import pytest
import torch

from engine.models.checkpoint import CheckpointError, save_checkpoint
from engine.models.ensemble import load_ensemble
from engine.models.registry import build_model, default_grader_paths, load_grader, select_for_exam
from engine.models.tiny import save_tiny_ensemble, save_tiny_grader, tiny_grader


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path):
    g = tiny_grader(("fundus", "disc", "oct"), "add", seed=3)
    save_checkpoint(tmp_path / "g.pt", g.spec, g.module.state_dict(), g.card)
    loaded = load_grader(tmp_path / "g.pt")
    x = {"fundus": torch.randn(1, 3, 64, 64), "disc": torch.randn(1, 3, 32, 32), "oct": torch.randn(1, 1, 8, 16, 16)}
    with torch.no_grad():
        assert torch.equal(g.module(x), loaded.module(x))
    assert loaded.levels == ("fundus", "disc", "oct") and loaded.required_modalities == ("fundus", "oct")
    assert len(loaded.sha256) == 64 and loaded.cam_target_layer("oct") == "branches.oct.trunk"
    assert load_grader(tmp_path / "g.pt") is loaded  # cached


def test_tampered_or_mismatched_checkpoints_are_refused(tmp_path):
    path = save_tiny_grader(tmp_path / "g.pt")
    data = bytearray(path.read_bytes())
    data[-20] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match"):
        load_grader(path)
    g = tiny_grader(("fundus",))
    spec = {**g.spec, "kwargs": {**g.spec["kwargs"], "levels": {"fundus": "small2d"}}}
    save_checkpoint(tmp_path / "h.pt", spec, g.module.state_dict(), g.card)
    with pytest.raises(CheckpointError, match="do not fit"):
        load_grader(tmp_path / "h.pt")
    with pytest.raises(CheckpointError, match="unknown architecture"):
        build_model({"architecture": "os.system"})


def test_select_by_modalities_says_why(tmp_path):
    ens = load_ensemble(save_tiny_ensemble(tmp_path))
    chosen, skipped = select_for_exam(ens.members, ("fundus",))
    assert [g.name for g in chosen] == ["fundus", "two_level"]
    assert "oct" in skipped["three_level"]
    chosen, skipped = select_for_exam(ens.members, ("oct",))
    assert chosen == [] and len(skipped) == 3


def test_default_paths_only_list_grader_cards(tmp_path):
    save_tiny_grader(tmp_path / "a.pt")
    (tmp_path / "other.pt").write_bytes(b"x")
    (tmp_path / "other.card.json").write_text(json.dumps({"spec": {"task": "disc-cup"}}))
    assert default_grader_paths(tmp_path) == [tmp_path / "a.pt"]
