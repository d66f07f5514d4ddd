import json

import numpy as np
import pytest

from engine.fundus.evaluate import baseline_masks, dice, evaluate_case, summarise, vertical_ratio
from engine.synthetic import synthetic_fundus


def test_vertical_ratio_and_dice():
    disc = np.zeros((50, 50), bool)
    disc[10:40, 5:45] = True
    cup = np.zeros_like(disc)
    cup[20:32, 0:50] = True  # wider than the disc: clipped
    assert vertical_ratio(disc, cup) == pytest.approx(12 / 30)
    assert vertical_ratio(disc, np.zeros_like(disc)) == 0.0
    assert dice(disc, disc) == 1.0 and dice(disc, ~disc) == 0.0


def test_baseline_circles_sit_on_the_disc():
    f = synthetic_fundus((400, 400), cdr=0.5, seed=1)
    disc, cup = baseline_masks(f.image, 0.5)
    assert dice(disc, f.disc_mask) > 0.5 and vertical_ratio(disc, cup) == pytest.approx(0.5, abs=0.03)


def test_evaluate_case_and_summary(tmp_path, oracle):
    import cv2

    from engine.fundus import label_mask
    from engine.fundus.datasets import DiscCupCase

    f = synthetic_fundus((400, 400), cdr=0.6, seed=2)
    cv2.imwrite(str(tmp_path / "a.png"), f.image[:, :, ::-1])
    cv2.imwrite(str(tmp_path / "m.png"), label_mask(f.disc_mask, f.cup_mask))
    case = DiscCupCase("x/a", "x", tmp_path / "a.png", (tmp_path / "m.png",), "gamma")
    row = evaluate_case(case, oracle)
    assert row["found"] and row["dice_disc"] > 0.9 and row["vcdr_error"] < 0.05
    base = evaluate_case(case, baseline_ratio=0.3)
    assert base["vcdr_error"] == pytest.approx(abs(0.3 - row["vcdr_true"]), abs=0.03)
    s = summarise([row, base])
    assert s["x"]["n"] == 2 and s["all"]["found"] == 2


def test_model_card_ships_held_out_numbers(tmp_path):
    from engine.fundus.model_card import main
    from engine.fundus.segmenter import build_network, default_spec
    from engine.models.checkpoint import load_checkpoint, save_checkpoint

    spec = default_spec(size=32, channels=(4, 8), num_res_units=0)
    save_checkpoint(tmp_path / "best.pt", spec, build_network(spec).state_dict(),
                    {"name": "disc_cup", "task": "disc-cup", "metrics": {"dice_disc": 0.5}})
    summary = {"drishti": {"dice_disc": 0.9, "dice_cup": 0.8, "vcdr_mae": 0.1, "n": 3, "found": 3}}
    (tmp_path / "e.json").write_text(json.dumps({"held_out_sources": ["drishti"], "sha256": "ab", "model": summary,
                                                 "baseline": "circles", "baseline_summary": summary}))
    assert main(["--checkpoint", str(tmp_path / "best.pt"), "--held-out", str(tmp_path / "e.json"),
                 "--out", str(tmp_path / "ship" / "disc_cup.pt")]) == 0
    card = load_checkpoint(tmp_path / "ship" / "disc_cup.pt", expected_task="disc-cup").card
    assert card["held_out"][0]["model"]["drishti"]["dice_disc"] == 0.9
    assert card["training_metrics"]["values"] == {"dice_disc": 0.5} and "metrics" not in card
