"""ODIR multi-label classifier: shapes, biomarker concatenation, weighted BCE, Grad-CAM per label."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine.tasks import odir, phantoms
from engine.tasks._common import in_memory_model

BIO = {"vcdr": 0.7, "hcdr": 0.6, "acdr": 0.45, "rim": 0.12, "eccentricity": 0.3, "centroid_shift": 0.05}


def test_outputs_eight_logits_with_and_without_biomarkers():
    plain = odir.build_model(odir.make_spec("tiny2d")).eval()
    assert plain(torch.randn(2, 3, 32, 32)).shape == (2, 8)
    with_bio = odir.build_model(odir.make_spec("tiny2d", biomarkers=True)).eval()
    assert with_bio.head.in_features == with_bio.branch.out_dim + odir.BIOMARKER_WIDTH
    x = torch.randn(2, 3, 32, 32)
    bio = torch.from_numpy(np.stack([odir.biomarker_vector(BIO)] * 2))
    assert with_bio(x, bio).shape == (2, 8)
    assert not torch.allclose(with_bio(x, bio), with_bio(x, None))  # the biomarkers reach the output


def test_biomarker_vector_flags_missing_values():
    vec = odir.biomarker_vector(BIO)
    assert vec.shape == (7,) and vec[-1] == 1.0 and vec[0] == pytest.approx(0.7)
    assert not odir.biomarker_vector(None).any()
    assert not odir.biomarker_vector({**BIO, "rim": float("nan")}).any()
    assert not odir.biomarker_vector({"vcdr": 0.5}).any()


def test_pos_weights_are_negatives_over_positives():
    targets = np.array([[1, 0, 0], [0, 0, 1], [0, 0, 1], [0, 0, 1]], np.float32)
    assert odir.pos_weights(targets).tolist() == pytest.approx([3.0, 1.0, 1 / 3])


def test_weighted_bce_matches_a_hand_computed_value():
    logits = torch.tensor([[0.0, 2.0]])
    targets = torch.tensor([[1.0, 0.0]])
    weight = torch.tensor([3.0, 1.0])
    hand = (3.0 * -math.log(0.5) + -math.log(1 - 1 / (1 + math.exp(-2.0)))) / 2
    assert odir.weighted_bce(logits, targets, weight).item() == pytest.approx(hand, rel=1e-6)


def test_classify_gives_every_label_and_grad_cam_per_label_in_photo_pixels():
    torch.manual_seed(0)
    spec = odir.make_spec("tiny2d", size=(64, 64), biomarkers=True)
    model = in_memory_model(odir.build_model(spec), spec)
    image, _ = phantoms.phantom_odir_fundus(["G", "D"], shape=(90, 130))
    result = odir.classify_fundus(image, model, biomarkers=BIO, cams=["G", "D", "N"])
    assert list(result.probabilities) == list(odir.LABELS)
    assert all(0.0 <= p <= 1.0 for p in result.probabilities.values())
    assert result.used_biomarkers
    assert set(result.cams) == {"G", "D", "N"}
    for cam in result.cams.values():
        assert cam.shape == (90, 130) and cam.dtype == np.float32
        assert 0.0 <= cam.min() and cam.max() <= 1.0
    # the batched CAM equals one CAM computed alone
    alone = odir.classify_fundus(image, model, biomarkers=BIO, cams=["D"])
    assert np.allclose(alone.cams["D"], result.cams["D"], atol=1e-4)
    without = odir.classify_fundus(image, model)
    assert not without.used_biomarkers and "not measured" in without.notes[0]


def test_phantom_labels_follow_the_odir_convention():
    _, normal = phantoms.phantom_odir_fundus([], seed=1, shape=(64, 64))
    assert normal.tolist() == [1, 0, 0, 0, 0, 0, 0, 0]
    _, sick = phantoms.phantom_odir_fundus(["C", "M"], seed=2, shape=(64, 64))
    assert sick.tolist() == [0, 0, 0, 1, 0, 0, 1, 0]
    with pytest.raises(ValueError, match="unknown ODIR label"):
        phantoms.phantom_odir_fundus(["X"])
