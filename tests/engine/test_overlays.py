"""Overlay images: the disc/cup outline check picture of ``segment --overlays``."""

import numpy as np
import pytest

from engine.overlays import CUP_COLOUR, DISC_COLOUR, disc_cup_overlay


@pytest.mark.parametrize("shape", [(300, 400), (400, 300)])
def test_disc_cup_overlay_draws_both_outlines_on_the_photo_and_the_enlarged_region(shape):
    h, w = shape
    photo = np.full((h, w, 3), 60, np.uint8)
    rows, cols = np.ogrid[:h, :w]
    r2 = (rows - 150) ** 2 + (cols - 120) ** 2
    disc, cup = r2 <= 30**2, r2 <= 12**2
    out = disc_cup_overlay(photo, disc, cup, (90.0, 60.0, 210.0, 180.0), height=256, caption="x.png")
    left_w = round(w * 256 / h)
    assert out.shape == (256, left_w + 256, 3) and out.dtype == np.uint8
    right = out[:, left_w:].astype(int)

    def near(colour):
        return (np.abs(right - np.array(colour)).sum(axis=2) < 60).sum()

    # the region is 120 px enlarged to 256: outlines of radius 64 and 25.6 px, each a few px wide
    disc_px, cup_px = near(DISC_COLOUR), near(CUP_COLOUR)
    assert cup_px > 2 * np.pi * 25.6 and disc_px / cup_px == pytest.approx(64 / 25.6, rel=0.25)
    assert (out[:, :left_w] != 60).any(axis=2).sum() > 0  # outlines and the region's box on the photo
    assert (out[230:, :60] == 255).all(axis=2).any()  # the caption, bottom left
    with pytest.raises(ValueError, match="empty disc region"):
        disc_cup_overlay(photo, disc, cup, (10, 10, 10, 40))
