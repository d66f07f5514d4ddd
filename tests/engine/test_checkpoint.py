import json

import pytest
import torch

from engine.models.checkpoint import CheckpointError, card_path_for, load_checkpoint, save_checkpoint

SPEC = {"task": "demo", "architecture": "linear", "kwargs": {"n": 3}, "classes": ["a", "b", "c"]}


def _save(tmp_path):
    model = torch.nn.Linear(3, 3)
    path = tmp_path / "m.pt"
    digest = save_checkpoint(path, SPEC, model.state_dict(), {"name": "m", "data": "none"})
    return model, path, digest


def test_round_trip_keeps_weights_spec_and_card(tmp_path):
    model, path, digest = _save(tmp_path)
    ckpt = load_checkpoint(path, expected_task="demo")
    assert ckpt.sha256 == digest and ckpt.spec == SPEC and ckpt.name == "m"
    assert torch.equal(ckpt.state_dict["weight"], model.state_dict()["weight"])
    card = json.loads(card_path_for(path).read_text())
    assert card["sha256"] == digest and card["spec"] == SPEC
    assert not list(tmp_path.glob("*.tmp"))


def test_a_value_not_measured_is_written_as_null_in_strict_json(tmp_path):
    path = tmp_path / "m.pt"
    save_checkpoint(path, SPEC, torch.nn.Linear(3, 3).state_dict(),
                    {"name": "m", "held_out": [{"a": {"r": float("nan"), "n": 3}}], "worst": (float("inf"), 1.5)})

    def refuse(token):
        raise ValueError(token)

    card = json.loads(card_path_for(path).read_text(), parse_constant=refuse)
    assert card["held_out"] == [{"a": {"r": None, "n": 3}}] and card["worst"] == [None, 1.5]
    assert load_checkpoint(path, expected_task="demo").card["held_out"][0]["a"]["r"] is None


def test_tampered_weights_are_refused(tmp_path):
    _, path, _ = _save(tmp_path)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match its model card"):
        load_checkpoint(path)


def test_card_spec_mismatch_wrong_task_and_missing_files(tmp_path):
    _, path, _ = _save(tmp_path)
    with pytest.raises(CheckpointError, match="expected 'grader'"):
        load_checkpoint(path, expected_task="grader")
    card = json.loads(card_path_for(path).read_text())
    card["spec"]["kwargs"]["n"] = 4
    card_path_for(path).write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="does not match the model card"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "absent.pt")
    card_path_for(path).unlink()
    with pytest.raises(CheckpointError, match="model card missing"):
        load_checkpoint(path)


def test_pickled_code_is_not_executed(tmp_path):
    class Evil:
        def __reduce__(self):
            return (exec, ("raise SystemExit('executed')",))

    path = tmp_path / "evil.pt"
    torch.save({"format": "x", "payload": Evil()}, path)
    from engine.models.checkpoint import sha256_file

    card_path_for(path).write_text(json.dumps({"sha256": sha256_file(path)}))
    with pytest.raises(CheckpointError, match="not a safe plain-data checkpoint"):
        load_checkpoint(path)
