"""Bone health: rolling-ball preprocessing, the two variants, the EfficientNet, Grad-CAM back in place."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import restoration

from engine.tasks import bone, phantoms
from engine.tasks._common import in_memory_model


def gradient_with_blobs(shape=(120, 200)) -> tuple[np.ndarray, np.ndarray]:
    """A strong left-to-right + top-to-bottom ramp with five small bright discs on it; returns (image, blob mask)."""
    h, w = shape
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float32)
    image = 30 + 120 * cols / w + 40 * rows / h
    blobs = np.zeros(shape, bool)
    for r, c in ((30, 40), (60, 100), (90, 160), (30, 170), (95, 30)):
        blobs |= (rows - r) ** 2 + (cols - c) ** 2 <= 5**2
    image[blobs] += 60
    return np.clip(image, 0, 255).astype(np.uint8), blobs


def test_rolling_ball_removes_the_ramp_and_keeps_the_blobs():
    image, blobs = gradient_with_blobs()
    flat = bone.subtract_background(image, radius=30, shrink=2, intensity_radius=180)
    background = ~blobs
    # interior background (away from the borders where the ball cannot roll in) is flattened to ~0
    inner = background.copy()
    inner[:10], inner[-10:], inner[:, :10], inner[:, -10:] = False, False, False, False
    assert np.percentile(flat[inner], 95) < 4.0
    assert float(image[inner].std()) > 25.0  # the ramp really was there
    # the blobs keep (most of) their 60 grey-level contrast
    assert float(np.median(flat[blobs])) > 40.0


def test_shrunk_estimate_is_close_to_the_exact_rolling_ball():
    image, _ = gradient_with_blobs()
    exact = np.clip(image - restoration.rolling_ball(image.astype(np.float32), kernel=restoration.ellipsoid_kernel((40, 40), 180)), 0, None)
    same = bone.subtract_background(image, radius=20, shrink=1, intensity_radius=180)
    assert np.allclose(same, exact, atol=1e-3)  # shrink=1 is scikit-image's rolling_ball itself
    fast = bone.subtract_background(image, radius=20, shrink=4, intensity_radius=180)
    assert float(np.abs(fast - exact).mean()) < 3.0


@pytest.mark.parametrize("variant", ["full", "crop"])
def test_preprocess_downscales_by_three_and_crops(variant):
    image = phantoms.phantom_panoramic(shape=(300, 600), seed=1)
    prepared = bone.preprocess(image, variant, size=(64, 128) if variant == "full" else (64, 64))
    assert prepared.image.dtype == np.uint8
    if variant == "full":
        assert prepared.image.shape == (100, 200)
        assert prepared.placement.box == (0, 0, 300, 600)
    else:
        assert prepared.image.shape == (100, 100)
        assert prepared.placement.box == (0, 150, 300, 450)  # centred square, in original pixels
    assert prepared.tensor.shape == ((1, 1, 64, 128) if variant == "full" else (1, 1, 64, 64))
    assert prepared.placement.shape == (300, 600)


def test_preprocess_refuses_bad_images():
    with pytest.raises(bone.BoneInputError):
        bone.preprocess(np.zeros((4, 4), np.uint8))
    with pytest.raises(bone.BoneInputError, match="uint8"):
        bone.preprocess(np.zeros((300, 600), np.uint16))


def test_efficientnet_b0_proper_and_the_slim_variant():
    full = bone.build_model(bone.make_spec())
    n_full = sum(p.numel() for p in full.parameters())
    slim = bone.build_model(bone.make_spec(width_mult=0.5, depth_mult=0.5))
    assert 3.9e6 < n_full < 4.1e6  # EfficientNet-B0 (4.0 M with a 2-class head, 1 input channel)
    assert sum(p.numel() for p in slim.parameters()) < n_full / 4
    assert slim(torch.randn(2, 1, 64, 96)).shape == (2, 2)


@pytest.mark.parametrize("variant", ["full", "crop"])
def test_diagnose_gives_probabilities_and_a_heat_map_in_original_pixels(variant):
    torch.manual_seed(0)
    spec = bone.make_spec(variant, size=(64, 64), width_mult=0.25, depth_mult=0.25)
    model = in_memory_model(bone.build_model(spec), spec)
    image = phantoms.phantom_panoramic("osteoporosis", shape=(150, 330))
    result = bone.diagnose(image, model)
    assert sum(result.probabilities.values()) == pytest.approx(1.0)
    assert result.diagnosis in bone.CLASSES
    assert result.heatmap.shape == (150, 330) and result.heatmap.dtype == np.float32
    assert 0.0 <= result.heatmap.min() and result.heatmap.max() <= 1.0
    if variant == "crop":  # nothing outside the square crop (cols 90..240)
        assert not result.heatmap[:, :85].any() and not result.heatmap[:, 245:].any()
    assert "rolling-ball" in result.notes[0]
