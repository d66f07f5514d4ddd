"""Thickness maps, units, sector grids and the TSNIT profile; the analysis entry point."""

from __future__ import annotations

import numpy as np
import pytest

from engine.io.exam import Spacing
from engine.oct import analyse_oct
from engine.oct import thickness as th
from engine.oct.analyse import analyse_volume
from engine.synthetic import synthetic_exam, synthetic_volume


def test_layer_and_total_thickness():
    b = np.stack([np.full(5, 10 + 3 * k, np.float32) for k in range(9)])[None]
    assert np.allclose(th.layer_thickness(b), 3) and th.layer_thickness(b).shape == (1, 8, 5)
    assert np.allclose(th.total_retina(b), 21)  # ILM (10) to Bruch's membrane (31)
    table = th.thickness_table(b, scale=2.0)
    assert table.shape == (1, len(th.TABLE_COLUMNS)) and table[0, 0] == 6 and table[0, 8] == 42


@pytest.fixture(scope="module")
def exam():
    return synthetic_exam(1, n_bscans=12, bscan_shape=(248, 256), seed=3)


def test_px_unless_physical(exam):
    r = analyse_oct(exam)
    assert r.method == "graph-search" and r.unit == "px" and r.axial_um is None
    assert r.labels.shape == exam.oct.shape and r.rnfl_thickness.shape == (12, 256)
    assert "rnfl_mean_px" in r.biomarkers and not any(k.endswith("_um") for k in r.biomarkers)
    assert r.sectors == {} and any("assumed" in n for n in r.notes)
    exam.oct_spacing = Spacing(exam.oct_spacing.mm, "file")
    try:
        r_um = analyse_oct(exam)
    finally:
        exam.oct_spacing = Spacing(exam.oct_spacing.mm, "assumed")
    assert r_um.unit == "µm"
    axial_um = exam.oct_spacing.mm[1] * 1000
    assert np.allclose(r_um.rnfl_thickness, r.rnfl_thickness * axial_um, rtol=1e-5)
    assert r_um.biomarkers["rnfl_mean_um"] == pytest.approx(r.biomarkers["rnfl_mean_px"] * axial_um, rel=1e-5)


def test_rnfl_map_matches_truth():
    vol = synthetic_volume(4, (248, 256), grade=0, seed=5)
    r = analyse_volume(vol.volume)
    truth = vol.boundaries[:, 1] - vol.boundaries[:, 0]
    assert np.abs(r.rnfl_thickness - truth).mean() < 1.5


def test_etdrs_on_a_known_map():
    geo = th.Geometry(slice_mm=0.1, lateral_mm=0.1, eye="OD")
    rows, cols = np.mgrid[0:61, 0:61]
    m = np.where(cols < 30, 1.0, 2.0)  # left half 1, right half 2
    s = th.etdrs_sectors(m, (30, 30), geo)
    assert s["inner_temporal"] == 1.0 and s["inner_nasal"] == 2.0 and s["outer_temporal"] == 1.0
    assert 1.0 < s["inner_superior"] < 2.0
    s_os = th.etdrs_sectors(m, (30, 30), th.Geometry(0.1, 0.1, "OS"))
    assert s_os["inner_temporal"] == 2.0
    s_unknown = th.etdrs_sectors(m, (30, 30), th.Geometry(0.1, 0.1))
    assert s_unknown["inner_left"] == 1.0 and "inner_temporal" not in s_unknown


def test_tsnit_order_and_quadrants():
    geo = th.Geometry(slice_mm=0.05, lateral_mm=0.05, eye="OD")
    rows, cols = np.mgrid[0:101, 0:101]
    m = np.zeros((101, 101))
    m[rows < 40] = 3.0  # superior (towards B-scan 0)
    m[cols < 30] = 1.0  # temporal for OD = left
    angles, values = th.tsnit_profile(m, (50, 50), geo)
    assert values.shape == (256,) and np.isfinite(values).all()
    q = th.tsnit_quadrants(angles, values)
    assert q["temporal"] == pytest.approx(1.0) and q["nasal"] < 1.0 and q["superior"] > 2.0
    assert values[0] == 1.0 and values[128] == 0.0  # 0 deg temporal (left for OD), 180 deg nasal
    assert values[64] == pytest.approx(3.0) and values[192] == 0.0  # 90 deg superior, 270 deg inferior


def test_fovea_found_only_with_a_pit():
    m = np.full((20, 40), 300.0)
    assert th.find_fovea(m) is None
    m[8:12, 18:22] = 150.0
    r, c = th.find_fovea(m)
    assert 8 <= r <= 12 and 17 <= c <= 22


def test_sectors_with_physical_geometry():
    exam = synthetic_exam(0, n_bscans=12, bscan_shape=(248, 256), seed=1)
    exam.oct_spacing = Spacing((0.25, 0.0039, 0.0117), "file")  # 3 mm x 3 mm cube
    exam.eye = "OD"
    macula = analyse_oct(exam)
    assert macula.region == "macula" and macula.sector_grid == "ETDRS"
    assert np.isfinite(macula.sectors["central"]) and np.isfinite(macula.sectors["inner_temporal"])
    assert macula.sectors["central"] < macula.sectors["inner_temporal"]  # the synthetic pit thins the RNFL
    disc = analyse_oct(exam, region="disc")
    assert disc.sector_grid == "quadrants" and disc.tsnit.shape == (256,)
    assert set(disc.sectors) == {"temporal", "superior", "nasal", "inferior"}


def test_bad_arguments(exam):
    with pytest.raises(ValueError, match="method"):
        analyse_oct(exam, method="magic")
    with pytest.raises(ValueError, match="region"):
        analyse_volume(exam.oct[:3], Spacing((0.1, 0.004, 0.01), "file"), region="cornea")
