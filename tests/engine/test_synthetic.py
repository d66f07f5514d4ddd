import numpy as np
import pytest

from engine.synthetic import (
    BOUNDARY_NAMES,
    synthetic_bscan,
    synthetic_exam,
    synthetic_fundus,
    synthetic_volume,
    write_gamma_exam,
)


@pytest.mark.parametrize("cdr", [0.3, 0.55, 0.8])
def test_fundus_masks_match_requested_ratio(cdr):
    f = synthetic_fundus((256, 320), cdr=cdr, seed=1)
    assert f.image.shape == (256, 320, 3) and f.image.dtype == np.uint8
    assert not (f.cup_mask & ~f.disc_mask).any()
    rows_disc = np.flatnonzero(f.disc_mask.any(axis=1))
    rows_cup = np.flatnonzero(f.cup_mask.any(axis=1))
    measured = (np.ptp(rows_cup) + 1) / (np.ptp(rows_disc) + 1)
    assert abs(measured - cdr) < 0.05
    assert f.image[f.cup_mask].mean() > f.image[~f.disc_mask].mean()  # the cup is the palest


def test_fundus_is_deterministic_and_laterality_moves_disc():
    a = synthetic_fundus(seed=4, eye="OD")
    assert np.array_equal(a.image, synthetic_fundus(seed=4, eye="OD").image)
    b = synthetic_fundus(seed=4, eye="OS")
    assert a.disc_center[1] > 256 > b.disc_center[1]


def test_bscan_boundaries_ordered_and_layers_visible():
    scan = synthetic_bscan((200, 128), rnfl_px=15, seed=2)
    assert scan.boundaries.shape == (len(BOUNDARY_NAMES), 128)
    assert (np.diff(scan.boundaries, axis=0) >= 0).all()
    col = 5
    ilm = int(np.ceil(scan.boundaries[0, col]))
    assert scan.image[ilm + 2 : ilm + 8, col - 3 : col + 3].mean() > 2 * scan.image[: ilm - 10, col - 3 : col + 3].mean()


def test_volume_rnfl_thins_with_grade():
    thickness = []
    for grade in (0, 1, 2):
        vol = synthetic_volume(4, (200, 96), grade=grade, seed=0)
        assert vol.volume.shape == (4, 200, 96) and vol.volume.dtype == np.uint8
        thickness.append(float(np.mean(vol.boundaries[:, 1] - vol.boundaries[:, 0])))
    assert thickness[0] > thickness[1] > thickness[2]
    with pytest.raises(ValueError):
        synthetic_volume(2, grade=3)


def test_exam_is_marked_synthetic_with_geometry(tmp_path):
    exam = synthetic_exam(grade=1, n_bscans=5, fundus_shape=(128, 128), bscan_shape=(64, 48), seed=7)
    assert exam.is_synthetic and exam.exam_id.startswith("SYNTH")
    assert exam.modalities == ("fundus", "oct")
    assert exam.bscan_positions.shape == (5, 2, 2)
    assert not exam.oct_spacing.is_physical
    folder = write_gamma_exam(tmp_path, exam)
    assert (folder / f"{exam.exam_id}.jpg").is_file()
    assert sorted(p.name for p in (folder / exam.exam_id).iterdir())[:2] == ["0_image.jpg", "1_image.jpg"]
