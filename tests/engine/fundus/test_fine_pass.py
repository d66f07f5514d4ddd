"""Fine-pass networks: a second set of disc/cup networks that draws the final masks where the first found the disc."""

import json

import numpy as np
import pytest

from engine.fundus import analyse_disc
from engine.synthetic import synthetic_fundus
from fundus_helpers import ColourOracle, write_gamma_tree


class CuplessOracle(ColourOracle):
    """The colour oracle that calls the cup rim: a fine pass whose masks differ from the finding pass's."""

    def predict(self, crops: np.ndarray) -> np.ndarray:
        p = super().predict(crops)
        p[:, 1] += p[:, 2]
        p[:, 2] = 0.0
        return p


def test_the_fine_pass_networks_draw_the_final_masks():
    f = synthetic_fundus((512, 512), cdr=0.6, eye="OD", seed=3)
    alone = analyse_disc(f.image, eye="OD", segmenter=ColourOracle())
    assert alone.found and alone.cup_mask.any() and "refine" not in alone.timings

    finder, fine = ColourOracle(), CuplessOracle()
    finder.fine = fine
    drawn = analyse_disc(f.image, eye="OD", segmenter=finder)
    assert drawn.found and fine.calls == 2 and "refine" in drawn.timings  # two passes centred on the disc found
    assert not drawn.cup_mask.any() and drawn.biomarkers.vcdr == 0.0
    overlap = (drawn.disc_mask & alone.disc_mask).sum()
    assert 2 * overlap / (drawn.disc_mask.sum() + alone.disc_mask.sum()) > 0.95  # the same disc

    # fine-pass networks that see no disc there: the finding networks' masks stay
    finder.fine = ColourOracle(empty=True)
    kept = analyse_disc(f.image, eye="OD", segmenter=finder)
    assert kept.found and (kept.disc_mask == alone.disc_mask).all() and (kept.cup_mask == alone.cup_mask).all()


def _save(path, spec, data: str, seed: int):
    import torch

    from engine.fundus.segmenter import build_network
    from engine.models.checkpoint import save_checkpoint

    torch.manual_seed(seed)
    save_checkpoint(path, spec, build_network(spec).state_dict(),
                    {"name": "disc_cup", "task": "disc-cup", "data": data, "training": {"seed": seed}})
    return path


def test_fine_pass_networks_load_evaluate_and_ship_in_one_checkpoint(tmp_path):
    from engine.fundus.evaluate import main as evaluate
    from engine.fundus.evaluate import seen_sources
    from engine.fundus.model_card import main as model_card
    from engine.fundus.segmenter import (
        attach_fine,
        default_spec,
        load_cli_segmenter,
        load_members,
        load_segmenter,
    )
    from engine.models.checkpoint import load_checkpoint

    spec = default_spec(size=32, channels=(4, 8), num_res_units=0)
    fine_spec = default_spec(size=48, channels=(4, 8, 16), num_res_units=0)
    finders = [_save(tmp_path / f"f{s}.pt", spec, "60 fundus photos with disc/cup masks from data: gamma 60", s)
               for s in range(2)]
    fines = [_save(tmp_path / f"g{s}.pt", fine_spec, "50 fundus photos with disc/cup masks from data: drishti 50",
                   10 + s) for s in range(2)]
    rng = np.random.default_rng(0)
    crops, fine_crops = (rng.integers(0, 255, (2, s, s, 3), dtype=np.uint8) for s in (32, 48))

    seg = load_members(finders, fine=fines)
    assert seg.size == 32 and "fine" not in seg.spec and seg.fine.size == 48 and seg.fine.spec["members"] == 2
    np.testing.assert_allclose(seg.predict(crops), load_members(finders).predict(crops), atol=1e-6)
    np.testing.assert_allclose(seg.fine.predict(fine_crops), load_members(fines).predict(fine_crops), atol=1e-6)
    assert seg.sha256 not in (load_members(finders).sha256, load_members(fines).sha256)
    _, cards = load_cli_segmenter(finders, fines)
    assert seen_sources(cards) == {"gamma", "drishti"}  # what the fine pass saw counts as seen
    with pytest.raises(ValueError, match="--checkpoint"):
        load_cli_segmenter(None, fines)
    with pytest.raises(ValueError, match="already has fine-pass"):
        attach_fine(*attach_fine(spec, {}, fine_spec, {}), fine_spec, {})

    # evaluate names them; the fine pass's sources make a held-out figure in-sample
    write_gamma_tree(tmp_path / "gamma", n=2, size=(160, 160))
    out = tmp_path / "r.json"
    args = ["--data", str(tmp_path / "gamma"), "--sources", "drishti", "--out", str(out)]
    assert evaluate(args + ["--fine-checkpoint", *map(str, fines)]) == 1  # no finding networks: one error line
    assert evaluate(args[:3] + ["gamma", "--out", str(out), "--checkpoint", str(finders[0]),
                                "--fine-checkpoint", str(fines[0])]) == 0
    doc = json.loads(out.read_text())
    assert doc["fine_checkpoint"] == [str(fines[0])] and doc["in_sample_sources"] == ["gamma"]

    # shipped as one file: the card says what the fine pass was trained on, loading gives the same networks
    summary = {"refuge": {"dice_disc": 0.9, "dice_cup": 0.8, "vcdr_mae": 0.1, "n": 3, "found": 3}}
    (tmp_path / "e.json").write_text(json.dumps({"held_out_sources": ["refuge"], "sha256": seg.sha256,
                                                 "model": summary, "baseline": "circles", "baseline_summary": summary}))
    ship = tmp_path / "ship" / "disc_cup.pt"
    assert model_card(["--checkpoint", *map(str, finders), "--fine-checkpoint", *map(str, fines),
                       "--held-out", str(tmp_path / "e.json"), "--out", str(ship)]) == 0
    card = load_checkpoint(ship, expected_task="disc-cup").card
    assert [m["training"]["seed"] for m in card["fine_pass"]["members"]] == [10, 11]
    assert any("2 fine-pass network(s)" in line for line in card["evaluation"])
    assert seen_sources([card]) == {"gamma", "drishti"}
    shipped = load_segmenter(ship)
    np.testing.assert_allclose(shipped.fine.predict(fine_crops), seg.fine.predict(fine_crops), atol=1e-6)
    np.testing.assert_allclose(shipped.predict(crops), seg.predict(crops), atol=1e-6)
