"""The Disc Damage Likelihood Scale (DDLS) from a measured rim profile.

Spaeth et al. (Trans Am Ophthalmol Soc 2002) stage glaucomatous disc damage 1-10 by the rim / disc ratio at the
rim's narrowest point (radial rim width over the disc diameter in the same axis) or, where no rim is left, by the
circumferential extent of its absence, with thresholds shifted by the disc's vertical diameter (a small disc has
a wider rim for the same damage). The table, in the scale's 1-10 stage numbering:

========  ============================  ============================  ============================
stage     small disc (< 1.50 mm)        average disc (1.50-2.00 mm)   large disc (> 2.00 mm)
========  ============================  ============================  ============================
1         0.5 or more                   0.4 or more                   0.3 or more
2         0.4 to 0.49                   0.3 to 0.39                   0.2 to 0.29
3         0.3 to 0.39                   0.2 to 0.29                   0.1 to 0.19
4         0.2 to 0.29                   0.1 to 0.19                   less than 0.1
5         0.1 to 0.19                   less than 0.1                 no rim over up to 45 deg
6         less than 0.1                 no rim over up to 45 deg      46 to 90 deg
7         no rim over up to 45 deg      46 to 90 deg                  91 to 180 deg
8         46 to 90 deg                  91 to 180 deg                 181 to 270 deg
9         91 to 180 deg                 181 to 270 deg                more than 270 deg
10        more than 180 deg             more than 270 deg
========  ============================  ============================  ============================

The disc's size needs its vertical diameter in mm, so the photo's scale must be physical (from the file or typed
in); when it is not, the stage is given as the range over the three sizes (``lowest``-``highest``) and no single
stage is claimed. A photo cannot tell an absent rim from a sloping one (the scale's own caution, e.g. temporally in
myopia): a rim narrower than :data:`RIM_ABSENT_BELOW` of the disc diameter counts as absent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

DISC_SIZES = ("small", "average", "large")
SMALL_BELOW_MM = 1.50
LARGE_ABOVE_MM = 2.00
RIM_ABSENT_BELOW = 0.02
"""Rim / disc ratio under which the rim counts as absent: a fiftieth of the disc diameter (about 35 µm on a
1.8 mm disc, 5 px on a 2 MP photo's disc) is no visible rim at a photo's resolution."""

_TABLE: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    # size: (lowest rim / disc ratio of stages 1, 2, ... while some rim is left everywhere,
    #        largest extent (deg) of absent rim of the stages that follow; beyond the last: the last stage)
    "small": ((0.5, 0.4, 0.3, 0.2, 0.1), (45.0, 90.0, 180.0)),
    "average": ((0.4, 0.3, 0.2, 0.1), (45.0, 90.0, 180.0, 270.0)),
    "large": ((0.3, 0.2, 0.1), (45.0, 90.0, 180.0, 270.0)),
}


def disc_size(vertical_mm: Optional[float]) -> Optional[str]:
    """``"small"`` (< 1.50 mm), ``"average"`` (1.50-2.00 mm) or ``"large"`` (> 2.00 mm) by the disc's vertical
    diameter; None when it is not known in mm."""
    if vertical_mm is None or not np.isfinite(vertical_mm):
        return None
    if vertical_mm < SMALL_BELOW_MM:
        return "small"
    return "large" if vertical_mm > LARGE_ABOVE_MM else "average"


def rim_absent(ratio: np.ndarray) -> np.ndarray:
    """(n,) bool: True along the rays where no rim is left (ratio under :data:`RIM_ABSENT_BELOW`).

    Args:
        ratio: (n,) rim / disc ratio along n rays around the disc.
    """
    return np.asarray(ratio, np.float64).ravel() < RIM_ABSENT_BELOW


def rim_absent_degrees(ratio: np.ndarray) -> float:
    """Circumferential extent (degrees) of absent rim.

    Args:
        ratio: (n,) rim / disc ratio along n rays at even angle steps around the disc (any start).
    """
    absent = rim_absent(ratio)
    return float(np.count_nonzero(absent)) * 360.0 / absent.size if absent.size else 0.0


def stage(rim_to_disc: float, absent_deg: float, size: str) -> int:
    """The DDLS stage (1-10) of a disc of ``size`` (one of :data:`DISC_SIZES`).

    Args:
        rim_to_disc: the narrowest rim width over the disc diameter in that axis (unitless).
        absent_deg: circumferential extent of absent rim (degrees); 0 when some rim is left all round.
    """
    floors, extents = _TABLE[size]
    if absent_deg <= 0.0:
        return 1 + sum(1 for floor in floors if rim_to_disc < floor)
    return len(floors) + 2 + sum(1 for extent in extents if absent_deg > extent)


@dataclass(frozen=True)
class DdlsStage:
    """A disc's DDLS: ``stage`` when its size is known, else None; ``lowest`` / ``highest`` over the sizes it
    could have (both equal to ``stage`` when known)."""

    stage: Optional[int]
    lowest: int
    highest: int
    disc_size: Optional[str]
    rim_absent_deg: float


def ddls(ratio_profile: np.ndarray, disc_vertical_mm: Optional[float] = None) -> DdlsStage:
    """Stage a disc from its rim profile.

    Args:
        ratio_profile: (n,) rim / disc ratio along n evenly spaced rays around the disc (its minimum is the
            ``rim_to_disc`` biomarker; 0 for an empty profile).
        disc_vertical_mm: the disc's vertical diameter in mm, or None when the photo's scale is not physical.
    """
    ratio_profile = np.asarray(ratio_profile, np.float64).ravel()
    narrowest = float(ratio_profile.min()) if ratio_profile.size else 0.0
    absent = rim_absent_degrees(ratio_profile)
    size = disc_size(disc_vertical_mm)
    stages = [stage(narrowest, absent, s) for s in ((size,) if size else DISC_SIZES)]
    return DdlsStage(stages[0] if size else None, min(stages), max(stages), size, absent)
