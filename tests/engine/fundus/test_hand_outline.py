"""Outlines corrected by hand: polygons -> masks -> biomarkers measured again on the drawn outline."""

from __future__ import annotations

import numpy as np
import pytest

from engine.fundus import analyse_disc
from engine.fundus.evaluate import vertical_ratio
from engine.fundus.hand_outline import (
    HandOutlines,
    OutlineError,
    apply_outlines,
    outline_vertices,
    polygon_mask,
)
from engine.fundus.site_calibration import SiteCalibration, apply_calibration
from engine.io.exam import Exam
from engine.synthetic import synthetic_fundus


def _ellipse(centre, radii, n=48):
    """(n, 2) (row, col) vertices of an axis-aligned ellipse with (vertical, horizontal) ``radii``."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([centre[0] + radii[0] * np.sin(t), centre[1] + radii[1] * np.cos(t)], axis=1)


@pytest.fixture(scope="module")
def analysis():
    from fundus_helpers import ColourOracle

    f = synthetic_fundus((600, 800), cdr=0.4, eye="OD", seed=3)
    result = analyse_disc(f.image, eye="OD", segmenter=ColourOracle())
    assert result.found
    return result


@pytest.mark.parametrize("shape,radii", [((120, 160), (30, 30)), ((301, 257), (80, 40)), ((64, 64), (5, 9))])
def test_polygon_mask_fills_the_drawn_shape(shape, radii):
    centre = (shape[0] / 2, shape[1] / 2)
    mask = polygon_mask(_ellipse(centre, radii, n=180), shape)
    assert mask.shape == shape
    perimeter = np.pi * (3 * (radii[0] + radii[1]) - np.sqrt((3 * radii[0] + radii[1]) * (radii[0] + 3 * radii[1])))
    assert 0 <= mask.sum() - np.pi * radii[0] * radii[1] <= 0.6 * perimeter  # the edge's pixels are in
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    assert rows[-1] - rows[0] + 1 == pytest.approx(2 * radii[0], abs=1.5)
    assert cols[-1] - cols[0] + 1 == pytest.approx(2 * radii[1], abs=1.5)


def test_polygon_off_the_photo_is_cut():
    square = np.array([[-50, -50], [-50, 20], [20, 20], [20, -50]], float)  # corners (row, col)
    mask = polygon_mask(square, (40, 40))
    assert mask[:20, :20].all() and not mask[21:].any() and not mask[:, 21:].any()


def test_outline_vertices_round_trip_the_mask(analysis):
    vertices = outline_vertices(analysis.disc_mask, n=64)
    assert vertices.shape == (64, 2)
    again = polygon_mask(vertices, analysis.disc_mask.shape)
    dice = 2 * (again & analysis.disc_mask).sum() / (again.sum() + analysis.disc_mask.sum())
    assert dice > 0.98
    assert outline_vertices(np.zeros((10, 10), bool)).shape == (0, 2)


def test_drawn_cup_sets_the_ratio_and_is_clipped_to_the_disc(analysis):
    r, c = analysis.center
    disc_h = np.flatnonzero(analysis.disc_mask.any(axis=1)).size
    # a cup 0.7 of the disc's height, and wide enough to poke out of the disc sideways (clipped)
    cup = _ellipse((r, c), (0.35 * disc_h, 0.8 * disc_h), n=96)
    out = apply_outlines(analysis, HandOutlines(cup=cup))
    assert out.hand_outlined == ("cup",)
    assert (out.disc_mask == analysis.disc_mask).all()
    assert not (out.cup_mask & ~out.disc_mask).any()
    assert out.biomarkers.vcdr == pytest.approx(0.7, abs=2 / disc_h)  # the edge pixels: 1-2 px of a ~80 px disc
    assert out.biomarkers.vcdr == pytest.approx(vertical_ratio(out.disc_mask, out.cup_mask), abs=1e-6)
    assert out.biomarkers.eye == "OD" and analysis.hand_outlined == ()  # the input is not changed


def test_drawn_disc_keeps_the_segmenters_cup_inside_it(analysis):
    r, c = analysis.center
    disc_h = np.flatnonzero(analysis.disc_mask.any(axis=1)).size
    bigger = _ellipse((r, c), (0.75 * disc_h, 0.6 * disc_h), n=96)
    out = apply_outlines(analysis, HandOutlines(disc=bigger))
    assert out.hand_outlined == ("disc",)
    assert (out.cup_mask == analysis.cup_mask).all()  # the cup lay inside the old disc, so inside this one
    assert out.biomarkers.disc_area_px2 > 1.5 * analysis.biomarkers.disc_area_px2
    assert out.biomarkers.vcdr == pytest.approx(analysis.biomarkers.vcdr / 1.5, rel=0.05)
    assert out.center == pytest.approx(analysis.center, abs=2.0)
    top, left, bottom, right = out.crop_box
    assert bottom - top > analysis.crop_box[2] - analysis.crop_box[0]


def test_drawn_cup_replaces_a_calibrated_one_but_a_drawn_disc_keeps_it(analysis):
    calibration = SiteCalibration("Clinic A", 1.3, ("a",) * 5, analysis.weights_sha256, {}, "2026-11-24")
    calibrated = apply_calibration(analysis, calibration)
    r, c = analysis.center
    disc_h = np.flatnonzero(analysis.disc_mask.any(axis=1)).size
    with_cup = apply_outlines(calibrated, HandOutlines(cup=_ellipse((r, c), (0.2 * disc_h, 0.2 * disc_h))))
    assert with_cup.site_calibration is None
    with_disc = apply_outlines(calibrated, HandOutlines(disc=_ellipse((r, c), (0.6 * disc_h, 0.6 * disc_h))))
    assert with_disc.site_calibration is calibration and (with_disc.cup_mask == calibrated.cup_mask).all()


def test_unusable_outlines_are_refused_in_one_line(analysis):
    far = _ellipse((20, 20), (8, 8))  # in the photo's corner, outside the disc
    with pytest.raises(OutlineError, match="outside the disc"):
        apply_outlines(analysis, HandOutlines(cup=far))
    with pytest.raises(OutlineError, match="no area"):
        apply_outlines(analysis, HandOutlines(disc=np.array([[10, 10], [10, 30], [10, 50]], float)))
    with pytest.raises(OutlineError, match="outside the photo"):
        apply_outlines(analysis, HandOutlines(disc=_ellipse((-100, -100), (30, 30))))
    for bad in ([[1, 2], [3, 4]], [[1, 2, 3]] * 4, [[0, 0], [np.nan, 1], [2, 2]], "abc"):
        with pytest.raises(OutlineError):
            HandOutlines().replace("disc", bad)
    with pytest.raises(ValueError, match="unknown outline"):
        HandOutlines().replace("rim", far)
    from fundus_helpers import ColourOracle

    nothing = analyse_disc(synthetic_fundus((300, 300), cdr=0.5, seed=5).image, segmenter=ColourOracle(empty=True))
    with pytest.raises(OutlineError, match="outline both the disc and the cup"):
        apply_outlines(nothing, HandOutlines(cup=far), Exam("x", fundus=np.zeros((300, 300, 3), np.uint8)))
    with pytest.raises(OutlineError, match="outline both the disc and the cup"):  # no photo to draw them on
        apply_outlines(nothing, HandOutlines(disc=_ellipse((150, 150), (40, 40)), cup=far))


def test_both_outlines_drawn_where_the_segmenter_found_no_disc_make_the_result():
    from fundus_helpers import ColourOracle

    from engine.io.exam import Spacing

    photo = synthetic_fundus((300, 320), cdr=0.5, seed=5).image
    nothing = analyse_disc(photo, segmenter=ColourOracle(empty=True))
    drawn = HandOutlines(disc=_ellipse((150, 160), (40, 36), n=96), cup=_ellipse((150, 160), (20, 15), n=96))
    exam = Exam("x", eye="OS", fundus=photo, fundus_spacing=Spacing((0.01, 0.01), "user"))
    out = apply_outlines(nothing, drawn, exam)
    assert out.found and out.hand_outlined == ("disc", "cup") and out.disc_mask.shape == (300, 320)
    assert out.message.startswith("disc and cup outlined by hand: the segmenter found no disc (optic disc not found")
    assert out.biomarkers.vcdr == pytest.approx(41 / 81, abs=0.01) and out.biomarkers.eye == "OS"
    assert out.biomarkers.disc_area_mm2 == pytest.approx(out.biomarkers.disc_area_px2 * 1e-4)
    assert out.confidence == nothing.confidence and out.center == pytest.approx((150.5, 160.5), abs=1.0)


def test_no_outlines_leave_the_analysis_alone(analysis):
    assert apply_outlines(analysis, None) is analysis
    assert apply_outlines(analysis, HandOutlines()) is analysis
    both = HandOutlines().replace("disc", _ellipse((5, 5), (3, 3))).replace("cup", _ellipse((5, 5), (1, 1)))
    assert both.parts == ("disc", "cup") and both.describe() == "disc and cup outlines"
    assert both.replace("disc", None).describe() == "cup outline" and HandOutlines().describe() == ""
