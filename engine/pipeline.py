"""Exam -> :class:`GradingResult`: disc/cup and OCT-layer analyses, every fitting grader, ensemble, Grad-CAM.

Stages (each timed in ``GradingResult.timings``, seconds; ``cancel`` is checked between them):

``models`` (load or reuse), ``disc`` (``engine.fundus.analyse_disc`` when that module is installed and the exam
has a fundus photo), ``oct_layers`` (``engine.oct.analyse_oct`` likewise for a volume), ``preprocess``,
``inference``, ``cam``. An analysis that fails adds a warning and grading goes on without it; the disc crop
then comes from a brightness heuristic (said in ``warnings`` and ``disc_source``).

Deterministic on CPU (eval mode, no sampling). ``device="auto"`` picks CUDA when available.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

import numpy as np

from engine.io.exam import Exam
from engine.progress import Cancelled, CancelToken, ProgressCallback, check, report

ModelsArg = Union[None, str, Path, Any]


class GradingError(Exception):
    """The exam cannot be graded (no fitting model, no weights); ``str()`` is user-readable."""


@dataclass
class ModelPrediction:
    """One grader's answer. ``probabilities`` (K,) float64 summing to 1; ``grade`` its argmax."""

    name: str
    probabilities: np.ndarray
    grade: int
    levels: tuple[str, ...]
    sha256: str = ""


@dataclass
class GradingResult:
    """Everything ``grade`` found for one exam (plain data: safe to pass between threads).

    Attributes:
        exam_id: the exam's id.
        classes: class names, e.g. ``("non", "early", "mid_advanced")``.
        probabilities: ``(K,)`` float64 ensemble probabilities (GAMMA submission row).
        grade: index of the predicted class; ``grade_name`` its name.
        per_model: ``{name: ModelPrediction}`` for every grader that ran.
        ensemble: ``{"method", "tie", "tie_broken_by", "votes"}`` of the combination.
        models_used / models_skipped: names that ran / ``{name: why not}``.
        weights_sha256: ``{name: SHA-256}`` of the weights that graded.
        model_cards: ``{name: card dict}``.
        disc: the disc/cup analysis result (``engine.fundus``) or None.
        disc_box: ``(row0, col0, row1, col1)`` px of the disc crop on the fundus, or None.
        disc_source: where the disc-level crop was centred: ``"engine.fundus.localize"``, ``"brightness
            heuristic"``, ``"user"`` (``disc_at``) or ``"centred photo"`` (a crop centred on the disc, where the
            localiser's field-of-view prior does not hold: the disc/cup analysis's disc, its measured size);
            None without a disc level.
        layers: the OCT layer analysis result (``engine.oct``) or None.
        biomarkers: ``{name: float}`` (CDRs, rim, RNFL ...), from the analyses.
        cams: ``{level: CamMap}`` in original coordinates (see :mod:`engine.explain`), for the ensemble's grade,
            each from the first grader (most levels first) that has the level.
        timings: ``{stage: seconds}`` including ``total``.
        device: ``"cpu"`` or ``"cuda"``.
        warnings: human-readable notes (analysis failed, heuristic used ...).
    """

    exam_id: str
    classes: tuple[str, ...]
    probabilities: np.ndarray
    grade: int
    per_model: dict[str, ModelPrediction]
    ensemble: dict[str, Any]
    models_used: list[str]
    models_skipped: dict[str, str]
    weights_sha256: dict[str, str]
    model_cards: dict[str, dict[str, Any]]
    disc: Any = None
    disc_box: Optional[tuple[int, int, int, int]] = None
    disc_source: Optional[str] = None
    layers: Any = None
    biomarkers: dict[str, float] = field(default_factory=dict)
    cams: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    device: str = "cpu"
    warnings: list[str] = field(default_factory=list)

    @property
    def grade_name(self) -> str:
        return self.classes[self.grade]


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` when a CUDA device is usable, else ``cpu``; ``cuda`` without one raises."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise GradingError("--device cuda asked for, but no CUDA device is available")
    if device not in ("cpu", "cuda"):
        raise GradingError(f"device must be auto, cpu or cuda, got {device!r}")
    return device


def load_models(models: ModelsArg = None, device: str = "cpu") -> Any:
    """An :class:`engine.models.ensemble.Ensemble` from what ``grade(models=...)`` accepts.

    ``None``: the shipped ``resources/models/default.ensemble.json`` when present, else every grader
    checkpoint there averaged. A path: an ensemble file (``.json`` / ``.toml``) or one ``.pt`` checkpoint.
    An ``Ensemble``, a ``Grader`` or a list of graders are used as given (list -> mean).
    """
    from engine.models.ensemble import Ensemble, load_ensemble
    from engine.models.registry import Grader, default_ensemble_file, default_grader_paths, load_grader
    from engine.resources import models_dir

    if isinstance(models, Ensemble):
        return models
    if isinstance(models, Grader):
        return Ensemble(models.name, [models])
    if isinstance(models, (list, tuple)):
        return Ensemble("custom", list(models))
    if models is None:
        ens_file = default_ensemble_file()
        if ens_file is not None:
            return load_ensemble(ens_file, device)
        paths = default_grader_paths()
        if not paths:
            raise GradingError(
                f"no grader weights in {models_dir()}; train them (python -m engine train grader ...) "
                "or pass --models ENSEMBLE_FILE"
            )
        return Ensemble("default", [load_grader(p, device) for p in paths])
    path = Path(models)
    if path.suffix.lower() in (".json", ".toml"):
        return load_ensemble(path, device)
    return Ensemble(path.stem, [load_grader(path, device)])


# ------------------------------------------------------------------------------------------- analyses


def _as_float_dict(obj: Any) -> dict[str, float]:
    """Numeric scalar fields of a dict / dataclass / object as ``{name: float}``."""
    if obj is None:
        return {}
    if hasattr(obj, "to_dict") and callable(obj.to_dict):
        obj = obj.to_dict()
    elif not isinstance(obj, Mapping):
        obj = {k: v for k, v in vars(obj).items() if not k.startswith("_")} if hasattr(obj, "__dict__") else {}
    out: dict[str, float] = {}
    for key, value in obj.items():
        if isinstance(value, (bool, np.bool_)):
            out[str(key)] = float(value)
        elif isinstance(value, (int, float, np.integer, np.floating)) and np.isfinite(value):
            out[str(key)] = float(value)
    return out


def _run_disc_analysis(exam: Exam, warnings: list[str], cancel: Optional[CancelToken] = None,
                       disc_at: Optional[tuple[float, float]] = None) -> Any:
    """:func:`engine.fundus.analyse_disc` on the exam's photo (with its eye, for ISNT; ``disc_at``: the disc's
    (row, col) px placed by the user); a failure is a warning."""
    from engine.fundus import analyse_disc

    try:
        return analyse_disc(exam.fundus, spacing=exam.fundus_spacing, eye=exam.eye, disc_at=disc_at, cancel=cancel)
    except Cancelled:
        raise
    except Exception as err:  # an analysis failure must not stop grading
        warnings.append(f"disc/cup analysis failed: {err}")
    return None


def calibrate_disc(disc: Any, calibration: Any, biomarkers: dict[str, float], warnings: list[str]) -> Any:
    """``disc`` with the site ``calibration`` applied and its biomarkers updated in ``biomarkers`` (after grading:
    the graders keep the uncalibrated ones); a calibration for other weights becomes a warning."""
    if calibration is None or disc is None:
        return disc
    from engine.fundus.site_calibration import CalibrationError, apply_calibration

    try:
        disc = apply_calibration(disc, calibration)
    except CalibrationError as err:
        warnings.append(f"site calibration not applied: {err}")
        return disc
    if disc.site_calibration is not None:  # None: no disc found, nothing to calibrate
        biomarkers.update(biomarkers_of(disc))
        warnings.append(f"{calibration.describe()} applied to the disc/cup masks and biomarkers; the graders used "
                        "the uncalibrated measurements")
    return disc


def outline_disc(disc: Any, outlines: Any, exam: Exam, biomarkers: dict[str, float], warnings: list[str]) -> Any:
    """``disc`` (the analysis of ``exam``'s photo) with the user's hand-drawn ``outlines`` in place of the
    segmenter's and its biomarkers updated in ``biomarkers`` (after grading: the graders keep the automatic ones);
    an unusable outline becomes a warning."""
    if outlines is None or not outlines.parts or disc is None:
        return disc
    from engine.fundus.hand_outline import OutlineError, apply_outlines

    try:
        disc = apply_outlines(disc, outlines, exam)
    except OutlineError as err:
        warnings.append(f"{outlines.describe()} drawn by hand not applied: {err}")
        return disc
    biomarkers.update(biomarkers_of(disc))
    warnings.append(f"{outlines.describe()} drawn by hand; the graders used the automatic outline")
    return disc


def centred_disc_diameter(disc: Any) -> float:
    """Diameter (px, the larger side of its box) of the disc a disc/cup analysis found: on a photo centred on the
    disc it stands in for the localiser's size from the field of view, which such a photo does not show (on full
    photos the two agree on average: 0.18 of the field of view, the disc 0.13-0.26)."""
    mask = np.asarray(disc.disc_mask, bool)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return float(max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1)


def whole_photo_graders(result: "GradingResult") -> list[str]:
    """Names of the graders that ran on the whole fundus photo (its ``fundus`` level), not on the disc crop alone."""
    return [name for name, pred in result.per_model.items() if "fundus" in pred.levels]


def grade_caution(result: "GradingResult", disc: Any = None) -> str:
    """Why ``result``'s grade should not be read as it stands, or "" (the graders grade any image they are given):
    ``"no disc"`` (the disc/cup analysis found no optic disc: maybe not a fundus photo, or not a usable one),
    ``"no colour"`` (a grey or red-free photo, :func:`engine.fundus.localize.is_monochrome`: the graders saw colour
    photos only, the disc/cup networks at most grey copies of them), ``"out of focus"``
    (:func:`engine.fundus.localize.out_of_focus`: the cup outline may be off, the graders saw it blurred), ``"disc uncertain"`` (a disc found with a confidence under
    :data:`engine.fundus.analysis.LOW_CONFIDENCE`, or beside another region that also looked like a whole disc, and
    not outlined by hand: the disc-level crop and the measured ratios may be off) or ``"centred photo"`` (a crop
    centred on the disc, which the graders that look at the whole photo, :func:`whole_photo_graders`, never saw).
    ``disc``: the disc/cup analysis the grade is shown with (outlines drawn by hand applied), by default
    ``result.disc``."""
    from engine.fundus.analysis import LOW_CONFIDENCE
    from engine.fundus.localize import out_of_focus

    disc = result.disc if disc is None else disc
    if disc is None:
        return ""
    if not getattr(disc, "found", True):
        return "no disc"
    location = getattr(disc, "localisation", None)
    if getattr(location, "monochrome", False):
        return "no colour"
    if location is not None and out_of_focus(location):
        return "out of focus"
    unsure = getattr(disc, "confidence", 1.0) < LOW_CONFIDENCE or getattr(disc, "rival_region", False)
    if unsure and "disc" not in getattr(disc, "hand_outlined", ()):
        return "disc uncertain"
    if getattr(disc, "centred", False) and whole_photo_graders(result):
        return "centred photo"
    return ""


def user_disc_centre(disc: Any, disc_at: tuple[float, float]) -> tuple[float, float]:
    """Centre (row, col) px of the disc-level crop when the user placed the disc at ``disc_at``: the centre of the
    disc that the analysis run with ``disc_at`` found there, else the place itself."""
    if getattr(disc, "found", False):
        return tuple(float(v) for v in disc.center)  # type: ignore[return-value]
    return float(disc_at[0]), float(disc_at[1])


def disc_crop_warning(disc: Any, box: Optional[tuple[int, int, int, int]]) -> Optional[str]:
    """A warning when the disc-level models' crop ``box`` (row0, col0, row1, col1) px, placed by the localiser as
    in training, disagrees with the disc/cup analysis ``disc`` (a :class:`engine.fundus.DiscAnalysis`): no disc
    found, or the found disc's centre outside the crop. None when they agree or either is missing."""
    if disc is None or box is None:
        return None
    if not getattr(disc, "found", False):
        return "no optic disc found by the disc/cup analysis: the disc crop of the disc-level models may not hold the disc"
    r, c = disc.center
    if not (box[0] <= r < box[2] and box[1] <= c < box[3]):
        return "the disc crop of the disc-level models does not hold the disc that the disc/cup analysis found"
    return None


def _run_oct_analysis(exam: Exam, warnings: list[str], cancel: Optional[CancelToken] = None) -> Any:
    """:func:`engine.oct.analyse_oct` on the exam's volume; a failure is a warning."""
    from engine.oct import analyse_oct

    try:
        return analyse_oct(exam, cancel=cancel)
    except Cancelled:
        raise
    except Exception as err:  # an analysis failure must not stop grading
        warnings.append(f"OCT layer analysis failed: {err}")
    return None


def biomarkers_of(result: Any) -> dict[str, float]:
    """``{name: float}`` biomarkers of a disc/cup or layer analysis result (what graders' extra features read)."""
    if result is None:
        return {}
    source = getattr(result, "biomarkers", None)
    if source is None and isinstance(result, Mapping):
        source = result.get("biomarkers")
    return _as_float_dict(source if source is not None else result)


# ------------------------------------------------------------------------------------------------ grade


def grade(
    exam: Exam,
    models: ModelsArg = None,
    *,
    device: str = "auto",
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
    cams: bool = True,
    analyses: bool = True,
    disc_calibration: Any = None,
    disc_at: Optional[tuple[float, float]] = None,
    disc_outlines: Any = None,
) -> GradingResult:
    """Grade one exam with every fitting grader, combine them, and explain the result.

    Args:
        exam: the exam (fundus and/or OCT).
        models: see :func:`load_models` (None: shipped default weights).
        device: ``auto``, ``cpu`` or ``cuda``.
        progress, cancel: see :mod:`engine.progress`; ``Cancelled`` is raised between stages.
        cams: compute Grad-CAM maps.
        analyses: run the disc/cup and OCT-layer analyses when available.
        disc_calibration: a site's :class:`engine.fundus.site_calibration.SiteCalibration`, applied to the disc/cup
            masks and biomarkers of the result (said in ``warnings``); the graders get the uncalibrated
            measurements they were trained on. One fitted for other disc/cup weights is not applied (a warning).
        disc_at: (row, col) photo px where the user placed the optic disc: the disc/cup analysis looks there only
            and the disc-level models' crop is centred there (on the disc found there, when one is);
            ``disc_source`` is then ``"user"``.
        disc_outlines: :class:`engine.fundus.hand_outline.HandOutlines` drawn by the user, in place of the
            segmenter's disc and/or cup outline in the result's masks and biomarkers (said in ``warnings``; after
            any ``disc_calibration``); the graders get the automatic measurements. One that cannot be used (no
            disc found, a cup outside the disc) is not applied (a warning).

    Raises:
        GradingError: no grader fits the exam's modalities, no weights, or ``disc_at`` lies outside the photo.
        engine.progress.Cancelled: ``cancel`` was set.
    """
    import torch

    from engine.explain import raw_cams, to_original
    from engine.models.preprocess import (
        crop_box_around,
        disc_from_location,
        locate_disc,
        prepare_disc,
        prepare_fundus,
        prepare_oct,
    )
    from engine.models.registry import select_for_exam

    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    warnings: list[str] = []

    def stage(name: str, t0: float) -> float:
        now = time.perf_counter()
        timings[name] = timings.get(name, 0.0) + now - t0
        return now

    if disc_at is not None and exam.fundus is not None:
        from engine.fundus.analysis import check_disc_at

        try:
            disc_at = check_disc_at(disc_at, exam.fundus.shape)
        except ValueError as err:
            raise GradingError(str(err)) from None
    check(cancel)
    dev = resolve_device(device)
    report(progress, 0.0, "loading models")
    t = time.perf_counter()
    ensemble = load_models(models, dev)
    graders = [g if g.device == dev else _moved(g, dev) for g in ensemble.members]
    t = stage("models", t)

    chosen, skipped = select_for_exam(graders, exam.modalities)
    # Disc analysis only matters for disc levels or biomarkers; run it whenever a fundus is present.
    disc_result = layers_result = None
    biomarkers: dict[str, float] = {}
    if analyses and exam.fundus is not None:
        check(cancel)
        report(progress, 0.05, "optic disc and cup")
        disc_result = _run_disc_analysis(exam, warnings, cancel, disc_at)
        biomarkers.update(biomarkers_of(disc_result))
        t = stage("disc", t)
    if analyses and exam.oct is not None:
        check(cancel)
        report(progress, 0.25, "OCT layers")
        layers_result = _run_oct_analysis(exam, warnings, cancel)
        biomarkers.update(biomarkers_of(layers_result))
        t = stage("oct_layers", t)

    # A grader needing biomarker features runs only when the analyses gave them.
    runnable = []
    for g in chosen:
        missing = [f for f in g.extra_features if f not in biomarkers]
        if missing:
            skipped[g.name] = f"needs biomarkers {', '.join(missing)} (analysis unavailable)"
        else:
            runnable.append(g)
    if not runnable:
        why = "; ".join(f"{n}: {r}" for n, r in skipped.items()) or "no models"
        raise GradingError(f"no grader fits this exam (modalities: {', '.join(exam.modalities) or 'none'}; {why})")

    check(cancel)
    report(progress, 0.45, "preparing inputs")
    prepared: dict[tuple[str, tuple], Any] = {}
    disc_box = disc_source = disc_found = None

    def prepared_for(g: Any) -> dict[str, Any]:
        nonlocal disc_box, disc_source, disc_found
        out = {}
        for lv, spec in g.inputs.items():
            key = (lv, spec.size, spec.mean, spec.std, spec.crop_scale)
            if key not in prepared:
                if lv == "fundus":
                    prepared[key] = prepare_fundus(exam.fundus, spec)
                elif lv == "disc":
                    # The same localiser as in training (engine.models.train_task), so the crop matches; the disc/cup
                    # analysis already ran it on this photo.
                    if disc_found is None:
                        location = getattr(disc_result, "localisation", None)
                        disc_found = disc_from_location(location) if location is not None else locate_disc(exam.fundus)
                        if disc_at is not None:  # the localiser's disc size (as in training), the user's place
                            disc_found = (user_disc_centre(disc_result, disc_at), disc_found[1], "user")
                        elif getattr(disc_result, "centred", False) and getattr(disc_result, "found", False):
                            disc_found = (disc_result.center, centred_disc_diameter(disc_result), "centred photo")
                    center, diameter, disc_source = disc_found
                    box = crop_box_around(exam.fundus.shape[:2], center, diameter, spec.crop_scale)
                    disc_box = disc_box or box
                    prepared[key] = prepare_disc(exam.fundus, box, spec)
                else:
                    prepared[key] = prepare_oct(exam.oct, spec)
            out[lv] = prepared[key]
        return out

    inputs_per_model = {g.name: prepared_for(g) for g in runnable}
    if disc_source == "brightness heuristic":
        warnings.append("disc crop located by a brightness heuristic (disc localiser unavailable or failed)")
    crop_warning = disc_crop_warning(disc_result, disc_box)
    if crop_warning:
        warnings.append(crop_warning)
    t = stage("preprocess", t)

    check(cancel)
    report(progress, 0.55, "grading")
    per_model: dict[str, ModelPrediction] = {}
    caches: dict[str, Any] = {}
    with torch.no_grad():
        for g in runnable:
            check(cancel)
            tensors = {lv: p.tensor.to(dev) for lv, p in inputs_per_model[g.name].items()}
            if g.extra_features:
                tensors["extra"] = torch.tensor([[biomarkers[f] for f in g.extra_features]], dtype=torch.float32,
                                                device=dev)
            cache = g.module.forward_cached(tensors)
            caches[g.name] = (cache, tensors)
            probs = torch.softmax(cache.logits.float(), dim=1)[0].double().cpu().numpy()
            probs = probs / probs.sum()
            per_model[g.name] = ModelPrediction(g.name, probs, int(np.argmax(probs)), g.levels, g.sha256)
    combined = ensemble.combine({n: p.probabilities for n, p in per_model.items()})
    t = stage("inference", t)
    disc_result = outline_disc(calibrate_disc(disc_result, disc_calibration, biomarkers, warnings), disc_outlines,
                               exam, biomarkers, warnings)

    cam_maps: dict[str, Any] = {}
    if cams:
        check(cancel)
        report(progress, 0.8, "Grad-CAM")
        for g in sorted(runnable, key=lambda g: -len(g.levels)):
            todo = [lv for lv in g.levels if lv not in cam_maps]
            if not todo:
                continue
            check(cancel)
            cache, tensors = caches[g.name]
            layers = {lv: g.cam_target_layer(lv) for lv in todo}
            raws = raw_cams(g.module, cache, combined.grade, todo, tensors, layers)
            for lv in todo:
                placement = inputs_per_model[g.name][lv].placement
                cam_maps[lv] = to_original(lv, raws[lv], placement, combined.grade, g.name)
        t = stage("cam", t)

    check(cancel)
    timings["total"] = time.perf_counter() - t_start
    report(progress, 1.0, "done")
    classes = runnable[0].classes
    return GradingResult(
        exam_id=exam.exam_id,
        classes=classes,
        probabilities=np.asarray(combined.probabilities, np.float64),
        grade=int(combined.grade),
        per_model=per_model,
        ensemble={
            "name": ensemble.name, "method": ensemble.method, "tie": ensemble.tie,
            "tie_broken_by": combined.tie_broken_by,
            "votes": None if combined.votes is None else [int(v) for v in combined.votes],
        },
        models_used=[g.name for g in runnable],
        models_skipped=skipped,
        weights_sha256={g.name: g.sha256 for g in runnable},
        model_cards={g.name: g.card for g in runnable},
        disc=disc_result,
        disc_box=disc_box,
        disc_source=disc_source,
        layers=layers_result,
        biomarkers=biomarkers,
        cams=cam_maps,
        timings=timings,
        device=dev,
        warnings=warnings,
    )


def _moved(grader: Any, device: str) -> Any:
    """A copy of ``grader`` whose module lives on ``device`` (the checkpoint cache is per device)."""
    from engine.models.registry import Grader, load_grader

    if grader.path is not None:
        return load_grader(grader.path, device, name=grader.name)
    return Grader(**{**grader.__dict__, "module": grader.module.to(device), "device": device})


def _calibration_summary(calibration: Any) -> Optional[dict[str, Any]]:
    """The applied site calibration's name, cup scale and fitting photo count (None when none was applied)."""
    if calibration is None:
        return None
    return {"name": calibration.name, "cup_scale": calibration.cup_scale, "photos": len(calibration.photos)}


def summarize(result: GradingResult) -> dict[str, Any]:
    """A JSON-able summary (no arrays) for logs, the JSON-lines service and reports."""
    return {
        "exam_id": result.exam_id,
        "grade": result.grade_name,
        "probabilities": dict(zip(result.classes, (round(float(p), 6) for p in result.probabilities))),
        "per_model": {
            n: {"grade": result.classes[p.grade], "probabilities": [round(float(x), 6) for x in p.probabilities],
                "levels": list(p.levels)}
            for n, p in result.per_model.items()
        },
        "ensemble": result.ensemble,
        "models_used": result.models_used,
        "models_skipped": result.models_skipped,
        "weights_sha256": result.weights_sha256,
        "biomarkers": result.biomarkers,
        "disc_source": result.disc_source,
        "disc_calibration": _calibration_summary(getattr(result.disc, "site_calibration", None)),
        "disc_outlined_by_hand": list(getattr(result.disc, "hand_outlined", ())),
        "timings": {k: round(v, 4) for k, v in result.timings.items()},
        "device": result.device,
        "warnings": result.warnings,
    }


__all__: Sequence[str] = ("GradingError", "GradingResult", "ModelPrediction", "grade", "load_models", "summarize")
