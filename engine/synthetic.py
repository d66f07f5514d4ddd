"""Deterministic, obviously synthetic exams for tests, the demo volume and benchmarks.

Nothing here is a patient: every exam made here carries ``provenance.synthetic = True`` and an id that starts
with ``SYNTH``. The images are drawn with OpenCV primitives and NumPy noise so that they are cheap, repeatable
(``seed``) and carry exact ground truth (disc/cup masks, layer boundaries).

Grades follow the GAMMA classes: 0 ``non``, 1 ``early``, 2 ``mid_advanced``; a higher grade draws a larger
cup and a thinner retinal nerve fibre layer (RNFL).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from engine.io.exam import Exam, Eye, Provenance, Spacing

GRADE_NAMES = ("non", "early", "mid_advanced")
GRADE_CDR = (0.35, 0.6, 0.8)
"""Vertical cup-to-disc ratio drawn for each grade (before per-seed jitter)."""
GRADE_RNFL_FRACTION = (0.09, 0.06, 0.035)
"""RNFL thickness as a fraction of the B-scan height for each grade."""
BOUNDARY_NAMES = (
    "ILM", "NFL/GCL", "IPL/INL", "INL/OPL", "OPL/ONL", "ONL/EZ", "EZ/RPE", "RPE/choroid", "choroid/sclera",
)
# Thickness of the layers below the NFL (GCL+IPL, INL, OPL, ONL, EZ, RPE, choroid) as fractions of B-scan height.
_DEEP_LAYER_FRACTIONS = np.array([0.075, 0.04, 0.03, 0.085, 0.025, 0.03, 0.08])
# Mean reflectivity (0-255) of vitreous, the 8 layers, and sclera.
_LAYER_INTENSITY = np.array([12, 200, 135, 70, 150, 60, 215, 240, 115, 45], dtype=np.float32)
# Typical spectral-domain OCT spacing (slice, axial, lateral) in mm for a 6 mm x 6 mm cube (assumed).
_OCT_SPACING_MM = (6.0 / 128, 0.0039, 6.0 / 512)


@dataclass
class SyntheticFundus:
    """A drawn fundus photo with exact masks.

    Attributes:
        image: (H, W, 3) uint8 RGB.
        disc_mask, cup_mask: (H, W) bool.
        disc_center: (row, col) px.
        disc_radius_px: vertical semi-axis of the disc, px.
        vcdr: vertical cup-to-disc ratio drawn (cup height / disc height).
    """

    image: np.ndarray
    disc_mask: np.ndarray
    cup_mask: np.ndarray
    disc_center: tuple[float, float]
    disc_radius_px: float
    vcdr: float


@dataclass
class SyntheticBScan:
    """One drawn B-scan. ``image`` (H, W) uint8; ``boundaries`` (9, W) float32 rows, see BOUNDARY_NAMES."""

    image: np.ndarray
    boundaries: np.ndarray


@dataclass
class SyntheticVolume:
    """A drawn OCT volume. ``volume`` (N, H, W) uint8; ``boundaries`` (N, 9, W) float32 rows."""

    volume: np.ndarray
    boundaries: np.ndarray


def synthetic_fundus(
    shape: tuple[int, int] = (512, 512), cdr: float = 0.5, eye: Eye = "OD", seed: int = 0
) -> SyntheticFundus:
    """Draw a fundus: dark circular field of view, reddish background, vessels, a yellow disc and a pale cup.

    Args:
        shape: (H, W) px.
        cdr: vertical cup-to-disc ratio in (0, 0.95).
        eye: "OD" puts the disc right of centre (as photographed), "OS" left.
        seed: random seed for vessels, noise and small placement jitter.
    """
    if not 0.0 < cdr < 0.95:
        raise ValueError(f"cdr must be in (0, 0.95), got {cdr}")
    h, w = shape
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float32)
    cy, cx, fov_r = h / 2, w / 2, 0.48 * min(h, w)
    radial = np.sqrt((rows - cy) ** 2 + (cols - cx) ** 2) / fov_r
    shade = np.clip(1.0 - 0.45 * radial**2, 0, 1)
    image = np.stack([170 * shade + 20, 70 * shade + 10, 30 * shade + 5], axis=-1)

    side = 1 if eye != "OS" else -1
    disc_r = 0.075 * min(h, w) * rng.uniform(0.9, 1.1)
    dcy = cy + rng.uniform(-0.05, 0.05) * h
    dcx = cx + side * 0.28 * w + rng.uniform(-0.03, 0.03) * w
    _draw_vessels(image, (dcy, dcx), fov_r, (cy, cx), rng)

    disc_axes = (disc_r * 0.92, disc_r)  # (horizontal, vertical) semi-axes: discs are slightly tall ovals
    cup_axes = (disc_axes[0] * cdr * rng.uniform(0.95, 1.05), disc_axes[1] * cdr)
    cup_shift = side * -0.08 * disc_r * (1 - cdr)  # cups sit slightly temporal
    disc_mask = _ellipse_mask(shape, (dcy, dcx), disc_axes)
    cup_mask = _ellipse_mask(shape, (dcy, dcx + cup_shift), cup_axes) & disc_mask
    disc_glow = np.exp(-(((rows - dcy) / (1.6 * disc_r)) ** 2 + ((cols - dcx) / (1.6 * disc_r)) ** 2))
    image += disc_glow[..., None] * np.array([40, 40, 15], np.float32)
    image[disc_mask] = image[disc_mask] * 0.3 + np.array([235, 175, 95], np.float32) * 0.7
    image[cup_mask] = image[cup_mask] * 0.3 + np.array([252, 232, 185], np.float32) * 0.7

    image = cv2.GaussianBlur(image, (0, 0), 1.2)
    image += rng.normal(0, 3.0, image.shape).astype(np.float32)
    image[radial > 1.0] = 0
    rgb = np.clip(image, 0, 255).astype(np.uint8)
    vertical = cup_axes[1] / disc_axes[1]
    return SyntheticFundus(rgb, disc_mask, cup_mask, (float(dcy), float(dcx)), float(disc_r), float(vertical))


def _ellipse_mask(shape: tuple[int, int], center: tuple[float, float], axes: tuple[float, float]) -> np.ndarray:
    """(H, W) bool filled ellipse; ``center`` (row, col), ``axes`` (horizontal, vertical) semi-axes in px."""
    rows, cols = np.ogrid[0 : shape[0], 0 : shape[1]]
    return ((cols - center[1]) / axes[0]) ** 2 + ((rows - center[0]) / axes[1]) ** 2 <= 1.0


def _draw_vessels(
    image: np.ndarray, disc: tuple[float, float], fov_r: float, fov_c: tuple[float, float], rng: np.random.Generator
) -> None:
    """Draw dark red vessel arcades leaving the disc, in place on a float (H, W, 3) image."""
    for k in range(10):
        angle = rng.uniform(0, 2 * np.pi) if k >= 4 else (np.pi / 2 + (k % 2) * np.pi + rng.uniform(-0.4, 0.4))
        length = rng.uniform(0.5, 1.2) * fov_r
        bend = rng.uniform(-1.2, 1.2)
        t = np.linspace(0, 1, 40)
        a = angle + bend * t
        pts = np.stack([disc[1] + np.cos(a) * length * t, disc[0] + np.sin(a) * length * t], axis=1)
        width = max(1, int(round(rng.uniform(0.004, 0.009) * 2 * fov_r)))
        colour = (float(rng.uniform(90, 120)), 25.0, 15.0)
        cv2.polylines(image, [np.round(pts).astype(np.int32)], False, colour, width, lineType=cv2.LINE_AA)


def synthetic_bscan(
    shape: tuple[int, int] = (248, 256), rnfl_px: float = 20.0, seed: int = 0, tilt: float = 0.0
) -> SyntheticBScan:
    """Draw one B-scan with 8 layers between 9 known boundaries, speckle noise and slight blur.

    Args:
        shape: (H, W) px, H axial.
        rnfl_px: RNFL (ILM to NFL/GCL) thickness in px at the scan edges; it thins towards the centre
            as over a macula, and is never below 1 px.
        seed: noise seed.
        tilt: vertical offset in px added linearly across the scan (for volume variety).
    """
    boundaries = _boundaries(shape, rnfl_px, tilt, np.random.default_rng(seed))
    return SyntheticBScan(_render_bscan(shape, boundaries, np.random.default_rng(seed + 1)), boundaries)


def _boundaries(shape: tuple[int, int], rnfl_px: float, tilt: float, rng: np.random.Generator) -> np.ndarray:
    h, w = shape
    x = np.linspace(-1.0, 1.0, w, dtype=np.float32)
    ilm = 0.25 * h + 0.04 * h * x**2 + tilt * x + rng.uniform(-0.01, 0.01) * h
    pit = np.exp(-(x / 0.18) ** 2)
    ilm = ilm + 0.05 * h * pit
    rnfl = np.maximum(1.0, rnfl_px * (1 - 0.7 * pit))
    rows = [ilm, ilm + rnfl]
    for k, frac in enumerate(_DEEP_LAYER_FRACTIONS):
        thickness = frac * h * (1 - (0.6 * pit if k in (0, 1) else 0.0))
        rows.append(rows[-1] + thickness)
    return np.clip(np.stack(rows).astype(np.float32), 0, h - 1)


def _render_bscan(shape: tuple[int, int], boundaries: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = shape
    depth = np.arange(h, dtype=np.float32)[:, None]
    layer_index = (depth >= boundaries[:, None, :]).sum(axis=0)  # (H, W): 0 vitreous .. 9 sclera
    image = _LAYER_INTENSITY[layer_index]
    image = cv2.GaussianBlur(image, (0, 0), 0.8)
    speckle = rng.gamma(shape=6.0, scale=1 / 6.0, size=(h, w)).astype(np.float32)
    image = image * speckle + rng.normal(0, 4.0, (h, w)).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def synthetic_volume(
    n: int = 32, shape: tuple[int, int] = (248, 256), grade: int = 0, seed: int = 0
) -> SyntheticVolume:
    """A raster volume of ``n`` B-scans whose RNFL thickness follows ``grade`` (0, 1, 2)."""
    _check_grade(grade)
    rng = np.random.default_rng(seed)
    volume = np.empty((n, *shape), np.uint8)
    bounds = np.empty((n, len(BOUNDARY_NAMES), shape[1]), np.float32)
    rnfl = GRADE_RNFL_FRACTION[grade] * shape[0] * rng.uniform(0.9, 1.1)
    for k in range(n):
        offset = (k / max(n - 1, 1) - 0.5) * 2.0  # -1 .. 1 across the cube
        scan = synthetic_bscan(
            shape, rnfl_px=rnfl * (1 + 0.25 * offset**2), seed=seed * 1000 + k, tilt=0.03 * shape[0] * offset
        )
        volume[k], bounds[k] = scan.image, scan.boundaries
    return SyntheticVolume(volume, bounds)


def synthetic_exam(
    grade: int = 0,
    n_bscans: int = 32,
    fundus_shape: tuple[int, int] = (512, 512),
    bscan_shape: tuple[int, int] = (248, 256),
    seed: int = 0,
    exam_id: Optional[str] = None,
    eye: Eye = "OD",
) -> Exam:
    """A whole synthetic exam: fundus of the grade's cup size plus a volume of the grade's RNFL.

    The B-scans form a horizontal raster over a square centred on the optic disc, so
    ``bscan_positions`` (N, 2, 2) float32 (row, col) px on the fundus are known. Scales are ``assumed``.
    """
    _check_grade(grade)
    rng = np.random.default_rng(seed)
    cdr = float(np.clip(GRADE_CDR[grade] + rng.uniform(-0.05, 0.05), 0.1, 0.9))
    fundus = synthetic_fundus(fundus_shape, cdr=cdr, eye=eye, seed=seed)
    exam = Exam(
        exam_id=exam_id or f"SYNTH{seed:04d}",
        eye=eye,
        fundus=fundus.image,
        fundus_spacing=Spacing((0.012, 0.012), "assumed"),
        provenance=Provenance(
            reader="engine.synthetic",
            notes=[f"synthetic exam, grade {GRADE_NAMES[grade]}, drawn vertical CDR {fundus.vcdr:.3f}"],
            synthetic=True,
        ),
    )
    if n_bscans > 0:
        vol = synthetic_volume(n_bscans, bscan_shape, grade, seed)
        half = 3.0 * fundus.disc_radius_px
        r0, c0 = fundus.disc_center
        rows = np.linspace(r0 - half, r0 + half, n_bscans, dtype=np.float32)
        positions = np.empty((n_bscans, 2, 2), np.float32)
        positions[:, 0, 0] = positions[:, 1, 0] = rows
        positions[:, 0, 1], positions[:, 1, 1] = c0 - half, c0 + half
        exam.oct = vol.volume
        exam.oct_spacing = Spacing(_OCT_SPACING_MM, "assumed")
        exam.bscan_positions = positions
    return exam


def _check_grade(grade: int) -> None:
    if grade not in (0, 1, 2):
        raise ValueError(f"grade must be 0 (non), 1 (early) or 2 (mid_advanced), got {grade}")


def write_gamma_exam(root: Path, exam: Exam, quality: int = 95) -> Path:
    """Write ``exam`` in the GAMMA layout: ``<ID>/<ID>.jpg`` and ``<ID>/<ID>/<k>_image.jpg``; return ``<ID>/``."""
    folder = Path(root) / exam.exam_id
    folder.mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality]
    if exam.fundus is not None:
        if not cv2.imwrite(str(folder / f"{exam.exam_id}.jpg"), cv2.cvtColor(exam.fundus, cv2.COLOR_RGB2BGR), params):
            raise OSError(f"could not write {folder / f'{exam.exam_id}.jpg'}")
    if exam.oct is not None:
        scans = folder / exam.exam_id
        scans.mkdir(exist_ok=True)
        for k, bscan in enumerate(exam.oct):
            if not cv2.imwrite(str(scans / f"{k}_image.jpg"), bscan, params):
                raise OSError(f"could not write {scans / f'{k}_image.jpg'}")
    return folder
