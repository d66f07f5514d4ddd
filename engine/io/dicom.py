"""DICOM files with pydicom: Ophthalmic Photography (fundus), Ophthalmic Tomography and any other multi-frame
image (OCT volume), secondary captures, and projection radiographs (X-ray).

- Scale: ``PixelSpacing`` (and for OPT the shared Pixel Measures: PixelSpacing = axial, lateral;
  SpacingBetweenSlices or SliceThickness = slice) becomes a :class:`Spacing` with source ``"file"``.
- Eye: ``ImageLaterality`` / ``Laterality`` / ``FrameLaterality`` R -> OD, L -> OS.
- Pixels: MONOCHROME1 is inverted, palette colour is expanded and YBR colour converted to RGB (by pydicom), more than 8 stored bits are
  scaled with ``BitsStored`` (see :func:`engine.io.images.to_uint8`), signed data is offset by half its range.
- A compressed transfer syntax without an installed decoder raises :class:`MissingCodecError` naming the
  syntax and the packages that would decode it.
- Privacy: messages name the file, never the patient. Patient names and birth dates never appear in an error
  or a provenance note (exception text from pydicom is scrubbed of them).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import cv2
import numpy as np

from engine.io import bscans, images
from engine.io.errors import (
    CorruptFileError,
    ExamLoadError,
    ImageTooLargeError,
    InconsistentVolumeError,
    MissingCodecError,
    NotFoundError,
    UnsupportedFormatError,
    os_read_error,
)
from engine.io.exam import Exam, Eye, Modality, Provenance, SourceFile, Spacing
from engine.models.checkpoint import sha256_file

DICOM_SUFFIXES = frozenset({".dcm", ".dicom", ".dic"})
OP_CLASSES = {"1.2.840.10008.5.1.4.1.1.77.1.5.1", "1.2.840.10008.5.1.4.1.1.77.1.5.2"}
"""Ophthalmic Photography 8 and 16 Bit Image Storage."""
OPT_CLASSES = {"1.2.840.10008.5.1.4.1.1.77.1.5.4", "1.2.840.10008.5.1.4.1.1.77.1.5.7"}
"""Ophthalmic Tomography, Ophthalmic Optical Coherence Tomography B-scan Volume Analysis."""
XRAY_MODALITIES = {"DX", "CR", "PX", "IO", "MG", "RG", "DR"}
_SENSITIVE = ("PatientName", "PatientBirthDate", "OtherPatientNames", "PatientBirthName", "PatientMotherBirthName")
_HEADER_TAGS = [
    "SOPClassUID", "Modality", "ImageLaterality", "Laterality", "StudyInstanceUID", "NumberOfFrames", "Rows",
    "Columns", "SamplesPerPixel", "SharedFunctionalGroupsSequence",
]


@dataclass(frozen=True)
class DicomHeader:
    """What discovery needs from a DICOM file without reading its pixels."""

    path: Path
    kind: Optional[Modality]
    eye: Eye
    study: str
    frames: int
    modality: str


def looks_like_dicom(path: Union[str, Path]) -> bool:
    """True when the file has the ``DICM`` preamble (or a DICOM suffix)."""
    path = Path(path)
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def _pydicom():
    import pydicom

    return pydicom


def _read(path: Path, *, header_only: bool) -> Any:
    pydicom = _pydicom()
    from pydicom.errors import InvalidDicomError

    try:
        if header_only:
            return pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_HEADER_TAGS + list(_SENSITIVE))
        return pydicom.dcmread(path)
    except (FileNotFoundError, PermissionError) as exc:
        raise os_read_error(exc, path) from None
    except InvalidDicomError:
        raise UnsupportedFormatError("is not a DICOM file (no DICM preamble)", path) from None
    except (EOFError, ValueError, TypeError, KeyError, OverflowError, MemoryError, AttributeError) as exc:
        raise CorruptFileError(f"is a truncated or corrupt DICOM file ({type(exc).__name__})", path) from None
    except OSError as exc:
        raise os_read_error(exc, path) from None


def _scrub(message: str, ds: Any) -> str:
    """Remove patient names and birth dates from ``message``."""
    for keyword in _SENSITIVE:
        value = ds.get(keyword, None) if ds is not None else None
        if value is None:
            continue
        from pydicom.multival import MultiValue

        texts = [str(v) for v in value] if isinstance(value, (MultiValue, list, tuple)) else [str(value)]
        for text in texts:
            for piece in {text, *text.replace("^", " ").split()}:
                if len(piece) >= 2:
                    message = message.replace(piece, "[removed]")
    return message


def _eye(ds: Any) -> Eye:
    values = [ds.get("ImageLaterality", ""), ds.get("Laterality", "")]
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared:
        anatomy = shared[0].get("FrameAnatomySequence")
        if anatomy:
            values.append(anatomy[0].get("FrameLaterality", ""))
    found = {str(v).strip().upper() for v in values if v} - {"", "U", "B"}
    if found == {"R"}:
        return "OD"
    if found == {"L"}:
        return "OS"
    return "unknown"


def _kind(ds: Any, frames: int) -> Optional[Modality]:
    sop = str(ds.get("SOPClassUID", ""))
    modality = str(ds.get("Modality", "")).upper()
    if sop in OPT_CLASSES or modality == "OPT" or frames > 1:
        return "oct"
    if sop in OP_CLASSES or modality == "OP":
        return "fundus"
    if modality in XRAY_MODALITIES:
        return "xray"
    return None  # decided from the pixels (colour -> fundus, grey -> B-scan or red-free photo)


_LAZY_ERRORS = (NotImplementedError, TypeError, ValueError, KeyError, AttributeError, IndexError, OverflowError,
                struct.error)
"""pydicom parses element values on first access, so a corrupt element fails there, not in ``dcmread``."""


def _corrupt_element(exc: Exception, path: Path) -> CorruptFileError:
    return CorruptFileError(f"has a corrupt or unreadable header element ({type(exc).__name__})", path)


def read_header(path: Union[str, Path]) -> DicomHeader:
    """Classify a DICOM file from its header (pixels are not read)."""
    path = Path(path)
    ds = _read(path, header_only=True)
    try:
        frames = _int(ds.get("NumberOfFrames", 1), 1)
        return DicomHeader(path, _kind(ds, frames), _eye(ds), str(ds.get("StudyInstanceUID", "")), frames,
                           str(ds.get("Modality", "")))
    except (*_LAZY_ERRORS, _pydicom().errors.BytesLengthException) as exc:
        raise _corrupt_element(exc, path) from None


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _spacing_pair(value: Any) -> Optional[tuple[float, float]]:
    try:
        pair = (float(value[0]), float(value[1]))
    except (TypeError, ValueError, IndexError):
        return None
    return pair if all(np.isfinite(pair)) and min(pair) > 0 else None


def _positive(value: Any) -> Optional[float]:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) and v > 0 else None


def _oct_spacing(ds: Any) -> tuple[Optional[Spacing], Optional[str]]:
    measures = None
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared and shared[0].get("PixelMeasuresSequence"):
        measures = shared[0].PixelMeasuresSequence[0]
    sources = [m for m in (measures, ds) if m is not None]
    pair = next((p for p in (_spacing_pair(m.get("PixelSpacing")) for m in sources) if p), None)
    slice_mm = next(
        (v for m in sources for v in (_positive(m.get("SpacingBetweenSlices")), _positive(m.get("SliceThickness"))) if v),
        None,
    )
    if pair and slice_mm:
        return Spacing((slice_mm, pair[0], pair[1]), "file"), None
    if pair:
        return None, "the file gives axial and lateral pixel spacing but no slice spacing; OCT scale left unknown"
    return None, None


def _check_size(ds: Any, path: Path) -> tuple[int, int, int, int]:
    rows, cols = _int(ds.get("Rows"), 0), _int(ds.get("Columns"), 0)
    frames, samples = _int(ds.get("NumberOfFrames", 1), 0), _int(ds.get("SamplesPerPixel", 1), 0)
    if rows <= 0 or cols <= 0 or frames <= 0 or samples not in (1, 3):
        raise CorruptFileError(
            f"has an impossible image size (Rows {rows}, Columns {cols}, frames {frames}, samples {samples})", path
        )
    if rows * cols > images.MAX_PIXELS:
        raise ImageTooLargeError(
            f"frames of {cols} x {rows} = {rows * cols:,} pixels exceed the safety cap of {images.MAX_PIXELS:,}", path
        )
    if rows * cols * frames * samples > bscans.MAX_VOLUME_VOXELS:
        raise ImageTooLargeError(
            f"{frames:,} frames of {cols} x {rows} px ({rows * cols * frames * samples:,} samples) exceed the "
            f"safety cap of {bscans.MAX_VOLUME_VOXELS:,}",
            path,
        )
    return rows, cols, frames, samples


def _check_codec(ds: Any, path: Path) -> None:
    from pydicom.pixels import get_decoder

    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if syntax is None:
        return
    name = getattr(syntax, "name", str(syntax))
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        raise MissingCodecError(
            f"pixel data uses transfer syntax {name} ({syntax}), which no installed DICOM decoder supports", path
        ) from None
    if not decoder.is_available:
        options = "; ".join(decoder.missing_dependencies) or "a pydicom pixel-data plugin"
        raise MissingCodecError(
            f"pixel data is compressed as {name} ({syntax}) and no decoder for it is installed "
            f"(install one of: {options})",
            path,
        )


def _check_length(ds: Any, path: Path, rows: int, cols: int, frames: int, samples: int) -> None:
    if ds.file_meta.get("TransferSyntaxUID") is not None and ds.file_meta.TransferSyntaxUID.is_compressed:
        return
    bits = _int(ds.get("BitsAllocated"), 0)
    if bits not in (1, 8, 16, 32):
        raise UnsupportedFormatError(f"has BitsAllocated {bits}; 8- and 16-bit pixel data is read", path)
    expected = (rows * cols * frames * samples * bits + 7) // 8
    actual = len(ds.PixelData)
    if actual < expected:
        raise CorruptFileError(
            f"pixel data holds {actual:,} bytes but Rows x Columns x frames x samples needs {expected:,} "
            "(truncated or wrong header)",
            path,
        )


def _to_uint8(ds: Any, array: np.ndarray) -> np.ndarray:
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        array = apply_color_lut(array, ds)
    if array.dtype.kind == "f":
        raise UnsupportedFormatError("holds floating-point pixel data; integer images are read")
    bits = _int(ds.get("BitsStored"), array.dtype.itemsize * 8)
    if array.dtype.kind == "i":
        if bits < 2 or bits > 32:
            raise CorruptFileError(f"has an impossible BitsStored {bits}")
        array = (array.astype(np.int64) + (1 << (bits - 1))).clip(0, (1 << bits) - 1).astype(
            np.uint32 if bits > 16 else np.uint16
        )
    if photometric == "MONOCHROME1":
        top = (1 << bits) - 1 if array.dtype != np.uint8 or bits <= 8 else 255
        array = (top - np.minimum(array, top)).astype(array.dtype)
    if array.dtype != np.uint8:
        array = images.to_uint8(array, bits if bits > 8 else None)
    return array


@dataclass
class _Decoded:
    array: np.ndarray  # (H, W) / (H, W, 3) / (N, H, W) / (N, H, W, 3) uint8
    kind: Optional[Modality]
    ds: Any
    frames: int


def _decode(path: Path) -> _Decoded:
    ds = _read(path, header_only=False)
    try:
        if "PixelData" not in ds:
            other = [k for k in ("FloatPixelData", "DoubleFloatPixelData") if k in ds]
            if other:
                raise UnsupportedFormatError(f"holds {other[0]}; integer pixel data is read", path)
            raise CorruptFileError("has no pixel data (no PixelData element)", path)
        rows, cols, frames, samples = _check_size(ds, path)
        _check_codec(ds, path)
        _check_length(ds, path, rows, cols, frames, samples)
        try:
            raw = ds.pixel_array
        except (ValueError, NotImplementedError, RuntimeError, TypeError, KeyError, IndexError, AttributeError,
                OSError, EOFError) as exc:
            raise CorruptFileError(f"pixel data could not be decoded ({_scrub(str(exc), ds)[:200]})", path) from None
        array = _to_uint8(ds, np.asarray(raw))
    except ExamLoadError as err:
        if err.path is None:
            raise type(err)(err.reason, path) from None
        raise
    return _Decoded(array, _kind(ds, frames), ds, frames)


def _grey(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame


def _shrink(array: np.ndarray, reduce: int) -> np.ndarray:
    if reduce == 1:
        return array
    h, w = array.shape[:2]
    return cv2.resize(array, (-(-w // reduce), -(-h // reduce)), interpolation=cv2.INTER_AREA)


def load_dicom(
    paths: Union[str, Path, Sequence[Union[str, Path]]],
    *,
    exam_id: Optional[str] = None,
    modality: Optional[Modality] = None,
    reduce: int = 1,
) -> Exam:
    """One exam from one DICOM file, or from several (e.g. an OP photo and an OPT volume of one eye).

    The exam id defaults to the file's stem (one file) or the folder's name (several). Two files that both
    give a fundus (or both an OCT volume) raise :class:`InconsistentVolumeError`.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    files = [Path(p) for p in paths]
    if not files:
        raise NotFoundError("no DICOM files given")
    images._check_reduce(reduce)
    exam_id = exam_id or (files[0].stem if len(files) == 1 else files[0].parent.name)
    notes: list[str] = []
    sources: list[SourceFile] = []
    exam = Exam(exam_id=exam_id, provenance=Provenance(reader="engine.io.dicom", files=sources, notes=notes))
    eyes: set[str] = set()
    for path in files:
        try:
            decoded = _decode(path)
            ds, array = decoded.ds, decoded.array
            kind = modality or decoded.kind
            if kind is None:
                first = array if array.ndim == 3 and array.shape[-1] == 3 else np.stack([array] * 3, axis=-1)
                kind = images.guess_modality(first)
                notes.append(f"{path.name}: modality guessed from the pixels ({kind})")
            eyes.add(_eye(ds))
            sources.append(SourceFile(str(path), sha256_file(path)))
            _place(exam, kind, array, ds, decoded.frames, path, reduce, notes)
        except (*_LAZY_ERRORS, _pydicom().errors.BytesLengthException) as exc:
            raise _corrupt_element(exc, path) from None
    known = eyes - {"unknown"}
    exam.eye = known.pop() if len(known) == 1 else "unknown"  # type: ignore[assignment]
    if len(known) > 1:
        notes.append("the files disagree about the eye (laterality); eye left unknown")
    if reduce > 1:
        notes.append(f"decoded at 1/{reduce} of the stored resolution")
    exam.__post_init__()
    return exam


def _place(exam: Exam, kind: Modality, array: np.ndarray, ds: Any, frames: int, path: Path, reduce: int,
           notes: list[str]) -> None:
    def taken(what: str) -> None:
        raise InconsistentVolumeError(f"is a second {what} for exam {exam.exam_id}; one per exam", path)

    pixel_pair = _spacing_pair(ds.get("PixelSpacing")) or _spacing_pair(ds.get("ImagerPixelSpacing"))
    if kind == "oct":
        if exam.oct is not None:
            taken("OCT volume")
        volume = array if frames > 1 else array[None]
        if volume.ndim == 4:
            notes.append(f"{path.name}: colour frames converted to grey")
            volume = np.stack([_grey(f) for f in volume])
        if reduce > 1:
            volume = np.stack([_shrink(f, reduce) for f in volume])
        exam.oct = np.ascontiguousarray(volume)
        spacing, note = _oct_spacing(ds)
        if note:
            notes.append(note)
        if spacing is not None and reduce > 1:
            spacing = Spacing((spacing.mm[0], spacing.mm[1] * reduce, spacing.mm[2] * reduce), "file")
        exam.oct_spacing = spacing
        return
    if frames > 1:  # a multi-frame file forced to a 2-D modality: take the first frame
        notes.append(f"{path.name}: {frames} frames; only the first is used as {kind}")
        array = array[0]
    spacing = Spacing((pixel_pair[0] * reduce, pixel_pair[1] * reduce), "file") if pixel_pair else None
    if kind == "fundus":
        if exam.fundus is not None:
            taken("fundus photo")
        rgb = array if array.ndim == 3 else cv2.cvtColor(array, cv2.COLOR_GRAY2RGB)
        exam.fundus, exam.fundus_spacing = np.ascontiguousarray(_shrink(rgb, reduce)), spacing
    elif kind == "xray":
        if exam.xray is not None:
            taken("X-ray")
        exam.xray, exam.xray_spacing = np.ascontiguousarray(_shrink(_grey(array), reduce)), spacing
        if pixel_pair and "PixelSpacing" not in ds:
            notes.append("X-ray scale is the detector's ImagerPixelSpacing (not corrected for magnification)")
    else:
        raise UnsupportedFormatError(f"holds {kind} data, which DICOM reading does not support yet", path)


__all__ = ["DICOM_SUFFIXES", "DicomHeader", "load_dicom", "looks_like_dicom", "read_header"]
