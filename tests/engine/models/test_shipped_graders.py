"""The shipped default graders: hash-checked, honest cards, small, and they grade real photos."""

from __future__ import annotations

import numpy as np
import pytest

from engine.models.checkpoint import read_card
from engine.models.ensemble import read_ensemble_file
from engine.models.registry import default_ensemble_file, load_grader
from engine.resources import models_dir


@pytest.fixture(scope="module")
def default_members():
    path = default_ensemble_file()
    if path is None:
        pytest.skip("no default grader ensemble shipped")
    return read_ensemble_file(path)


def test_default_members_load_and_cards_are_complete(default_members):
    assert default_members.method in ("mean", "vote") and len(default_members.members) >= 2
    for name, path in default_members.members:
        grader = load_grader(path, "cpu", name=name)  # refuses a hash mismatch
        card = read_card(path)
        assert len(card["sha256"]) == 64 and card["weights_file"] == path.name
        assert "GAMMA" in card["data"] and not card["data"].startswith("SYNTHETIC")
        held = card["evaluation"]
        assert held["n"] > 0 and "kappa" in held["metrics"]
        recipe = card["recipe_gamma_kfold_out_of_fold"]
        assert recipe["n"] == 60 and len(recipe["kappa_ci95"]) == 2
        assert card["recipe_external_cv_ensemble"]["n"] > 0 and "auc_ci95" in card["recipe_external_cv_ensemble"]
        assert {"majority_class", "pixel_logistic_regression"} <= set(card["baselines"]["gamma_kfold"])
        assert grader.classes == ("non", "early", "mid_advanced")
        assert path.stat().st_size < 5_000_000


def test_synthetic_model_is_labelled_and_kept_out_of_the_default(default_members):
    synthetic = models_dir() / "synthetic-three-level-small.pt"
    if not synthetic.is_file():
        pytest.skip("no synthetic three-level model shipped")
    card = read_card(synthetic)
    assert card["data"].startswith("SYNTHETIC") and "ONLY synthetic" in card["warning"]
    assert synthetic.resolve() not in {p.resolve() for _, p in default_members.members}
    demo = read_ensemble_file(models_dir() / "with-synthetic-oct.ensemble.json")
    assert demo.method == "vote" and demo.tie.startswith("prefer:")


def test_default_ensemble_grades_a_real_gamma_photo(default_members, sample_data):
    import cv2

    from engine.io.exam import Exam
    from engine.pipeline import grade

    photo = sorted((sample_data / "gamma_fundus_grading" / "images").glob("*.jpg"))[0]
    rgb = cv2.cvtColor(cv2.imread(str(photo)), cv2.COLOR_BGR2RGB)
    r = grade(Exam(exam_id=photo.stem, fundus=rgb), device="cpu")
    assert np.isclose(r.probabilities.sum(), 1) and len(r.models_used) >= 2
    assert set(r.models_used) | set(r.models_skipped) == {n for n, _ in default_members.members}
    assert all("biomarkers" in why for why in r.models_skipped.values())  # only graders needing a found disc
    assert set(r.cams) == {"fundus", "disc"} and r.cams["fundus"].heatmap.shape == rgb.shape[:2]
