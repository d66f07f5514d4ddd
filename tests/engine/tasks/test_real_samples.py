"""The sibling tasks on the real samples in ``GV_SAMPLE_DATA`` (skipped without them): BraTS FLAIR + T1c cases
(no T2), panoramic dental radiographs. Tiny random weights: these check the pipeline, not accuracy."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import engine.tasks as tasks
from engine.io.discover import discover
from engine.io.nifti import read_volume
from engine.tasks import bone, glioma

BRATS = ("brats_2013_pat0001_1", "brats_2013_pat0005_1")
PANORAMICS = ("306.png", "702.png")


def _exam(path: Path):
    return discover([path]).sources[0].load()


@pytest.fixture
def brats(sample_data: Path) -> Path:
    return sample_data / "brain_mri_brats"


@pytest.mark.parametrize("case", BRATS)
def test_brats_case_without_t2_runs_the_flair_t1ce_variant(brats, case, tiny_weights):
    exam = _exam(brats / case)
    assert set(exam.mri) == {"flair", "t1ce"}  # the real samples hold no T2
    out = tasks.run_sibling_tasks(exam, "cpu", weights=tiny_weights)
    assert out.errors == []
    result = out.results["glioma"]
    assert result.sequences == ("flair", "t1ce") and result.grade in ("HGG", "LGG")
    assert any("T2 not in the exam" in m for m in out.messages)
    assert out.maps["glioma_attention"].shape == exam.mri["flair"].shape
    # the informative slices are the slices the provided brain mask covers (>= 5 % of the slice)
    given = read_volume(brats / case / "brainmask.nii.gz")[0] > 0
    ours = glioma.brain_mask(exam.mri)
    dice = 2 * (given & ours).sum() / (given.sum() + ours.sum())
    assert dice > 0.9, dice
    expected = np.flatnonzero(given.reshape(len(given), -1).mean(axis=1) >= 0.05)
    assert abs(len(result.slice_indices) - len(expected)) <= 3


def test_brats_needs_the_variant_s_sequences(brats):
    exam = _exam(brats / BRATS[0])
    with pytest.raises(glioma.GliomaInputError, match="missing MRI sequence.*T2"):
        glioma.check_sequences(exam.mri, ("flair", "t1ce", "t2"))


@pytest.mark.parametrize("name", PANORAMICS)
def test_real_panoramic_preprocessing_and_heat_map(sample_data, name, tiny_weights):
    exam = _exam(sample_data / "dental_panoramic" / "images" / name)
    assert exam.xray is not None and exam.xray.shape == (1435, 2943)
    prepared = bone.preprocess(exam.xray, "full")
    assert prepared.image.shape == (1435 // 3, 2943 // 3)
    # the rolling ball removes the slow exposure gradient: the flattened image's dark floor is near 0
    assert np.percentile(prepared.image, 5) < np.percentile(exam.xray, 5)
    out = tasks.run_sibling_tasks(exam, "cpu", weights=tiny_weights, cams=True)
    assert out.errors == [] and out.columns["bone_diagnosis"] in bone.CLASSES
    assert out.maps["bone_cam"].shape == exam.xray.shape


def test_bone_health_service_on_the_real_radiographs(sample_data, tiny_weights, tmp_path):
    images = sample_data / "dental_panoramic" / "images"
    requests = [json.dumps({"img_path": str(images / n), "destination_path": str(tmp_path / "out")}) for n in PANORAMICS]
    requests += ["{not json", json.dumps({"img_path": str(images / "nope.png"), "destination_path": str(tmp_path)})]
    proc = subprocess.run(
        [sys.executable, "-m", "engine", "bone-health", "--model", str(tiny_weights["bone"]), "--quiet"],
        input="\n".join(requests) + "\n", capture_output=True, text=True, timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["result"] for r in lines] == ["ok", "ok", "fail", "fail"]
    for r, name in zip(lines, PANORAMICS):
        assert Path(r["saliency_img_path"]).name.startswith(Path(name).stem + "_saliency_")
        assert Path(r["overlay_img_path"]).is_file() and r["diagnosis"] in bone.CLASSES


def test_grade_cli_on_the_real_mri_and_radiographs(sample_data, tiny_weights, tmp_path, monkeypatch):
    from engine.cli import main
    from engine.models.tiny import save_tiny_ensemble

    models = tmp_path / "res" / "models"
    models.mkdir(parents=True)
    for path in tiny_weights.values():
        shutil.copy(path, models / path.name)
        shutil.copy(path.with_suffix(".card.json"), models / path.with_suffix(".card.json").name)
    monkeypatch.setenv("GV_RESOURCES", str(tmp_path / "res"))
    tasks._CACHE.clear()
    out = tmp_path / "grades.csv"
    rc = main(["grade", str(sample_data / "brain_mri_brats"), str(sample_data / "dental_panoramic" / "images"),
               "--csv", str(out), "--models", str(save_tiny_ensemble(tmp_path / "ens")), "--device", "cpu", "--quiet"])
    with open(out, newline="") as fh:
        rows = {r["data"]: r for r in csv.DictReader(fh)}
    assert rc == 0, rows
    for case in BRATS:
        assert rows[case]["glioma_grade"] in ("HGG", "LGG") and rows[case]["status"] == "ok"
    for name in PANORAMICS:
        assert rows[Path(name).stem]["bone_diagnosis"] in bone.CLASSES
