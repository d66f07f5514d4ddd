"""The three training adapters through the framework's own train runner, on tiny phantom cohorts."""

from __future__ import annotations

import json

import pytest

from engine.tasks import phantoms
from engine.train import tasks as registry
from engine.train.config import TrainConfig
from engine.train.datasets.common import LayoutError
from engine.train.run import train_task


def _train(name, root, out, **config):
    task = registry.get_task(name)
    cfg = TrainConfig(epochs=1, device="cpu", val_fraction=0.34, **config).validate()
    outcome = train_task(task, root, out, cfg, n_boot=10)
    card = json.loads(outcome.folds[0].checkpoint.with_suffix(".card.json").read_text())
    return task, outcome, card


def test_glioma_trains_on_brats_layout_phantoms_and_says_so(tmp_path):
    data = phantoms.write_brats_cohort(tmp_path / "brats", 3, 3, shape=(12, 32, 32))
    task, outcome, card = _train("glioma", data, tmp_path / "run", batch_size=8,
                                 model={"width": 4}, data={"size": [32, 32], "slices_per_case": 4})
    assert card["spec"]["inputs"]["sequences"] == ["flair", "t1ce"]  # the variant on what every case holds
    assert card["synthetic_training_data"] is True
    assert "synthetic phantoms" in card["limitations"][0]
    assert "patient_accuracy" in card["metrics"] and card["metrics"]["n_patients"] == 2
    model, spec, _ = task.load_model(outcome.folds[0].checkpoint, "cpu")
    assert type(model).__name__ == "AttentionVGG"


def test_glioma_needs_grades(tmp_path):
    case = tmp_path / "ungraded" / "case1"
    case.mkdir(parents=True)
    vol = phantoms.phantom_brain_mri("HGG", (8, 32, 32), ("flair",))["flair"]
    phantoms.write_nifti(case / "case1_flair.nii.gz", vol)
    with pytest.raises(LayoutError, match="without an HGG/LGG grade"):
        registry.get_task("glioma").read_cohort(tmp_path / "ungraded", TrainConfig())


def test_bone_trains_on_class_folders_with_folds(tmp_path):
    data = phantoms.write_panoramic_cohort(tmp_path / "pano", 3, shape=(90, 180))
    _, outcome, _ = _train("bone", data, tmp_path / "run", batch_size=4, folds=2,
                           model={"width_mult": 0.25, "depth_mult": 0.25}, data={"size": [32, 64]})
    assert len(outcome.folds) == 2
    card = json.loads((tmp_path / "run" / "fold1" / "best.card.json").read_text())
    assert card["classes"] == ["healthy", "osteoporosis"] and card["spec"]["inputs"]["downscale"] == 3
    assert (tmp_path / "run" / "cv_summary.json").is_file()


def test_odir_trains_on_the_odir_layout(tmp_path):
    data = phantoms.write_odir_cohort(tmp_path / "odir", 16, shape=(64, 64))
    _, _, card = _train("odir", data, tmp_path / "run", batch_size=8,
                        model={"backbone": "tiny2d"}, data={"input_size": 32})
    assert card["classes"] == list("NDGCAHMO")
    assert {"auc_macro", "f1_g", "odir_score"} <= set(card["metrics"])
    assert "16 samples" in card["training_data"]


def test_odir_trains_with_the_disc_cup_biomarkers(tmp_path):
    data = phantoms.write_odir_cohort(tmp_path / "odir", 12, shape=(64, 64), biomarkers=True)
    task, outcome, card = _train("odir", data, tmp_path / "run", batch_size=4,
                                 model={"backbone": "tiny2d", "biomarkers": True}, data={"input_size": 32})
    assert card["spec"]["inputs"]["biomarkers"] == ["vcdr", "hcdr", "acdr", "rim", "eccentricity", "centroid_shift"]
    model, _, _ = task.load_model(outcome.folds[0].checkpoint, "cpu")
    assert model.uses_biomarkers
    cohort = task.read_cohort(data, TrainConfig(model={"biomarkers": True}))
    assert all(it["biomarkers"][-1] == 1.0 for it in cohort.items)  # every photo measured
    (data / "biomarkers.csv").unlink()
    with pytest.raises(LayoutError, match="biomarkers.csv"):
        task.read_cohort(data, TrainConfig(model={"biomarkers": True}))


def test_phantom_biomarkers_follow_the_drawn_cup():
    big, small = {}, {}
    phantoms.phantom_odir_fundus(["G"], shape=(128, 128), seed=1, biomarkers=big)
    phantoms.phantom_odir_fundus([], shape=(128, 128), seed=1, biomarkers=small)
    assert big["vcdr"] > 0.65 > 0.55 > small["vcdr"] and big["acdr"] > small["acdr"]
    assert abs(big["rim"] - (1 - big["vcdr"])) < 1e-9
