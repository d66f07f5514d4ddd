"""grade(): every fitting model runs, ensemble, CAMs, timings, progress, cancel, determinism."""

import numpy as np
import pytest

from engine.io.exam import Exam
from engine.models.ensemble import Ensemble
from engine.models.tiny import tiny_grader
from engine.pipeline import GradingError, grade, summarize
from engine.progress import CancelToken, Cancelled
from engine.results_csv import row_from_result
from engine.synthetic import synthetic_exam


@pytest.fixture(scope="module")
def exam():
    return synthetic_exam(2, n_bscans=12, fundus_shape=(160, 200), bscan_shape=(64, 72), seed=1)


@pytest.fixture(scope="module")
def ensemble():
    members = [
        tiny_grader(("fundus",), name="fundus", seed=0),
        tiny_grader(("fundus", "disc"), "add", name="two", seed=1),
        tiny_grader(("fundus", "disc", "oct"), "concat", name="three", seed=2),
        tiny_grader(("oct",), "add", name="oct", seed=3),
    ]
    return Ensemble("t", members, "vote", "prefer:fundus")


def test_full_exam_runs_every_model_and_explains_every_level(exam, ensemble):
    seen = []
    r = grade(exam, ensemble, device="cpu", progress=lambda f, m: seen.append(f))
    assert r.models_used == ["fundus", "two", "three", "oct"] and r.models_skipped == {}
    assert r.probabilities.shape == (3,) and np.isclose(r.probabilities.sum(), 1)
    assert r.grade_name in ("non", "early", "mid_advanced") and int(np.argmax(r.probabilities)) == r.grade
    for p in r.per_model.values():
        assert np.isclose(p.probabilities.sum(), 1)
    assert set(r.cams) == {"fundus", "disc", "oct"} and r.cams["oct"].model == "three"
    assert r.cams["oct"].heatmap.shape == exam.oct.shape and r.cams["fundus"].heatmap.shape == exam.fundus.shape[:2]
    assert {"models", "preprocess", "inference", "cam", "total"} <= set(r.timings)
    assert r.ensemble["votes"] is not None and sum(r.ensemble["votes"]) == 4
    assert r.disc_box is not None and r.disc_source
    assert seen == sorted(seen) and seen[-1] == 1.0
    assert summarize(r)["grade"] == r.grade_name
    row = row_from_result(r)
    assert "vcdr" in r.biomarkers  # the synthetic exam's scale is assumed: the DDLS range, no single stage
    assert row["ddls_stage"] == "" and 1 <= int(row["ddls_min"]) <= int(row["ddls_max"]) <= 10


def test_fundus_only_exam_skips_oct_models_and_says_so(exam, ensemble):
    fundus_only = Exam(exam_id="F", fundus=exam.fundus)
    r = grade(fundus_only, ensemble, device="cpu", cams=False)
    assert r.models_used == ["fundus", "two"] and set(r.models_skipped) == {"three", "oct"}
    assert "oct" in r.models_skipped["three"] and r.cams == {}


def test_no_fitting_model_is_a_clear_error(exam):
    with pytest.raises(GradingError, match="no grader fits"):
        grade(Exam(exam_id="O", oct=exam.oct), [tiny_grader(("fundus",))], device="cpu")


def test_deterministic_on_cpu(exam, ensemble):
    a = grade(exam, ensemble, device="cpu")
    b = grade(exam, ensemble, device="cpu")
    assert np.array_equal(a.probabilities, b.probabilities)
    assert all(np.array_equal(a.cams[k].heatmap, b.cams[k].heatmap) for k in a.cams)


@pytest.mark.parametrize("stop_at", [0.0, 0.05, 0.45, 0.55, 0.8])
def test_cancel_between_stages(exam, ensemble, stop_at):
    token = CancelToken()

    def progress(fraction, message):
        if fraction >= stop_at:
            token.cancel()

    with pytest.raises(Cancelled):
        grade(exam, ensemble, device="cpu", progress=progress, cancel=token)


def test_biomarker_feature_graders_need_the_analysis(exam):
    g = tiny_grader(("fundus",), name="needs_vcdr", extra_features=("vcdr",))
    with pytest.raises(GradingError, match="vcdr"):
        grade(exam, [g], device="cpu", analyses=False)


@pytest.mark.parametrize("method,tie", [("mean", "mean"), ("vote", "prefer:fundus"), ("vote", "higher"), ("vote", "lower")])
def test_every_ensemble_rule_combines_the_members_that_ran(exam, method, tie):
    from engine.models.ensemble import combine

    members = [tiny_grader(("fundus",), name="fundus", seed=4), tiny_grader(("fundus", "disc"), "concat", name="two", seed=5),
               tiny_grader(("disc",), "add", name="disc", seed=6), tiny_grader(("oct",), "concat", name="oct", seed=7)]
    r = grade(Exam(exam_id="F", fundus=exam.fundus), Ensemble("t", members, method, tie), device="cpu", cams=False)
    assert r.models_used == ["fundus", "two", "disc"] and set(r.models_skipped) == {"oct"}
    expected = combine({n: p.probabilities for n, p in r.per_model.items()}, method, tie)
    assert r.grade == expected.grade and np.allclose(r.probabilities, expected.probabilities)
    if method == "mean":
        assert np.allclose(r.probabilities, np.mean([p.probabilities for p in r.per_model.values()], axis=0))
    else:
        assert sum(r.ensemble["votes"]) == 3


def test_disc_crop_warning_when_the_crop_and_the_disc_analysis_disagree():
    from engine.fundus.analysis import DiscAnalysis
    from engine.pipeline import disc_crop_warning

    box = (100, 200, 300, 400)
    found = DiscAnalysis(True, 0.9, "", (150.0, 260.0))
    assert disc_crop_warning(found, box) is None
    assert disc_crop_warning(found, None) is None and disc_crop_warning(None, box) is None
    elsewhere = DiscAnalysis(True, 0.9, "", (350.0, 260.0))
    assert "does not hold the disc" in disc_crop_warning(elsewhere, box)
    missing = DiscAnalysis(False, 0.2, "optic disc not found", (150.0, 260.0))
    assert "no optic disc found" in disc_crop_warning(missing, box)


def test_grade_warns_when_the_disc_crop_misses_the_analysed_disc(exam, monkeypatch):
    import dataclasses

    import engine.fundus as fundus
    import engine.models.preprocess as pre
    from engine.fundus.analysis import analyse_disc

    h, w = exam.fundus.shape[:2]
    located = []
    real_locate = pre.locate_disc
    monkeypatch.setattr(pre, "locate_disc", lambda image: located.append(1) or real_locate(image))
    two = [tiny_grader(("fundus", "disc"), "add", name="two", seed=1)]
    agree = grade(exam, two, device="cpu", cams=False)
    assert not any("disc crop of the disc-level models" in m for m in agree.warnings), agree.warnings
    assert located == []  # the crop reuses the localisation the disc/cup analysis made of this photo
    assert grade(exam, two, device="cpu", cams=False, analyses=False).disc_source == "engine.fundus.localize"
    assert located == [1]  # without the analysis the localiser runs for the crop

    def elsewhere(image, **kw):  # the localiser's best place in a corner, away from the disc the analysis outlines
        found = analyse_disc(image, **kw)
        return dataclasses.replace(found, localisation=dataclasses.replace(
            found.localisation, center=(h - 10.0, w - 10.0), radius_px=5.0))

    monkeypatch.setattr(fundus, "analyse_disc", elsewhere)
    r = grade(exam, two, device="cpu", cams=False)
    assert any("does not hold the disc" in m for m in r.warnings), r.warnings


def _circle_disc_analysis(shape, sha="w"):
    """A found DiscAnalysis: disc radius 30 px and cup radius 12 px around the photo's centre."""
    from engine.fundus.analysis import DiscAnalysis, measure

    rows, cols = np.ogrid[: shape[0], : shape[1]]
    r2 = (rows - shape[0] / 2) ** 2 + (cols - shape[1] / 2) ** 2
    disc, cup = r2 <= 30**2, r2 <= 12**2
    return DiscAnalysis(True, 0.95, "", (shape[0] / 2, shape[1] / 2), disc, cup,
                        biomarkers=measure(disc, cup, "OD", None), weights_sha256=sha)


@pytest.mark.parametrize("fitted_for,applied", [("w", True), ("other", False)])
def test_site_calibration_changes_the_reported_disc_not_the_graders_input(exam, monkeypatch, fitted_for, applied):
    import engine.fundus as fundus
    from engine.fundus.site_calibration import SiteCalibration

    monkeypatch.setattr(fundus, "analyse_disc", lambda image, **kw: _circle_disc_analysis(image.shape[:2]))
    g = [tiny_grader(("fundus",), name="needs_vcdr", extra_features=("vcdr",), seed=4)]
    cal = SiteCalibration("clinic", 1.5, ("a",) * 5, fitted_for, {}, "now")
    plain = grade(exam, g, device="cpu", cams=False)
    calibrated = grade(exam, g, device="cpu", cams=False, disc_calibration=cal)
    assert np.array_equal(plain.per_model["needs_vcdr"].probabilities,
                          calibrated.per_model["needs_vcdr"].probabilities)
    ratio = calibrated.biomarkers["vcdr"] / plain.biomarkers["vcdr"]
    if applied:
        assert ratio == pytest.approx(1.5, abs=0.05)
        assert calibrated.disc.site_calibration is cal and calibrated.disc.cup_mask.sum() > 2 * plain.disc.cup_mask.sum()
        assert any("cup outline x1.50" in w and "uncalibrated" in w for w in calibrated.warnings)
        assert row_from_result(calibrated)["disc_calibration"] == "clinic x1.50"
        assert summarize(calibrated)["disc_calibration"] == {"name": "clinic", "cup_scale": 1.5, "photos": 5}
    else:
        assert ratio == 1.0 and calibrated.disc.site_calibration is None
        assert row_from_result(calibrated)["disc_calibration"] == ""
        assert summarize(calibrated)["disc_calibration"] is None
        assert any(w.startswith("site calibration not applied") for w in calibrated.warnings)


def test_site_calibration_says_nothing_when_no_disc_was_found(exam, monkeypatch):
    import engine.fundus as fundus
    from engine.fundus.analysis import DiscAnalysis
    from engine.fundus.site_calibration import SiteCalibration

    monkeypatch.setattr(fundus, "analyse_disc", lambda image, **kw: DiscAnalysis(False, 0.1, "optic disc not found",
                                                                                 None, weights_sha256="w"))
    cal = SiteCalibration("clinic", 1.5, ("a",) * 5, "w", {}, "now")
    r = grade(exam, [tiny_grader(("fundus",), name="f", seed=5)], device="cpu", cams=False, disc_calibration=cal)
    assert r.disc.site_calibration is None and not any("site calibration" in w for w in r.warnings), r.warnings


def test_outlines_drawn_by_hand_change_the_reported_disc_not_the_graders_input(exam, monkeypatch):
    import engine.fundus as fundus
    from engine.fundus.hand_outline import HandOutlines
    from engine.fundus.site_calibration import SiteCalibration

    monkeypatch.setattr(fundus, "analyse_disc", lambda image, **kw: _circle_disc_analysis(image.shape[:2]))
    g = [tiny_grader(("fundus",), name="needs_vcdr", extra_features=("vcdr",), seed=4)]
    h, w = exam.fundus.shape[:2]
    t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    cup = np.stack([h / 2 + 24 * np.sin(t), w / 2 + 24 * np.cos(t)], axis=1)  # radius 24 instead of 12
    plain = grade(exam, g, device="cpu", cams=False)
    cal = SiteCalibration("clinic", 1.5, ("a",) * 5, "w", {}, "now")
    drawn = grade(exam, g, device="cpu", cams=False, disc_calibration=cal, disc_outlines=HandOutlines(cup=cup))
    assert np.array_equal(plain.per_model["needs_vcdr"].probabilities, drawn.per_model["needs_vcdr"].probabilities)
    assert drawn.biomarkers["vcdr"] == pytest.approx(49 / 61, abs=0.02)  # the drawn cup, not the calibrated one
    assert drawn.disc.hand_outlined == ("cup",) and drawn.disc.site_calibration is None
    assert any(m == "cup outline drawn by hand; the graders used the automatic outline" for m in drawn.warnings)
    assert summarize(drawn)["disc_outlined_by_hand"] == ["cup"] and summarize(plain)["disc_outlined_by_hand"] == []
    outside = grade(exam, g, device="cpu", cams=False, disc_outlines=HandOutlines(cup=cup / 8))  # in a corner
    assert outside.biomarkers["vcdr"] == plain.biomarkers["vcdr"] and outside.disc.hand_outlined == ()
    assert any(m.startswith("cup outline drawn by hand not applied: the cup outline drawn lies outside the disc")
               for m in outside.warnings), outside.warnings


@pytest.mark.parametrize("found", [True, False])
def test_a_disc_placed_by_hand_centres_the_disc_crop(exam, monkeypatch, found):
    import engine.fundus as fundus
    from engine.fundus.analysis import DiscAnalysis

    asked = []

    def analyse(image, **kw):
        asked.append(kw["disc_at"])
        centre = (kw["disc_at"][0] + 4.0, kw["disc_at"][1] - 2.0) if found else kw["disc_at"]
        message = "" if found else "optic disc not found at the place given"
        return DiscAnalysis(found, 0.9 if found else 0.1, message, centre, placed_at=kw["disc_at"])

    monkeypatch.setattr(fundus, "analyse_disc", analyse)
    two = [tiny_grader(("fundus", "disc"), "add", name="two", seed=1)]
    r = grade(exam, two, device="cpu", cams=False, disc_at=(50.0, 60.0))
    assert asked == [(50.0, 60.0)] and r.disc_source == "user" and row_from_result(r)["disc_source"] == "user"
    r0, c0, r1, c1 = r.disc_box
    expected = (54.0, 58.0) if found else (50.0, 60.0)
    assert abs((r0 + r1) / 2 - expected[0]) <= 1 and abs((c0 + c1) / 2 - expected[1]) <= 1, r.disc_box
    monkeypatch.undo()
    assert grade(exam, two, device="cpu", cams=False).disc_source == "engine.fundus.localize"
    with pytest.raises(GradingError, match=r"x 0, y 10000 px is outside the 200 x 160 px photo"):
        grade(exam, two, device="cpu", cams=False, disc_at=(1e4, 0.0))


def test_a_photo_read_as_centred_on_the_disc_crops_the_graders_disc_level_round_the_disc_found(exam, monkeypatch):
    import dataclasses

    import engine.fundus as fundus
    import engine.models.preprocess as pre

    h, w = exam.fundus.shape[:2]
    # the localiser, whose size prior comes from a field of view this photo does not show, is somewhere else
    monkeypatch.setattr(pre, "locate_disc", lambda image: ((10.0, 10.0), 12.0, "engine.fundus.localize"))
    monkeypatch.setattr(fundus, "analyse_disc", lambda image, **kw: dataclasses.replace(
        _circle_disc_analysis(image.shape[:2]), centred=True))
    two = [tiny_grader(("fundus", "disc"), "add", name="two", seed=1)]
    r = grade(exam, two, device="cpu", cams=False)
    assert r.disc_source == "centred photo" and row_from_result(r)["disc_source"] == "centred photo"
    r0, c0, r1, c1 = r.disc_box
    assert abs((r0 + r1) / 2 - h / 2) <= 1 and abs((c0 + c1) / 2 - w / 2) <= 1  # round the disc found
    assert r1 - r0 == pytest.approx(two[0].inputs["disc"].crop_scale * 61, abs=2)  # its measured 61 px across
    assert not any("disc crop" in m for m in r.warnings)


def test_grade_caution_names_why_a_grade_should_not_be_read_as_it_stands():
    from types import SimpleNamespace as NS

    from engine.fundus.localize import OUT_OF_FOCUS, DiscLocation
    from engine.pipeline import grade_caution

    whole, crop = NS(levels=("fundus", "disc")), NS(levels=("disc",))

    def result(disc, *levels):
        return NS(disc=disc, per_model={f"m{k}": lv for k, lv in enumerate(levels)})

    def photo(monochrome=False, sharpness=1.0, fov_fraction=0.8):
        return DiscLocation((0.0, 0.0), 10.0, 0.9, monochrome=monochrome, sharpness=sharpness,
                            fov_fraction=fov_fraction)

    found = NS(found=True, centred=False, localisation=photo())
    assert grade_caution(result(found, whole)) == "" and grade_caution(result(None, whole)) == ""
    assert grade_caution(result(NS(found=False), whole)) == "no disc"
    assert grade_caution(result(NS(found=True, localisation=photo(monochrome=True)), whole)) == "no colour"
    centred = NS(found=True, centred=True, localisation=photo(fov_fraction=1.0))
    assert grade_caution(result(centred, whole, crop)) == "centred photo"
    assert grade_caution(result(centred, crop)) == ""  # only disc-crop graders ran: they saw crops like it
    assert grade_caution(result(NS(found=False), whole), disc=found) == ""  # outlined by hand where none was found
    unsure = NS(found=True, confidence=0.5, centred=True, localisation=photo(fov_fraction=1.0))
    assert grade_caution(result(unsure, whole)) == "disc uncertain"  # before the centred photo: it may be elsewhere
    assert grade_caution(result(unsure, crop)) == "disc uncertain"  # the disc-crop graders look where it was found
    grey = NS(found=True, confidence=0.5, localisation=photo(monochrome=True, sharpness=0.1))
    assert grade_caution(result(grey, whole)) == "no colour"
    blurred = NS(found=True, confidence=0.5, localisation=photo(sharpness=OUT_OF_FOCUS - 0.01))
    assert grade_caution(result(blurred, crop)) == "out of focus"
    blurred.localisation = photo(sharpness=OUT_OF_FOCUS - 0.01, fov_fraction=1.0)  # a crop: its focus is not judged
    assert grade_caution(result(blurred, crop)) == "disc uncertain"
    rival = NS(found=True, confidence=0.95, rival_region=True, localisation=photo())
    assert grade_caution(result(rival, whole)) == "disc uncertain"  # another region also looked like a disc
    unsure.hand_outlined = ("cup",)
    assert grade_caution(result(unsure, crop)) == "disc uncertain"
    unsure.hand_outlined = ("disc", "cup")
    assert grade_caution(result(unsure, crop)) == ""  # the disc drawn by hand is the disc
