"""Site calibration: the cup outline scaled by one factor fitted on a site's expert-outlined photos."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.fundus.evaluate import vertical_ratio
from engine.fundus.site_calibration import (
    CalibrationError,
    SiteCalibration,
    apply_calibration,
    fit_calibration,
    load_calibration,
    main,
    save_calibration,
    scale_cup,
)


def _circles(shape=(200, 260), centre=(90, 140), r_disc=50, r_cup=20, cup_shift=(0, 0)):
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    disc = (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= r_disc**2
    cup = (rows - centre[0] - cup_shift[0]) ** 2 + (cols - centre[1] - cup_shift[1]) ** 2 <= r_cup**2
    return disc, cup


@pytest.mark.parametrize("factor", [0.5, 0.8, 1.25, 1.6])
def test_scale_cup_scales_about_the_cup_centroid(factor):
    disc, cup = _circles(cup_shift=(5, -8))
    out = scale_cup(disc, cup, factor)
    assert vertical_ratio(disc, out) == pytest.approx(factor * vertical_ratio(disc, cup), abs=0.03)
    before, after = np.argwhere(cup).mean(axis=0), np.argwhere(out).mean(axis=0)
    assert np.allclose(before, after, atol=1.0)
    assert not (out & ~disc).any()


def test_scale_cup_stays_inside_the_disc_and_keeps_an_empty_cup_empty():
    disc, cup = _circles()
    assert (scale_cup(disc, cup, 2.9) == disc).mean() > 0.999
    assert not scale_cup(disc, np.zeros_like(cup), 1.3).any()


def _site_tree(root, n=6, expert_scale=1.25):
    """Synthetic fundi whose 'experts' drew every cup ``expert_scale`` x the cup the analysis finds with the
    colour oracle (on these small JPEGs the oracle's cup is itself a little smaller than the drawn one)."""
    import cv2

    from engine.fundus import analyse_disc, label_mask
    from engine.fundus.datasets import discover, load_case
    from fundus_helpers import ColourOracle, write_gamma_tree

    write_gamma_tree(root, n=n, size=(240, 240))
    for case in discover(root):
        found = analyse_disc(load_case(case)[0], segmenter=ColourOracle())
        cup = scale_cup(found.disc_mask, found.cup_mask, expert_scale)
        cv2.imwrite(str(root / "Disc_Cup_Mask" / f"{case.image.stem}.png"), label_mask(found.disc_mask, cup))


def test_fit_finds_the_scale_the_site_experts_draw_with(tmp_path, oracle):
    from engine.fundus.datasets import discover

    _site_tree(tmp_path / "site")
    cases = discover(tmp_path / "site")
    progress = []
    cal = fit_calibration(cases, "site A", segmenter=oracle, progress=lambda f, m: progress.append(f))
    assert cal.cup_scale == pytest.approx(1.25, abs=0.03)
    assert cal.fitted["vcdr_mae"]["before"] > 0.08 and cal.fitted["vcdr_mae"]["after"] < 0.015
    assert cal.fitted["vcdr_bias"]["before"] < -0.05
    assert cal.fitted["dice_cup"]["after"] > cal.fitted["dice_cup"]["before"]
    assert len(cal.photos) == 6 and cal.segmenter_sha256 == oracle.sha256
    assert progress[-1] == 1.0


def test_fit_refuses_too_few_photos(tmp_path, oracle):
    from engine.fundus.datasets import discover

    _site_tree(tmp_path / "site", n=3)
    with pytest.raises(CalibrationError, match="at least 5"):
        fit_calibration(discover(tmp_path / "site"), "small", segmenter=oracle)


def _calibration(scale=1.25, sha="colour-oracle"):
    return SiteCalibration("site A", scale, ("a", "b"), sha, {"vcdr_mae": {"before": 0.1, "after": 0.02}}, "now")


def test_applied_calibration_redraws_the_cup_and_measures_it_again(oracle):
    from engine.fundus import analyse_disc
    from engine.synthetic import synthetic_fundus

    f = synthetic_fundus((320, 320), cdr=0.4, eye="OD", seed=3)
    plain = analyse_disc(f.image, eye="OD", segmenter=oracle)
    cal = apply_calibration(plain, _calibration())
    assert cal.site_calibration.cup_scale == 1.25 and plain.site_calibration is None
    assert cal.biomarkers.vcdr == pytest.approx(vertical_ratio(cal.disc_mask, cal.cup_mask), abs=1e-6)
    assert cal.biomarkers.vcdr == pytest.approx(1.25 * plain.biomarkers.vcdr, abs=0.03)
    assert cal.biomarkers.cup_area_px2 > 1.4 * plain.biomarkers.cup_area_px2
    assert cal.biomarkers.eye == "OD" and cal.biomarkers.isnt is not None
    assert (cal.disc_mask == plain.disc_mask).all()
    assert apply_calibration(plain, None) is plain


def test_a_calibration_for_other_weights_is_refused(oracle):
    from engine.fundus import analyse_disc
    from engine.synthetic import synthetic_fundus

    plain = analyse_disc(synthetic_fundus((320, 320), cdr=0.4, seed=1).image, segmenter=oracle)
    with pytest.raises(CalibrationError, match="fit it again"):
        apply_calibration(plain, _calibration(sha="0123456789abcdef"))


def test_not_found_results_pass_through(oracle):
    from engine.fundus import analyse_disc
    from fundus_helpers import ColourOracle
    from engine.synthetic import synthetic_fundus

    missing = analyse_disc(synthetic_fundus((320, 320), seed=2).image, segmenter=ColourOracle(empty=True))
    assert not missing.found and apply_calibration(missing, _calibration()) is missing


def test_file_round_trip_and_bad_files(tmp_path):
    path = tmp_path / "site.json"
    save_calibration(_calibration(), path)
    assert load_calibration(path) == _calibration()
    assert json.loads(path.read_text())["photos"] == ["a", "b"]
    bad = {"not json": "{", "other format": json.dumps({"format": "x"}),
           "missing field": json.dumps({"format": "glaucoma-viewer site calibration 1", "name": "x"}),
           "scale": _calibration(scale=7.0).to_json()}
    for name, text in bad.items():
        (tmp_path / "bad.json").write_text(text)
        with pytest.raises(CalibrationError, match="bad.json"):
            load_calibration(tmp_path / "bad.json")
    with pytest.raises(CalibrationError, match="cannot read"):
        load_calibration(tmp_path / "absent.json")


def test_cli_fits_writes_and_reports(tmp_path, oracle, monkeypatch, capsys):
    import engine.fundus.segmenter as segmenter

    monkeypatch.setattr(segmenter, "load_segmenter", lambda weights=None: oracle)
    _site_tree(tmp_path / "site")
    out = tmp_path / "out" / "site.json"
    out.parent.mkdir()
    assert main(["--data", str(tmp_path / "site"), "--name", "A", "--out", str(out)]) == 0
    assert load_calibration(out).cup_scale == pytest.approx(1.25, abs=0.03)
    assert "cup outline x1.2" in capsys.readouterr().out
    (tmp_path / "site" / "0002" / "0002.jpg").write_bytes(b"\xff\xd8 truncated")  # one unreadable photo: said, skipped
    assert main(["--data", str(tmp_path / "site"), "--name", "A", "--out", str(out)]) == 0
    assert "skipped" in capsys.readouterr().err and len(load_calibration(out).photos) == 5
    assert main(["--data", str(tmp_path / "site"), "--name", "A", "--out", str(out), "--cases", "nope"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope" in err[0]
