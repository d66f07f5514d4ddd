"""Inter-expert agreement from Drishti-GS soft maps and expert ratios, and a model's ratios put in an expert's
place."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.fundus.expert_agreement import case_agreement, expert_counts, loo_errors, main, summarise_experts

DISC_R = 40
CUP_RADII = (25, 20, 15, 10)
"""Expert k (1..4) draws the cup with radius CUP_RADII[k - 1]: at least k experts agree within CUP_RADII[k - 1]."""


def write_drishti_photo(root: Path, case_id: str, ratios: tuple[float, ...]) -> None:
    """A Drishti-GS training photo: 4 experts agree on a disc of radius DISC_R, disagree on the cup."""
    gt = root / "Training" / "GT" / case_id
    (gt / "SoftMap").mkdir(parents=True)
    (root / "Training" / "Images").mkdir(parents=True, exist_ok=True)
    size = 121
    yy, xx = np.mgrid[:size, :size]
    r = np.hypot(yy - 60, xx - 60)
    disc = np.where(r <= DISC_R, 255, 0).astype(np.uint8)
    cup = sum(np.where(r <= radius, 64, 0) for radius in CUP_RADII)
    cup = np.clip(cup, 0, 255).astype(np.uint8)
    cv2.imwrite(str(gt / "SoftMap" / f"{case_id}_ODsegSoftmap.png"), disc)
    cv2.imwrite(str(gt / "SoftMap" / f"{case_id}_cupsegSoftmap.png"), cup)
    cv2.imwrite(str(root / "Training" / "Images" / f"{case_id}.png"), np.full((size, size, 3), 90, np.uint8))
    (gt / f"{case_id}_cdrValues.txt").write_text(" ".join(f"{v:.2f}" for v in ratios))


def test_soft_map_levels_count_experts():
    soft = np.array([[0, 64, 128, 191, 255]], np.uint8)
    assert expert_counts(soft).tolist() == [[0, 1, 2, 3, 4]]


def test_leave_one_expert_out_errors():
    experts = [0.6, 0.7, 0.8, 0.9]
    assert loo_errors(experts) == pytest.approx([0.2, 1 / 15, 1 / 15, 0.2])
    # a prediction compared with the same 3-expert references
    assert loo_errors(experts, prediction=0.75) == pytest.approx([0.05, 0.05 / 3, 0.05 / 3, 0.05])
    assert loo_errors([0.5]) == []


def test_levels_of_a_synthetic_drishti_photo(tmp_path):
    from engine.fundus.datasets import read_drishti_layout

    write_drishti_photo(tmp_path, "drishtiGS_001", (0.5, 0.6, 0.6, 0.7))
    (case,) = read_drishti_layout(tmp_path)
    row = case_agreement(case)
    for k, radius in enumerate(CUP_RADII, start=1):
        level = row["levels"][str(k)]
        assert level["vcdr"] == pytest.approx((2 * radius + 1) / (2 * DISC_R + 1))
        assert level["dice_disc"] == 1.0
        ref = np.pi * CUP_RADII[1] ** 2
        assert level["dice_cup"] == pytest.approx(2 * min(ref, np.pi * radius**2) / (ref + np.pi * radius**2),
                                                  abs=0.03)
        # concentric circles: the rim / disc ratio is the same all round, (DISC_R - radius) / (2 DISC_R) to a pixel
        assert level["rim_profile_error"] == pytest.approx(abs(radius - CUP_RADII[1]) / (2 * DISC_R), abs=0.02)
    assert row["reference_vcdr"] == row["levels"]["2"]["vcdr"] and row["levels"]["2"]["rim_min_error"] == 0
    summary = summarise_experts([row])
    assert summary["levels"]["4"]["rim_profile_error"] == row["levels"]["4"]["rim_profile_error"]
    assert summary["expert_vcdr_loo_mae"] == pytest.approx(np.mean(loo_errors([0.5, 0.6, 0.6, 0.7])))
    assert summary["expert_vcdr_range"] == pytest.approx(0.2)


def test_cli_puts_a_model_in_an_experts_place(tmp_path, capsys):
    write_drishti_photo(tmp_path / "d", "drishtiGS_001", (0.5, 0.6, 0.6, 0.7))
    write_drishti_photo(tmp_path / "d", "drishtiGS_002", (0.4, 0.4, 0.5, 0.5))
    rows = [{"case": "drishti/drishtiGS_001", "vcdr_pred": 0.6}, {"case": "drishti/drishtiGS_002", "vcdr_pred": None},
            {"case": "odoc100/001", "vcdr_pred": 0.3}]
    (tmp_path / "eval.json").write_text(json.dumps({"held_out": "sources ['drishti']", "rows": rows}))
    out = tmp_path / "agreement.json"
    assert main(["--data", str(tmp_path / "d"), "--evaluation", str(tmp_path / "eval.json"), "--out", str(out)]) == 0
    assert "in an expert's place" in capsys.readouterr().out
    (model,) = json.loads(out.read_text())["models"]
    assert model["photos"] == 1 and model["not_found"] == 1
    assert model["vcdr_loo_mae"] == pytest.approx(np.mean(loo_errors([0.5, 0.6, 0.6, 0.7], 0.6)))
    assert model["bias"] == pytest.approx(0.0) and model["in_expert_range"] == 1.0


def test_cli_names_what_it_cannot_use(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["--data", str(tmp_path / "empty")]) == 1
    assert capsys.readouterr().err.count("\n") == 1
    write_drishti_photo(tmp_path / "d", "drishtiGS_001", (0.5, 0.6, 0.6, 0.7))
    (tmp_path / "bad.json").write_text("[1, 2]")
    assert main(["--data", str(tmp_path / "d"), "--evaluation", str(tmp_path / "bad.json")]) == 1
    assert "not an engine.fundus.evaluate file" in capsys.readouterr().err


def test_drishti_experts_in_the_shared_samples(sample_data):
    from engine.fundus.datasets import read_shared_samples

    rows = [case_agreement(c) for c in read_shared_samples(sample_data) if c.convention == "soft"]
    summary = summarise_experts(rows)
    assert summary["photos_with_expert_ratios"] == 48 and summary["experts_per_photo"] == [4]
    vcdr = [summary["levels"][str(k)]["vcdr"] for k in (1, 2, 3, 4)]
    assert vcdr == sorted(vcdr, reverse=True)  # fewer experts agree on a larger cup
    assert 0.0 < summary["expert_vcdr_loo_mae"] < summary["expert_vcdr_range"]


def test_model_card_carries_the_agreement_and_refuses_in_sample_models(tmp_path):
    from engine.fundus.model_card import expert_agreement_block

    write_drishti_photo(tmp_path / "d", "drishtiGS_001", (0.5, 0.6, 0.6, 0.7))
    rows = [{"case": "drishti/drishtiGS_001", "vcdr_pred": 0.6}]
    for name, seen in (("held_out", []), ("in_sample", ["drishti"])):
        (tmp_path / f"{name}.json").write_text(json.dumps({"rows": rows, "in_sample_sources": seen}))
        assert main(["--data", str(tmp_path / "d"), "--evaluation", str(tmp_path / f"{name}.json"),
                     "--out", str(tmp_path / f"agreement_{name}.json")]) == 0
    block = expert_agreement_block(tmp_path / "agreement_held_out.json")
    assert block["experts"]["photos"] == 1 and block["models"][0]["photos"] == 1 and "rows" not in block
    with pytest.raises(ValueError, match="trained on drishti"):
        expert_agreement_block(tmp_path / "agreement_in_sample.json")
    with pytest.raises(ValueError, match="not an engine.fundus.expert_agreement file"):
        expert_agreement_block(tmp_path / "held_out.json")
