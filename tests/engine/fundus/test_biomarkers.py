import numpy as np
import pytest

from engine.fundus.biomarkers import compute_biomarkers
from engine.io.exam import Spacing


def ellipse(shape, center, axes):
    """(H, W) bool; axes = (vertical, horizontal) semi-axes px."""
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    return ((rows - center[0]) / axes[0]) ** 2 + ((cols - center[1]) / axes[1]) ** 2 <= 1.0


def test_vertical_ratio_is_cup_height_over_disc_height_not_a_box_corner():
    disc = ellipse((200, 200), (100, 100), (60, 50))  # 121 px tall
    cup = ellipse((200, 200), (90, 110), (30, 20))  # 61 px tall, shifted up and right
    b = compute_biomarkers(disc, cup)
    assert b.disc_height_px == 121 and b.cup_height_px == 61
    assert b.vcdr == pytest.approx(61 / 121)
    assert b.hcdr == pytest.approx(41 / 101)
    # a bounding-box-corner reading (cup bottom row / disc bottom row) would give about 0.75
    assert abs(b.vcdr - 120 / 160) > 0.2


def test_areas_rim_and_centroids():
    disc = ellipse((200, 200), (100, 100), (50, 50))
    cup = ellipse((200, 200), (100, 100), (25, 25))
    b = compute_biomarkers(disc, cup)
    assert b.disc_area_px2 == disc.sum() and b.cup_area_px2 == cup.sum()
    assert b.rim_area_px2 == disc.sum() - cup.sum()
    assert b.area_cdr == pytest.approx(cup.sum() / disc.sum())
    assert b.centroid_distance_px == pytest.approx(0.0, abs=1e-6)
    assert b.cup_eccentricity < 0.1
    for width in (b.rim_inferior_px, b.rim_superior_px):
        assert width == pytest.approx(25, abs=1.5)
    assert b.rim_to_disc == pytest.approx(25 / 101, abs=0.02)


def test_isnt_needs_the_eye_and_nasal_follows_laterality():
    disc = ellipse((200, 200), (100, 100), (50, 50))
    cup = ellipse((200, 200), (95, 85), (25, 25))  # shifted up (thin superior rim) and left
    unknown = compute_biomarkers(disc, cup)
    assert unknown.isnt is None and unknown.isnt_rule == "unknown"
    assert unknown.rim_nasal_px is None and unknown.rim_temporal_px is None
    assert "rim_nasal_px" not in unknown.to_dict() and unknown.to_dict()["isnt_rule"] == "unknown"
    od = compute_biomarkers(disc, cup, eye="OD")  # nasal = image right (the wide rim here)
    os_ = compute_biomarkers(disc, cup, eye="OS")
    assert od.rim_nasal_px > od.rim_temporal_px
    assert os_.rim_nasal_px == pytest.approx(od.rim_temporal_px)
    assert od.rim_inferior_px > od.rim_superior_px
    assert od.isnt is False  # superior (thin) < nasal: the rule does not hold
    assert od.isnt_rule == "violated"


def test_isnt_holds_for_a_typical_right_eye_cup():
    disc = ellipse((300, 300), (150, 150), (90, 70))  # a vertically oval disc
    cup = ellipse((300, 300), (147, 145), (30, 30))  # slightly superior and temporal (left on a right eye)
    b = compute_biomarkers(disc, cup, eye="OD")
    assert b.rim_inferior_px >= b.rim_superior_px >= b.rim_nasal_px >= b.rim_temporal_px
    assert b.isnt is True


def test_ist_drops_the_nasal_rim_from_the_rule():
    disc = ellipse((400, 400), (200, 200), (170, 130))  # tall disc: inferior and superior rims the widest
    cup = ellipse((400, 400), (200, 220), (60, 60))  # shifted nasally (right on a right eye): thin nasal rim
    b = compute_biomarkers(disc, cup, eye="OD")
    assert b.rim_nasal_px < b.rim_temporal_px <= b.rim_superior_px  # nasal thinner than temporal: ISNT fails
    assert b.isnt is False and b.ist is True and (b.isnt_rule, b.ist_rule) == ("violated", "holds")
    assert b.to_dict()["ist"] == 1.0 and b.to_dict()["ist_rule"] == "holds"
    unknown = compute_biomarkers(disc, cup)
    assert unknown.ist is None and "ist" not in unknown.to_dict() and unknown.to_dict()["ist_rule"] == "unknown"


def test_mm_only_with_physical_spacing():
    disc = ellipse((100, 100), (50, 50), (20, 20))
    cup = ellipse((100, 100), (50, 50), (10, 10))
    assert compute_biomarkers(disc, cup).disc_area_mm2 is None
    assumed = compute_biomarkers(disc, cup, spacing=Spacing((0.01, 0.01), "assumed"))
    assert assumed.disc_area_mm2 is None and assumed.spacing_source is None
    known = compute_biomarkers(disc, cup, spacing=Spacing((0.01, 0.02), "file"))
    assert known.disc_area_mm2 == pytest.approx(disc.sum() * 0.0002)
    assert known.disc_height_mm == pytest.approx(41 * 0.01)
    assert known.spacing_source == "file"


def test_cup_is_clipped_to_disc_and_empty_disc_raises():
    disc = ellipse((100, 100), (50, 50), (20, 20))
    cup = ellipse((100, 100), (50, 50), (30, 30))  # larger than the disc
    b = compute_biomarkers(disc, cup)
    assert b.cup_area_px2 == disc.sum() and b.vcdr == 1.0
    with pytest.raises(ValueError, match="empty"):
        compute_biomarkers(np.zeros((10, 10), bool), np.zeros((10, 10), bool))
    with pytest.raises(ValueError):
        compute_biomarkers(disc, cup[:50])


@pytest.mark.parametrize("eye, thinnest", [("OD", 180.0), ("OS", 0.0), ("unknown", 0.0)])
def test_rim_profile_is_even_for_a_centred_cup_and_thinnest_where_the_cup_leans(eye, thinnest):
    from engine.fundus.biomarkers import rim_to_disc_profile

    rows, cols = np.ogrid[:200, :240]
    disc = (rows - 100) ** 2 + (cols - 120) ** 2 <= 40**2
    centred = (rows - 100) ** 2 + (cols - 120) ** 2 <= 20**2
    angles, ratio = rim_to_disc_profile(disc, centred, eye)
    assert angles.shape == ratio.shape == (180,) and np.all(np.diff(angles) > 0) and 0 <= angles[0] < angles[-1] < 360
    assert ratio == pytest.approx(np.full(180, 20 / 80), abs=0.02)
    leaning = (rows - 100) ** 2 + (cols - 135) ** 2 <= 20**2  # towards the photo's right: nasal in a right eye
    angles, ratio = rim_to_disc_profile(disc, leaning, eye)
    gap = (angles[np.argmin(ratio)] - thinnest + 180) % 360 - 180  # the thin side is flat to a pixel or two
    there, opposite = (ratio[np.argmin(np.abs((angles - a + 180) % 360 - 180))] for a in (thinnest, thinnest + 180))
    assert abs(gap) <= 20 and there < 0.5 * opposite
    assert ratio.min() == pytest.approx(compute_biomarkers(disc, leaning, eye).rim_to_disc, abs=1e-6)
    with pytest.raises(ValueError, match="empty disc"):
        rim_to_disc_profile(np.zeros((5, 5), bool), np.zeros((5, 5), bool))
