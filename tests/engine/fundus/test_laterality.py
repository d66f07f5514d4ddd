"""engine.fundus.laterality: the eye from the disc's side of the field of view, and when nothing is said."""

from types import SimpleNamespace as NS

import pytest

from engine.fundus.laterality import SIDE_OFFSET, disc_offset, eye_conflict, eye_from_disc

FOV = NS(fov_center=(500.0, 600.0), fov_radius_px=400.0, fov_fraction=0.8)


@pytest.mark.parametrize("col_offset,row_offset,eye", [(0.5, 0.0, "OD"), (-0.5, 0.1, "OS"), (0.0, 0.0, "unknown"),
                                                       (SIDE_OFFSET - 0.01, 0.0, "unknown"),
                                                       (SIDE_OFFSET + 0.01, -0.2, "OD"),
                                                       (-0.5, 0.5, "unknown")])  # far off the meridian
def test_the_disc_on_the_photos_right_is_a_right_eye(col_offset, row_offset, eye):
    center = (500.0 + 400.0 * row_offset, 600.0 + 400.0 * col_offset)
    assert disc_offset(center, FOV) == pytest.approx((row_offset, col_offset))
    assert eye_from_disc(center, FOV) == eye


def test_nothing_is_said_without_a_field_of_view_to_measure_from():
    crop = NS(fov_center=(500.0, 600.0), fov_radius_px=400.0, fov_fraction=1.0)  # no black border: a crop
    assert disc_offset((500.0, 900.0), crop) is None and eye_from_disc((500.0, 900.0), crop) == "unknown"
    none = NS(fov_center=(0.0, 0.0), fov_radius_px=0.0, fov_fraction=0.5)
    assert eye_from_disc((500.0, 900.0), none) == "unknown"


def test_an_eye_given_against_the_discs_side_is_said():
    assert eye_conflict("OD", "OS") == ("the disc lies on the photo's left, as in a left eye (OS), but the eye given "
                                        "is OD: check the eye")
    assert eye_conflict("OS", "OD").startswith("the disc lies on the photo's right, as in a right eye (OD)")
    assert eye_conflict("OD", "OD") == eye_conflict("unknown", "OS") == eye_conflict("OS", "unknown") == ""
