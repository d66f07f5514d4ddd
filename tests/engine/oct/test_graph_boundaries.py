"""The training-free boundary finder on synthetic B-scans with known boundaries."""

from __future__ import annotations

import numpy as np
import pytest

from engine.oct import BOUNDARY_NAMES
from engine.oct.graph_boundaries import box_edge, edge_cost, find_boundaries, shortest_paths
from engine.oct.labels import labels_from_boundaries
from engine.progress import CancelToken, Cancelled
from engine.synthetic import synthetic_bscan, synthetic_volume


@pytest.fixture(scope="module")
def volume():
    return synthetic_volume(6, (248, 256), grade=1, seed=7)


@pytest.fixture(scope="module")
def found(volume):
    return find_boundaries(volume.volume, workers=1)


def test_mean_boundary_error_under_2px(volume, found):
    assert found.shape == volume.boundaries.shape == (6, len(BOUNDARY_NAMES), 256)
    err = np.abs(found - volume.boundaries).mean(axis=(0, 2))  # per boundary, px
    assert err.max() < 2.0, dict(zip(BOUNDARY_NAMES, err.round(2)))
    assert err[0] < 1.0 and err[1] < 1.5  # ILM and NFL/GCL: the RNFL boundaries


@pytest.mark.parametrize("grade", [0, 2])
def test_rnfl_thickness_follows_grade(grade):
    vol = synthetic_volume(2, (248, 256), grade=grade, seed=11)
    b = find_boundaries(vol.volume, workers=1)
    truth = (vol.boundaries[:, 1] - vol.boundaries[:, 0]).mean()
    assert abs((b[:, 1] - b[:, 0]).mean() - truth) < 1.5


def test_boundaries_ordered_in_every_column(found):
    assert np.isfinite(found).all()
    assert (np.diff(found, axis=1) >= 0).all()


def test_labels_never_decrease_down_a_column(found):
    labels = labels_from_boundaries(found, 248)
    assert labels.dtype == np.uint8 and labels.shape == (6, 248, 256)
    assert labels.max() == 8 and labels.min() == 0
    assert (np.diff(labels.astype(np.int16), axis=1) >= 0).all()


def test_single_bscan_and_other_size_and_colour():
    scan = synthetic_bscan((400, 300), rnfl_px=30, seed=2, tilt=10)
    b = find_boundaries(scan.image)
    assert b.shape == (9, 300)
    err = np.abs(b - scan.boundaries).mean(axis=1)
    assert err.mean() < 2.0 and err.max() < 3.0  # EZ/RPE (a faint 215 -> 240 step) is the hardest
    rgb = np.repeat(scan.image[..., None], 3, axis=2)
    assert np.array_equal(find_boundaries(rgb), b)


def test_physical_axial_scale_accepted(volume):
    b = find_boundaries(volume.volume[:2], axial_um=3.9, workers=1)
    assert np.abs(b - volume.boundaries[:2]).mean() < 2.0


def test_shortest_path_follows_a_known_line_and_respects_band():
    h, w = 40, 60
    truth = (20 + 5 * np.sin(np.linspace(0, 3, w))).round().astype(int)
    cost = np.ones((1, h, w), np.float32)
    cost[0, truth, np.arange(w)] = 0
    lo, hi = np.zeros((1, w), np.int32), np.full((1, w), h - 1, np.int32)
    assert np.array_equal(shortest_paths(cost, lo, hi, max_jump=2)[0], truth)
    band = shortest_paths(cost, lo, np.full((1, w), 10, np.int32), max_jump=2)[0]
    assert band.max() <= 10


def test_edge_polarity():
    img = np.zeros((1, 30, 8), np.float32)
    img[0, 15:] = 100  # dark above, bright below: a dark-to-bright edge at row 15
    rows = np.argmin(edge_cost(box_edge(img, 2), +1)[0], axis=0)
    assert (rows == 15).all()
    assert edge_cost(box_edge(img, 2), -1)[0, 15].min() == 1.0  # no bright-to-dark edge there


def test_bad_shape_and_cancel():
    with pytest.raises(ValueError, match="B-scans"):
        find_boundaries(np.zeros((4, 4), np.uint8))
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        find_boundaries(np.zeros((3, 64, 64), np.uint8), cancel=token, workers=1)
