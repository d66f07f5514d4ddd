"""NIfTI MRI with nibabel: one file, or a case folder of FLAIR / T1ce / T2 / T1 volumes recognised by name.

Names: the file name (without ``.nii`` / ``.nii.gz``) is split into words at ``_ - . space``; a word names the
sequence. BraTS 2018-2021 (``*_flair``, ``*_t1ce``, ``*_t1``, ``*_t2``), BraTS 2023 (``t2f`` FLAIR, ``t1c``,
``t1n``, ``t2w``) and DeepMedic's BraTS 2015 copies (``Flair_subtrMeanDivStd``, ``T1c_...``) are covered.
Label maps and masks (``seg``, ``OTMultiClass``, ``brainmask``, ...) are not images and are skipped.

Orientation: every volume is reoriented to the closest canonical RAS+ frame and returned as ``(D, H, W)``:
D axial slices from inferior to superior, H rows from anterior (top) to posterior, W columns from the
patient's right to left (radiological display: patient's right on the image left). Spacing ``(D, H, W)`` mm
comes from the header (source ``"file"``). Intensities stay as stored: float32 (uint8 when stored as
unscaled uint8); never float64.
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from engine.io.errors import (
    CorruptFileError,
    EmptyInputError,
    ImageTooLargeError,
    InconsistentVolumeError,
    UnsupportedFormatError,
    os_read_error,
)
from engine.io.exam import Exam, Provenance, SourceFile, Spacing
from engine.models.checkpoint import sha256_file
from engine.progress import CancelToken, ProgressCallback, check, report

NIFTI_SUFFIXES = (".nii", ".nii.gz")
MAX_SIDE = 4096
"""Largest accepted size of one axis; a header claiming more is refused as absurd."""
MAX_VOXELS = 512 * 512 * 512
"""Largest accepted voxel count of one volume (512 MiB as float32)."""
SEQUENCES = ("flair", "t1ce", "t2", "t1")
_WORDS = {
    "flair": "flair", "t2f": "flair", "t2flair": "flair",
    "t1ce": "t1ce", "t1c": "t1ce", "t1gd": "t1ce", "t1post": "t1ce", "t1contrast": "t1ce",
    "t2": "t2", "t2w": "t2",
    "t1": "t1", "t1w": "t1", "t1n": "t1",
}
_NOT_IMAGES = re.compile(
    r".*mask|seg|segmentation|labels?|otmulticlass|ot|gt|truth|groundtruth|roi|annotations?", re.IGNORECASE
)


def is_nifti(path: Union[str, Path]) -> bool:
    name = Path(path).name.lower()
    return name.endswith(NIFTI_SUFFIXES)


def stem(path: Path) -> str:
    """The file name without ``.nii`` / ``.nii.gz``."""
    name = path.name
    for suffix in (".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def sequence_of(path: Union[str, Path]) -> Optional[str]:
    """``"flair"``, ``"t1ce"``, ``"t2"``, ``"t1"`` named by the file, or None (labels, masks, unknown)."""
    if is_label(path):
        return None
    words = [w.lower() for w in re.split(r"[_\-.\s]+", stem(Path(path))) if w]
    found = {_WORDS[w] for w in words if w in _WORDS}
    return found.pop() if len(found) == 1 else None


def is_label(path: Union[str, Path]) -> bool:
    """True when the name marks a label map or mask (``seg``, ``OTMultiClass``, ``brainmask``, ...)."""
    return any(_NOT_IMAGES.fullmatch(w) for w in re.split(r"[_\-.\s]+", stem(Path(path))) if w)


def skip_reason(path: Union[str, Path]) -> str:
    """Why a NIfTI file of a case folder is not read as a sequence."""
    if is_label(path):
        return "label map or mask, not an MRI sequence"
    return "name does not say which MRI sequence it is (FLAIR, T1ce, T2, T1)"


def _nib():
    import nibabel

    return nibabel


def read_volume(path: Union[str, Path]) -> tuple[np.ndarray, tuple[float, float, float]]:
    """One NIfTI volume as ``(D, H, W)`` (see module docstring) and its ``(D, H, W)`` spacing in mm."""
    path = Path(path)
    nib = _nib()
    try:
        img = nib.load(str(path))
    except (FileNotFoundError, PermissionError) as exc:
        raise os_read_error(exc, path) from None
    except (nib.filebasedimages.ImageFileError, ValueError, EOFError, OSError, zlib.error) as exc:
        raise CorruptFileError(f"is not a readable NIfTI file ({type(exc).__name__})", path) from None
    shape = tuple(int(s) for s in img.header.get_data_shape())
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) != 3:
        raise UnsupportedFormatError(f"has {len(shape)} dimensions {shape}; one 3-D volume per file is read", path)
    if min(shape) < 1 or max(shape) > MAX_SIDE or int(np.prod(shape, dtype=np.int64)) > MAX_VOXELS:
        raise ImageTooLargeError(
            f"header claims an absurd size {shape[0]} x {shape[1]} x {shape[2]} (caps: {MAX_SIDE} per axis, "
            f"{MAX_VOXELS:,} voxels)",
            path,
        )
    try:
        stored = np.dtype(img.get_data_dtype())
        proxy = img.dataobj
        slope, inter = getattr(proxy, "slope", 1.0), getattr(proxy, "inter", 0.0)
        if stored == np.uint8 and slope in (1.0, None) and inter in (0.0, None):
            data = np.asarray(proxy, dtype=np.uint8)
        else:
            data = img.get_fdata(dtype=np.float32)
        data = data.reshape(shape)
        # Reorient to the closest canonical RAS+ axes (flips and transposes only, no resampling).
        orient = nib.orientations
        transform = orient.ornt_transform(orient.io_orientation(img.affine), orient.axcodes2ornt(("R", "A", "S")))
        data = orient.apply_orientation(data, transform)
        stored_zooms = [float(z) for z in img.header.get_zooms()[:3]]
        zooms = [0.0, 0.0, 0.0]
        for axis, (out_axis, _flip) in enumerate(transform):
            zooms[int(out_axis)] = stored_zooms[axis]
    except (ValueError, EOFError, OSError, zlib.error, MemoryError) as exc:
        raise CorruptFileError(f"voxel data is truncated or corrupt ({type(exc).__name__})", path) from None
    # RAS+ array[x, y, z] -> (z, y, x), then rows anterior->posterior and columns right->left.
    volume = np.ascontiguousarray(np.transpose(data, (2, 1, 0))[:, ::-1, ::-1])
    if volume.dtype == np.float32 and not np.isfinite(volume).all():
        volume = np.nan_to_num(volume, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    spacing = (zooms[2], zooms[1], zooms[0])
    if not all(np.isfinite(spacing)) or min(spacing) <= 0:
        raise CorruptFileError(f"header gives an impossible voxel size {spacing}", path)
    return volume, spacing


def case_sequences(folder: Union[str, Path]) -> dict[str, Path]:
    """The sequence files of a case folder, ``{sequence: path}``; empty when none is recognised."""
    found: dict[str, Path] = {}
    for path in sorted(Path(folder).iterdir()):
        if path.is_file() and is_nifti(path):
            seq = sequence_of(path)
            if seq and seq not in found:
                found[seq] = path
    return found


def load_nifti(
    paths: Union[str, Path, dict[str, Path], Sequence[Union[str, Path]]],
    *,
    exam_id: Optional[str] = None,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
) -> Exam:
    """An MRI exam: a case folder, ``{sequence: file}``, a list of files, or one file.

    A lone file whose name gives no sequence is stored under ``"unknown"``. All sequences must share one grid
    (BraTS volumes are co-registered); different shapes raise :class:`InconsistentVolumeError`.
    """
    if isinstance(paths, dict):
        named = {k: Path(v) for k, v in paths.items()}
        default_id = next(iter(named.values())).parent.name if named else "mri"
    elif isinstance(paths, (str, Path)) and Path(paths).is_dir():
        named = case_sequences(paths)
        if not named:
            raise EmptyInputError("holds no NIfTI file named as an MRI sequence (FLAIR, T1ce, T2, T1)", paths)
        default_id = Path(paths).name
    else:
        files = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
        named = {}
        for f in files:
            named.setdefault(sequence_of(f) or ("unknown" if len(files) == 1 else stem(f)), f)
        default_id = stem(files[0]) if len(files) == 1 else files[0].parent.name
    exam = Exam(exam_id=exam_id or default_id, provenance=Provenance(reader="engine.io.nifti"))
    grid: Optional[tuple[tuple[int, ...], Path]] = None
    for k, (seq, path) in enumerate(sorted(named.items(), key=lambda kv: _order(kv[0]))):
        check(cancel)
        volume, spacing = read_volume(path)
        if grid is not None and volume.shape != grid[0]:
            raise InconsistentVolumeError(
                f"is {volume.shape} but {grid[1].name} is {grid[0]}; the sequences of one case must share a grid",
                path,
            )
        if grid is None:
            grid = (volume.shape, path)
            exam.mri_spacing = Spacing(spacing, "file")
        exam.mri[seq] = volume
        exam.provenance.files.append(SourceFile(str(path), sha256_file(path)))
        report(progress, (k + 1) / len(named), f"read {seq}")
    return exam


def _order(seq: str) -> tuple[int, str]:
    return (SEQUENCES.index(seq) if seq in SEQUENCES else len(SEQUENCES), seq)


__all__ = [
    "NIFTI_SUFFIXES", "SEQUENCES", "case_sequences", "is_label", "is_nifti", "load_nifti", "read_volume",
    "sequence_of", "skip_reason", "stem",
]
