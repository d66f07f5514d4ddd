"""The one exam model every reader returns and every pipeline stage consumes.

Axis conventions (stated once, used everywhere):
- fundus: ``(H, W, 3)`` uint8 RGB, index ``(row, col)``; spacing ``(row, col)`` in mm per px.
- OCT: ``(N, H, W)`` uint8, N B-scans in acquisition order, H axial (depth, top = vitreous), W lateral;
  spacing ``(slice, axial, lateral)`` in mm per px (slice = distance between neighbouring B-scans).
- MRI: ``{sequence: (D, H, W)}`` float32 or uint8 per sequence, D axial slices; spacing ``(D, H, W)`` mm.
- X-ray: ``(H, W)`` uint8 grey; spacing ``(row, col)`` mm per px.

Physical scale always carries its source: ``"file"`` (read from the file), ``"user"`` (typed in) or
``"assumed"`` (a typical device value; never shown as µm / mm to a user).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Mapping, Optional, Sequence

import numpy as np

ScaleSource = Literal["file", "assumed", "user"]
Eye = Literal["OD", "OS", "unknown"]
Modality = Literal["fundus", "oct", "mri", "xray"]


@dataclass(frozen=True)
class Spacing:
    """Physical size of one pixel/voxel along each array axis, in mm, with where the numbers came from."""

    mm: tuple[float, ...]
    source: ScaleSource

    def __post_init__(self) -> None:
        if any(not np.isfinite(v) or v <= 0 for v in self.mm):
            raise ValueError(f"spacing must be positive and finite, got {self.mm}")

    @property
    def is_physical(self) -> bool:
        """True when the scale may be shown in physical units (it was not assumed)."""
        return self.source != "assumed"


PHOTO_UM_PER_PX_RANGE = (0.5, 100.0)
"""Plausible micrometres per pixel of a fundus photo typed in by a user (a 45-degree 12 MP camera is near 4)."""


def typed_photo_spacing(um_per_px: float) -> Spacing:
    """A photo's ``(row, col)`` spacing from a typed-in scale in µm per pixel (square pixels), source ``"user"``.

    Raises:
        ValueError: not a number inside :data:`PHOTO_UM_PER_PX_RANGE` (one line for the user).
    """
    low, high = PHOTO_UM_PER_PX_RANGE
    if not (np.isfinite(um_per_px) and low <= um_per_px <= high):
        raise ValueError(f"a photo's scale must be {low:g} to {high:g} µm per pixel, got {um_per_px:g}")
    return Spacing((um_per_px / 1000.0, um_per_px / 1000.0), "user")


def photo_size(photo: np.ndarray) -> str:
    """``"WxH"`` (px) of an ``(H, W, ...)`` photo: one camera at one resolution gives one size and one scale."""
    return f"{photo.shape[1]}x{photo.shape[0]}"


def parse_size_scales(texts: Sequence[str]) -> dict[str, float]:
    """``["2124x2056=4.2", ...]`` (a photo size W×H px ``=`` µm per px, as the command line's ``--photo-scale-for``
    gives them) -> ``{"2124x2056": 4.2}`` for :func:`scale_for_size`.

    Raises:
        ValueError: not ``WxH=UM``, a size given twice or a scale :func:`typed_photo_spacing` refuses (one line).
    """
    out: dict[str, float] = {}
    for text in texts:
        size, _, um_text = text.replace(" ", "").partition("=")
        w, _, h = size.lower().partition("x")
        try:
            width, height, um = int(w), int(h), float(um_text)
        except ValueError:
            raise ValueError(f"a photo size's scale must look like WxH=UM_PER_PX (e.g. 2124x2056=4.2), got {text!r}"
                             ) from None
        if width < 1 or height < 1:
            raise ValueError(f"a photo size must be positive, got {text!r}")
        key = f"{width}x{height}"
        if key in out:
            raise ValueError(f"the photo size {key} is given twice")
        typed_photo_spacing(um)  # raises for an implausible scale
        out[key] = um
    return out


def scale_for_size(photo: np.ndarray, read: Optional[Spacing], by_size: Mapping[str, float]) -> Optional[Spacing]:
    """The spacing ``photo`` is measured with: its own (``read``) when physical, else the scale typed in for every
    photo of its size (``by_size``: ``{"WxH": µm per px}``, see :func:`typed_photo_spacing`), else ``read``."""
    if read is not None and read.is_physical:
        return read
    um = by_size.get(photo_size(photo))
    return read if um is None else typed_photo_spacing(um)


@dataclass(frozen=True)
class SourceFile:
    """One input file that contributed to the exam, with its SHA-256 (hex)."""

    path: str
    sha256: str


@dataclass
class Provenance:
    """Where an exam came from: reader name, input files with hashes, free-text notes.

    ``synthetic``: the whole exam is generated. ``synthetic_modalities``: the modalities that are generated
    while others are acquired (the demo: real fundus photo, synthetic OCT); the viewer labels those.
    """

    reader: str
    files: list[SourceFile] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    synthetic: bool = False
    synthetic_modalities: tuple[str, ...] = ()


@dataclass
class Exam:
    """Everything loaded for one patient eye.

    Attributes:
        exam_id: patient folder name (GAMMA ``<ID>``) or the file's stem for a single file.
        eye: ``"OD"``, ``"OS"`` or ``"unknown"``.
        fundus: ``(H, W, 3)`` uint8 RGB, or None.
        oct: ``(N, H, W)`` uint8 B-scans in acquisition order, or None.
        bscan_files: source file of each B-scan (same order as ``oct``), empty for multi-frame files.
        bscan_positions: ``(N, 2, 2)`` float32, start and end ``(row, col)`` px of each B-scan on the fundus,
            or None when the geometry is unknown.
        mri: ``{"flair" | "t1ce" | "t2" | "t1": (D, H, W) array}``; empty when absent.
        xray: ``(H, W)`` uint8 grey, or None.
        *_spacing: see module docstring; None when unknown.
    """

    exam_id: str
    eye: Eye = "unknown"
    fundus: Optional[np.ndarray] = None
    fundus_spacing: Optional[Spacing] = None
    oct: Optional[np.ndarray] = None
    oct_spacing: Optional[Spacing] = None
    bscan_files: list[str] = field(default_factory=list)
    bscan_positions: Optional[np.ndarray] = None
    mri: dict[str, np.ndarray] = field(default_factory=dict)
    mri_spacing: Optional[Spacing] = None
    xray: Optional[np.ndarray] = None
    xray_spacing: Optional[Spacing] = None
    provenance: Provenance = field(default_factory=lambda: Provenance(reader="unknown"))

    def __post_init__(self) -> None:
        if self.fundus is not None:
            _require(self.fundus, 3, "fundus", np.uint8)
            if self.fundus.shape[2] != 3:
                raise ValueError(f"fundus must be (H, W, 3) RGB, got {self.fundus.shape}")
        if self.oct is not None:
            _require(self.oct, 3, "oct", np.uint8)
            if self.bscan_files and len(self.bscan_files) != self.oct.shape[0]:
                raise ValueError("bscan_files must list one file per B-scan")
        if self.xray is not None:
            _require(self.xray, 2, "xray", np.uint8)
        if self.bscan_positions is not None and self.oct is not None:
            if self.bscan_positions.shape != (self.oct.shape[0], 2, 2):
                raise ValueError("bscan_positions must be (N, 2, 2)")
        if self.eye not in ("OD", "OS", "unknown"):
            raise ValueError(f"eye must be OD, OS or unknown, got {self.eye!r}")

    @property
    def modalities(self) -> tuple[Modality, ...]:
        """The modalities present, in a fixed order."""
        present: list[Modality] = []
        if self.fundus is not None:
            present.append("fundus")
        if self.oct is not None:
            present.append("oct")
        if self.mri:
            present.append("mri")
        if self.xray is not None:
            present.append("xray")
        return tuple(present)

    @property
    def is_synthetic(self) -> bool:
        """True when the whole exam is generated (not a patient)."""
        return self.provenance.synthetic

    def is_synthetic_modality(self, modality: str) -> bool:
        """True when ``modality`` (``"fundus"``, ``"oct"``, ...) of this exam is generated, not acquired."""
        return self.provenance.synthetic or modality in self.provenance.synthetic_modalities

    def nbytes(self) -> int:
        """Bytes held by the pixel arrays (for memory budgets)."""
        arrays = [self.fundus, self.oct, self.xray, *self.mri.values()]
        return int(sum(a.nbytes for a in arrays if a is not None))


def _require(array: np.ndarray, ndim: int, name: str, dtype: type) -> None:
    if not isinstance(array, np.ndarray) or array.ndim != ndim or array.dtype != dtype:
        got = getattr(array, "shape", type(array)), getattr(array, "dtype", None)
        raise ValueError(f"{name} must be a {ndim}-D {np.dtype(dtype).name} array, got {got}")


def exam_id_for(path: Path) -> str:
    """The exam id for a path: a folder's name, or a file's stem."""
    return path.name if path.is_dir() else path.stem
