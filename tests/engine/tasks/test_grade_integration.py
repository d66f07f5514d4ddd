"""``engine grade`` with the sibling tasks: MRI rows get HGG/LGG columns, X-ray rows bone columns, fundus rows
ODIR per-label columns beside the glaucoma grade."""

from __future__ import annotations

import csv
import shutil

import cv2

import engine.tasks as tasks
from engine.cli import main
from engine.models.tiny import save_tiny_ensemble
from engine.synthetic import synthetic_exam, write_gamma_exam
from engine.tasks import phantoms


def _rows(path):
    with open(path, newline="") as fh:
        return {r["data"]: r for r in csv.DictReader(fh)}


def test_grade_writes_sibling_columns_per_modality(tiny_weights, tmp_path, monkeypatch):
    models = tmp_path / "res" / "models"
    models.mkdir(parents=True)
    for path in tiny_weights.values():
        shutil.copy(path, models / path.name)
        shutil.copy(path.with_suffix(".card.json"), models / path.with_suffix(".card.json").name)
    monkeypatch.setenv("GV_RESOURCES", str(tmp_path / "res"))
    tasks._CACHE.clear()
    case = tmp_path / "data" / "BRAIN7"
    case.mkdir(parents=True)
    for seq, vol in phantoms.phantom_brain_mri("LGG", (10, 32, 32), ("flair", "t1ce")).items():
        phantoms.write_nifti(case / f"BRAIN7_{seq}.nii.gz", vol)
    xray = tmp_path / "data" / "dental_pano_1.png"
    cv2.imwrite(str(xray), phantoms.phantom_panoramic("healthy", (120, 240)))
    write_gamma_exam(tmp_path / "data" / "fundus", synthetic_exam(1, n_bscans=4, fundus_shape=(96, 120),
                                                                  bscan_shape=(40, 48), seed=3))
    out = tmp_path / "grades.csv"
    ensemble = save_tiny_ensemble(tmp_path / "ens")
    rc = main(["grade", str(case), str(xray), str(tmp_path / "data" / "fundus"), "--csv", str(out),
               "--models", str(ensemble), "--device", "cpu", "--quiet", "--cams", str(tmp_path / "cams")])
    rows = _rows(out)
    assert rc == 0, rows
    brain = rows["BRAIN7"]
    assert brain["status"] == "ok" and brain["non"] == "" and brain["glioma_grade"] in ("HGG", "LGG")
    assert abs(float(brain["glioma_hgg"]) + float(brain["glioma_lgg"]) - 1) < 1e-5
    assert "T2 not in the exam" in brain["message"] and brain["task_models"] == "tiny-glioma"
    pano = rows["dental_pano_1"]
    assert pano["status"] == "ok" and pano["bone_diagnosis"] in ("healthy", "osteoporosis")
    fundus = next(r for k, r in rows.items() if k not in ("BRAIN7", "dental_pano_1"))
    assert fundus["status"] == "ok" and fundus["grade"] and fundus["task_models"] == "tiny-odir"
    assert all(0.0 <= float(fundus[f"odir_{k}"]) <= 1.0 for k in "NDGCAHMO")
    names = {p.name for p in (tmp_path / "cams").iterdir()}
    assert "dental_pano_1_bone_cam.png" in names
    assert any(n.startswith("BRAIN7_glioma_attention_s") for n in names)
    assert {f"{fundus['data']}_odir_{k}.png" for k in "NDGCAHMO"} <= names


def test_graded_fundus_without_odir_weights_has_no_note(tmp_path, monkeypatch):
    monkeypatch.setenv("GV_RESOURCES", str(tmp_path))  # no odir.pt: ODIR silently absent
    exam = synthetic_exam(0, n_bscans=2, fundus_shape=(64, 64), bscan_shape=(32, 32), seed=0)
    row = tasks.add_sibling_columns({"message": ""}, exam, "cpu")
    assert row == {"message": ""}
