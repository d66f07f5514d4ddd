"""Layer thickness from boundaries: per B-scan profiles, en-face maps, ETDRS / disc sectors, TSNIT profile.

Units: thickness is in px (axial rows) unless the axial scale is physical (``Spacing.is_physical``), then µm;
every function that returns a thickness takes or returns the unit. Sector grids and the TSNIT circle need the
en-face geometry in mm (slice and lateral spacing), so they are only computed from a physical scale.

En-face frame: a raster volume ``(N, H, W)`` seen from the front is an ``(N, W)`` map, row = B-scan index,
column = A-scan. Superior is towards B-scan 0 unless ``first_is_inferior``; temporal is to the left for a
right eye (OD) and to the right for a left eye (OS) (fundus as photographed); with the eye unknown the sectors
say ``left`` / ``right`` instead of temporal / nasal.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Optional

import numpy as np

from engine.oct import LAYER_NAMES

ETDRS_DIAMETERS_MM = (1.0, 3.0, 6.0)
TSNIT_RADIUS_MM = 1.73
"""Radius of the standard peripapillary RNFL circle (3.46 mm diameter)."""


def layer_thickness(boundaries: np.ndarray) -> np.ndarray:
    """(N, 9, W) or (9, W) boundary rows -> (N, 8, W) / (8, W) float32 thickness px of each layer of LAYER_NAMES.

    The choroid is NaN where the choroid/sclera boundary was not found (the network does not find it).
    """
    b = np.asarray(boundaries, np.float32)
    return np.diff(b, axis=-2)


def total_retina(boundaries: np.ndarray) -> np.ndarray:
    """ILM to Bruch's membrane (RPE/choroid), px: (N, 9, W) -> (N, W)."""
    b = np.asarray(boundaries, np.float32)
    return b[..., 7, :] - b[..., 0, :]


@dataclass
class Geometry:
    """En-face geometry of a raster volume in mm. ``slice_mm``: B-scan spacing; ``lateral_mm``: A-scan spacing."""

    slice_mm: float
    lateral_mm: float
    eye: str = "unknown"
    first_is_inferior: bool = False

    def side_names(self) -> tuple[str, str]:
        """Names of the (left, right) en-face sides."""
        if self.eye == "OD":
            return "temporal", "nasal"
        if self.eye == "OS":
            return "nasal", "temporal"
        return "left", "right"

    def to_mm(self, row: np.ndarray, col: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """En-face (row, col) px -> (up, right) mm relative to (0, 0); up = superior."""
        up = np.asarray(row, np.float64) * self.slice_mm * (1.0 if self.first_is_inferior else -1.0)
        return up, np.asarray(col, np.float64) * self.lateral_mm


def _direction(angle: np.ndarray, geo: Geometry) -> np.ndarray:
    """Quadrant name per angle (radians, 0 = right, pi/2 = superior): (K,) -> (K,) object array."""
    left, right = geo.side_names()
    a = np.mod(angle + np.pi / 4, 2 * np.pi)
    names = np.array([right, "superior", left, "inferior"], dtype=object)
    return names[(a // (np.pi / 2)).astype(int) % 4]


def etdrs_sectors(thickness_map: np.ndarray, centre: tuple[float, float], geo: Geometry) -> dict[str, float]:
    """Mean thickness in the nine ETDRS sectors (central 1 mm; inner 1-3 mm and outer 3-6 mm rings by quadrant).

    Args:
        thickness_map: (N, W) en-face thickness (any unit; NaN ignored).
        centre: (row, col) en-face px of the fovea.
        geo: the en-face geometry.

    Returns:
        ``{"central": v, "inner_superior": v, ..., "outer_temporal": v}`` (NaN where no sample falls).
    """
    n, w = thickness_map.shape
    rows, cols = np.mgrid[0:n, 0:w]
    up, right = geo.to_mm(rows - centre[0], cols - centre[1])
    radius = np.hypot(up, right)
    quadrant = _direction(np.arctan2(up, right).ravel(), geo).reshape(n, w)
    r0, r1, r2 = (d / 2 for d in ETDRS_DIAMETERS_MM)
    out = {"central": _mean(thickness_map[radius <= r0])}
    for ring, lo, hi in (("inner", r0, r1), ("outer", r1, r2)):
        in_ring = (radius > lo) & (radius <= hi)
        for name in ("superior", *geo.side_names(), "inferior"):
            out[f"{ring}_{name}"] = _mean(thickness_map[in_ring & (quadrant == name)])
    return out


def tsnit_profile(
    thickness_map: np.ndarray, centre: tuple[float, float], geo: Geometry, radius_mm: float = TSNIT_RADIUS_MM,
    samples: int = 256,
) -> tuple[np.ndarray, np.ndarray]:
    """Thickness resampled on a circle around the disc, in TSNIT order.

    Returns:
        ``(angles_deg (samples,), values (samples,))``: angle 0 = temporal, 90 = superior, 180 = nasal,
        270 = inferior (for eye unknown: 0 = left, as if the eye were a right eye), values NaN outside the scan.
    """
    theta = np.deg2rad(np.arange(samples) * 360.0 / samples)
    # Temporal is the left side for OD/unknown (x = -cos), the right side for OS (x = +cos); superior is up.
    sign = 1.0 if geo.eye == "OS" else -1.0
    right_mm, up_mm = sign * radius_mm * np.cos(theta), radius_mm * np.sin(theta)
    rows = centre[0] + up_mm / geo.slice_mm * (1.0 if geo.first_is_inferior else -1.0)
    cols = centre[1] + right_mm / geo.lateral_mm
    from scipy.ndimage import map_coordinates  # lazy: the viewer unpickles results of this module

    values = map_coordinates(np.asarray(thickness_map, np.float64), [rows, cols], order=1, mode="constant", cval=np.nan)
    return np.rad2deg(theta).astype(np.float32), values.astype(np.float32)


def tsnit_quadrants(angles_deg: np.ndarray, values: np.ndarray) -> dict[str, float]:
    """Quadrant means of a TSNIT profile: temporal 315-45, superior 45-135, nasal 135-225, inferior 225-315 deg."""
    a = np.mod(np.asarray(angles_deg) + 45.0, 360.0)
    names = ("temporal", "superior", "nasal", "inferior")
    return {name: _mean(values[(a >= 90 * k) & (a < 90 * (k + 1))]) for k, name in enumerate(names)}


def find_fovea(total_map: np.ndarray, geo: Optional[Geometry] = None) -> Optional[tuple[float, float]]:
    """En-face (row, col) px of the foveal pit: the thinnest total retina in the central half, or None.

    The pit must be at least 15 % thinner than the median total thickness (else there is no fovea in view).
    """
    m = np.asarray(total_map, np.float64)
    n, w = m.shape
    if n < 3 or not np.isfinite(m).any():
        return None
    filled = np.where(np.isfinite(m), m, np.nanmedian(m))
    size = (max(1, n // 10), max(1, w // 20))
    from scipy.ndimage import uniform_filter

    smooth = uniform_filter(filled, size=size, mode="nearest")
    r0, r1, c0, c1 = n // 4, n - n // 4, w // 4, w - w // 4
    centre = smooth[r0:r1, c0:c1]
    r, c = np.unravel_index(np.argmin(centre), centre.shape)
    if centre[r, c] > 0.85 * np.median(filled):
        return None
    return float(r + r0), float(c + c0)


def _mean(values: np.ndarray) -> float:
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def thickness_table(boundaries: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """(N, 9, W) boundary rows -> (N, 10) float64 per-B-scan means: the 8 layers of LAYER_NAMES, the total
    retina (ILM to Bruch's membrane), then the thinnest NFL; all times ``scale`` (1 for px, µm/px for µm).
    NaN where a layer was not found in any column of the B-scan (columns :data:`TABLE_COLUMNS`)."""
    layers = layer_thickness(boundaries) * scale  # (N, 8, W)
    total = total_retina(boundaries) * scale  # (N, W)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows give NaN, as documented
        means = np.nanmean(layers, axis=2)
        return np.concatenate([means, np.nanmean(total, axis=1)[:, None], np.nanmin(layers[:, 0], axis=1)[:, None]], axis=1)


TABLE_COLUMNS = tuple(f"{name}_mean" for name in LAYER_NAMES) + ("total_retina_mean", "NFL_min")
"""Column names of :func:`thickness_table`."""
