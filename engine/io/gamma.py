"""The GAMMA challenge layout: ``<ID>/<ID>.jpg`` (fundus) and ``<ID>/<ID>/0_image.jpg ... 255_image.jpg``.

B-scans are ordered by the number before ``_image`` (never by the string: a widely copied baseline sorts by
the first character and scrambles the volume). GAMMA volumes come from a Topcon DRI OCT Triton, 3 x 3 mm
en-face, 256 B-scans of 992 (depth) x 512 (width) px; the files carry no scale, so the spacing below is an
*assumed* device value (source ``"assumed"``), never shown as micrometres.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from engine.io import bscans, images
from engine.io.errors import EmptyInputError
from engine.io.exam import Exam, Spacing
from engine.progress import CancelToken, ProgressCallback

TRITON_FIELD_MM = 3.0
"""En-face side of a GAMMA (Topcon Triton 3D macula) cube: 3 mm, raster of B-scans across it."""
TRITON_AXIAL_MM = 0.0026
"""Axial pixel size of the Topcon Triton (about 2.6 um per px over its 992 px depth)."""


def assumed_triton_spacing(n_bscans: int, width: int) -> Spacing:
    """Assumed (slice, axial, lateral) mm per px for a Triton-like cube of ``n_bscans`` B-scans ``width`` wide."""
    return Spacing(
        (TRITON_FIELD_MM / max(n_bscans, 1), TRITON_AXIAL_MM, TRITON_FIELD_MM / max(width, 1)), "assumed"
    )


ASSUMED_NOTE = (
    "OCT spacing is assumed (Topcon DRI OCT Triton, 3 x 3 mm cube as in GAMMA; axial 2.6 um/px): "
    "the files carry no scale"
)


def find_fundus(folder: Path) -> Optional[Path]:
    """``<ID>/<ID>.<image suffix>`` if present."""
    for child in sorted(folder.iterdir()):
        if child.is_file() and child.stem == folder.name and child.suffix.lower() in images.IMAGE_SUFFIXES:
            return child
    return None


def bscan_files(folder: Path) -> list[Path]:
    """Image files of ``<ID>/<ID>/`` (unordered), or an empty list when that folder is absent."""
    scans = folder / folder.name
    if not scans.is_dir():
        return []
    return [p for p in scans.iterdir() if p.is_file() and p.suffix.lower() in images.IMAGE_SUFFIXES
            and not p.name.startswith(".")]


def is_gamma_folder(folder: Union[str, Path]) -> bool:
    """True for ``<ID>/`` holding a ``<ID>/`` sub-folder of numbered B-scan images."""
    folder = Path(folder)
    return folder.is_dir() and any(bscans.parse_number(p) for p in bscan_files(folder))


def load_gamma(
    folder: Union[str, Path],
    *,
    reduce: int = 1,
    eye: str = "unknown",
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
) -> Exam:
    """Load ``<ID>/``: fundus ``(H, W, 3)`` uint8 (if present) and OCT ``(N, 992, 512)`` uint8 in number order.

    The OCT spacing is :func:`assumed_triton_spacing` (source ``"assumed"``), said so in the notes.
    """
    folder = Path(folder)
    fundus_path = find_fundus(folder)
    found = bscan_files(folder)
    scans = bscans.order_bscans(found) if found else []
    if fundus_path is None and not scans:
        raise EmptyInputError(f"is not a GAMMA exam: neither {folder.name}.jpg nor {folder.name}/ B-scans", folder)
    spacing, notes = None, []
    if scans:
        spacing = assumed_triton_spacing(len(scans), images.probe(scans[0]).width)
        notes.append(ASSUMED_NOTE)
    return bscans.assemble_exam(
        folder.name, fundus=fundus_path, bscan_paths=scans, oct_spacing=spacing, reduce=reduce, eye=eye,
        reader="engine.io.gamma", notes=notes, progress=progress, cancel=cancel,
    )


__all__ = ["ASSUMED_NOTE", "assumed_triton_spacing", "bscan_files", "find_fundus", "is_gamma_folder", "load_gamma"]
