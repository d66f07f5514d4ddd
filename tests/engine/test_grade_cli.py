"""python -m engine grade: CSV schema, error rows, CAM overlays, shard, resume, anonymize, refused weights."""

import csv

import pytest

from engine.cli import main
from engine.models.tiny import save_tiny_ensemble
from engine.results_csv import COLUMNS, anonymize_id, is_partial
from engine.synthetic import synthetic_exam, write_gamma_exam


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("cohort")
    for seed in range(3):
        exam = synthetic_exam(seed % 3, n_bscans=6, fundus_shape=(120, 150), bscan_shape=(48, 56), seed=seed)
        write_gamma_exam(root / "cases", exam)
    bad = root / "cases" / "BROKEN"
    bad.mkdir()
    (bad / "BROKEN.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    models = save_tiny_ensemble(root / "models")
    return root / "cases", models


def _good(cases):
    """The cohort's readable exams, as command-line paths."""
    return [str(p) for p in sorted(cases.iterdir()) if p.name != "BROKEN"]


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_csv_rows_errors_and_overlays(cohort, tmp_path, capsys):
    cases, models = cohort
    out = tmp_path / "grades.csv"
    rc = main(["grade", str(cases), "--csv", str(out), "--models", str(models), "--cams", str(tmp_path / "cams"),
               "--device", "cpu"])
    assert rc == 1  # one broken exam
    rows = _rows(out)
    assert tuple(rows[0]) == COLUMNS and list(COLUMNS[:4]) == ["data", "non", "early", "mid_advanced"]
    by_id = {r["data"]: r for r in rows}
    assert by_id["BROKEN"]["status"] == "error" and by_id["BROKEN"]["message"]
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) == 3
    for r in ok:
        assert abs(sum(float(r[c]) for c in ("non", "early", "mid_advanced")) - 1) < 1e-5
        assert r["models"] == "fundus;two_level;three_level" and len(r["weights_sha256"].split(";")) == 3
        assert r["eye"] == "OD (disc side)" and r["isnt"] and r["photo_size"] == "150x120"  # GAMMA names no eye
    names = {p.name for p in (tmp_path / "cams").iterdir()}
    assert {"SYNTH0000_fundus.png", "SYNTH0000_disc.png", "SYNTH0000_oct.png", "SYNTH0000_oct_enface.png"} <= names
    assert not is_partial(out)
    assert "[4/4]" in capsys.readouterr().err


def test_all_ok_exits_zero_and_shards_split_the_cohort(cohort, tmp_path):
    cases, models = cohort
    good = _good(cases)
    seen = []
    for i in range(2):
        out = tmp_path / f"s{i}.csv"
        assert main(["grade", *good, "--csv", str(out), "--models", str(models), "--shard", f"{i}/2", "--quiet"]) == 0
        seen += [r["data"] for r in _rows(out)]
    assert sorted(seen) == ["SYNTH0000", "SYNTH0001", "SYNTH0002"]


def test_resume_keeps_finished_rows(cohort, tmp_path, capsys):
    cases, models = cohort
    out = tmp_path / "r.csv"
    good = _good(cases)
    assert main(["grade", good[0], "--csv", str(out), "--models", str(models), "--quiet"]) == 0
    first = _rows(out)[0]
    capsys.readouterr()
    assert main(["grade", *good, "--csv", str(out), "--models", str(models), "--resume"]) == 0
    err = capsys.readouterr().err
    assert "1 exam(s) already graded, 2 to go" in err
    rows = _rows(out)
    assert [r["data"] for r in rows] == ["SYNTH0000", "SYNTH0001", "SYNTH0002"] and rows[0] == first


def test_resume_refuses_to_mix_site_calibrations_and_other_weights_are_refused(cohort, tmp_path, capsys):
    from engine.fundus.segmenter import load_segmenter
    from engine.fundus.site_calibration import SiteCalibration, save_calibration
    from engine.results_csv import calibration_label, write_csv

    cases, models = cohort
    good = _good(cases)
    cal = SiteCalibration("clinic", 1.5, ("a",) * 5, load_segmenter().sha256, {}, "now")
    save_calibration(cal, tmp_path / "clinic.json")
    out = tmp_path / "r.csv"
    finished = {c: "" for c in COLUMNS}
    finished.update(data="SYNTH0000", status="ok", vcdr="0.6", disc_calibration=calibration_label(cal))
    write_csv(out, [finished])
    capsys.readouterr()
    assert main(["grade", *good, "--csv", str(out), "--models", str(models), "--resume", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "SYNTH0000 was graded with site calibration 'clinic x1.50', this run with none" in err[0]
    assert _rows(out) == [{c: str(v) for c, v in finished.items()}]  # untouched
    assert main(["grade", *good, "--csv", str(out), "--models", str(models), "--resume", "--quiet",
                 "--site-calibration", str(tmp_path / "clinic.json")]) == 0
    assert [r["data"] for r in _rows(out)] == ["SYNTH0000", "SYNTH0001", "SYNTH0002"]
    save_calibration(SiteCalibration("other", 1.5, ("a",) * 5, "f" * 64, {}, "now"), tmp_path / "other.json")
    capsys.readouterr()
    assert main(["grade", good[0], "--csv", str(tmp_path / "o.csv"), "--models", str(models),
                 "--site-calibration", str(tmp_path / "other.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fit it again for these weights" in err[0] and not (tmp_path / "o.csv").exists()


def test_photo_scale_typed_in_fills_ddls_stage_and_resume_grades_again_rows_of_another_scale(cohort, tmp_path,
                                                                                             capsys):
    cases, models = cohort
    good = _good(cases)
    out = tmp_path / "r.csv"
    assert main(["grade", good[0], "--csv", str(out), "--models", str(models), "--quiet", "--photo-scale", "12"]) == 0
    row = _rows(out)[0]
    assert row["vcdr"] and row["photo_scale"] == "12 um/px (typed in)" and row["photo_size"] == "150x120"
    assert row["ddls_stage"] and row["ddls_min"] == row["ddls_stage"] == row["ddls_max"]
    capsys.readouterr()
    assert main(["grade", *good, "--csv", str(out), "--models", str(models), "--resume"]) == 0
    err = capsys.readouterr().err
    assert "1 exam(s) graded again: this run gives their photo another scale than their rows' photo_scale" in err
    assert "0 exam(s) already graded" not in err and "3/3" in err  # the typed-in row measured again, without scale
    assert [r["photo_scale"] for r in _rows(out)] == ["", "", ""]
    per_size = ["--photo-scale-for", "150x120=12", "--photo-scale-for", "3000x2000=4"]
    assert main(["grade", *good, "--csv", str(out), "--models", str(models), "--resume", *per_size]) == 0
    err = capsys.readouterr().err
    assert "3 exam(s) graded again" in err and "note: --photo-scale-for 3000x2000: no photo of that size" in err
    rows = _rows(out)
    assert len(rows) == 3 and all(r["photo_scale"] == "12 um/px (typed in)" and r["ddls_stage"] for r in rows)
    assert main(["grade", *good, "--csv", str(out), "--models", str(models), "--resume", *per_size[:2]]) == 0
    err = capsys.readouterr().err
    assert "3 exam(s) already graded, 0 to go" in err and "graded again" not in err and _rows(out) == rows
    plain = tmp_path / "p.csv"
    assert main(["grade", good[0], "--csv", str(plain), "--models", str(models), "--quiet"]) == 0
    row = _rows(plain)[0]
    assert row["photo_scale"] == "" and row["ddls_stage"] == "" and int(row["ddls_min"]) <= int(row["ddls_max"])
    capsys.readouterr()
    for bad, said in ((["--photo-scale", "-3"], "a photo's scale must be 0.5 to 100 µm per pixel, got -3"),
                      (["--photo-scale-for", "150x120"], "a photo size's scale must look like WxH=UM_PER_PX"),
                      (["--photo-scale-for", "150x120=200"], "a photo's scale must be 0.5 to 100 µm per pixel"),
                      (["--photo-scale-for", "150x120=4", "--photo-scale-for", "150X120=5"],
                       "the photo size 150x120 is given twice"),
                      (["--photo-scale", "4", *per_size[:2]], "give --photo-scale (every photo) or --photo-scale-for")):
        assert main(["grade", good[0], "--csv", str(tmp_path / "x.csv"), "--models", str(models), *bad]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"grade: {said}") and not (tmp_path / "x.csv").exists()


def test_resume_refuses_rows_graded_by_other_models(cohort, tmp_path, capsys):
    from engine.models.tiny import save_tiny_grader

    cases, models = cohort
    good = _good(cases)
    out = tmp_path / "r.csv"
    assert main(["grade", good[0], "--csv", str(out), "--models", str(models), "--quiet"]) == 0
    before = out.read_bytes()
    other = save_tiny_grader(tmp_path / "fundus.pt", ("fundus",), "concat", seed=7, name="fundus")
    for given, says in ((models.parent / "fundus.pt", "two_level (weights "),
                        (other, "this run's fundus has weights")):
        capsys.readouterr()
        assert main(["grade", *good, "--csv", str(out), "--models", str(given), "--resume", "--quiet"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "SYNTH0000 was graded by " in err[0] and says in err[0], err
        assert out.read_bytes() == before  # untouched
    for jobs in ("1", "2"):
        assert main(["grade", *good, "--csv", str(out), "--models", str(models), "--resume", "--quiet",
                     "--jobs", jobs]) == 0
    fewer = tmp_path / "fewer.csv"  # graded by one grader, resumed with the ensemble that adds two
    assert main(["grade", good[0], "--csv", str(fewer), "--models", str(models.parent / "fundus.pt"), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["grade", *good, "--csv", str(fewer), "--models", str(models), "--resume", "--quiet"]) == 2
    assert "SYNTH0000 was graded without two_level, which this run's models would run on it" in \
        capsys.readouterr().err


def test_disc_positions_place_the_disc_of_the_exams_they_name(cohort, tmp_path, capsys):
    cases, models = cohort
    good = _good(cases)
    positions = tmp_path / "discs.csv"
    positions.write_text("exam,x,y\nSYNTH0000,40,60\nSYNTH0001,900,10\nNOPE,1,1\n")
    out = tmp_path / "p.csv"
    for jobs in ("1", "2"):
        capsys.readouterr()
        assert main(["grade", *good, "--csv", str(out), "--models", str(models), "--disc-positions", str(positions),
                     "--quiet", "--jobs", jobs]) == 1
        assert "1 exam(s) of " in capsys.readouterr().err
        by_id = {r["data"]: r for r in _rows(out)}
        assert by_id["SYNTH0000"]["status"] == "ok" and by_id["SYNTH0000"]["disc_source"] == "user"
        assert by_id["SYNTH0001"]["status"] == "error" and "x 900, y 10 px is outside the 150 x 120 px photo" in \
            by_id["SYNTH0001"]["message"]
        assert by_id["SYNTH0002"]["disc_source"] == "engine.fundus.localize"
    for text, says in (("exam,x\nA,1\n", "columns must be exam,x,y"), ("exam,x,y\nA,1,b\n", "line 2: x and y"),
                       ("exam,x,y\nA,1,2\nA,3,4\n", "line 3: exam A is listed twice")):
        positions.write_text(text)
        assert main(["grade", good[0], "--csv", str(tmp_path / "q.csv"), "--models", str(models),
                     "--disc-positions", str(positions)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and says in err[0], err
    assert main(["grade", good[0], "--csv", str(tmp_path / "q.csv"), "--disc-positions", str(tmp_path / "no.csv")]) == 2
    assert "cannot read" in capsys.readouterr().err and not (tmp_path / "q.csv").exists()


def test_disc_corrections_from_the_viewer_are_matched_by_the_photos_pixels(cohort, tmp_path, capsys):
    import numpy as np

    from engine.cli.grade_cmd import discover_sources, load_source
    from engine.fundus.corrections import CorrectionStore, photo_sha256
    from engine.fundus.hand_outline import HandOutlines

    cases, models = cohort
    good = _good(cases)
    photos = {s.exam_id: load_source(s).fundus for s in discover_sources(good)[0]}
    store = CorrectionStore(tmp_path / "disc_corrections.json")
    t = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    cup = np.stack([60 + 5 * np.sin(t), 75 + 5 * np.cos(t)], axis=1)
    store.put(photo_sha256(photos["SYNTH0000"]), (60.0, 75.0), HandOutlines(cup=cup))
    store.put(photo_sha256(photos["SYNTH0001"]), (50.0, 70.0), None)
    store.put("f" * 64, (1.0, 1.0), None)  # a photo not in this cohort
    store.write()
    positions = tmp_path / "discs.csv"
    positions.write_text("exam,x,y\nSYNTH0001,40,60\n")  # named on the command line: wins over the file
    out = tmp_path / "c.csv"
    for jobs in ("1", "2"):
        capsys.readouterr()
        assert main(["grade", *good, "--csv", str(out), "--models", str(models), "--jobs", jobs,
                     "--disc-corrections", str(store.path), "--disc-positions", str(positions)]) == 0
        assert "1 exam(s) graded with the disc placed or outlines drawn by hand in " in capsys.readouterr().err
        by_id = {r["data"]: r for r in _rows(out)}
        assert by_id["SYNTH0000"]["disc_source"] == "user" and "cup outline drawn by hand" in \
            by_id["SYNTH0000"]["message"]
        assert by_id["SYNTH0001"]["disc_source"] == "user" and "drawn by hand" not in by_id["SYNTH0001"]["message"]
        assert by_id["SYNTH0002"]["disc_source"] == "engine.fundus.localize"
        assert by_id["SYNTH0000"]["disc_correction"].startswith("placed+cup #")
        assert by_id["SYNTH0001"]["disc_correction"].startswith("placed #")
        assert by_id["SYNTH0002"]["disc_correction"] == ""
    (tmp_path / "bad.json").write_text("{")
    for given, says in ((tmp_path / "bad.json", "bad.json could not be read"), (tmp_path / "no.json", "no such file")):
        assert main(["grade", good[0], "--csv", str(tmp_path / "q.csv"), "--disc-corrections", str(given)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and says in err[0], err
    assert not (tmp_path / "q.csv").exists()


def test_an_eye_set_by_hand_in_the_viewer_is_graded_with_and_resume_follows_it(cohort, tmp_path, capsys):
    from engine.cli.grade_cmd import discover_sources, load_source
    from engine.fundus.corrections import CorrectionStore, photo_sha256

    cases, models = cohort
    good = _good(cases)
    sha = {s.exam_id: photo_sha256(load_source(s).fundus) for s in discover_sources(good)[0]}
    store = CorrectionStore(tmp_path / "disc_corrections.json")
    store.put_eye(sha["SYNTH0001"], "OS")
    store.write()
    out = tmp_path / "e.csv"

    def grade(*extra):
        assert main(["grade", *good, "--csv", str(out), "--models", str(models), "--disc-corrections",
                     str(store.path), *extra]) == 0
        return capsys.readouterr().err, {r["data"]: r for r in _rows(out)}

    _, rows = grade()
    assert rows["SYNTH0001"]["eye"] == "OS" and rows["SYNTH0001"]["disc_correction"].startswith("eye #")
    assert rows["SYNTH0001"]["disc_source"] != "user" and rows["SYNTH0000"]["eye"] == "OD (disc side)"
    err, _ = grade("--resume")
    assert "3 exam(s) already graded, 0 to go" in err
    store.put_eye(sha["SYNTH0001"], "OD")
    store.write()
    err, rows = grade("--resume")
    assert "1 exam(s) graded again: the disc placed or outlines drawn by hand differ" in err
    assert rows["SYNTH0001"]["eye"] == "OD"
    table = tmp_path / "eyes.csv"
    table.write_text("exam,eye\nSYNTH0001,OS\n")  # a table wins over the eye set in the viewer
    err, rows = grade("--resume", "--eyes", str(table))
    assert rows["SYNTH0001"]["eye"] == "OS" and rows["SYNTH0001"]["disc_correction"] == ""


def test_resume_grades_again_the_exams_whose_hand_corrections_changed(cohort, tmp_path, capsys):
    import numpy as np

    from engine.cli.grade_cmd import discover_sources, load_source
    from engine.fundus.corrections import CorrectionStore, photo_sha256
    from engine.fundus.hand_outline import HandOutlines

    cases, models = cohort
    good = _good(cases)
    photos = {s.exam_id: photo_sha256(load_source(s).fundus) for s in discover_sources(good)[0]}
    store = CorrectionStore(tmp_path / "disc_corrections.json")
    t = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    store.put(photos["SYNTH0000"], (60.0, 75.0), HandOutlines(cup=np.stack([60 + 5 * np.sin(t),
                                                                            75 + 5 * np.cos(t)], axis=1)))
    store.put(photos["SYNTH0001"], (50.0, 70.0), None)
    store.write()
    out = tmp_path / "r.csv"

    def grade(*extra):
        capsys.readouterr()
        assert main(["grade", *good, "--csv", str(out), "--models", str(models), *extra]) == 0
        return capsys.readouterr().err, {r["data"]: r["disc_correction"] for r in _rows(out)}

    _, first = grade("--disc-corrections", str(store.path))
    err, again = grade("--disc-corrections", str(store.path), "--resume")
    assert "3 exam(s) already graded, 0 to go" in err and "graded again" not in err and again == first
    store.put(photos["SYNTH0001"], (52.0, 70.0), None)  # moved in the viewer
    store.write()
    err, moved = grade("--disc-corrections", str(store.path), "--resume")
    assert "1 exam(s) graded again" in err and "2 exam(s) already graded, 1 to go" in err
    assert moved["SYNTH0001"] != first["SYNTH0001"] and moved["SYNTH0000"] == first["SYNTH0000"]
    positions = tmp_path / "discs.csv"
    positions.write_text("exam,x,y\nSYNTH0002,70,50\n")
    err, placed = grade("--disc-corrections", str(store.path), "--disc-positions", str(positions), "--resume")
    assert "1 exam(s) graded again" in err and placed["SYNTH0002"].startswith("placed #")
    err, dropped = grade("--resume")  # no corrections given: the corrected rows go back to the automatic disc
    assert "3 exam(s) graded again" in err and set(dropped.values()) == {""}


def test_correction_label_names_the_parts_and_follows_the_coordinates():
    import numpy as np

    from engine.fundus.hand_outline import HandOutlines
    from engine.results_csv import correction_label

    cup = np.array([[10.0, 10.0], [10.0, 20.0], [20.0, 15.0]])
    assert correction_label(None, None) == "" and correction_label(None, HandOutlines()) == ""
    assert correction_label((5, 6), None).startswith("placed #")
    both = correction_label(None, HandOutlines(disc=cup * 2, cup=cup))
    assert both.startswith("disc+cup #") and len(both.split("#")[1]) == 12
    assert correction_label(None, HandOutlines(cup=cup + 0.001)) == correction_label(None, HandOutlines(cup=cup))
    assert correction_label(None, HandOutlines(cup=cup + 0.1)) != correction_label(None, HandOutlines(cup=cup))


def test_grader_conflict_reads_only_ok_rows_that_name_graders():
    from engine.results_csv import grader_conflict

    weights = {"a": "1" * 64, "b": "2" * 64}
    rows = [{"data": "x", "status": "error", "models": "z", "weights_sha256": "9"},
            {"data": "y", "status": "ok", "models": "", "weights_sha256": ""},  # an MRI: no glaucoma grader ran
            {"data": "w", "status": "ok", "models": "a", "weights_sha256": "1" * 64}]  # fewer graders: its images
    assert grader_conflict(rows, weights) is None
    rows.append({"data": "v", "status": "ok", "models": "a;b", "weights_sha256": "1" * 64 + ";" + "3" * 64})
    assert grader_conflict(rows, weights) == ("v was graded by b (weights 333333333333), "
                                              "this run's b has weights 222222222222")


def test_grader_conflict_finds_a_grader_added_where_the_row_shows_it_would_have_run():
    from engine.results_csv import grader_conflict

    weights = {"f": "1" * 64, "o": "2" * 64, "v": "3" * 64}
    needs = {"f": (("fundus",), ()), "o": (("fundus", "oct"), ()), "v": (("fundus",), ("vertical_cdr",))}
    fundus_only = {"data": "a", "status": "ok", "models": "f", "weights_sha256": "1" * 64, "vcdr": "0.5",
                   "rnfl_mean": ""}
    without_disc = {**fundus_only, "data": "b", "vcdr": ""}  # no disc measured: v could not run
    assert grader_conflict([without_disc], weights, needs) is None
    assert grader_conflict([fundus_only], weights, needs) == ("a was graded without v, which this run's models "
                                                              "would run on it")
    assert grader_conflict([fundus_only], weights) is None  # without needs: the weights only
    both = {**fundus_only, "data": "c", "models": "f;v", "weights_sha256": "1" * 64 + ";" + "3" * 64}
    assert grader_conflict([both], weights, needs) is None  # no OCT in sight: o would not run
    assert "c was graded without o" in grader_conflict([{**both, "rnfl_mean": "80"}], weights, needs)


def test_calibration_conflict_reads_only_rows_with_a_measured_disc():
    from engine.results_csv import calibration_conflict

    rows = [{"data": "a", "status": "ok", "vcdr": "", "disc_calibration": ""},  # no disc: nothing to compare
            {"data": "b", "status": "error", "vcdr": "", "disc_calibration": ""}]
    assert calibration_conflict(rows, "clinic x1.50") is None
    rows.append({"data": "c", "status": "ok", "vcdr": "0.5", "disc_calibration": ""})
    assert calibration_conflict(rows, "") is None
    assert calibration_conflict(rows, "clinic x1.50") == ("c was graded with no site calibration, "
                                                          "this run with site calibration 'clinic x1.50'")


def test_scale_changed_keeps_a_files_own_scale_unless_one_is_typed_for_every_photo():
    from engine.io.exam import typed_photo_spacing
    from engine.results_csv import scale_changed

    def row(data, scale, size="640x480", vcdr="0.5"):
        return {"data": data, "status": "ok", "vcdr": vcdr, "photo_scale": scale, "photo_size": size}

    rows = [row("file", "6.5 um/px (file)"), row("none", ""), row("typed", "4 um/px (typed in)"),
            row("other", "", size="320x240"), row("nodisc", "", vcdr=""),
            {"data": "err", "status": "error", "vcdr": "", "photo_scale": "", "photo_size": ""}]
    assert scale_changed(rows, None, {}) == {"typed"}
    assert scale_changed(rows, None, {"640x480": 4.0}) == {"none"}  # the file's own scale wins over a size's
    assert scale_changed(rows, None, {"640x480": 4.0, "320x240": 8.0}) == {"none", "other"}
    assert scale_changed(rows, typed_photo_spacing(4.0), {}) == {"file", "none", "other"}  # it replaces the file's


def test_an_eye_table_names_each_exams_eye_and_resume_follows_it(cohort, tmp_path, capsys):
    cases, models = cohort
    out, table, good = tmp_path / "e.csv", tmp_path / "eyes.csv", _good(cases)
    table.write_text("exam,eye\nSYNTH0000,left\nSYNTH0001,OD\nNOSUCH,R\n")
    assert main(["grade", *good, "--csv", str(out), "--models", str(models), "--eyes", str(table)]) == 0
    err = capsys.readouterr().err
    assert "1 exam(s) of " in err and "not among the exams found (left alone): NOSUCH" in err
    rows = {r["data"]: r for r in _rows(out)}
    assert [rows[k]["eye"] for k in ("SYNTH0000", "SYNTH0001", "SYNTH0002")] == ["OS", "OD", "OD (disc side)"]
    assert "check the eye" in rows["SYNTH0000"]["message"]  # the synthetic right eye's disc lies on the right
    table.write_text("exam,eye\nSYNTH0000,OD\n")
    assert main(["grade", *good, "--csv", str(out), "--models", str(models), "--eyes", str(table), "--resume"]) == 0
    assert "1 exam(s) graded again: this run gives their exam another eye than their rows' eye" in \
        capsys.readouterr().err
    assert _rows(out)[0]["eye"] == "OD" and "check the eye" not in _rows(out)[0]["message"]
    for text, said in (("id,eye\nA,OD\n", "the columns must be exam,eye"), ("exam,eye\nA,up\n", "an eye OD or OS"),
                       ("exam,eye\nA,OD\nA,OS\n", "exam A is listed twice")):
        table.write_text(text)
        assert main(["grade", good[0], "--csv", str(tmp_path / "x.csv"), "--models", str(models), "--eyes",
                     str(table)]) == 2
        assert said in capsys.readouterr().err and not (tmp_path / "x.csv").exists()


def test_eye_label_says_when_the_eye_was_inferred_from_the_discs_side():
    from types import SimpleNamespace as NS

    from engine.results_csv import eye_label

    inferred = NS(eye_inferred=True, biomarkers=NS(eye="OS"))
    assert eye_label("unknown", inferred) == "OS (disc side)" and eye_label("unknown", None) == ""
    assert eye_label("OD", NS(eye_inferred=False, biomarkers=NS(eye="OD"))) == "OD" == eye_label("OD", None)


def test_anonymize_replaces_ids_and_needs_a_salt(cohort, tmp_path, capsys):
    cases, models = cohort
    out = tmp_path / "a.csv"
    good = str(cases / "SYNTH0001")
    assert main(["grade", good, "--csv", str(out), "--models", str(models), "--anonymize", "--resume"]) == 2
    assert "salt" in capsys.readouterr().err
    assert main(["grade", good, "--csv", str(out), "--models", str(models), "--anonymize", "--salt", "s3cret",
                 "--cams", str(tmp_path / "c")]) == 0
    text = out.read_text()
    assert "SYNTH0001" not in text and anonymize_id("SYNTH0001", "s3cret") in text
    assert all("SYNTH" not in p.name for p in (tmp_path / "c").iterdir())


def test_tampered_weights_are_refused_with_exit_2(cohort, tmp_path, capsys):
    cases, models = cohort
    folder = tmp_path / "m"
    models2 = save_tiny_ensemble(folder)
    data = bytearray((folder / "fundus.pt").read_bytes())
    data[-10] ^= 0xFF
    (folder / "fundus.pt").write_bytes(bytes(data))
    assert main(["grade", str(cases / "SYNTH0000"), "--csv", str(tmp_path / "t.csv"), "--models", str(models2)]) == 2
    assert "does not match" in capsys.readouterr().err


def test_bad_usage(cohort, tmp_path, capsys):
    cases, models = cohort
    assert main(["grade", str(cases), "--csv", str(tmp_path / "x.csv"), "--shard", "2/2"]) == 2
    assert main(["grade", str(cases), "--csv", str(tmp_path / "x.csv"), "--jobs", "0"]) == 2


def test_unreadable_site_calibration_is_refused_with_exit_2(cohort, tmp_path, capsys):
    cases, models = cohort
    (tmp_path / "site.json").write_text("{}")
    assert main(["grade", str(cases / "SYNTH0000"), "--csv", str(tmp_path / "t.csv"), "--models", str(models),
                 "--site-calibration", str(tmp_path / "site.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a site calibration" in err[0] and not (tmp_path / "t.csv").exists()


def test_a_photo_with_no_optic_disc_found_is_graded_with_a_caution(cohort, tmp_path, capsys, monkeypatch):
    import dataclasses

    import engine.fundus as fundus
    from engine.fundus.analysis import DiscAnalysis, analyse_disc

    cases, models = cohort
    out = tmp_path / "nodisc.csv"
    monkeypatch.setattr(fundus, "analyse_disc", lambda image, **kw: dataclasses.replace(  # a confident disc
        analyse_disc(image, **kw), confidence=0.95))
    assert main(["grade", str(cases / "SYNTH0000"), "--csv", str(out), "--models", str(models)]) == 0
    assert "no optic disc found" not in capsys.readouterr().err and _rows(out)[0]["caution"] == ""
    monkeypatch.setattr(fundus, "analyse_disc", lambda image, **kw: DiscAnalysis(False, 0.1, "not found", None))
    assert main(["grade", str(cases / "SYNTH0000"), "--csv", str(out), "--models", str(models)]) == 0
    err = capsys.readouterr().err
    assert "(no optic disc found: check the photo)" in err and "1 ok, 0 error(s); with a caution: 1 no disc" in err
    row = _rows(out)[0]
    assert row["status"] == "ok" and row["caution"] == "no disc" and "no optic disc found" in row["message"]


def test_a_photo_read_as_centred_on_the_disc_is_graded_with_a_caution(cohort, tmp_path, capsys, monkeypatch):
    import dataclasses

    import engine.fundus as fundus
    from engine.fundus.analysis import analyse_disc

    cases, models = cohort
    monkeypatch.setattr(fundus, "analyse_disc", lambda image, **kw: dataclasses.replace(
        analyse_disc(image, **kw), centred=True, confidence=0.95))
    out = tmp_path / "centred.csv"
    assert main(["grade", str(cases / "SYNTH0000"), "--csv", str(out), "--models", str(models)]) == 0
    assert "(a crop centred on the disc: whole-photo graders never saw one)" in capsys.readouterr().err
    assert _rows(out)[0]["disc_source"] == "centred photo" and _rows(out)[0]["caution"] == "centred photo"


def test_a_photo_without_colour_is_graded_with_a_caution(cohort, tmp_path, capsys, monkeypatch):
    import dataclasses

    import engine.fundus as fundus
    from engine.fundus.analysis import analyse_disc

    cases, models = cohort

    def grey(image, **kw):
        result = analyse_disc(image, **kw)
        return dataclasses.replace(result, localisation=dataclasses.replace(result.localisation, monochrome=True))

    monkeypatch.setattr(fundus, "analyse_disc", grey)
    assert main(["grade", str(cases / "SYNTH0000"), "--csv", str(tmp_path / "grey.csv"), "--models", str(models)]) == 0
    assert "(no colour: the graders were trained on colour photos)" in capsys.readouterr().err
    assert _rows(tmp_path / "grey.csv")[0]["caution"] == "no colour"


def test_a_photo_out_of_focus_is_graded_with_a_caution(cohort, tmp_path, capsys, monkeypatch):
    import dataclasses

    import engine.fundus as fundus
    from engine.fundus.analysis import analyse_disc

    cases, models = cohort

    def blurred(image, **kw):
        result = analyse_disc(image, **kw)
        return dataclasses.replace(result, localisation=dataclasses.replace(result.localisation, sharpness=0.1))

    monkeypatch.setattr(fundus, "analyse_disc", blurred)
    out = tmp_path / "blur.csv"
    assert main(["grade", str(cases / "SYNTH0000"), "--csv", str(out), "--models", str(models)]) == 0
    assert "(out of focus: check the disc outline)" in capsys.readouterr().err
    assert _rows(out)[0]["caution"] == "out of focus"


def test_a_disc_found_with_low_confidence_is_graded_with_a_caution(cohort, tmp_path, capsys, monkeypatch):
    import dataclasses

    import engine.fundus as fundus
    from engine.fundus.analysis import LOW_CONFIDENCE, analyse_disc

    cases, models = cohort
    monkeypatch.setattr(fundus, "analyse_disc", lambda image, **kw: dataclasses.replace(
        analyse_disc(image, **kw), confidence=LOW_CONFIDENCE - 0.01))
    out = tmp_path / "unsure.csv"
    assert main(["grade", str(cases / "SYNTH0000"), "--csv", str(out), "--models", str(models)]) == 0
    assert "(optic disc uncertain: check its outline)" in capsys.readouterr().err
    row = _rows(out)[0]
    assert row["caution"] == "disc uncertain" and row["vcdr"]  # measured, to be checked


def test_resume_from_a_csv_of_another_version_names_the_columns_that_differ(cohort, tmp_path, capsys):
    cases, models = cohort
    out = tmp_path / "old.csv"
    older = [c for c in COLUMNS if c != "caution"] + ["retired"]
    out.write_text(",".join(older) + "\n" + ",".join("SYNTH0000" if c == "data" else "" for c in older) + "\n")
    before = out.read_bytes()
    assert main(["grade", str(cases / "SYNTH0000"), "--csv", str(out), "--models", str(models), "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "another version of grade (columns added since: caution; columns dropped since: " \
        "retired)" in err[0] and out.read_bytes() == before
    out.write_text("id,score\nA,1\n")
    assert main(["grade", str(cases / "SYNTH0000"), "--csv", str(out), "--models", str(models), "--resume"]) == 2
    assert "not a grading CSV (columns ['id', 'score'])" in capsys.readouterr().err
