"""Networks for photos without colour: a second model in the disc/cup checkpoint, used on grey or red-free photos."""

import json

import numpy as np
import pytest

from engine.fundus import analyse_disc
from engine.fundus.localize import without_colour
from engine.synthetic import synthetic_fundus
from fundus_helpers import ColourOracle


class GreyOracle(ColourOracle):
    """Reads the synthetic disc and cup from brightness alone, as networks trained on grey crops must."""

    def predict(self, crops: np.ndarray) -> np.ndarray:
        self.calls += 1
        v = np.asarray(crops).astype(np.int16).mean(axis=3)
        disc, cup = v > 150, v > 195
        out = np.zeros((v.shape[0], 3) + v.shape[1:3], np.float32)
        out[:, 2], out[:, 1], out[:, 0] = cup, disc & ~cup, ~disc
        return out


def test_a_photo_without_colour_goes_to_the_networks_for_such_photos():
    from engine.fundus.analysis import GREY_MODEL_MESSAGE, GREY_MODEL_NOTE, MONOCHROME_NOTE

    f = synthetic_fundus((512, 512), cdr=0.6, eye="OD", seed=3)
    grey_photo = without_colour(f.image, "green")
    assert MONOCHROME_NOTE in analyse_disc(grey_photo, eye="OD", segmenter=ColourOracle()).message  # no such networks

    model, grey = ColourOracle(), GreyOracle()
    model.grey = grey
    colour = analyse_disc(f.image, eye="OD", segmenter=model)
    assert colour.found and colour.message == "" and grey.calls == 0  # colour photos never see them
    calls = model.calls
    result = analyse_disc(without_colour(f.image, "luma"), eye="OD", segmenter=model)
    assert result.found and result.message == GREY_MODEL_MESSAGE and model.calls == calls and grey.calls > 0
    overlap = (result.disc_mask & colour.disc_mask).sum()
    assert 2 * overlap / (result.disc_mask.sum() + colour.disc_mask.sum()) > 0.8  # the same disc

    model.grey = ColourOracle(empty=True)  # networks for grey photos that see no disc: said by them
    missed = analyse_disc(grey_photo, eye="OD", segmenter=model)
    assert not missed.found and missed.message.endswith(GREY_MODEL_NOTE) and MONOCHROME_NOTE not in missed.message


def _save(path, spec, data: str, seed: int, p_grey: float = 0.0):
    import torch

    from engine.fundus.segmenter import build_network
    from engine.models.checkpoint import save_checkpoint

    torch.manual_seed(seed)
    save_checkpoint(path, spec, build_network(spec).state_dict(),
                    {"name": "disc_cup", "task": "disc-cup", "data": data,
                     "training": {"seed": seed, "config": {"data": {"p_grey": p_grey}}}})
    return path


def test_networks_for_photos_without_colour_ship_in_the_same_checkpoint(tmp_path, capsys):
    from engine.fundus.evaluate import seen_sources
    from engine.fundus.model_card import main as model_card
    from engine.fundus.segmenter import attach_grey, combine_checkpoints, default_spec, load_members, load_segmenter
    from engine.models.checkpoint import load_checkpoint

    spec = default_spec(size=32, channels=(4, 8), num_res_units=0)
    colour = [_save(tmp_path / f"c{s}.pt", spec, "60 fundus photos with disc/cup masks from data: gamma 60", s)
              for s in range(2)]
    fine = [_save(tmp_path / "cf.pt", spec, "60 fundus photos with disc/cup masks from data: gamma 60", 5)]
    grey = [_save(tmp_path / "g.pt", spec, "50 fundus photos with disc/cup masks from data: drishti 50", 7, 0.2)]
    grey_fine = [_save(tmp_path / f"gf{s}.pt", spec, "50 fundus photos with disc/cup masks from data: drishti 50",
                       8 + s, 0.2) for s in range(2)]
    summary = {"refuge": {"dice_disc": 0.9, "dice_cup": 0.8, "vcdr_mae": 0.1, "n": 3, "found": 3}}
    doc = {"held_out_sources": ["refuge"], "sha256": "ab", "model": summary, "baseline": "circles",
           "baseline_summary": summary, "checkpoint": ["g.pt"], "fine_checkpoint": ["gf0.pt", "gf1.pt"]}
    (tmp_path / "e.json").write_text(json.dumps(doc))
    (tmp_path / "eg.json").write_text(json.dumps({**doc, "without_colour": "green"}))
    ship = tmp_path / "ship" / "disc_cup.pt"
    base = ["--checkpoint", *map(str, colour), "--fine-checkpoint", *map(str, fine), "--held-out",
            str(tmp_path / "e.json"), "--out", str(ship), "--grey-checkpoint", *map(str, grey),
            "--grey-fine-checkpoint", *map(str, grey_fine)]
    assert model_card(base + ["--grey-held-out", str(tmp_path / "e.json")]) == 1  # colour photos' figures
    assert "evaluate --without-colour" in capsys.readouterr().err and not ship.exists()
    with pytest.raises(SystemExit):
        model_card(base)  # networks for grey photos without their held-out figures
    assert model_card(base + ["--grey-held-out", str(tmp_path / "eg.json")]) == 0

    card = load_checkpoint(ship, expected_task="disc-cup").card
    block = card["grey_networks"]
    assert block["held_out"][0]["without_colour"] == "green" and block["held_out"][0]["fine_networks"] == 2
    assert "1 finding and 2 fine-pass network(s)" in block["what"] and "data.p_grey = 0.2" in block["what"]
    assert [m["training"]["seed"] for m in block["members"]] == [7, 8, 9]
    assert seen_sources([card]) == {"gamma", "drishti"}  # what the grey networks saw counts as seen

    shipped = load_segmenter(ship)
    expected = load_members(grey, fine=grey_fine)
    crops = np.random.default_rng(0).integers(0, 255, (2, 32, 32, 3), dtype=np.uint8)
    np.testing.assert_allclose(shipped.grey.predict(crops), expected.predict(crops), atol=1e-6)
    np.testing.assert_allclose(shipped.grey.fine.predict(crops), expected.fine.predict(crops), atol=1e-6)
    np.testing.assert_allclose(shipped.predict(crops), load_members(colour).predict(crops), atol=1e-6)
    assert shipped.grey.grey is None and shipped.fine.grey is None
    loaded = [load_checkpoint(p, expected_task="disc-cup") for p in grey]
    with pytest.raises(ValueError, match="need their finding networks"):
        combine_checkpoints(loaded, grey_fine=loaded)
    with pytest.raises(ValueError, match="already has networks for photos without colour"):
        attach_grey(*attach_grey(spec, {}, spec, {}), spec, {})


def test_networks_for_photos_without_colour_join_a_shipped_model_as_it_is(tmp_path, capsys):
    from engine.fundus.model_card import main as model_card
    from engine.fundus.segmenter import default_spec, load_members, load_segmenter
    from engine.models.checkpoint import load_checkpoint

    spec = default_spec(size=32, channels=(4, 8), num_res_units=0)
    colour = [_save(tmp_path / f"c{s}.pt", spec, "60 fundus photos with disc/cup masks from data: gamma 60", s)
              for s in range(2)]
    grey = _save(tmp_path / "g.pt", spec, "50 fundus photos with disc/cup masks from data: drishti 50", 7, 0.2)
    summary = {"refuge": {"dice_disc": 0.9, "dice_cup": 0.8, "vcdr_mae": 0.1, "n": 3, "found": 3}}
    doc = {"held_out_sources": ["refuge"], "sha256": "ab", "model": summary, "baseline": "circles",
           "baseline_summary": summary}
    (tmp_path / "e.json").write_text(json.dumps(doc))
    (tmp_path / "eg.json").write_text(json.dumps({**doc, "without_colour": "luma"}))
    shipped = tmp_path / "ship" / "disc_cup.pt"
    assert model_card(["--checkpoint", *map(str, colour), "--held-out", str(tmp_path / "e.json"),
                       "--out", str(shipped)]) == 0
    before = load_checkpoint(shipped, expected_task="disc-cup")

    out = tmp_path / "new" / "disc_cup.pt"
    grey_args = ["--grey-checkpoint", str(grey), "--grey-held-out", str(tmp_path / "eg.json")]
    assert model_card(["--base", str(shipped), *grey_args, "--out", str(out), "--note", "colour nets: 0.25"]) == 0
    after = load_checkpoint(out, expected_task="disc-cup").card
    assert after["held_out"] == before.card["held_out"] and after["members"] == before.card["members"]
    assert after["grey_networks"]["held_out"][0]["without_colour"] == "luma"
    assert before.sha256[:12] in after["evaluation"][-2] and after["evaluation"][-1] == "colour nets: 0.25"
    crops = np.random.default_rng(1).integers(0, 255, (2, 32, 32, 3), dtype=np.uint8)
    model = load_segmenter(out)
    np.testing.assert_allclose(model.predict(crops), load_members(colour).predict(crops), atol=1e-6)
    np.testing.assert_allclose(model.grey.predict(crops), load_members([grey]).predict(crops), atol=1e-6)

    capsys.readouterr()
    assert model_card(["--base", str(out), *grey_args, "--out", str(tmp_path / "twice.pt")]) == 1
    assert "already has networks for photos without colour" in capsys.readouterr().err
