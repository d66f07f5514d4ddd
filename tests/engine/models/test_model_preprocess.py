"""Preprocessing: fast OCT resampling in float32, crops with padding, maps back to the original."""

import numpy as np
import pytest

from engine.models.preprocess import (
    InputSpec,
    Placement,
    cut_box,
    map_to_original_2d,
    map_to_volume,
    prepare_disc,
    prepare_fundus,
    prepare_oct,
    resample_volume,
)

SPEC2 = InputSpec((32, 48), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


def test_resample_volume_keeps_values_and_is_float32():
    vol = np.full((40, 50, 60), 100, np.uint8)
    vol[20:] = 200
    out = resample_volume(vol, (8, 10, 12))
    assert out.shape == (8, 10, 12) and out.dtype == np.float32
    assert np.allclose(out[:4], 100) and np.allclose(out[-3:], 200)
    assert resample_volume(vol, (80, 10, 12)).shape == (80, 10, 12)  # upsampling slices too
    t = prepare_oct(vol, InputSpec((8, 10, 12), (0.3,), (0.2,))).tensor
    assert tuple(t.shape) == (1, 1, 8, 10, 12) and str(t.dtype) == "torch.float32"


def test_fundus_and_disc_tensors_and_padding():
    img = np.zeros((90, 120, 3), np.uint8)
    p = prepare_fundus(img, SPEC2)
    assert tuple(p.tensor.shape) == (1, 3, 32, 48) and p.placement.box == (0, 0, 90, 120)
    d = prepare_disc(img, (-10, 100, 30, 140), InputSpec((16, 16), (0.5,) * 3, (0.25,) * 3))
    assert tuple(d.tensor.shape) == (1, 3, 16, 16)
    crop = cut_box(np.ones((10, 10), np.uint8), (-2, -2, 3, 3))
    assert crop.shape == (5, 5) and crop[:2].sum() == 0 and crop[2:, 2:].all()


def test_maps_go_back_to_the_crop_box():
    cam = np.ones((4, 4), np.float32)
    out = map_to_original_2d(cam, Placement((90, 120), (-10, 100, 30, 140), (16, 16)))
    assert out.shape == (90, 120)
    assert out[:30, 100:].min() == pytest.approx(1) and out[30:].max() == 0 and out[:, :100].max() == 0
    vol = map_to_volume(np.linspace(0, 1, 4 * 2 * 3, dtype=np.float32).reshape(4, 2, 3), (10, 50, 70))
    assert vol.shape == (10, 50, 70) and vol.dtype == np.uint8 and vol[0].mean() < vol[-1].mean()
