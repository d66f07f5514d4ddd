"""Disc and cup outlines corrected by hand: polygons drawn on the photo -> masks -> biomarkers measured again.

A clinician who disagrees with the segmenter's outline moves its vertices (the viewer's outline editor); the
drawn outline replaces the network's for the masks, every biomarker and the report. Graders keep the automatic
outline they were trained on: :func:`engine.pipeline.grade` applies hand outlines after grading (as it does a
site calibration) and says so.

Polygons are ``(K, 2)`` float ``(row, col)`` photo px, closed implicitly (the last vertex joins the first).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

MIN_AREA_PX = 16
"""A drawn disc or cup enclosing less than this (px², polygon area) is refused (a polygon folded onto itself);
so is a drawn cup with fewer pixels than this inside the disc."""
SUBPIXEL_BITS = 4
"""Fractional bits of the vertices when filling (``cv2.fillPoly``'s ``shift``): 1/16 px."""
EDITOR_VERTICES = 24
"""Vertices the viewer's editor puts on an outline (enough for an ellipse-like disc, few enough to drag)."""
NOT_FOUND_BY_SEGMENTER = "disc and cup outlined by hand: the segmenter found no disc"
"""The message of a result whose disc and cup were both drawn where the segmenter found none."""


class OutlineError(ValueError):
    """An outline drawn by hand that cannot be used (too few vertices, no area, a cup outside the disc)."""


@dataclass(frozen=True)
class HandOutlines:
    """The outlines a user drew: ``disc`` and ``cup`` (K, 2) float (row, col) photo px, or None where the
    segmenter's outline stays."""

    disc: Optional[np.ndarray] = None
    cup: Optional[np.ndarray] = None

    @property
    def parts(self) -> tuple[str, ...]:
        """Which outlines were drawn: a subset of ("disc", "cup"), in that order."""
        return tuple(name for name in ("disc", "cup") if getattr(self, name) is not None)

    def describe(self) -> str:
        """"disc and cup outlines" / "disc outline" / "cup outline" drawn by hand ("" when none)."""
        parts = self.parts
        return "" if not parts else " and ".join(parts) + (" outlines" if len(parts) > 1 else " outline")

    def replace(self, part: str, points: Optional[np.ndarray]) -> "HandOutlines":
        """A copy with the ``part`` ("disc" or "cup") outline set to ``points`` (None: the segmenter's again)."""
        if part not in ("disc", "cup"):
            raise ValueError(f"unknown outline {part!r}: expected 'disc' or 'cup'")
        return dataclasses.replace(self, **{part: None if points is None else as_polygon(points, part)})


def as_polygon(points: Sequence[Sequence[float]], part: str = "outline") -> np.ndarray:
    """``points`` as a (K, 2) float64 (row, col) array with K >= 3 finite vertices.

    Raises:
        OutlineError: another shape, fewer than 3 vertices, or a vertex that is not a finite number.
    """
    try:
        poly = np.asarray(points, np.float64)
    except (TypeError, ValueError):
        raise OutlineError(f"the {part} outline is not a list of (row, col) points") from None
    if poly.ndim != 2 or poly.shape[1] != 2 or len(poly) < 3:
        raise OutlineError(f"the {part} outline needs at least 3 (row, col) points, got shape {poly.shape}")
    if not np.isfinite(poly).all():
        raise OutlineError(f"the {part} outline has a point that is not a number")
    return poly


def polygon_mask(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(K, 2) (row, col) px polygon -> (H, W) bool of the pixels whose centres it encloses, plus those its edge
    passes through (OpenCV fills inclusively: about half a pixel more all round, 1 % of a 200 px disc's area);
    parts off the photo are cut."""
    import cv2

    poly = as_polygon(points)
    xy = np.round((poly[:, ::-1] - 0.5) * (1 << SUBPIXEL_BITS)).astype(np.int32)  # pixel k spans [k, k+1)
    out = np.zeros(shape, np.uint8)
    cv2.fillPoly(out, [xy.reshape(-1, 1, 2)], 1, lineType=cv2.LINE_8, shift=SUBPIXEL_BITS)
    return out.astype(bool)


def polygon_area(points: np.ndarray) -> float:
    """Area (px²) enclosed by a (K, 2) polygon (shoelace; the parts of a figure of eight cancel)."""
    rows, cols = np.asarray(points, np.float64).T
    return 0.5 * abs(float(np.dot(rows, np.roll(cols, -1)) - np.dot(cols, np.roll(rows, -1))))


def outline_vertices(mask: np.ndarray, n: int = EDITOR_VERTICES) -> np.ndarray:
    """(H, W) bool mask -> (n, 2) float (row, col) px: ``n`` points evenly spaced along its largest outer
    contour (pixel edges), to start a hand correction from. Empty mask: (0, 2)."""
    import cv2

    contours, _ = cv2.findContours(np.asarray(mask, np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return np.zeros((0, 2))
    xy = max(contours, key=cv2.contourArea)[:, 0, :].astype(np.float64) + 0.5  # pixel centres
    closed = np.vstack([xy, xy[:1]])
    along = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(closed, axis=0).T))])
    at = np.linspace(0.0, along[-1], n, endpoint=False)
    cols, rows = np.interp(at, along, closed[:, 0]), np.interp(at, along, closed[:, 1])
    return np.stack([rows, cols], axis=1)


def apply_outlines(analysis: Any, outlines: Optional[HandOutlines], exam: Any = None) -> Any:
    """A :class:`engine.fundus.analysis.DiscAnalysis` with the outlines drawn by hand in place of the
    segmenter's, and masks, centre, crop box and every biomarker measured again (``hand_outlined`` says which).

    The cup is clipped to the disc. A hand-drawn disc keeps the segmenter's cup (clipped to it); a hand-drawn
    cup replaces a site-calibrated one (``site_calibration`` then None). ``outlines`` None or empty: the
    analysis as it is. Where the segmenter found no disc, both outlines drawn make the result (``found``, with
    the segmenter's confidence and a message saying so); the photo's :class:`engine.io.exam.Exam` ``exam`` is
    then needed (its photo's shape, eye and spacing), since such an analysis has no masks to take them from.

    Raises:
        OutlineError: the analysis found no disc and not both outlines were drawn (or no ``exam`` photo given),
            a drawn outline encloses less than :data:`MIN_AREA_PX` px², the drawn disc lies off the photo, or
            the drawn cup outside the disc.
    """
    from engine.fundus.analysis import measure
    from engine.fundus.crop import DEFAULT_MARGIN, disc_box

    if outlines is None or not outlines.parts:
        return analysis
    found = analysis.found and analysis.disc_mask is not None and analysis.cup_mask is not None
    if not found and (outlines.parts != ("disc", "cup") or getattr(exam, "fundus", None) is None):
        raise OutlineError("the segmenter found no optic disc here: place the disc, or outline both the disc and "
                           "the cup by hand")
    if found:
        shape, eye = analysis.disc_mask.shape, analysis.biomarkers.eye if analysis.biomarkers else "unknown"
        spacing = analysis.spacing
    else:
        shape, eye, spacing = exam.fundus.shape[:2], exam.eye, exam.fundus_spacing
    for part in outlines.parts:
        if polygon_area(getattr(outlines, part)) < MIN_AREA_PX:
            raise OutlineError(f"the {part} outline drawn encloses no area")
    disc = analysis.disc_mask if outlines.disc is None else polygon_mask(outlines.disc, shape)
    if disc.sum() < MIN_AREA_PX:
        raise OutlineError("the disc outline drawn lies outside the photo")
    cup = (analysis.cup_mask if outlines.cup is None else polygon_mask(outlines.cup, shape)) & disc
    if outlines.cup is not None and cup.sum() < MIN_AREA_PX:
        raise OutlineError("the cup outline drawn lies outside the disc or encloses no area")
    rows = np.flatnonzero(disc.any(axis=1))
    cols = np.flatnonzero(disc.any(axis=0))
    return dataclasses.replace(
        analysis, found=True, disc_mask=disc, cup_mask=cup, biomarkers=measure(disc, cup, eye, spacing),
        center=((rows[0] + rows[-1] + 1) / 2.0, (cols[0] + cols[-1] + 1) / 2.0),
        crop_box=disc_box(disc, DEFAULT_MARGIN), spacing=spacing,
        message=analysis.message if found else f"{NOT_FOUND_BY_SEGMENTER} ({analysis.message})",
        site_calibration=None if outlines.cup is not None else analysis.site_calibration,
        hand_outlined=outlines.parts)
