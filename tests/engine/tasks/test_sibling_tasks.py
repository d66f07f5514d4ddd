"""run_sibling_tasks: the right task per modality, CSV columns, maps for the viewer, missing weights."""

from __future__ import annotations

import pytest

import engine.tasks as tasks
from engine.io.exam import Exam
from engine.tasks import phantoms


def test_every_modality_gets_its_task_columns_and_maps(tiny_weights):
    fundus, _ = phantoms.phantom_odir_fundus(["G"], shape=(96, 128))
    mri = phantoms.phantom_brain_mri("HGG", (12, 40, 40), ("flair", "t1ce"))
    xray = phantoms.phantom_panoramic(shape=(120, 240))
    exam = Exam("MIX", fundus=fundus, mri=mri, xray=xray)
    out = tasks.run_sibling_tasks(exam, "cpu", weights=tiny_weights, cams=True)
    assert out.errors == []
    assert set(out.columns) <= set(tasks.SIBLING_COLUMNS)
    assert {f"odir_{k}" for k in "NDGCAHMO"} <= set(out.columns)
    assert out.columns["glioma_grade"] in ("HGG", "LGG")
    assert float(out.columns["glioma_hgg"]) + float(out.columns["glioma_lgg"]) == pytest.approx(1.0, abs=1e-5)
    assert out.columns["bone_diagnosis"] in ("healthy", "osteoporosis")
    assert out.columns["task_models"] == "tiny-odir;tiny-glioma;tiny-bone"
    assert out.maps["glioma_attention"].shape == (12, 40, 40)
    assert out.maps["odir_cam_G"].shape == (96, 128)
    assert out.maps["bone_cam"].shape == (120, 240)
    assert any("T2 not in the exam" in m for m in out.messages)


def test_missing_weights_are_a_message_and_a_bad_input_an_error(tiny_weights, tmp_path, monkeypatch):
    monkeypatch.setenv("GV_RESOURCES", str(tmp_path))  # no resources/models here
    tasks._CACHE.clear()
    exam = Exam("F", fundus=phantoms.phantom_odir_fundus([], shape=(64, 64))[0])
    out = tasks.run_sibling_tasks(exam, "cpu")
    assert not out.ran and out.columns == {}
    assert out.messages == ["odir: no weights installed (odir.pt); task skipped"]
    flair_only = Exam("M", mri=phantoms.phantom_brain_mri("LGG", (8, 32, 32), ("flair",)))
    out = tasks.run_sibling_tasks(flair_only, "cpu", weights=tiny_weights)
    assert not out.ran and "missing MRI sequence(s) T1ce" in out.errors[0]


def test_sibling_only_row_for_an_mri_exam(tiny_weights, monkeypatch):
    monkeypatch.setattr(tasks, "DEFAULT_WEIGHTS", {k: str(v) for k, v in tiny_weights.items()})
    from engine.results_csv import COLUMNS

    exam = Exam("BRAIN1", mri=phantoms.phantom_brain_mri("HGG", (10, 32, 32), ("flair", "t1ce")))
    row, line = tasks.sibling_only_row(exam, "BRAIN1", "cpu")
    assert row["status"] == "ok" and row["data"] == "BRAIN1"
    assert row["non"] == "" and row["grade"] == ""  # no glaucoma grade for a brain MRI
    assert row["glioma_grade"] in ("HGG", "LGG") and line.startswith("ok glioma")
    assert set(row) <= set(COLUMNS) | set(tasks.SIBLING_COLUMNS)


def test_sibling_columns_are_fixed_and_unique():
    assert len(set(tasks.SIBLING_COLUMNS)) == len(tasks.SIBLING_COLUMNS)
    assert tasks.SIBLING_COLUMNS[:8] == tuple(f"odir_{k}" for k in "NDGCAHMO")


def test_installed_glioma_variant_is_picked_by_the_sequences_present(tmp_path, monkeypatch, tiny_writer):
    from engine.tasks import glioma

    models = tmp_path / "models"
    models.mkdir()
    tiny_writer(models / "glioma.pt", "glioma", glioma.make_spec(("flair", "t1ce"), width=4, size=(32, 32)))
    tiny_writer(models / "glioma_t2.pt", "glioma", glioma.make_spec(("flair", "t1ce", "t2"), width=4, size=(32, 32)))
    monkeypatch.setenv("GV_RESOURCES", str(tmp_path))
    tasks._CACHE.clear()
    full = Exam("F", mri=phantoms.phantom_brain_mri("HGG", (8, 32, 32), ("flair", "t1ce", "t2")))
    assert tasks.run_sibling_tasks(full, "cpu").results["glioma"].sequences == ("flair", "t1ce", "t2")
    two = tasks.run_sibling_tasks(Exam("T", mri=phantoms.phantom_brain_mri("HGG", (8, 32, 32), ("flair", "t1ce"))), "cpu")
    assert two.results["glioma"].sequences == ("flair", "t1ce")
    assert any("ran the variant built for the sequences present (FLAIR + T1ce)" in m for m in two.messages)
    flair = tasks.run_sibling_tasks(Exam("L", mri=phantoms.phantom_brain_mri("HGG", (8, 32, 32), ("flair",))), "cpu")
    assert not flair.ran and "no glioma model fits this exam" in flair.errors[0]
