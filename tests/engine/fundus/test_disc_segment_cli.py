import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.cli import main
from engine.fundus.localize import OUT_OF_FOCUS
from engine.synthetic import synthetic_fundus


@pytest.fixture
def photos(tmp_path):
    paths, truths = [], []
    for k, (cdr, eye) in enumerate([(0.4, "OD"), (0.7, "OS")]):
        f = synthetic_fundus((480, 560), cdr=cdr, eye=eye, seed=10 + k)
        p = tmp_path / f"photo{k}.png"
        cv2.imwrite(str(p), f.image[:, :, ::-1])
        paths.append(p)
        truths.append(f)
    return paths, truths


@pytest.fixture
def with_oracle(monkeypatch, oracle):
    import engine.fundus.segmenter as segmenter

    monkeypatch.setattr(segmenter, "load_segmenter", lambda path=None, device="cpu": oracle)
    return oracle


def test_masks_named_after_inputs_and_biomarkers_printed(photos, with_oracle, tmp_path, capsys):
    paths, truths = photos
    out = tmp_path / "out"
    code = main(["segment", *map(str, paths), "--task", "disc-cup", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = captured.out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("photo0.png: vertical CDR")
    assert all(", DDLS " in line for line in lines)  # the synthetic photos' scale is assumed: a range or one stage
    for p, f in zip(paths, truths):
        mask = cv2.imread(str(out / f"{p.stem}.png"), cv2.IMREAD_UNCHANGED)
        assert mask.shape == f.image.shape[:2] and set(np.unique(mask)) <= {0, 128, 255}
        assert ((mask == 0) & ~(mask < 255)).sum() == 0  # cup inside disc
        disc = mask < 255
        assert 2 * (disc & f.disc_mask).sum() / (disc.sum() + f.disc_mask.sum()) > 0.9
    assert not list(out.glob("*.tmp"))


def test_json_output(photos, with_oracle, tmp_path, capsys):
    paths, truths = photos
    out = tmp_path / "out"
    assert main(["segment", *map(str, paths), "--task", "disc-cup", "--out", str(out), "--json", "--eye", "OD"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["mask_convention"] == "0 cup, 128 rim, 255 background"
    for row, f in zip(doc["results"], truths):
        assert row["status"] == "ok"
        assert row["biomarkers"]["vcdr"] == pytest.approx(f.vcdr, abs=0.05)
        assert row["biomarkers"]["isnt_rule"] in ("holds", "violated")
        assert row["sharpness"] > OUT_OF_FOCUS and "out of focus" not in row["message"]
        profile = row["rim_to_disc_profile"]
        assert profile["angles"] == "TSNIT" and len(profile["angles_deg"]) == len(profile["ratio"]) == 180
        assert min(profile["ratio"]) == pytest.approx(row["biomarkers"]["rim_to_disc"], abs=1e-4)
        b = row["biomarkers"]
        assert 1 <= b["ddls_min"] <= b["ddls_max"] <= 10 and "ddls_stage" not in b  # no mm scale: no one stage
    assert json.loads((out / "disc_cup_biomarkers.json").read_text()) == doc


def test_typed_photo_scale_gives_mm_and_one_ddls_stage(photos, with_oracle, tmp_path, capsys):
    paths, _ = photos
    out = tmp_path / "out"
    assert main(["segment", str(paths[0]), "--task", "disc-cup", "--out", str(out), "--json",
                 "--photo-scale", "20"]) == 0
    b = json.loads(capsys.readouterr().out)["results"][0]["biomarkers"]
    assert b["spacing_source"] == "user" and b["disc_height_mm"] == pytest.approx(b["disc_height_px"] * 0.02)
    assert b["disc_size"] in ("small", "average", "large") and b["ddls_min"] == b["ddls_stage"] == b["ddls_max"]
    assert main(["segment", str(paths[0]), "--task", "disc-cup", "--out", str(out), "--photo-scale", "20"]) == 0
    assert f"({b['disc_size']} disc)" in capsys.readouterr().out
    assert main(["segment", str(paths[0]), "--task", "disc-cup", "--out", str(out), "--photo-scale", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: a photo's scale must be 0.5 to 100 µm per pixel, got 0"]


def test_photo_scale_per_photo_size_measures_each_camera_with_its_own(photos, with_oracle, tmp_path, capsys):
    import csv

    paths, _ = photos
    small = tmp_path / "small.png"  # a second camera: another size
    cv2.imwrite(str(small), cv2.resize(cv2.imread(str(paths[0])), (420, 360)))
    out = tmp_path / "out"
    assert main(["segment", str(paths[0]), str(small), "--task", "disc-cup", "--out", str(out), "--json",
                 "--photo-scale-for", "560x480=20", "--photo-scale-for", "420x360 = 26.7",
                 "--photo-scale-for", "1x1=5"]) == 0
    captured = capsys.readouterr()
    big_row, small_row = json.loads(captured.out)["results"]
    assert (big_row["photo_size"], big_row["photo_scale"]) == ("560x480", "20 um/px (typed in)")
    assert (small_row["photo_size"], small_row["photo_scale"]) == ("420x360", "26.7 um/px (typed in)")
    big, little = big_row["biomarkers"], small_row["biomarkers"]
    assert big["disc_height_mm"] == pytest.approx(big["disc_height_px"] * 0.02)
    assert little["disc_height_mm"] == pytest.approx(big["disc_height_mm"], rel=0.05)  # one disc, two cameras
    assert captured.err.strip().splitlines() == [
        "note: --photo-scale-for 1x1: no photo of that size among the inputs",
        "segmented 2 of 2 photo(s): 0 without a disc found, 0 unreadable; eye from the disc's side: 2"]
    with open(out / "disc_cup_biomarkers.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert [r["photo_scale"] for r in table] == ["20 um/px (typed in)", "26.7 um/px (typed in)"]
    assert main(["segment", str(small), "--task", "disc-cup", "--out", str(out), "--json",
                 "--photo-scale-for", "560x480=20"]) == 0
    row = json.loads(capsys.readouterr().out)["results"][0]
    assert row["photo_scale"] == "" and "disc_height_mm" not in row["biomarkers"]  # no scale for its size
    assert main(["segment", str(small), "--task", "disc-cup", "--out", str(out), "--photo-scale-for", "420x360"]) == 2
    assert capsys.readouterr().err.startswith("error: a photo size's scale must look like WxH=UM_PER_PX")


def test_bad_input_one_line_and_exit_1(photos, with_oracle, tmp_path, capsys):
    paths, _ = photos
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg at all")
    missing = tmp_path / "missing.png"
    out = tmp_path / "out"
    code = main(["segment", str(broken), str(missing), str(paths[0]), "--task", "disc-cup", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 3 and all(line.startswith("error: ") for line in err[:2])  # one line per bad file
    assert "broken.jpg" in err[0] and "missing.png" in err[1]
    assert err[2] == "segmented 1 of 3 photo(s): 0 without a disc found, 2 unreadable; eye from the disc's side: 1"
    assert "Traceback" not in "".join(err)
    assert (out / "photo0.png").is_file()


def test_biomarker_table_and_overlays(photos, with_oracle, tmp_path, capsys):
    import csv

    from engine.fundus.segment_cli import CSV_COLUMNS

    paths, truths = photos
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg at all")
    out = tmp_path / "out"
    code = main(["segment", *map(str, paths), str(broken), "--task", "disc-cup", "--out", str(out), "--overlays",
                 "--eye", "OD"])
    assert code == 1
    with open(out / "disc_cup_biomarkers.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == CSV_COLUMNS and [r["status"] for r in rows] == ["ok", "ok", "error"]
    for row, f in zip(rows, truths):
        assert float(row["vcdr"]) == pytest.approx(f.vcdr, abs=0.05) and row["isnt_rule"] in ("holds", "violated")
        assert row["rim_nasal_px"] and row["disc_area_mm2"] == "" and row["mask"].endswith(".png")
    assert rows[2]["input"] == str(broken) and rows[2]["message"] and rows[2]["vcdr"] == ""
    for p in paths:
        overlay = cv2.imread(str(out / f"{p.stem}_overlay.jpg"))
        assert overlay.shape[0] == 512 and overlay.shape[1] == round(512 * 560 / 480) + 512  # photo + disc region
    assert not list(out.glob("broken*"))
    main(["segment", str(paths[0]), "--task", "disc-cup", "--out", str(tmp_path / "plain")])
    assert not list((tmp_path / "plain").glob("*overlay*"))  # only when asked


def test_the_eye_comes_from_the_photos_or_folders_name_unless_given(photos, with_oracle, tmp_path, capsys):
    paths, _ = photos
    named = [tmp_path / "12_left.png", tmp_path / "P03_OD" / "fundus.png", tmp_path / "plain.png"]
    for path in named:
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(paths[0].read_bytes())

    def eyes(*extra):
        assert main(["segment", *map(str, named), "--task", "disc-cup", "--out", str(tmp_path / "o"), "--json",
                     *extra]) == 0
        rows = json.loads(capsys.readouterr().out)["results"]
        return [(r["biomarkers"]["eye"], r["eye_inferred"], "check the eye" in r["message"]) for r in rows]

    # the synthetic right eye's disc lies right of the middle: a photo named as a left eye is said to disagree,
    # one whose name does not say is measured as a right eye, said to be inferred
    assert eyes() == [("OS", False, True), ("OD", False, False), ("OD", True, False)]
    assert eyes("--eye", "unknown") == [("unknown", False, False)] * 3
    assert eyes("--eye", "OD") == [("OD", False, False)] * 3
    assert main(["segment", str(named[2]), "--task", "disc-cup", "--out", str(tmp_path / "o")]) == 0
    assert "(eye OD from the disc's side of the photo)" in capsys.readouterr().out


def test_a_folder_gives_every_exams_photo_named_by_the_exam(photos, with_oracle, tmp_path, capsys):
    paths, _ = photos
    cohort = tmp_path / "cohort"
    for name, photo in (("P01_OD", paths[0]), ("P02", paths[1])):
        (cohort / name).mkdir(parents=True)
        (cohort / name / "fundus.png").write_bytes(photo.read_bytes())
    (cohort / "P01_OD" / "fundus_od.png").write_bytes(paths[0].read_bytes())  # an annotation mask: left out
    (cohort / "notes.csv").write_text("id\n")
    out = tmp_path / "out"
    assert main(["segment", str(cohort), str(paths[1]), "--task", "disc-cup", "--out", str(out), "--json"]) == 0
    captured = capsys.readouterr()
    rows = json.loads(captured.out)["results"]
    assert [Path(r["mask"]).name for r in rows] == ["P01_OD.png", "P02.png", "photo1.png"]
    assert [r["input"] for r in rows] == [str(cohort / "P01_OD" / "fundus.png"), str(cohort / "P02" / "fundus.png"),
                                          str(paths[1])]
    assert [(r["biomarkers"]["eye"], r["eye_inferred"]) for r in rows[:2]] == [("OD", False), ("OS", True)]
    assert captured.err.startswith("note: 2 file(s) in the folders given left out, e.g. ")
    assert captured.err.strip().splitlines()[-1] == ("segmented 3 of 3 photo(s): 0 without a disc found, 0 unreadable;"
                                                     " eye from the disc's side: 2")
    assert main(["segment", str(cohort), "--task", "disc-cup", "--out", str(out), "--disc-at", "10,10"]) == 2
    assert "--disc-at places the disc on one photo; the inputs hold 2" in capsys.readouterr().err


def test_an_eye_table_names_each_photos_eye(photos, with_oracle, tmp_path, capsys):
    paths, _ = photos
    table = tmp_path / "eyes.csv"
    table.write_text("Exam,Eye\nphoto0,OD\nphoto1,right\nother,L\n")
    out = tmp_path / "out"
    assert main(["segment", *map(str, paths), "--task", "disc-cup", "--out", str(out), "--json", "--eyes",
                 str(table)]) == 0
    captured = capsys.readouterr()
    rows = json.loads(captured.out)["results"]
    assert [(r["biomarkers"]["eye"], r["eye_inferred"]) for r in rows] == [("OD", False), ("OD", False)]
    assert "check the eye" not in rows[0]["message"] and "check the eye" in rows[1]["message"]  # photo1: a left eye
    assert "note: 1 exam(s) of " in captured.err and "not among the photos (left alone): other" in captured.err
    assert main(["segment", str(paths[0]), "--task", "disc-cup", "--out", str(out), "--eyes", str(table), "--eye",
                 "OS"]) == 2
    assert "give --eye (every photo) or --eyes (a table), not both" in capsys.readouterr().err


def test_an_eye_set_by_hand_in_the_viewer_is_measured_with(photos, with_oracle, tmp_path, capsys):
    from engine.fundus.corrections import CorrectionStore, photo_sha256

    paths, _ = photos
    store = CorrectionStore(tmp_path / "disc_corrections.json")
    store.put_eye(photo_sha256(cv2.imread(str(paths[1]))[:, :, ::-1]), "OD")
    store.write()
    out = tmp_path / "out"
    assert main(["segment", *map(str, paths), "--task", "disc-cup", "--out", str(out), "--json",
                 "--disc-corrections", str(store.path)]) == 0
    rows = json.loads(capsys.readouterr().out)["results"]
    assert [(r["biomarkers"]["eye"], r["eye_inferred"]) for r in rows] == [("OD", True), ("OD", False)]
    assert "check the eye" in rows[1]["message"]  # photo1 shows a left eye's disc


def test_never_overwrites_an_input(photos, with_oracle, capsys):
    paths, _ = photos
    before = paths[0].read_bytes()
    assert main(["segment", str(paths[0]), "--task", "disc-cup", "--out", str(paths[0].parent)]) == 0
    assert paths[0].read_bytes() == before
    assert (paths[0].parent / "photo0_disc_cup.png").is_file()


def test_missing_weights_are_named(photos, tmp_path, capsys):
    paths, _ = photos
    code = main(["segment", str(paths[0]), "--task", "disc-cup", "--out", str(tmp_path / "o"),
                 "--weights", str(tmp_path / "nope.pt")])
    err = capsys.readouterr().err
    assert code == 2 and "nope.pt" in err and "train disc-cup" in err and len(err.strip().splitlines()) == 1


def test_layers_task_is_dispatched(monkeypatch, tmp_path):
    import engine.oct.segment_cli as oct_cli

    seen = {}
    monkeypatch.setattr(oct_cli, "run_layers", lambda args: seen.setdefault("args", args) and 0)
    assert main(["segment", "scan.png", "--task", "layers", "--out", str(tmp_path)]) == 0
    assert seen["args"].inputs == ["scan.png"] and seen["args"].out == tmp_path


def test_site_calibration_scales_the_written_cup(photos, with_oracle, tmp_path, capsys):
    from engine.fundus.site_calibration import SiteCalibration, save_calibration

    paths, _ = photos
    cal = tmp_path / "site.json"
    save_calibration(SiteCalibration("clinic", 1.2, ("a",) * 5, with_oracle.sha256, {}, "now"), cal)
    plain, scaled = tmp_path / "plain", tmp_path / "scaled"
    assert main(["segment", str(paths[0]), "--task", "disc-cup", "--out", str(plain), "--json"]) == 0
    capsys.readouterr()
    assert main(["segment", str(paths[0]), "--task", "disc-cup", "--out", str(scaled),
                 "--site-calibration", str(cal)]) == 0
    assert "cup outline x1.20" in capsys.readouterr().out
    doc_plain = json.loads((plain / "disc_cup_biomarkers.json").read_text())
    doc = json.loads((scaled / "disc_cup_biomarkers.json").read_text())
    assert doc_plain["site_calibration"] is None and doc["site_calibration"]["name"] == "clinic"
    v0, v1 = (d["results"][0]["biomarkers"]["vcdr"] for d in (doc_plain, doc))
    assert v1 == pytest.approx(1.2 * v0, abs=0.02)
    cup0, cup1 = ((cv2.imread(str(d / "photo0.png"), cv2.IMREAD_UNCHANGED) == 0).sum() for d in (plain, scaled))
    assert cup1 > 1.3 * cup0


def test_site_calibration_for_other_weights_is_refused(photos, with_oracle, tmp_path, capsys):
    from engine.fundus.site_calibration import SiteCalibration, save_calibration

    cal = tmp_path / "site.json"
    save_calibration(SiteCalibration("clinic", 1.2, ("a",) * 5, "f" * 64, {}, "now"), cal)
    code = main(["segment", str(photos[0][0]), "--task", "disc-cup", "--out", str(tmp_path / "o"),
                 "--site-calibration", str(cal)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "fit it again" in err[0]
    (tmp_path / "bad.json").write_text("{")
    assert main(["segment", str(photos[0][0]), "--task", "disc-cup", "--out", str(tmp_path / "o"),
                 "--site-calibration", str(tmp_path / "bad.json")]) == 2


def test_disc_placed_by_hand(photos, with_oracle, tmp_path, capsys):
    paths, truths = photos
    (r, c), out = truths[0].disc_center, tmp_path / "out"
    assert main(["segment", str(paths[0]), "--task", "disc-cup", "--out", str(out),
                 "--disc-at", f"{c:.0f},{r:.0f}"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("photo0.png: vertical CDR") and f"(disc placed at x {c:.0f}, y {r:.0f} px)" in line
    doc = json.loads((out / "disc_cup_biomarkers.json").read_text())
    assert doc["results"][0]["disc_at"] == {"x": round(c), "y": round(r)} and doc["results"][0]["status"] == "ok"
    assert main(["segment", str(paths[0]), "--task", "disc-cup", "--out", str(out), "--disc-at", "5,5"]) == 1
    assert "optic disc not found at the place given (x 5, y 5 px)" in capsys.readouterr().err
    for images, at, says in ((paths[:1], "12;7", "must look like X,Y"), (paths[:1], "nan,3", "finite"),
                             (paths, "1,2", "one photo; the inputs hold 2")):
        assert main(["segment", *map(str, images), "--task", "disc-cup", "--out", str(out), "--disc-at", at]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and says in err[0], err
    assert main(["segment", str(paths[0]), "--task", "disc-cup", "--out", str(out), "--disc-at", "9999,1"]) == 1
    assert "outside the 560 x 480 px photo" in capsys.readouterr().err


def test_corrections_drawn_in_the_viewer_are_followed(photos, with_oracle, tmp_path, capsys):
    from engine.fundus.corrections import CorrectionStore, photo_sha256
    from engine.fundus.hand_outline import HandOutlines, polygon_mask
    from engine.io.images import load_image_exam

    paths, truths = photos
    (r, c), out = truths[0].disc_center, tmp_path / "out"
    t = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    cup = np.stack([r + 15 * np.sin(t), c + 15 * np.cos(t)], axis=1)
    store = CorrectionStore(tmp_path / "disc_corrections.json")
    store.put(photo_sha256(load_image_exam(paths[0], modality="fundus").fundus), (r, c), HandOutlines(cup=cup))
    store.write()
    assert main(["segment", *map(str, paths), "--task", "disc-cup", "--out", str(out), "--disc-corrections",
                 str(store.path)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert f"(disc placed at x {c:.0f}, y {r:.0f} px) (cup drawn by hand)" in lines[0] and "hand" not in lines[1]
    mask = cv2.imread(str(out / "photo0.png"), cv2.IMREAD_UNCHANGED)
    drawn = polygon_mask(np.round(cup, 2), mask.shape)  # the file keeps vertices to 1/100 px
    assert ((mask == 0) == (drawn & (mask < 255))).all()  # the drawn cup, inside the disc
    doc = json.loads((out / "disc_cup_biomarkers.json").read_text())
    first, second = doc["results"]
    assert first["outlined_by_hand"] == ["cup"] and first["disc_at"] == {"x": c, "y": r}
    assert second["outlined_by_hand"] == [] and "disc_at" not in second
    # --disc-at wins over the file (and its outlines, drawn on that disc)
    assert main(["segment", str(paths[0]), "--task", "disc-cup", "--out", str(out), "--disc-corrections",
                 str(store.path), "--disc-at", f"{c + 3:.0f},{r:.0f}", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["results"][0]["outlined_by_hand"] == []
    (tmp_path / "bad.json").write_text("[]")
    for given, says in ((tmp_path / "bad.json", "could not be read"), (tmp_path / "none.json", "no such file")):
        assert main(["segment", str(paths[0]), "--task", "disc-cup", "--out", str(out), "--disc-corrections",
                     str(given)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and says in err[0], err


def test_a_crop_centred_on_the_disc_is_said_to_be_read_as_one(photos, with_oracle, tmp_path, capsys):
    _, truths = photos
    f = truths[0]
    r, c = (int(v) for v in f.disc_center)
    rows = np.flatnonzero(f.disc_mask.any(axis=1))
    half = int((rows[-1] - rows[0] + 1) / 0.65 / 2)  # the disc 0.65 of the frame, no black border
    crop = tmp_path / "onh.png"
    cv2.imwrite(str(crop), f.image[r - half : r + half, c - half : c + half, ::-1])
    assert main(["segment", str(crop), "--task", "disc-cup", "--out", str(tmp_path / "o")]) == 0
    assert "(read as a crop centred on the disc)" in capsys.readouterr().out
    assert main(["segment", str(crop), "--task", "disc-cup", "--out", str(tmp_path / "o"), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)["results"][0]
    assert row["centred"] is True and row["biomarkers"]["vcdr"] == pytest.approx(f.vcdr, abs=0.05)
    assert main(["segment", str(photos[0][0]), "--task", "disc-cup", "--out", str(tmp_path / "p"),
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["results"][0]["centred"] is False  # a whole photo
