import numpy as np
import pytest

from engine.fundus.crop import DEFAULT_MARGIN, crop_square, disc_box, map_to_image, square_box


def _disc(shape=(300, 400), center=(120, 260), r=40):
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    return (rows - center[0]) ** 2 + (cols - center[1]) ** 2 <= r * r


def test_disc_box_is_square_with_relative_margin():
    box = disc_box(_disc())
    top, left, bottom, right = box
    side = 81 * (1 + 2 * DEFAULT_MARGIN)
    assert bottom - top == pytest.approx(side) and right - left == pytest.approx(side)
    assert ((top + bottom) / 2, (left + right) / 2) == pytest.approx((120.5, 260.5))


def test_disc_box_empty_mask_raises():
    with pytest.raises(ValueError, match="empty"):
        disc_box(np.zeros((10, 10), bool))


@pytest.mark.parametrize("size", [64, 128, 256])
def test_crop_and_map_back_round_trip(size):
    disc = _disc()
    box = disc_box(disc, margin=0.5)
    crop = crop_square(disc.astype(np.float32), box, size)
    assert crop.shape == (size, size)
    back = map_to_image(crop, box, disc.shape) >= 0.5
    inter, union = (back & disc).sum(), (back | disc).sum()
    assert inter / union > 0.95
    assert not back[: int(box[0]) - 1].any()  # nothing outside the box


def test_crop_outside_photo_is_black_and_downsampling_keeps_mean():
    img = np.full((100, 100, 3), 200, np.uint8)
    crop = crop_square(img, square_box((0, 0), 100), 50)  # three quarters outside
    assert crop[:20, :20].max() == 0 and crop[-10:, -10:].min() > 150
    big = np.random.default_rng(0).integers(0, 255, (2000, 2000)).astype(np.uint8)
    small = crop_square(big, (0, 0, 2000, 2000), 100)
    assert abs(float(small.mean()) - float(big.mean())) < 2.0


def test_map_to_image_coarse_map_fills_box():
    cam = np.ones((7, 7), np.float32)
    out = map_to_image(cam, (10, 20, 50, 60), (100, 100))
    assert out[10:50, 20:60].min() == 1.0 and out.sum() == 40 * 40
