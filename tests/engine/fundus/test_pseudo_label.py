import json
from pathlib import Path

import numpy as np
import pytest

from engine.fundus.analysis import analyse_disc
from engine.fundus.datasets import DatasetLayoutError, load_case
from engine.fundus.evaluate import dice, vertical_ratio
from engine.fundus.pseudo_label import find_photos, label_photos, photo_id, read_pseudo_labels
from engine.synthetic import synthetic_fundus


def _write_photos(folder: Path, n: int) -> list:
    import cv2

    folder.mkdir(parents=True)
    truths = []
    for k in range(n):
        f = synthetic_fundus((320, 320), cdr=0.4 + 0.1 * k, seed=10 + k)
        cv2.imwrite(str(folder / f"fundus_{k}.png"), f.image[:, :, ::-1])
        truths.append(f)
    return truths


def test_find_photos_filters_by_pattern_and_skips_labelled(tmp_path):
    for rel in ("a/fundus.jpg", "a/bv.png", "b/fundus.PNG", "b/notes.txt", "c/x.jpg"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    found = find_photos([tmp_path], ["fundus.*"], skip=[tmp_path / "b" / "fundus.PNG"])
    assert found == [tmp_path / "a" / "fundus.jpg"]
    assert find_photos([tmp_path / "c" / "x.jpg", tmp_path], ["fundus.*"])[-1] == tmp_path / "c" / "x.jpg"
    taken: set[str] = set()
    assert [photo_id(Path("g/0001.jpg"), taken), photo_id(Path("g/0001.png"), taken)] == ["g-0001", "g-0001_2"]


def test_pseudo_labels_round_trip_as_a_training_source(tmp_path, oracle):
    truths = _write_photos(tmp_path / "photos", 2)
    (tmp_path / "photos" / "broken.jpg").write_bytes(b"not a photo")
    before = {p: p.read_bytes() for p in (tmp_path / "photos").iterdir()}
    out = tmp_path / "pseudo"
    entries = label_photos(find_photos([tmp_path / "photos"]), oracle, out)
    assert [e["kept"] for e in entries] == [False, True, True]
    assert "cannot read" in entries[0]["reason"]
    assert {p: p.read_bytes() for p in (tmp_path / "photos").iterdir()} == before  # originals only read

    (out / "pseudo_labels.json").write_text(json.dumps({"labeller": {"sha256": "colour-oracle"}, "photos": entries}))
    cases, info = read_pseudo_labels(out)
    assert info["photos"] == 2 and info["labeller"]["sha256"] == "colour-oracle"
    assert [c.source for c in cases] == ["pseudo", "pseudo"]
    for case, truth in zip(cases, truths):
        image, disc, cup = load_case(case)
        np.testing.assert_array_equal(image, truth.image)
        result = analyse_disc(image, segmenter=oracle)  # the masks written are the analysis' own
        np.testing.assert_array_equal(disc, result.disc_mask)
        np.testing.assert_array_equal(cup, result.cup_mask & result.disc_mask)
        assert dice(disc, truth.disc_mask) > 0.9 and 0 < vertical_ratio(disc, cup) < 1

    none = label_photos(find_photos([tmp_path / "photos"]), oracle, tmp_path / "strict", min_confidence=1.01)
    assert not any(e["kept"] for e in none) and "confidence" in none[1]["reason"]
    with pytest.raises(DatasetLayoutError, match="not a pseudo-label folder"):
        read_pseudo_labels(tmp_path / "photos")


def test_training_cohort_adds_pseudo_labelled_photos_and_the_card_says_so(tmp_path, oracle):
    from types import SimpleNamespace

    from engine.fundus.train_task import card, read_cohort
    from engine.train.datasets.common import LayoutError
    from fundus_helpers import write_gamma_tree

    write_gamma_tree(tmp_path / "gamma", n=2, size=(160, 160))
    _write_photos(tmp_path / "photos", 1)
    entries = label_photos(find_photos([tmp_path / "photos"]), oracle, tmp_path / "pseudo")
    (tmp_path / "pseudo" / "pseudo_labels.json").write_text(
        json.dumps({"labeller": {"sha256": "colour-oracle"}, "min_confidence": 0.85, "photos": entries}))
    config = SimpleNamespace(data={"sources": ["gamma"], "pseudo": str(tmp_path / "pseudo")})
    cohort = read_cohort(tmp_path / "gamma", config)
    assert sorted(item["source"] for item in cohort.items) == ["gamma", "gamma", "pseudo"]
    assert cohort.train_only == [item["source"] == "pseudo" for item in cohort.items]
    assert cohort.description.endswith("gamma 2, pseudo 1")
    assert card(config, cohort)["pseudo_labels"] == {"labeller": {"sha256": "colour-oracle"}, "min_confidence": 0.85,
                                                     "photos": 1}
    with pytest.raises(LayoutError, match="not a pseudo-label folder"):
        read_cohort(tmp_path / "gamma", SimpleNamespace(data={"pseudo": str(tmp_path / "photos")}))


def test_cli_writes_a_manifest_and_names_bad_input(tmp_path, capsys):
    from engine.fundus.pseudo_label import main
    from engine.fundus.segmenter import build_network, default_spec
    from engine.models.checkpoint import save_checkpoint

    _write_photos(tmp_path / "photos", 1)
    spec = default_spec(size=32, channels=(4, 8), num_res_units=0)
    save_checkpoint(tmp_path / "best.pt", spec, build_network(spec).state_dict(),
                    {"name": "d", "task": "disc-cup", "data": "3 fundus photos with disc/cup masks from d: a 3"})
    out = tmp_path / "pseudo"
    assert main([str(tmp_path / "photos"), "--out", str(out), "--checkpoint", str(tmp_path / "best.pt")]) == 0
    doc = json.loads((out / "pseudo_labels.json").read_text())
    assert doc["labeller"]["trained_on"].endswith("a 3") and len(doc["photos"]) == 1
    assert "of 1 photos pseudo-labelled" in capsys.readouterr().out

    # a second round: the labeller was itself trained on pseudo labels; what their labeller saw is kept, so the
    # in-sample guard of evaluate still sees source "a" two rounds on
    from engine.fundus.evaluate import seen_sources

    save_checkpoint(tmp_path / "round2.pt", spec, build_network(spec).state_dict(),
                    {"name": "d", "task": "disc-cup", "pseudo_labels": {"labeller": doc["labeller"]},
                     "data": "4 fundus photos with disc/cup masks from d: b 3, pseudo 1"})
    round2 = [str(tmp_path / "photos"), "--out", str(tmp_path / "p2"), "--checkpoint", str(tmp_path / "round2.pt")]
    assert main(round2) == 0
    labeller = json.loads((tmp_path / "p2" / "pseudo_labels.json").read_text())["labeller"]
    assert seen_sources([{"data": "1 fundus photos with disc/cup masks from d: pseudo 1",
                          "pseudo_labels": {"labeller": labeller}}]) == {"pseudo", "b", "a"}
    capsys.readouterr()
    assert main([str(tmp_path / "nowhere"), "--out", str(out)]) == 1
    assert main([str(tmp_path / "photos"), "--out", str(out), "--checkpoint", str(tmp_path / "none.pt")]) == 2
    assert main([str(tmp_path / "photos"), "--out", str(out), "--pattern", "*.tif"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("error: ") for line in err)


def test_skip_labelled_covers_the_shared_copies_of_labelled_photos(tmp_path):
    """The shared samples hold two Drishti-GS photos twice; discover() reads one copy, and neither may be
    pseudo-labelled (it would put a held-out Drishti photo into training)."""
    import cv2

    from engine.fundus.pseudo_label import labelled_photos

    f = synthetic_fundus((96, 96), cdr=0.5, seed=1)
    for name in ("DRISHTI-GS1-train-23", "HRF-15"):
        d = tmp_path / "fundus_glaucoma" / name
        d.mkdir(parents=True)
        cv2.imwrite(str(d / "fundus.png"), f.image)
    for name in ("fundus_od", "fundus_oc"):
        cv2.imwrite(str(tmp_path / "fundus_glaucoma" / "DRISHTI-GS1-train-23" / f"{name}.png"),
                    (f.disc_mask * 255).astype(np.uint8))
    odoc = tmp_path / "fundus_disc_cup" / "odoc100" / "001"
    odoc.mkdir(parents=True)
    cv2.imwrite(str(odoc / "fundus.png"), f.image)
    cv2.imwrite(str(odoc / "mask.png"), (f.disc_mask * 128).astype(np.uint8))
    skip = labelled_photos(tmp_path)
    photos = find_photos([tmp_path / "fundus_glaucoma"], ["fundus.*"], skip)
    assert photos == [tmp_path / "fundus_glaucoma" / "HRF-15" / "fundus.png"]
