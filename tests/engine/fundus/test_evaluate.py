import json
from pathlib import Path

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
    assert row["disc_area_ratio"] == pytest.approx(1.0, abs=0.1)
    base = evaluate_case(case, baseline_ratio=0.3)
    assert base["vcdr_error"] == pytest.approx(abs(0.3 - row["vcdr_true"]), abs=0.03)
    assert row["rim_profile_error"] < 0.03 and row["rim_min_error"] < 0.03  # the oracle's own outline
    assert base["rim_profile_error"] > row["rim_profile_error"]
    s = summarise([row, base])
    assert s["x"]["n"] == 2 and s["all"]["found"] == 2
    assert s["all"]["rim_profile_mae"] == pytest.approx((row["rim_profile_error"] + base["rim_profile_error"]) / 2)
    assert row["ddls_error"] == 0  # the oracle's rim is the experts' to within a stage band
    assert s["all"]["ddls_mae"] == pytest.approx(base["ddls_error"] / 2)
    assert s["all"]["ddls_within1"] == pytest.approx((1 + (base["ddls_error"] <= 1)) / 2)
    old = {k: v for k, v in row.items() if not k.startswith(("rim_", "ddls_"))}  # written before they were measured
    assert np.isnan(summarise([old])["all"]["rim_min_mae"]) and np.isnan(summarise([old])["all"]["ddls_within1"])


def test_evaluate_case_on_the_photo_without_colour(tmp_path):
    """``grey``: the segmenter sees the photo's grey copy (three equal channels), scored against the same masks."""
    import cv2

    from engine.fundus import label_mask
    from engine.fundus.datasets import DiscCupCase
    from fundus_helpers import ColourOracle

    class Recording(ColourOracle):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[np.ndarray] = []

        def predict(self, crops: np.ndarray) -> np.ndarray:
            self.seen.append(np.asarray(crops))
            return super().predict(crops)

    f = synthetic_fundus((400, 400), cdr=0.6, seed=2)
    cv2.imwrite(str(tmp_path / "a.png"), f.image[:, :, ::-1])
    cv2.imwrite(str(tmp_path / "m.png"), label_mask(f.disc_mask, f.cup_mask))
    case = DiscCupCase("x/a", "x", tmp_path / "a.png", (tmp_path / "m.png",), "gamma")
    colour, grey = Recording(), Recording()
    assert evaluate_case(case, colour)["found"] and not all(np.array_equal(c[..., 0], c[..., 1]) for c in colour.seen)
    row = evaluate_case(case, grey, grey="green")
    assert grey.seen and all(np.array_equal(c[..., 0], c[..., 1]) for c in grey.seen)
    assert not row["found"] or row["dice_disc"] < 0.9  # the colour oracle cannot read a grey disc


def test_ddls_error_compares_average_disc_stages():
    from engine.fundus.evaluate import rim_errors

    rows, cols = np.ogrid[:120, :120]
    disc = (rows - 60) ** 2 + (cols - 60) ** 2 <= 40**2
    reference = np.full(180, 0.25)  # rim 0.25 all round: stage 3 for an average disc
    thin = (rows - 60) ** 2 + (cols - 60) ** 2 <= 34**2  # rim 6 / 80 = 0.075: stage 5
    assert rim_errors(disc, thin, reference)["ddls_error"] == 2
    assert rim_errors(disc, (rows - 60) ** 2 + (cols - 60) ** 2 <= 20**2, reference)["ddls_error"] == 0
    assert np.isnan(rim_errors(np.zeros_like(disc), thin, reference)["ddls_error"])


def test_model_card_ships_held_out_numbers(tmp_path):
    from engine.fundus.model_card import main
    from engine.fundus.segmenter import build_network, default_spec
    from engine.models.checkpoint import load_checkpoint, save_checkpoint

    spec = default_spec(size=32, channels=(4, 8), num_res_units=0)
    save_checkpoint(tmp_path / "best.pt", spec, build_network(spec).state_dict(),
                    {"name": "disc_cup", "task": "disc-cup", "metrics": {"dice_disc": 0.5}})
    summary = {"drishti": {"dice_disc": 0.9, "dice_cup": 0.8, "vcdr_mae": 0.1, "n": 3, "found": 3}}
    (tmp_path / "e.json").write_text(json.dumps({"held_out_sources": ["drishti"], "sha256": "ab", "model": summary,
                                                 "baseline": "circles", "baseline_summary": summary,
                                                 "trained_on": "60 photos: odoc100 60"}))
    assert main(["--checkpoint", str(tmp_path / "best.pt"), "--held-out", str(tmp_path / "e.json"),
                 "--out", str(tmp_path / "ship" / "disc_cup.pt")]) == 0
    card = load_checkpoint(tmp_path / "ship" / "disc_cup.pt", expected_task="disc-cup").card
    assert card["held_out"][0]["model"]["drishti"]["dice_disc"] == 0.9
    assert card["held_out"][0]["trained_on"] == "60 photos: odoc100 60"
    assert card["training_metrics"]["values"] == {"dice_disc": 0.5} and "metrics" not in card
    rows = [{"case": f"o/{i}", "source": "odoc100", "dice_disc": 0.9, "dice_cup": 0.8, "vcdr_true": t,
             "vcdr_pred": t + 0.1, "vcdr_error": 0.1, "found": True} for i, t in enumerate(np.linspace(0.4, 0.6, 10))]
    (tmp_path / "r.json").write_text(json.dumps({"held_out_sources": ["odoc100"], "sha256": "cd", "model": summary,
                                                 "baseline": "circles", "baseline_summary": summary, "rows": rows,
                                                 "baseline_rows": rows}))
    assert main(["--checkpoint", str(tmp_path / "best.pt"), "--held-out", str(tmp_path / "r.json"),
                 "--out", str(tmp_path / "ship" / "disc_cup.pt")]) == 0
    block = load_checkpoint(tmp_path / "ship" / "disc_cup.pt", expected_task="disc-cup").card["held_out"][0]
    assert set(block["model"]) == set(block["baseline_metrics"]) == {"odoc100", "all"}  # from the rows
    assert block["model"]["all"]["vcdr_mae_offset_removed"] == pytest.approx(0.0)
    assert block["model"]["all"]["vcdr_pearson"] == pytest.approx(1.0)


def test_reference_baselines_join_the_held_out_block_of_their_sources(tmp_path):
    from engine.fundus.model_card import main
    from engine.fundus.segmenter import build_network, default_spec
    from engine.models.checkpoint import load_checkpoint, save_checkpoint

    spec = default_spec(size=32, channels=(4, 8), num_res_units=0)
    weights = tmp_path / "ship" / "disc_cup.pt"
    save_checkpoint(tmp_path / "best.pt", spec, build_network(spec).state_dict(),
                    {"name": "disc_cup", "task": "disc-cup"})

    def evaluation(name: str, sources: list, dice_disc: float) -> Path:
        rows = [{"case": f"{sources[0]}/{i}", "source": sources[0], "dice_disc": dice_disc, "dice_cup": 0.6,
                 "vcdr_true": 0.5, "vcdr_pred": 0.6, "vcdr_error": 0.1, "found": True} for i in range(3)]
        (tmp_path / name).write_text(json.dumps({"held_out_sources": sources, "sha256": "ab", "rows": rows,
                                                 "baseline": "plain two-stage U-Net", "baseline_rows": rows,
                                                 "trained_on": "70 photos"}))
        return tmp_path / name

    held = [str(evaluation("d.json", ["drishti"], 0.9)), str(evaluation("o.json", ["odoc100"], 0.95))]
    assert main(["--checkpoint", str(tmp_path / "best.pt"), "--held-out", *held, "--out", str(weights),
                 "--reference-baseline", str(evaluation("pd.json", ["drishti"], 0.8)),
                 "--reference-label", "plain U-Net"]) == 0
    blocks = load_checkpoint(weights, expected_task="disc-cup").card["held_out"]
    ref = blocks[0]["reference_baseline"]
    assert ref["label"] == "plain U-Net" and ref["what"] == "plain two-stage U-Net" and ref["trained_on"] == "70 photos"
    assert ref["metrics"]["drishti"]["dice_disc"] == pytest.approx(0.8) and "reference_baseline" not in blocks[1]

    # added later to the shipped card in place: the weights and the hash the card holds stay
    card_file = weights.with_suffix(".card.json")
    sha = json.loads(card_file.read_text())["sha256"]
    assert main(["--card", str(card_file), "--reference-baseline", str(evaluation("po.json", ["odoc100"], 0.7))]) == 0
    card = load_checkpoint(weights, expected_task="disc-cup").card
    assert card["sha256"] == sha and card["held_out"][1]["reference_baseline"]["label"] == "reference"
    assert card["held_out"][1]["reference_baseline"]["metrics"]["all"]["vcdr_pearson"] is None  # NaN -> null
    assert card["held_out"][0]["reference_baseline"]["metrics"]["all"]["dice_disc"] == pytest.approx(0.8)
    before = card_file.read_text()
    assert main(["--card", str(card_file), "--reference-baseline", str(evaluation("pr.json", ["refuge"], 0.7))]) == 1
    assert card_file.read_text() == before  # no block holds out refuge: nothing written

    # a new model of the same held-out blocks carries the reference baselines of the card it replaces
    newer = tmp_path / "newer" / "disc_cup.pt"
    assert main(["--checkpoint", str(tmp_path / "best.pt"), "--held-out", *held, "--out", str(newer),
                 "--reference-from", str(card_file)]) == 0
    carried = load_checkpoint(newer, expected_task="disc-cup").card["held_out"]
    assert [b["reference_baseline"] for b in carried] == [b["reference_baseline"] for b in card["held_out"]]
    assert main(["--checkpoint", str(tmp_path / "best.pt"), "--held-out", held[0], "--out", str(newer),
                 "--reference-from", str(card_file)]) == 1  # odoc100's baseline has no block: one error line
    assert main(["--checkpoint", str(tmp_path / "best.pt"), "--held-out", *held, "--out", str(newer),
                 "--reference-from", str(tmp_path / "best.pt")]) == 1  # not a card


def test_members_average_their_probabilities_and_ship_as_one_checkpoint(tmp_path):
    import torch

    from engine.fundus.model_card import main
    from engine.fundus.segmenter import build_network, combine_members, default_spec, load_members, load_segmenter
    from engine.models.checkpoint import load_checkpoint, save_checkpoint

    spec = default_spec(size=32, channels=(4, 8), num_res_units=0)
    paths = []
    for seed in range(3):
        torch.manual_seed(seed)
        path = tmp_path / f"m{seed}" / "best.pt"
        save_checkpoint(path, spec, build_network(spec).state_dict(),
                        {"name": "disc_cup", "task": "disc-cup", "training": {"seed": seed}})
        paths.append(path)
    crops = np.random.default_rng(0).integers(0, 255, (2, 32, 32, 3), dtype=np.uint8)
    singles = [load_segmenter(p).predict(crops) for p in paths]
    mean = load_members(paths)
    assert mean.spec["members"] == 3 and len(mean.sha256) == 64
    np.testing.assert_allclose(mean.predict(crops), np.mean(singles, axis=0), atol=1e-5)

    summary = {"mixed": {"dice_disc": 0.9, "dice_cup": 0.8, "vcdr_mae": 0.1, "n": 3, "found": 3}}
    (tmp_path / "e.json").write_text(json.dumps({"held_out_sources": ["refuge"], "sha256": mean.sha256,
                                                 "model": summary, "baseline": "circles", "baseline_summary": summary}))
    out = tmp_path / "ship" / "disc_cup.pt"
    assert main(["--checkpoint", *map(str, paths), "--held-out", str(tmp_path / "e.json"), "--out", str(out)]) == 0
    card = load_checkpoint(out, expected_task="disc-cup").card
    assert [m["training"]["seed"] for m in card["members"]] == [0, 1, 2]
    assert card["held_out"][0]["networks"] == 0 and "a mean of such networks" in card["evaluation"][2]  # not said
    doc = json.loads((tmp_path / "e.json").read_text())
    (tmp_path / "e.json").write_text(json.dumps({**doc, "checkpoint": ["a.pt", "b.pt"]}))
    assert main(["--checkpoint", *map(str, paths), "--held-out", str(tmp_path / "e.json"), "--out", str(out)]) == 0
    card = load_checkpoint(out, expected_task="disc-cup").card
    assert card["held_out"][0]["networks"] == 2 and "a mean of 2 such networks" in card["evaluation"][2]
    np.testing.assert_allclose(load_segmenter(out).predict(crops), mean.predict(crops), atol=1e-6)

    other = default_spec(size=48, channels=(4, 8), num_res_units=0)
    with pytest.raises(ValueError, match="cannot be averaged"):
        combine_members([spec, other], [{}, {}])
    with pytest.raises(ValueError, match="already combines"):
        combine_members([mean.spec, mean.spec], [{}, {}])


def test_evaluate_cli_on_a_split_fold(tmp_path):
    """``--split``/``--fold`` evaluates exactly the fold's held-out photos (sources seen in training)."""
    from engine.fundus.evaluate import main
    from engine.fundus.segmenter import build_network, default_spec
    from engine.models.checkpoint import save_checkpoint
    from fundus_helpers import write_gamma_tree

    write_gamma_tree(tmp_path / "gamma", n=3, size=(160, 160))
    spec = default_spec(size=32, channels=(4, 8), num_res_units=0)
    save_checkpoint(tmp_path / "best.pt", spec, build_network(spec).state_dict(), {"name": "d", "task": "disc-cup"})
    split = {"fold1": {"train": ["gamma/0000", "gamma/0001"], "val": ["gamma/0002"]}}
    (tmp_path / "split.json").write_text(json.dumps(split))
    args = ["--data", str(tmp_path / "gamma"), "--checkpoint", str(tmp_path / "best.pt"),
            "--split", str(tmp_path / "split.json"), "--fold", "fold1", "--out", str(tmp_path / "r.json")]
    assert main(args) == 0
    doc = json.loads((tmp_path / "r.json").read_text())
    assert [r["case"] for r in doc["rows"]] == ["gamma/0002"] and "fold1" in doc["held_out"]
    ratio = float(doc["baseline"].split("cup ratio ")[1].split()[0])
    assert ratio == pytest.approx(0.35, abs=0.03)  # the mean vertical ratio of the training photos (0.3, 0.4)
    assert main(args[:-4] + ["--fold", "fold9"]) == 1
    missing = ["--data", str(tmp_path / "gamma"), "--checkpoint", str(tmp_path / "none.pt"), "--sources", "gamma"]
    assert main(missing) == 1  # one stderr line, no traceback

    # the folds' files of one k-fold run combine into one; a photo in two files is refused
    split["fold2"] = {"train": ["gamma/0002"], "val": ["gamma/0000", "gamma/0001"]}
    (tmp_path / "split.json").write_text(json.dumps(split))
    assert main(args[:-3] + ["fold2", "--out", str(tmp_path / "r2.json")]) == 0
    merged = tmp_path / "all.json"
    assert main(["--merge", str(tmp_path / "r.json"), str(tmp_path / "r2.json"), "--out", str(merged)]) == 0
    doc = json.loads(merged.read_text())
    assert sorted(r["case"] for r in doc["rows"]) == ["gamma/0000", "gamma/0001", "gamma/0002"]
    assert doc["model"]["all"]["n"] == 3 and len(doc["sha256"]) == 2 and doc["held_out_sources"] == []
    assert doc["held_out"].startswith(f"photos, not sources: fold1, fold2 of {tmp_path / 'split.json'} (each photo")
    assert main(["--merge", str(tmp_path / "r.json"), str(tmp_path / "r.json")]) == 1


def test_summary_separates_convention_bias_from_spread():
    def row(true, pred, area=None):
        return {"source": "s", "dice_disc": 1.0, "dice_cup": 1.0, "vcdr_true": true, "vcdr_pred": pred,
                "vcdr_error": abs(pred - true) if pred is not None else max(true, 1 - true), "found": pred is not None,
                **({"disc_area_ratio": area} if area is not None else {})}

    s = summarise([row(0.7, 0.5, 0.9), row(0.6, 0.4, 1.2), row(0.6, 0.4, 0.8), row(0.5, None)])["s"]
    assert s["vcdr_bias"] == pytest.approx(-0.2) and s["found"] == 3 and s["disc_area_ratio"] == pytest.approx(0.9)
    assert s["vcdr_mae"] == pytest.approx((0.2 + 0.2 + 0.2 + 0.5) / 4)
    assert np.isnan(summarise([row(0.5, None)])["s"]["vcdr_bias"])
    assert np.isnan(s["vcdr_mae_offset_removed"]) and np.isnan(s["vcdr_pearson"])  # 3 photos: too few for either
    flat = summarise([row(0.7 - i / 100, 0.5) for i in range(10)])["s"]
    assert flat["vcdr_mae_offset_removed"] == pytest.approx(0.025) and np.isnan(flat["vcdr_pearson"])  # no spread


def test_summary_tells_a_constant_offset_from_a_wrong_order():
    def row(true, pred):
        return {"source": "s", "dice_disc": 1.0, "dice_cup": 1.0, "vcdr_true": true, "vcdr_pred": pred,
                "vcdr_error": abs(pred - true), "found": True}

    true = [0.3, 0.4, 0.5, 0.6, 0.7] * 2
    offset = summarise([row(t, t + 0.15) for t in true])["s"]
    assert offset["vcdr_mae"] == pytest.approx(0.15) and offset["vcdr_mae_offset_removed"] == pytest.approx(0.0)
    assert offset["vcdr_pearson"] == pytest.approx(1.0)
    reversed_ = summarise([row(t, p) for t, p in zip(true, true[::-1])])["s"]
    assert reversed_["vcdr_bias"] == pytest.approx(0.0)
    assert reversed_["vcdr_mae_offset_removed"] == pytest.approx(reversed_["vcdr_mae"]) == pytest.approx(0.24)
    assert reversed_["vcdr_pearson"] == pytest.approx(-1.0)
    assert np.isnan(summarise([row(t, t + 0.15) for t in true[:9]])["s"]["vcdr_pearson"])  # fewer than 10 photos


def test_training_data_line_reads_back():
    from engine.fundus.datasets import DiscCupCase, describe_cases, sources_in_description

    cases = [DiscCupCase(f"{s}/{i}", s, Path("x.png"), (), "gamma") for i, s in enumerate(["b", "a", "b"])]
    line = describe_cases(cases, "data")
    assert line == "3 fundus photos with disc/cup masks from data: a 1, b 2"
    assert sources_in_description(line) == {"a": 1, "b": 2}
    assert sources_in_description("synthetic fundi") is None
    assert sources_in_description("3 fundus photos with disc/cup masks from data: a one") is None


@pytest.mark.parametrize("trained_on, in_sample", [("gamma 3", ["gamma"]), ("odoc100 5", []), (None, [])])
def test_evaluating_sources_the_checkpoint_saw_is_flagged_and_never_shipped(tmp_path, capsys, trained_on, in_sample):
    """A held-out figure must come from sources the checkpoint never saw: evaluate says so when they overlap (or
    when the card does not tell), and model_card refuses such a file."""
    from engine.fundus.evaluate import main
    from engine.fundus.model_card import main as card_main
    from engine.fundus.segmenter import build_network, default_spec
    from engine.models.checkpoint import save_checkpoint
    from fundus_helpers import write_gamma_tree

    write_gamma_tree(tmp_path / "gamma", n=2, size=(160, 160))
    spec = default_spec(size=32, channels=(4, 8), num_res_units=0)
    card = {"name": "d", "task": "disc-cup"}
    if trained_on:
        card["data"] = f"3 fundus photos with disc/cup masks from data: {trained_on}"
    save_checkpoint(tmp_path / "best.pt", spec, build_network(spec).state_dict(), card)
    assert main(["--data", str(tmp_path / "gamma"), "--checkpoint", str(tmp_path / "best.pt"),
                 "--sources", "gamma", "--out", str(tmp_path / "r.json")]) == 0
    err = capsys.readouterr().err
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["in_sample_sources"] == in_sample
    assert ("in-sample, not held-out" in err) == bool(in_sample)
    assert ("does not say which sources" in err) == (trained_on is None)

    ship = ["--checkpoint", str(tmp_path / "best.pt"), "--held-out", str(tmp_path / "r.json"),
            "--out", str(tmp_path / "ship.pt")]
    assert card_main(ship) == (1 if in_sample else 0)
    if in_sample:
        assert "not a held-out evaluation" in capsys.readouterr().err


def test_model_card_names_an_unreadable_evaluation_file(tmp_path, capsys):
    from engine.fundus.model_card import main
    from engine.fundus.segmenter import build_network, default_spec
    from engine.models.checkpoint import save_checkpoint

    spec = default_spec(size=32, channels=(4, 8), num_res_units=0)
    save_checkpoint(tmp_path / "best.pt", spec, build_network(spec).state_dict(), {"name": "d", "task": "disc-cup"})
    for text, says in (("{not json", "cannot read it"), ('{"sha256": "ab"}', "no 'held_out_sources' field"),
                       ("[1, 2]", "not an engine.fundus.evaluate file")):
        (tmp_path / "e.json").write_text(text)
        assert main(["--checkpoint", str(tmp_path / "best.pt"), "--held-out", str(tmp_path / "e.json"),
                     "--out", str(tmp_path / "ship.pt")]) == 1
        line = capsys.readouterr().err.strip()
        assert says in line and "e.json" in line and "\n" not in line
    assert not (tmp_path / "ship.pt").exists()


def test_sources_seen_through_a_pseudo_labeller_count_as_seen():
    """A network trained on photos pseudo-labelled by networks that saw a source has learnt from that source."""
    from engine.fundus.evaluate import seen_sources

    line = "{} fundus photos with disc/cup masks from data: {}".format
    direct = {"data": line(5, "odoc100 3, pseudo 2")}
    labelled = {**direct, "pseudo_labels": {"labeller": {"trained_on": f"{line(4, 'drishti 4')}; {line(1, 'a 1')}"}}}
    assert seen_sources([direct]) == {"odoc100", "pseudo"}
    assert seen_sources([labelled]) == {"odoc100", "pseudo", "drishti", "a"}
    assert seen_sources([{**direct, "pseudo_labels": {"labeller": {"trained_on": "shipped"}}}]) is None


def _evaluation(rows):
    return {"rows": [{"case": c, "source": s, "dice_disc": d, "dice_cup": u, "vcdr_error": v}
                     for c, s, d, u, v in rows]}


def test_paired_comparison_of_two_evaluations():
    """B - A per photo: known mean differences, better/worse counts, an interval around the mean from 10 photos
    on, per source; photos are paired by name, not by position."""
    from engine.fundus.evaluate import MIN_PHOTOS_FOR_SPREAD, compare_evaluations

    assert MIN_PHOTOS_FOR_SPREAD == 10
    gains = np.linspace(0.01, 0.10, 10)  # source x: B better on every photo by these disc Dice gains
    a = _evaluation([(f"x{i}", "x", 0.85, 0.70, 0.10) for i in range(10)]
                    + [("y0", "y", 0.80, 0.60, 0.20), ("y1", "y", 0.94, 0.75, 0.02)])
    b = _evaluation([("y1", "y", 0.95, 0.75, 0.04), ("y0", "y", 0.90, 0.62, 0.10)]
                    + [(f"x{i}", "x", 0.85 + g, 0.70 + (0.02 if i % 2 else -0.01), 0.10) for i, g in enumerate(gains)])
    cmp = compare_evaluations(a, b)
    disc = cmp["x"]["dice_disc"]
    assert disc["mean_difference"] == pytest.approx(gains.mean())
    assert disc["b_better"] == 10 and disc["b_worse"] == 0 and disc["n"] == 10
    assert 0.01 < disc["ci95_low"] < disc["mean_difference"] < disc["ci95_high"] < 0.10
    assert (cmp["x"]["dice_cup"]["b_better"], cmp["x"]["dice_cup"]["b_worse"]) == (5, 5)
    assert cmp["x"]["vcdr_error"]["ci95_low"] == cmp["x"]["vcdr_error"]["ci95_high"] == 0.0  # no change anywhere
    y = cmp["y"]
    assert y["vcdr_error"]["mean_difference"] == pytest.approx(-0.04) and np.isnan(y["vcdr_error"]["ci95_low"])
    assert (y["vcdr_error"]["b_better"], y["vcdr_error"]["b_worse"]) == (1, 1)  # lower error is better
    assert (y["dice_cup"]["b_better"], y["dice_cup"]["b_worse"]) == (1, 0)  # a tie counts as neither
    assert cmp["all"]["dice_disc"]["n"] == 12 and not np.isnan(cmp["all"]["dice_disc"]["ci95_low"])
    with pytest.raises(ValueError, match="different photos"):
        compare_evaluations(a, _evaluation([("x0", "x", 0.9, 0.7, 0.1)]))


def test_compare_cli(tmp_path, capsys):
    from engine.fundus.evaluate import main

    a = _evaluation([(f"p{i}", "x", 0.90, 0.70 + i / 100, 0.10) for i in range(10)])
    b = _evaluation([(f"p{i}", "x", 0.93, 0.71 + i / 100, 0.10) for i in range(10)])
    (tmp_path / "a.json").write_text(json.dumps({**a, "in_sample_sources": ["x"]}))
    (tmp_path / "b.json").write_text(json.dumps(b))
    files = [str(tmp_path / "a.json"), str(tmp_path / "b.json")]
    assert main(["--compare", *files, "--out", str(tmp_path / "c.json")]) == 0
    out = capsys.readouterr()
    assert "dice_disc +0.0300" in out.out and "A (" in out.err and "in-sample for x" in out.err
    paired = json.loads((tmp_path / "c.json").read_text())["paired"]
    assert paired["x"]["dice_cup"]["mean_difference"] == pytest.approx(0.01)
    (tmp_path / "bad.json").write_text("[1]")
    assert main(["--compare", str(tmp_path / "a.json"), str(tmp_path / "bad.json")]) == 1
    line = capsys.readouterr().err.strip()
    assert "bad.json" in line and "\n" not in line
