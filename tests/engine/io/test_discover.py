"""discover(): exam grouping, the skip report, guard rails (symlink loops, empty/unreadable), exam.json sidecars."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from engine.io.discover import discover, eye_from_name, load_exam
from engine.io.errors import EmptyInputError, ExamLoadError
from engine.synthetic import synthetic_exam, write_gamma_exam

from io_helpers import bscan, photo, write_image


def _reasons(found):
    return {os.path.basename(s.path): s.reason for s in found.skipped}


def test_patient_folders_series_and_skip_report(tmp_path, frozen):
    pat = tmp_path / "P01_OD"
    write_image(pat / "fundus.png", photo())
    write_image(pat / "oct.png", bscan(0))
    write_image(pat / "fundus_mask.png", np.zeros((240, 320), np.uint8))
    (pat / "notes.csv").write_text("a,b\n")
    (pat / ".DS_Store").write_bytes(b"x")
    for k in range(11):
        write_image(tmp_path / "vol" / f"img_{k}.png", bscan(k, (40, 50)))
    check = frozen(tmp_path)
    found = discover(tmp_path)
    ids = {s.exam_id: s for s in found.sources}
    assert set(ids) == {"P01_OD", "vol"}
    assert ids["P01_OD"].eye == "OD" and ids["P01_OD"].kind == "patient-folder"
    assert [p.name for p in ids["vol"].bscans] == [f"img_{k}.png" for k in range(11)]  # 10 after 9, not after 1
    reasons = _reasons(found)
    assert "annotation mask" in reasons["fundus_mask.png"]
    assert "a table" in reasons["notes.csv"]
    assert "hidden" in reasons[".DS_Store"]
    check()


def test_bscans_per_exam_splits_a_flat_series(tmp_path):
    for k in range(6):
        write_image(tmp_path / "dme" / f"img_{k}.png", bscan(k, (40, 50)))
    found = discover(tmp_path / "dme", bscans_per_exam=3)
    assert [s.exam_id for s in found.sources] == ["dme_0-2", "dme_3-5"]
    exam = found.sources[1].load()
    assert exam.oct.shape == (3, 40, 50)
    assert [os.path.basename(f) for f in exam.bscan_files] == ["img_3.png", "img_4.png", "img_5.png"]
    one = discover(tmp_path / "dme")
    assert len(one.sources) == 1 and "--bscans-per-exam" in one.sources[0].notes[0]


def test_symlink_loop_is_reported_not_followed(tmp_path):
    root = tmp_path / "root"
    write_image(root / "a" / "x.png", photo())
    os.symlink(root, root / "a" / "loop")
    found = discover(root)
    assert [s.exam_id for s in found.sources] == ["x"]
    assert any("symbolic link loop" in s.reason for s in found.skipped)


def test_broken_link_missing_path_empty_folder(tmp_path):
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling.png")
    (tmp_path / "empty").mkdir()
    found = discover([tmp_path, tmp_path / "missing"])
    reasons = {s.path: s.reason for s in found.skipped}
    assert reasons[str(tmp_path / "dangling.png")] == "broken symbolic link"
    assert reasons[str(tmp_path / "missing")] == "does not exist"
    assert reasons[str(tmp_path / "empty")] == "empty folder"
    assert not found.sources
    with pytest.raises(EmptyInputError, match="no exam found"):
        load_exam(tmp_path / "empty")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_and_folder(tmp_path):
    write_image(tmp_path / "ok.png", photo())
    locked = write_image(tmp_path / "locked.png", photo())
    (tmp_path / "closed").mkdir()
    os.chmod(locked, 0)
    os.chmod(tmp_path / "closed", 0)
    try:
        found = discover(tmp_path)
    finally:
        os.chmod(locked, 0o644)
        os.chmod(tmp_path / "closed", 0o755)
    reasons = _reasons(found)
    assert "permission denied" in reasons["locked.png"] and "permission denied" in reasons["closed"]
    assert [s.exam_id for s in found.sources] == ["ok"]


def test_an_undecodable_file_is_an_exam_that_fails_with_its_name(tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (tmp_path / "text.png").write_text("hello")
    found = discover(tmp_path)
    errors = {}
    for source in found.sources:
        with pytest.raises(ExamLoadError) as info:
            source.load()
        errors[source.exam_id] = str(info.value)
    assert set(errors) == {"broken", "text"}
    assert "broken.jpg" in errors["broken"] and "text.png" in errors["text"]


def test_the_walk_stops_after_max_entries(tmp_path):
    for k in range(30):
        (tmp_path / f"f{k}.txt").write_text("x")
    found = discover(tmp_path, max_entries=10)
    assert any("stopped" in s.reason or "entries" in s.reason for s in found.skipped)


def test_duplicate_ids_are_made_unique(tmp_path):
    write_image(tmp_path / "a" / "eye.png", photo())
    write_image(tmp_path / "b" / "eye.png", photo())
    ids = [s.exam_id for s in discover(tmp_path).sources]
    assert ids == ["a-eye", "b-eye"]


@pytest.mark.parametrize(
    ("name", "eye"),
    [("P1_OD", "OD"), ("os_left", "OS"), ("OS", "OS"), ("left_eye", "OS"), ("R_123", "OD"),
     ("123_L", "OS"), ("LR", "unknown"), ("OD_OS", "unknown"), ("Right", "OD"), ("ROD", "unknown")],
)
def test_eye_from_name(name, eye):
    assert eye_from_name(name) == eye


# ------------------------------------------------------------------------------------------ exam.json sidecar


def _gamma(tmp_path, exam_id="E1"):
    exam = synthetic_exam(1, n_bscans=4, fundus_shape=(80, 100), bscan_shape=(32, 40), seed=3)
    exam.exam_id = exam_id
    write_gamma_exam(tmp_path, exam)
    return tmp_path / exam_id


def test_sidecar_sets_eye_synthetic_modalities_and_notes(tmp_path, frozen):
    folder = _gamma(tmp_path)
    (folder / "exam.json").write_text(json.dumps(
        {"eye": "OS", "synthetic_modalities": ["oct"], "notes": ["demo, not a patient"]}))
    check = frozen(tmp_path)
    found = discover(tmp_path)
    assert not found.skipped and found.sources[0].eye == "OS"
    exam = found.sources[0].load()
    assert exam.eye == "OS"
    assert exam.provenance.synthetic_modalities == ("oct",)
    assert exam.is_synthetic_modality("oct") and not exam.is_synthetic_modality("fundus")
    assert not exam.is_synthetic  # the fundus is not declared synthetic
    assert "demo, not a patient" in exam.provenance.notes
    assert any(f.path.endswith("exam.json") for f in exam.provenance.files)
    check()


def test_sidecar_declaring_every_modality_marks_the_exam_synthetic(tmp_path):
    folder = _gamma(tmp_path)
    (folder / "exam.json").write_text(json.dumps({"synthetic_modalities": ["fundus", "oct"], "notes": "x"}))
    exam = load_exam(folder)
    assert exam.is_synthetic and exam.provenance.notes[-1] == "x"


@pytest.mark.parametrize(
    ("content", "expect"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b"\xff\xfe\x00garbage", "not valid JSON"),
        (json.dumps({"eye": "left-ish", "synthetic_modalities": ["ct"], "notes": 3, "who": 1}).encode(), "eye"),
        (b"{" + b" " * (70 * 1024) + b"}", "more than the"),
    ],
)
def test_a_bad_sidecar_is_a_note_never_a_failed_load(tmp_path, content, expect):
    folder = _gamma(tmp_path)
    (folder / "exam.json").write_bytes(content)
    exam = load_exam(folder)
    assert exam.oct is not None and exam.eye == "unknown"
    assert any(expect in note for note in exam.provenance.notes), exam.provenance.notes
    assert exam.provenance.synthetic_modalities == ()


def test_sidecar_in_a_folder_without_exams_is_reported(tmp_path):
    _gamma(tmp_path / "data")
    (tmp_path / "data" / "exam.json").write_text("{}")
    found = discover(tmp_path / "data")
    assert [s.exam_id for s in found.sources] == ["E1"]
    assert _reasons(found)["exam.json"] == "exam sidecar, but this folder holds no exam of its own"


def test_the_bundled_demo_is_labelled():
    from engine.resources import demo_exam_dir

    exam = load_exam(demo_exam_dir())
    assert exam.eye == "OS" and exam.is_synthetic_modality("oct") and not exam.is_synthetic_modality("fundus")


def test_unreadable_file_is_reported_also_when_running_as_root(tmp_path, monkeypatch):
    """Root ignores file modes, so the permission check itself is simulated here."""
    write_image(tmp_path / "ok.png", photo())
    locked = write_image(tmp_path / "locked.png", photo())
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if str(p) == str(locked) else real_access(p, mode))
    found = discover(tmp_path)
    assert _reasons(found)["locked.png"] == "cannot be read (permission denied)"
    assert [s.exam_id for s in found.sources] == ["ok"]


def test_load_photo_decodes_the_photo_as_load_does_without_the_volume(tmp_path, monkeypatch):
    from engine.io import bscans

    write_gamma_exam(tmp_path / "cases", synthetic_exam(1, n_bscans=4, fundus_shape=(90, 120), bscan_shape=(30, 40)))
    write_image(tmp_path / "lone" / "P02_OS.png", photo())
    for k in range(3):
        write_image(tmp_path / "vol" / f"img_{k}.png", bscan(k, (40, 50)))
    sources = {s.kind: s for s in discover(tmp_path).sources}
    whole = {kind: s.load().fundus for kind, s in sources.items()}

    def no_volume(*args, **kwargs):
        raise AssertionError("the B-scans were read")

    monkeypatch.setattr(bscans, "read_bscans", no_volume)
    np.testing.assert_array_equal(sources["gamma"].load_photo(), whole["gamma"])
    np.testing.assert_array_equal(sources["image"].load_photo(), whole["image"])
    monkeypatch.undo()
    assert sources["bscan-series"].load_photo() is None and whole["bscan-series"] is None
