"""Which eye a fundus photo shows, from where its optic disc lies in the field of view.

A fundus camera images the retina upright, as seen from in front of the patient: the optic disc lies nasal to
the fovea, so on the photo's right in a right eye (OD) and on its left in a left eye (OS). On a photo centred on
the macula the disc sits about half a field-of-view radius from the centre; on one centred on the disc it sits
near the centre, and nothing can be said.

Measured on the shared sample photos (``GV_SAMPLE_DATA=../shared/data python benchmarks/laterality.py``): the
horizontal disc offsets of the 201 photos whose disc was found fall in three groups, -0.90 to -0.37, -0.26 to
+0.15 and +0.37 to +0.80 field-of-view radii, and :data:`SIDE_OFFSET` lies in both gaps: 70 photos read as right
eyes, 71 as left, 60 not decided. Of the 14 photos whose eye their dataset states (ODIR, ORIGA, LES-AV, PAPILA,
CRFO-v4 and the CC0 left eye; a 15th has no disc found) 8 were decided, all 8 right, and 6 not (centred on the
disc).
"""

from __future__ import annotations

from typing import Optional

from engine.fundus.localize import BORDERLESS_FOV, DiscLocation

SIDE_OFFSET = 0.3
"""|disc column - field-of-view centre column| / field-of-view radius from which the side decides the eye."""
MAX_ROW_OFFSET = 0.35
"""|disc row - field-of-view centre row| / radius above which the photo is not taken on the usual horizontal
meridian through disc and fovea (at most 0.27 on the sample photos), and nothing is said."""


def disc_offset(center: tuple[float, float], location: DiscLocation) -> Optional[tuple[float, float]]:
    """``(row, col)`` offset of the disc centre ``center`` (photo px) from the field-of-view centre of
    ``location``, in field-of-view radii (col > 0: the photo's right); None when the photo has no field-of-view
    circle to measure from (a crop without black border, :data:`engine.fundus.localize.BORDERLESS_FOV`)."""
    radius = float(location.fov_radius_px)
    if radius <= 0 or location.fov_fraction >= BORDERLESS_FOV:
        return None
    fov_row, fov_col = location.fov_center
    return (center[0] - fov_row) / radius, (center[1] - fov_col) / radius


def eye_from_disc(center: tuple[float, float], location: DiscLocation) -> str:
    """``"OD"`` (disc on the photo's right), ``"OS"`` (on its left) or ``"unknown"`` (the disc near the middle,
    far off the horizontal meridian, or no field of view to measure from) for a disc centred at ``center``
    (row, col) photo px."""
    offset = disc_offset(center, location)
    if offset is None or abs(offset[0]) > MAX_ROW_OFFSET or abs(offset[1]) < SIDE_OFFSET:
        return "unknown"
    return "OD" if offset[1] > 0 else "OS"


CHECK_THE_EYE = "check the eye"
"""The end of every :func:`eye_conflict` message."""


def eye_conflict(given: str, inferred: str) -> str:
    """A one-line message when the eye ``given`` (name, file, user) disagrees with the one the disc's side shows,
    else ""."""
    if given not in ("OD", "OS") or inferred not in ("OD", "OS") or given == inferred:
        return ""
    side = {"OD": "right, as in a right eye (OD)", "OS": "left, as in a left eye (OS)"}[inferred]
    return f"the disc lies on the photo's {side}, but the eye given is {given}: {CHECK_THE_EYE}"
