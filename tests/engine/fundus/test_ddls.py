import numpy as np
import pytest

from engine.fundus.biomarkers import compute_biomarkers
from engine.fundus.ddls import RIM_ABSENT_BELOW, ddls, disc_size, rim_absent_degrees, stage
from engine.io.exam import Spacing

# The published table, one row per stage: (small, average, large) disc. A float is a rim / disc ratio inside the
# row's band with some rim left everywhere; an int is an extent (degrees) of absent rim; None: no such stage.
TABLE = {
    1: (0.55, 0.45, 0.35),
    2: (0.45, 0.35, 0.25),
    3: (0.35, 0.25, 0.15),
    4: (0.25, 0.15, 0.05),
    5: (0.15, 0.05, 30),
    6: (0.05, 30, 60),
    7: (30, 60, 120),
    8: (60, 120, 200),
    9: (120, 200, 300),
    10: (200, 300, None),
}


CELLS = [(expected, size, value) for expected, row in TABLE.items()
         for size, value in zip(("small", "average", "large"), row) if value is not None]


@pytest.mark.parametrize("expected, size, value", CELLS)
def test_every_cell_of_the_published_table(expected, size, value):
    if isinstance(value, float):
        assert stage(value, 0.0, size) == expected
    else:
        assert stage(0.0, float(value), size) == expected


@pytest.mark.parametrize("ratio, absent, size, expected", [
    (0.4, 0.0, "average", 1), (0.3999, 0.0, "average", 2), (0.1, 0.0, "large", 3), (0.0999, 0.0, "large", 4),
    (0.0, 2.0, "average", 6), (0.0, 45.0, "average", 6), (0.0, 46.0, "average", 7), (0.0, 90.0, "small", 8),
    (0.0, 180.0, "small", 9), (0.0, 182.0, "small", 10), (0.0, 270.0, "average", 9), (0.0, 272.0, "average", 10),
    (0.0, 360.0, "large", 9),
])
def test_band_edges(ratio, absent, size, expected):
    assert stage(ratio, absent, size) == expected


def test_disc_size_by_vertical_diameter():
    assert [disc_size(v) for v in (1.2, 1.49, 1.5, 2.0, 2.01)] == ["small", "small", "average", "average", "large"]
    assert disc_size(None) is None and disc_size(float("nan")) is None


def test_absent_extent_counts_the_rays_without_rim():
    profile = np.full(180, 0.3)
    profile[10:30] = 0.0
    profile[100] = RIM_ABSENT_BELOW * 0.9
    profile[101] = RIM_ABSENT_BELOW
    assert rim_absent_degrees(profile) == pytest.approx(42.0)
    assert rim_absent_degrees(np.zeros(0)) == 0.0


def test_unknown_size_gives_the_range_and_a_known_size_one_stage():
    profile = np.full(90, 0.25)
    unknown = ddls(profile)
    assert (unknown.stage, unknown.lowest, unknown.highest, unknown.disc_size) == (None, 2, 4, None)
    known = ddls(profile, disc_vertical_mm=1.8)
    assert (known.stage, known.lowest, known.highest, known.disc_size) == (3, 3, 3, "average")
    wide = ddls(np.full(90, 0.6))
    assert (wide.stage, wide.lowest, wide.highest) == (None, 1, 1)  # stage 1 whatever the size


def _disc_with_a_notch(notch_deg: float):
    """A 40 px disc whose cup (20 px) reaches the disc's edge in a wedge of ``notch_deg`` to the photo's right."""
    rows, cols = np.ogrid[:200, :200]
    dr, dc = rows - 100, cols - 100
    disc = dr**2 + dc**2 <= 40**2
    angle = np.degrees(np.arctan2(-dr, dc))
    cup = (dr**2 + dc**2 <= 20**2) | (disc & (np.abs(angle) < notch_deg / 2))
    return disc, cup


def test_biomarkers_stage_a_notched_disc_and_only_with_a_known_scale():
    disc, cup = _disc_with_a_notch(60.0)
    b = compute_biomarkers(disc, cup)
    assert b.rim_absent_deg == pytest.approx(60.0, abs=6.0) and b.rim_to_disc == 0.0
    assert (b.ddls_min, b.ddls_max, b.ddls_stage, b.disc_size) == (6, 8, None, None)  # large 6, small 8
    assumed = compute_biomarkers(disc, cup, spacing=Spacing((0.02, 0.02), "assumed"))
    assert assumed.ddls_stage is None and assumed.ddls_min == 6
    average = compute_biomarkers(disc, cup, spacing=Spacing((0.02, 0.02), "file"))  # 81 px = 1.62 mm
    assert (average.disc_size, average.ddls_stage, average.ddls_min, average.ddls_max) == ("average", 7, 7, 7)
    large = compute_biomarkers(disc, cup, spacing=Spacing((0.03, 0.03), "user"))  # 2.43 mm
    assert (large.disc_size, large.ddls_stage) == ("large", 6)
    whole = compute_biomarkers(disc, _disc_with_a_notch(0.0)[1])  # rim 20 / 80 all round
    assert whole.rim_absent_deg == 0.0 and (whole.ddls_min, whole.ddls_max) == (2, 4)
    d = whole.to_dict()
    assert d["ddls_min"] == 2 and "ddls_stage" not in d and "disc_size" not in d
