"""Cup-to-disc biomarkers from a disc mask and a cup mask.

Conventions:

- masks are ``(H, W)`` bool in photo pixels, index ``(row, col)``; rows grow downwards, so *superior* is up
  (smaller row) and *inferior* down, as photographed;
- *nasal* / *temporal* need the eye: on a right eye (OD) photographed as usual the disc lies right of the
  macula and nasal is to the image's right (+col); on a left eye (OS) nasal is to the left. With the eye
  ``"unknown"``, nasal and temporal rim widths and the ISNT rule are reported as unknown (None);
- lengths in px, areas in px², and also in mm / mm² only when the photo's spacing is physical (read from a file
  or typed in, never ``"assumed"``).

The vertical cup-to-disc ratio is the cup's vertical extent (top-most to bottom-most cup row) over the disc's
vertical extent, both measured on the masks; it is *not* read from a bounding-box corner.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Optional

import numpy as np

from engine.fundus.ddls import ddls
from engine.io.exam import Spacing

SECTORS = ("inferior", "superior", "nasal", "temporal")


@dataclass
class DiscBiomarkers:
    """Measurements of one disc/cup segmentation. ``None`` = unknown (not measurable or needs the eye/scale).

    Attributes (units in the names; ``*_mm*`` only with a physical spacing):
        vcdr, hcdr: vertical / horizontal cup-to-disc ratio (extent of cup / extent of disc).
        area_cdr: cup area / disc area.
        disc_height_px, disc_width_px, cup_height_px, cup_width_px: vertical / horizontal extents.
        disc_area_px2, cup_area_px2, rim_area_px2: areas (rim = disc minus cup).
        rim_inferior_px, rim_superior_px, rim_nasal_px, rim_temporal_px: mean neuro-retinal rim width in each
            90° sector around the disc centroid (nasal / temporal need the eye).
        rim_to_disc: the narrowest rim width over all directions divided by the disc diameter in that
            direction (as in the DDLS disc damage scale).
        isnt: True when rim widths follow inferior >= superior >= nasal >= temporal; None when the eye is
            unknown.
        ist: the same rule without the nasal rim (inferior >= superior >= temporal), a published variant that holds
            in more normal eyes (on the sample photos with a known or inferred eye and a glaucoma label: ISNT held
            on 11 of 39 normal eyes and 5 of 41 glaucomatous ones, IST on 22 and 10); None when the eye is unknown.
        cup_eccentricity: sqrt(1 - (minor/major)^2) of the cup's moment ellipse (0 = round).
        centroid_distance_px: distance between cup and disc centroids; centroid_shift: the same divided by the
            disc's mean radius (unitless).
        rim_absent_deg: circumferential extent (degrees) where no rim is left (:mod:`engine.fundus.ddls`).
        ddls_min, ddls_max: the Disc Damage Likelihood Scale stage (1-10) over the disc sizes it could have;
            equal, and ``ddls_stage`` set, only when the disc's size is known (``disc_size``: needs the mm scale).
        eye: the eye the sectors were named for ("OD", "OS", "unknown").
        spacing_source: where the mm scale came from ("file", "user") or None when lengths are px only.
    """

    vcdr: float
    hcdr: float
    area_cdr: float
    disc_height_px: float
    disc_width_px: float
    cup_height_px: float
    cup_width_px: float
    disc_area_px2: float
    cup_area_px2: float
    rim_area_px2: float
    rim_inferior_px: float
    rim_superior_px: float
    rim_nasal_px: Optional[float]
    rim_temporal_px: Optional[float]
    rim_to_disc: float
    isnt: Optional[bool]
    cup_eccentricity: float
    centroid_distance_px: float
    centroid_shift: float
    rim_absent_deg: float
    ddls_min: int
    ddls_max: int
    eye: str = "unknown"
    disc_height_mm: Optional[float] = None
    cup_height_mm: Optional[float] = None
    disc_area_mm2: Optional[float] = None
    cup_area_mm2: Optional[float] = None
    rim_area_mm2: Optional[float] = None
    disc_size: Optional[str] = None
    ddls_stage: Optional[int] = None
    spacing_source: Optional[str] = None
    ist: Optional[bool] = None

    @property
    def isnt_rule(self) -> str:
        """``"holds"``, ``"violated"`` or ``"unknown"``."""
        return _rule_word(self.isnt)

    @property
    def ist_rule(self) -> str:
        """``"holds"``, ``"violated"`` or ``"unknown"`` for :attr:`ist`."""
        return _rule_word(self.ist)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict; unknown values are left out, ``isnt`` / ``ist`` become 1.0 / 0.0 and ``isnt_rule`` /
        ``ist_rule`` words."""
        out: dict[str, Any] = {}
        for key, value in asdict(self).items():
            if value is None:
                continue
            if isinstance(value, bool):
                value = float(value)
            out[key] = value
        out["isnt_rule"], out["ist_rule"] = self.isnt_rule, self.ist_rule
        return out


def _rule_word(holds: Optional[bool]) -> str:
    return "unknown" if holds is None else ("holds" if holds else "violated")


def _extent(mask: np.ndarray, axis: int) -> float:
    """Extent in px of a mask along rows (axis=0: vertical) or cols (axis=1: horizontal)."""
    hit = np.flatnonzero(mask.any(axis=1 - axis))
    return float(hit[-1] - hit[0] + 1) if hit.size else 0.0


def _moments(mask: np.ndarray) -> tuple[float, float, float]:
    """Centroid (row, col) and eccentricity of the moment ellipse of a non-empty mask."""
    rows, cols = np.nonzero(mask)
    r0, c0 = rows.mean(), cols.mean()
    dr, dc = rows - r0, cols - c0
    cov = np.array([[np.mean(dr * dr), np.mean(dr * dc)], [np.mean(dr * dc), np.mean(dc * dc)]]) + np.eye(2) / 12.0
    ev = np.sort(np.linalg.eigvalsh(cov))
    ecc = math.sqrt(max(0.0, 1.0 - ev[0] / ev[1])) if ev[1] > 0 else 0.0
    return float(r0), float(c0), ecc


def rim_profile(disc: np.ndarray, cup: np.ndarray, center: tuple[float, float], n_angles: int = 180,
                step: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rim width and disc diameter along rays from ``center``.

    Returns ``(angles, rim_px, disc_px)``: angles in radians measured counter-clockwise from the image's right
    (+col) with *up* positive (so pi/2 = superior); ``rim_px`` = length of disc-minus-cup along each ray;
    ``disc_px`` = the disc's diameter through ``center`` in that direction (ray + opposite ray).
    """
    import cv2

    h, w = disc.shape
    angles = np.linspace(0.0, 2 * np.pi, n_angles, endpoint=False)
    max_len = float(np.hypot(h, w))
    ts = np.arange(0.0, max_len, step, dtype=np.float32)
    rr = (center[0] - np.sin(angles)[:, None] * ts[None, :]).astype(np.float32)
    cc = (center[1] + np.cos(angles)[:, None] * ts[None, :]).astype(np.float32)
    rim = (disc & ~cup).astype(np.float32)
    dsc = disc.astype(np.float32)
    along_rim = cv2.remap(rim, cc, rr, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    along_disc = cv2.remap(dsc, cc, rr, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    rim_px = along_rim.sum(axis=1) * step
    radius = along_disc.sum(axis=1) * step
    disc_px = radius + np.roll(radius, n_angles // 2)
    return angles, rim_px, disc_px


def rim_to_disc_profile(disc: np.ndarray, cup: np.ndarray, eye: str = "unknown",
                        n_angles: int = 180) -> tuple[np.ndarray, np.ndarray]:
    """The rim width over the disc diameter in each direction around the disc's centroid (its minimum is
    ``rim_to_disc``): where the rim is thin, e.g. a notch.

    Args:
        disc: (H, W) bool disc mask; cup: (H, W) bool cup mask (clipped to the disc).
        eye: "OD" or "OS" puts the angles in TSNIT order; otherwise they are the photo's own.

    Returns:
        ``(angles, ratio)``, each (n_angles,) float, sorted by angle: degrees 0 temporal, 90 superior, 180 nasal,
        270 inferior with a known eye, else counter-clockwise from the photo's right (90 = up); unitless ratios.

    Raises:
        ValueError: empty disc mask.
    """
    disc = np.asarray(disc, bool)
    rows, cols = np.flatnonzero(disc.any(axis=1)), np.flatnonzero(disc.any(axis=0))
    if not rows.size:
        raise ValueError("empty disc mask: nothing to measure")
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))  # the rays never leave the disc's box
    d = disc[box]
    r0, c0, _ = _moments(d)
    angles, rim_px, disc_px = rim_profile(d, np.asarray(cup, bool)[box] & d, (r0, c0), n_angles)
    ratio = np.divide(rim_px, disc_px, out=np.zeros_like(rim_px), where=disc_px > 0)
    deg = np.degrees(angles)
    if eye == "OD":  # temporal is on the photo's left for a right eye, on its right for a left eye
        deg = (180.0 - deg) % 360.0
    order = np.argsort(deg, kind="stable")
    return deg[order], ratio[order]


def compute_biomarkers(
    disc: np.ndarray,
    cup: np.ndarray,
    eye: str = "unknown",
    spacing: Optional[Spacing] = None,
    px_scale: float = 1.0,
) -> DiscBiomarkers:
    """Measure a disc/cup segmentation.

    Args:
        disc: (H, W) bool disc mask (rim + cup).
        cup: (H, W) bool cup mask; it is clipped to the disc.
        eye: "OD", "OS" or "unknown" (nasal / temporal and ISNT need it).
        spacing: the photo's spacing (mm per px, (row, col)); mm values only when ``spacing.is_physical``.
        px_scale: photo px per mask px, for masks measured on a resampled grid (lengths x ``px_scale``,
            areas x ``px_scale``²).

    Raises:
        ValueError: empty disc mask or masks of different shapes.
    """
    disc = np.asarray(disc, bool)
    cup = np.asarray(cup, bool) & disc
    if disc.shape != cup.shape:
        raise ValueError(f"disc {disc.shape} and cup {cup.shape} masks differ in shape")
    if not disc.any():
        raise ValueError("empty disc mask: nothing to measure")
    if eye not in ("OD", "OS"):
        eye = "unknown"
    s = float(px_scale)
    dh, dw = _extent(disc, 0), _extent(disc, 1)
    ch, cw = _extent(cup, 0), _extent(cup, 1)
    da, ca = float(disc.sum()), float(cup.sum())
    dr, dcol, _ = _moments(disc)
    if cup.any():
        cr, ccol, ecc = _moments(cup)
        dist = math.hypot(cr - dr, ccol - dcol)
    else:
        ecc, dist = 0.0, 0.0
    angles, rim_px, disc_px = rim_profile(disc, cup, (dr, dcol))
    deg = np.degrees(angles)

    def sector(lo: float, hi: float) -> float:
        sel = ((deg - lo) % 360.0) < ((hi - lo) % 360.0)
        return float(rim_px[sel].mean()) * s

    superior = sector(45, 135)
    inferior = sector(225, 315)
    right = sector(315, 45)
    left = sector(135, 225)
    if eye == "OD":
        nasal, temporal = right, left
    elif eye == "OS":
        nasal, temporal = left, right
    else:
        nasal = temporal = None
    isnt = None if nasal is None else bool(inferior >= superior >= nasal >= temporal)
    ist = None if temporal is None else bool(inferior >= superior >= temporal)
    valid = disc_px > 0
    ratio = rim_px[valid] / disc_px[valid]
    rdr = float(np.min(ratio)) if valid.any() else 0.0
    row_mm = col_mm = None
    if spacing is not None and spacing.is_physical and len(spacing.mm) >= 2:
        row_mm, col_mm = float(spacing.mm[0]), float(spacing.mm[1])
    stage = ddls(ratio, None if row_mm is None else dh * s * row_mm)
    mean_radius = math.sqrt(da / math.pi)
    out = DiscBiomarkers(
        vcdr=ch / dh if dh else 0.0,
        hcdr=cw / dw if dw else 0.0,
        area_cdr=ca / da,
        disc_height_px=dh * s,
        disc_width_px=dw * s,
        cup_height_px=ch * s,
        cup_width_px=cw * s,
        disc_area_px2=da * s * s,
        cup_area_px2=ca * s * s,
        rim_area_px2=(da - ca) * s * s,
        rim_inferior_px=inferior,
        rim_superior_px=superior,
        rim_nasal_px=nasal,
        rim_temporal_px=temporal,
        rim_to_disc=rdr,
        isnt=isnt,
        ist=ist,
        cup_eccentricity=ecc,
        centroid_distance_px=dist * s,
        centroid_shift=dist / mean_radius if mean_radius else 0.0,
        rim_absent_deg=stage.rim_absent_deg,
        ddls_min=stage.lowest,
        ddls_max=stage.highest,
        eye=eye,
        disc_size=stage.disc_size,
        ddls_stage=stage.stage,
    )
    if row_mm is not None and col_mm is not None:
        out.disc_height_mm = out.disc_height_px * row_mm
        out.cup_height_mm = out.cup_height_px * row_mm
        out.disc_area_mm2 = out.disc_area_px2 * row_mm * col_mm
        out.cup_area_mm2 = out.cup_area_px2 * row_mm * col_mm
        out.rim_area_mm2 = out.rim_area_px2 * row_mm * col_mm
        out.spacing_source = spacing.source
    return out
