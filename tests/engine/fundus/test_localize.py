import numpy as np
import pytest

from engine.fundus.localize import locate_disc
from engine.synthetic import synthetic_fundus


@pytest.mark.parametrize("shape,eye,seed", [((512, 512), "OD", 0), ((480, 720), "OS", 1), ((900, 1200), "OD", 2)])
def test_finds_synthetic_disc(shape, eye, seed):
    f = synthetic_fundus(shape, cdr=0.5, eye=eye, seed=seed)
    loc = locate_disc(f.image)
    err = np.hypot(loc.center[0] - f.disc_center[0], loc.center[1] - f.disc_center[1])
    assert err < 0.6 * f.disc_radius_px
    assert 0.3 < loc.radius_px / f.disc_radius_px < 3.0
    assert loc.confidence > 0.5
    assert loc.candidates[0].center == loc.center


def test_black_border_and_padding_do_not_move_the_disc():
    f = synthetic_fundus((400, 400), cdr=0.4, eye="OD", seed=3)
    padded = np.zeros((400, 700, 3), np.uint8)
    padded[:, 150:550] = f.image
    loc = locate_disc(padded)
    assert abs(loc.center[0] - f.disc_center[0]) < 0.6 * f.disc_radius_px
    assert abs(loc.center[1] - (f.disc_center[1] + 150)) < 0.6 * f.disc_radius_px


def test_featureless_photo_gives_low_confidence_not_an_error():
    flat = np.full((300, 300, 3), 90, np.uint8)
    loc = locate_disc(flat)
    assert 0.0 <= loc.confidence < 0.5


def test_rejects_non_rgb():
    with pytest.raises(ValueError, match="RGB"):
        locate_disc(np.zeros((10, 10), np.uint8))


def test_a_grey_or_one_channel_photo_is_said_to_carry_no_colour():
    colour = synthetic_fundus((300, 360), cdr=0.5, seed=3).image
    grey = np.repeat(colour.mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2)
    green = np.zeros_like(colour)
    green[..., 1] = colour[..., 1]  # a red-free photo stored in the green channel
    assert not locate_disc(colour).monochrome
    assert locate_disc(grey).monochrome and locate_disc(green).monochrome


@pytest.mark.parametrize("shape", [(480, 560), (960, 1120)])  # the measure does not depend on the resolution
def test_a_blurred_photo_is_said_to_be_out_of_focus_but_not_a_crop(shape):
    import dataclasses

    import cv2

    from engine.fundus.localize import OUT_OF_FOCUS, out_of_focus

    sharp = synthetic_fundus(shape, cdr=0.5, seed=4).image
    blurred = cv2.GaussianBlur(sharp, (0, 0), 0.008 * shape[0])  # 0.8 % of the field of view's diameter
    a, b = locate_disc(sharp), locate_disc(blurred)
    assert a.sharpness > OUT_OF_FOCUS > b.sharpness and not out_of_focus(a) and out_of_focus(b)
    assert not out_of_focus(dataclasses.replace(b, fov_fraction=1.0))  # a crop without black border is not judged


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_without_colour_makes_the_grey_a_camera_without_colour_records(dtype):
    from engine.fundus.localize import is_monochrome, without_colour

    f = synthetic_fundus((120, 160), cdr=0.5, seed=1)
    rgb = f.image if dtype == np.uint8 else f.image.astype(np.float32) / 255
    fov = f.image.max(axis=2) > 10
    for kind in ("luma", "green"):
        grey = without_colour(rgb, kind)
        assert grey.shape == rgb.shape and grey.dtype == rgb.dtype
        assert np.array_equal(grey[..., 0], grey[..., 2]) and np.array_equal(grey[..., 1], grey[..., 2])
        assert is_monochrome((grey * (255 if dtype == np.float32 else 1)).astype(np.uint8), fov)
    assert np.array_equal(without_colour(rgb, "green")[..., 0], rgb[..., 1])
    pixel = np.array([[[200, 100, 50]]], dtype=np.uint8)
    assert int(without_colour(pixel)[0, 0, 0]) == round(0.299 * 200 + 0.587 * 100 + 0.114 * 50)
    with pytest.raises(ValueError, match="luma, green"):
        without_colour(rgb, "red")
