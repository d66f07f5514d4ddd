"""Site calibration of the cup outline, for a site whose experts draw cups larger or smaller than ours.

On a source it never saw, most of the disc/cup analysis's vertical-CDR error is one offset (the model card's
held-out blocks: about -0.14 on Drishti-GS1, +0.15 on odoc100): that source's experts draw the cup's edge
elsewhere. A site with a few photos outlined by its own experts fits one number, the **cup scale**: the
analysis's cup outline, scaled about its centroid by this factor and clipped to the disc, that gives the
smallest mean vertical-CDR error on those photos. The mask and every biomarker then come from the scaled
outline, so the drawn cup and its ratios agree (shifting the ratio alone would not). The calibration belongs to
one segmenter (its weights' SHA-256) and is refused for another. Graders keep the uncalibrated measurements
they were trained on (:func:`engine.pipeline.grade`).

``python -m engine.fundus.site_calibration --data DIR --name NAME --out site.json [--sources S ...]
[--cases ID ...] [--weights W.pt]``: reads any layout :func:`engine.fundus.datasets.discover` reads, prints the
fitting photos' error before and after (in-sample: a held-out figure needs photos the fit did not see,
``benchmarks/site_adaptation.py --calibrate``) and writes the calibration atomically. Exit 0, or 1 with one
stderr line (bad folder, too few photos, unusable weights).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from engine.progress import CancelToken, ProgressCallback, check, report

SCALES = np.round(np.arange(0.60, 1.6001, 0.01), 2)
"""Cup scales tried by :func:`fit_calibration` (the held-out offsets of about ±0.15 on ratios of 0.4-0.7 need
about 0.75-1.3)."""
MIN_PHOTOS = 5
"""Fewest photos with a found disc a calibration is fitted on."""
FORMAT = "glaucoma-viewer site calibration 1"


class CalibrationError(ValueError):
    """A calibration file cannot be read, fitted or applied; ``str()`` is one user-readable line."""


@dataclass(frozen=True)
class SiteCalibration:
    """One site's cup scale for one segmenter.

    Attributes:
        name: the site's name, as the user typed it.
        cup_scale: factor applied to the cup outline about its centroid (1 = unchanged).
        photos: ids of the expert-outlined photos it was fitted on.
        segmenter_sha256: SHA-256 of the segmenter weights it was fitted with.
        fitted: on the fitting photos (in-sample), before -> after: ``vcdr_mae``, ``vcdr_bias`` (mean predicted -
            expert vertical CDR) and ``dice_cup``, each ``{"before": x, "after": y}``.
        created: ISO time of the fit.
    """

    name: str
    cup_scale: float
    photos: tuple[str, ...]
    segmenter_sha256: str
    fitted: dict[str, dict[str, float]]
    created: str

    def describe(self) -> str:
        """One line for a status bar, a CSV cell or a report."""
        return (f"site calibration '{self.name}': cup outline x{self.cup_scale:.2f} "
                f"(fitted on {len(self.photos)} photos outlined by the site's experts)")

    def to_json(self) -> str:
        doc = {"format": FORMAT, **dataclasses.asdict(self), "photos": list(self.photos)}
        return json.dumps(doc, indent=1) + "\n"


def scale_cup(disc: np.ndarray, cup: np.ndarray, factor: float) -> np.ndarray:
    """(H, W) bool disc and cup -> the cup scaled by ``factor`` about its centroid, clipped to the disc.

    Only the disc's bounding box is touched (photos are up to 12 MP); an empty cup stays empty.
    """
    import cv2

    if factor == 1.0 or not cup.any() or not disc.any():
        return cup & disc
    rows = np.flatnonzero(disc.any(axis=1))
    cols = np.flatnonzero(disc.any(axis=0))
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    region = (cup[r0:r1, c0:c1] & disc[r0:r1, c0:c1]).astype(np.float32)
    rr, cc = np.nonzero(region)
    cy, cx = float(rr.mean()), float(cc.mean())
    matrix = np.float32([[factor, 0.0, cx * (1.0 - factor)], [0.0, factor, cy * (1.0 - factor)]])
    scaled = cv2.warpAffine(region, matrix, (c1 - c0, r1 - r0), flags=cv2.INTER_LINEAR, borderValue=0.0) >= 0.5
    out = np.zeros_like(cup, dtype=bool)
    out[r0:r1, c0:c1] = scaled & disc[r0:r1, c0:c1]
    return out


def check_weights(calibration: SiteCalibration, sha256: str) -> None:
    """Raises :class:`CalibrationError` when ``calibration`` was fitted with other disc/cup segmenter weights than
    those with SHA-256 ``sha256`` (an empty one is not checked)."""
    if sha256 and calibration.segmenter_sha256 and sha256 != calibration.segmenter_sha256:
        raise CalibrationError(
            f"site calibration '{calibration.name}' was fitted with disc/cup weights "
            f"{calibration.segmenter_sha256[:12]}…, not these ({sha256[:12]}…): fit it again for these weights")


def apply_calibration(analysis: Any, calibration: Optional[SiteCalibration]) -> Any:
    """A :class:`engine.fundus.analysis.DiscAnalysis` with its cup outline scaled by ``calibration`` and every
    biomarker measured again on it (``site_calibration`` set). A result without a disc, or no calibration, is
    returned as it is.

    Raises:
        CalibrationError: the calibration was fitted with other segmenter weights than the analysis used.
    """
    from engine.fundus.analysis import measure

    if calibration is None or not analysis.found or analysis.disc_mask is None:
        return analysis
    check_weights(calibration, str(analysis.weights_sha256 or ""))
    cup = scale_cup(analysis.disc_mask, analysis.cup_mask, calibration.cup_scale)
    eye = analysis.biomarkers.eye if analysis.biomarkers is not None else "unknown"
    markers = measure(analysis.disc_mask, cup, eye, analysis.spacing)
    return dataclasses.replace(analysis, cup_mask=cup, biomarkers=markers, site_calibration=calibration)


def _mae_per_scale(found: list[tuple[np.ndarray, np.ndarray, float]], scales: np.ndarray) -> np.ndarray:
    """(len(scales),) mean |vertical CDR - expert's| over ``found`` = [(disc, cup, expert vCDR)] photo-px masks."""
    from engine.fundus.evaluate import vertical_ratio

    errors = np.array([[abs(vertical_ratio(disc, scale_cup(disc, cup, float(s))) - v_true) for s in scales]
                       for disc, cup, v_true in found])
    return errors.mean(axis=0)


def fit_calibration(
    cases: Sequence[Any],
    name: str,
    *,
    segmenter: Any = None,
    weights: Any = None,
    scales: Sequence[float] = tuple(SCALES),
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
) -> SiteCalibration:
    """Fit the cup scale on expert-outlined photos of one site.

    Args:
        cases: :class:`engine.fundus.datasets.DiscCupCase` photos with the site's expert masks.
        name: the site's name (stored, shown).
        segmenter, weights: as for :func:`engine.fundus.analysis.analyse_disc` (default: the shipped model).
        scales: cup scales tried; the one with the smallest mean vertical-CDR error wins (the one nearest 1 on a
            tie).
        progress: also told "skipped ID: why" for a photo or mask that cannot be read (the fit goes on).

    Raises:
        CalibrationError: fewer than :data:`MIN_PHOTOS` photos with a found disc.
        engine.progress.Cancelled: ``cancel`` was set.
    """
    from engine.fundus.analysis import analyse_disc
    from engine.fundus.datasets import load_case
    from engine.fundus.evaluate import dice, vertical_ratio
    from engine.fundus.segmenter import load_segmenter

    if segmenter is None:
        segmenter = load_segmenter(weights)
    found: list[tuple[np.ndarray, np.ndarray, float]] = []
    truths: list[np.ndarray] = []
    ids: list[str] = []
    for k, case in enumerate(cases):
        check(cancel)
        report(progress, 0.9 * k / max(len(cases), 1), f"analysing {case.case_id}")
        try:
            image, disc, cup = load_case(case)
        except (OSError, ValueError) as err:  # one unreadable photo does not stop the fit
            report(progress, 0.9 * k / max(len(cases), 1), f"skipped {case.case_id}: {err}")
            continue
        result = analyse_disc(image, eye=case.eye, segmenter=segmenter, cancel=cancel)
        if result.found:
            found.append((result.disc_mask, result.cup_mask, vertical_ratio(disc, cup)))
            truths.append(cup)
            ids.append(case.case_id)
    if len(found) < MIN_PHOTOS:
        raise CalibrationError(f"a site calibration needs at least {MIN_PHOTOS} photos whose disc the analysis "
                               f"finds; got {len(found)} of {len(cases)}")
    report(progress, 0.9, "fitting the cup scale")
    grid = np.asarray(scales, float)
    mae = _mae_per_scale(found, grid)
    best = float(grid[np.lexsort((np.abs(grid - 1.0), np.round(mae, 9)))[0]])

    def summary(scale: float) -> dict[str, float]:
        cups = [scale_cup(d, c, scale) for d, c, _ in found]
        v = [vertical_ratio(d, c) for (d, _, _), c in zip(found, cups)]
        return {"vcdr_mae": float(np.mean([abs(a - t) for a, (_, _, t) in zip(v, found)])),
                "vcdr_bias": float(np.mean([a - t for a, (_, _, t) in zip(v, found)])),
                "dice_cup": float(np.mean([dice(c, t) for c, t in zip(cups, truths)]))}

    before, after = summary(1.0), summary(best)
    report(progress, 1.0, "site calibration fitted")
    return SiteCalibration(
        name=name, cup_scale=best, photos=tuple(ids), segmenter_sha256=str(getattr(segmenter, "sha256", "")),
        fitted={k: {"before": round(before[k], 4), "after": round(after[k], 4)} for k in before},
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"))


def save_calibration(calibration: SiteCalibration, path: Path) -> None:
    """Write ``calibration`` as JSON atomically (temp file, then rename)."""
    from engine.models.checkpoint import atomic_write_bytes

    atomic_write_bytes(Path(path), calibration.to_json().encode())


def load_calibration(path: Path) -> SiteCalibration:
    """Read a file written by :func:`save_calibration`.

    Raises:
        CalibrationError: unreadable, not a site calibration, or a cup scale outside (0, 3).
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CalibrationError(f"{path}: cannot read a site calibration ({getattr(err, 'strerror', None) or err})")
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CalibrationError(f"{path}: not a site calibration file (no \"format\": \"{FORMAT}\")")
    try:
        cal = SiteCalibration(name=str(doc["name"]), cup_scale=float(doc["cup_scale"]),
                              photos=tuple(str(p) for p in doc["photos"]),
                              segmenter_sha256=str(doc["segmenter_sha256"]), fitted=dict(doc.get("fitted") or {}),
                              created=str(doc.get("created", "")))
    except (KeyError, TypeError, ValueError) as err:
        raise CalibrationError(f"{path}: site calibration field missing or malformed ({err})")
    if not 0.0 < cal.cup_scale < 3.0:
        raise CalibrationError(f"{path}: cup scale {cal.cup_scale} is outside (0, 3)")
    return cal


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="folder with the site's photos and expert masks")
    p.add_argument("--name", required=True, help="the site's name (shown with every calibrated result)")
    p.add_argument("--out", type=Path, required=True, help="calibration file to write (.json)")
    p.add_argument("--sources", nargs="+", help="only photos of these sources (as discover names them)")
    p.add_argument("--cases", nargs="+", help="only these photo ids")
    p.add_argument("--weights", type=Path, help="disc/cup segmenter (default: the shipped model)")
    args = p.parse_args(argv)

    from engine.fundus.datasets import DatasetLayoutError, discover
    from engine.models.checkpoint import CheckpointError

    def say_skipped(_: float, message: str) -> None:
        if message.startswith("skipped "):
            print(message, file=sys.stderr)

    try:
        cases = discover(args.data)
        if args.sources:
            sources = set(args.sources)
            cases = [c for c in cases if c.source in sources]
        if args.cases:
            wanted = set(args.cases)
            unknown = sorted(wanted - {c.case_id for c in cases})
            if unknown:
                raise CalibrationError(f"{args.data}: no photo with masks named {', '.join(unknown)}")
            cases = [c for c in cases if c.case_id in wanted]
        cal = fit_calibration(cases, args.name, weights=args.weights, progress=say_skipped)
        save_calibration(cal, args.out)
    except (CalibrationError, DatasetLayoutError, CheckpointError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    f = cal.fitted
    print(f"{cal.describe()}\nfitting photos (in-sample): vertical-CDR error {f['vcdr_mae']['before']:.3f} -> "
          f"{f['vcdr_mae']['after']:.3f}, offset {f['vcdr_bias']['before']:+.3f} -> {f['vcdr_bias']['after']:+.3f}, "
          f"cup Dice {f['dice_cup']['before']:.3f} -> {f['dice_cup']['after']:.3f}\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
