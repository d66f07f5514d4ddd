"""Label maps: from boundaries, from Cirrus masks, from VGG / makesense polygon JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.oct import BOUNDARY_NAMES
from engine.oct.labels import (
    AnnotationError, boundaries_from_labels, cirrus_mask_to_labels, from_channel_order, label_index,
    labels_from_boundaries, merged_note, monotone, polygons_to_mask, read_polygon_annotations,
)


def test_labels_round_trip_boundaries():
    w, h = 20, 50
    b = np.stack([np.full(w, 5 + 4 * k, np.float32) for k in range(9)])
    lab = labels_from_boundaries(b, h)
    assert lab[4, 0] == 0 and lab[5, 0] == 1 and lab[9, 0] == 2 and lab[h - 1, 0] == 8
    back = boundaries_from_labels(lab)
    assert np.array_equal(back[:8], b[:8]) and np.isnan(back[8]).all()


def test_missing_boundary_merges_into_upper_label_and_is_said():
    b = np.stack([np.full(10, 5 + 4 * k, np.float32) for k in range(9)])
    b[2:5] = np.nan  # only ILM, NFL/GCL, ONL/EZ ... found
    lab = labels_from_boundaries(b, 50)
    assert set(np.unique(lab[:, 0])) == {0, 1, 2, 6, 7, 8}
    assert (lab[9:25, 0] == 2).all()  # GCL+IPL .. ONL merged, labelled 2
    note = merged_note({name: np.isfinite(b[k]).all() for k, name in enumerate(BOUNDARY_NAMES)})
    assert "GCL+IPL+INL+OPL+ONL labelled 2" in note
    assert merged_note({name: True for name in BOUNDARY_NAMES}) is None


@pytest.mark.parametrize("volume", [False, True], ids=["bscan", "volume"])
def test_labels_match_the_per_pixel_definition(volume):
    """Any boundaries (unordered, fractional, NaN, outside the scan): the label of pixel (r, c) is the highest
    k + 1 whose boundary k was found (with the ILM) and ceil(row) <= r, else 0."""
    rng = np.random.default_rng(3)
    for trial in range(60):
        n, h, w = int(rng.integers(1, 4)), int(rng.integers(1, 30)), int(rng.integers(1, 12))
        b = rng.uniform(-4.0, h + 4.0, (n, 9, w)).astype(np.float32)
        if trial % 2:
            b = np.sort(b, axis=1)
        b[rng.random(b.shape) < 0.15] = np.nan
        if trial % 3 == 0:
            b = np.round(b)
        expected = np.zeros((n, h, w), np.uint8)
        for i, r, c in np.ndindex(n, h, w):
            if np.isfinite(b[i, 0, c]):
                tops = [k + 1 for k in range(8) if np.isfinite(b[i, k, c]) and np.ceil(b[i, k, c] - 1e-3) <= r]
                expected[i, r, c] = max(tops, default=0)
        got = labels_from_boundaries(b if volume else b[0], h)
        assert np.array_equal(got, expected if volume else expected[0]), trial


def test_cirrus_convention():
    col = np.array([240] * 3 + [0, 0, 30, 60, 90, 120, 150, 180, 210] + [240] * 4, np.uint8)
    lab = cirrus_mask_to_labels(np.repeat(col[:, None], 3, axis=1))
    assert lab[:, 0].tolist() == [0, 0, 0, 1, 1, 2, 3, 4, 5, 6, 6, 7, 8, 8, 8, 8]
    with pytest.raises(ValueError, match="Cirrus"):
        cirrus_mask_to_labels(np.full((4, 4), 17, np.uint8))


def test_channel_order_and_aliases():
    assert label_index(" RNFL ") == 1 and label_index("GCL-IPL") == 2 and label_index("Ellipsoid Zone") == 6
    with pytest.raises(AnnotationError, match="unknown layer"):
        label_index("cornea")
    mapped = from_channel_order(np.array([[0, 1, 2]]), ("background", "ONL", "NFL"))
    assert mapped.tolist() == [[0, 5, 1]]


def test_monotone():
    lab = np.array([[0], [2], [1], [3]], np.uint8)
    assert monotone(lab)[:, 0].tolist() == [0, 2, 2, 3]


def test_vgg_makesense_json(tmp_path):
    doc = {"scan1.png123": {"filename": "scan1.png", "size": 123, "regions": [
        {"shape_attributes": {"name": "polygon", "all_points_x": [0, 9, 9, 0], "all_points_y": [2, 2, 5, 5]},
         "region_attributes": {"label": "NFL"}},
        {"shape_attributes": {"name": "polygon", "all_points_x": [0, 9, 9, 0], "all_points_y": [5, 5, 9, 9]},
         "region_attributes": {"layer": "GCL+IPL"}},
    ]}}
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(doc))
    polys = read_polygon_annotations(path)
    mask = polygons_to_mask(polys["scan1.png"], (12, 10))
    assert mask[3, 4] == 1 and mask[7, 4] == 2 and mask[0, 0] == 0 and mask[5, 4] == 2  # deeper wins the edge
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"a": {"filename": "a.png", "regions": [
        {"shape_attributes": {"name": "rect", "x": 0}, "region_attributes": {"label": "NFL"}}]}}))
    with pytest.raises(AnnotationError, match="polygons"):
        read_polygon_annotations(bad)
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(AnnotationError, match="JSON"):
        read_polygon_annotations(tmp_path / "junk.json")
