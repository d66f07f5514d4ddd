"""Write synthetic exams as DICOM: Ophthalmic Photography (8-bit colour), Ophthalmic Tomography
(multi-frame) and Secondary Capture. For tests, the demo and benchmarks only; every file is marked synthetic
(``PatientName`` ``SYNTHETIC^...``, ``BurnedInAnnotation`` NO, a study description that says so).

Files are uncompressed Explicit VR Little Endian, written to a temporary name and renamed into place.
"""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Literal, Optional, Sequence, Union

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID, generate_uid

from engine.io.exam import Exam

OP_8BIT = "1.2.840.10008.5.1.4.1.1.77.1.5.1"
"""Ophthalmic Photography 8 Bit Image Storage."""
OPT = "1.2.840.10008.5.1.4.1.1.77.1.5.4"
"""Ophthalmic Tomography Image Storage."""
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
"""Secondary Capture Image Storage."""

Laterality = Literal["R", "L", ""]
_EYE_TO_LATERALITY = {"OD": "R", "OS": "L", "unknown": ""}


def _base(
    sop_class: str,
    modality: str,
    *,
    laterality: Laterality,
    patient_name: str,
    patient_id: str,
    birth_date: str,
    study_uid: Optional[str],
    series_number: int,
) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = birth_date
    ds.PatientSex = "O"
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.StudyDate = _dt.date(2000, 1, 1).strftime("%Y%m%d")
    ds.StudyDescription = "SYNTHETIC exam (engine.io.dicom_write) - not a patient"
    ds.SeriesNumber = series_number
    ds.InstanceNumber = 1
    ds.Manufacturer = "Glaucoma Viewer synthetic"
    ds.BurnedInAnnotation = "NO"
    if laterality:
        ds.ImageLaterality = laterality
        ds.Laterality = laterality
    return ds


def _pixels(ds: Dataset, array: np.ndarray, frames: int = 1) -> None:
    array = np.ascontiguousarray(array, dtype=np.uint8)
    colour = array.ndim == (4 if frames > 1 else 3)
    ds.SamplesPerPixel = 3 if colour else 1
    ds.PhotometricInterpretation = "RGB" if colour else "MONOCHROME2"
    if colour:
        ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = int(array.shape[-3 if colour else -2]), int(array.shape[-2 if colour else -1])
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = array.tobytes()


def _save(ds: Dataset, path: Union[str, Path]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        ds.save_as(tmp, enforce_file_format=True)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def write_op(
    path: Union[str, Path],
    rgb: np.ndarray,
    *,
    laterality: Laterality = "R",
    pixel_spacing: Optional[tuple[float, float]] = None,
    patient_name: str = "SYNTHETIC^FUNDUS",
    patient_id: str = "SYNTH0000",
    birth_date: str = "19000101",
    study_uid: Optional[str] = None,
) -> Path:
    """Ophthalmic Photography 8-bit: ``rgb`` (H, W, 3) uint8; ``pixel_spacing`` (row, col) mm per px."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb must be (H, W, 3), got {rgb.shape}")
    ds = _base(OP_8BIT, "OP", laterality=laterality, patient_name=patient_name, patient_id=patient_id,
               birth_date=birth_date, study_uid=study_uid, series_number=1)
    _pixels(ds, rgb)
    if pixel_spacing is not None:
        ds.PixelSpacing = [f"{v:.6g}" for v in pixel_spacing]
    return _save(ds, path)


def write_opt(
    path: Union[str, Path],
    volume: np.ndarray,
    *,
    laterality: Laterality = "R",
    spacing: Optional[Sequence[float]] = None,
    patient_name: str = "SYNTHETIC^OCT",
    patient_id: str = "SYNTH0000",
    birth_date: str = "19000101",
    study_uid: Optional[str] = None,
) -> Path:
    """Ophthalmic Tomography, multi-frame: ``volume`` (N, H, W) uint8, frames in B-scan order.

    ``spacing`` (slice, axial, lateral) mm: written as the shared Pixel Measures (PixelSpacing = axial,
    lateral; SpacingBetweenSlices and SliceThickness = slice).
    """
    if volume.ndim != 3:
        raise ValueError(f"volume must be (N, H, W), got {volume.shape}")
    ds = _base(OPT, "OPT", laterality=laterality, patient_name=patient_name, patient_id=patient_id,
               birth_date=birth_date, study_uid=study_uid, series_number=2)
    _pixels(ds, volume, frames=int(volume.shape[0]))
    if spacing is not None:
        measures = Dataset()
        measures.PixelSpacing = [f"{spacing[1]:.6g}", f"{spacing[2]:.6g}"]
        measures.SliceThickness = f"{spacing[0]:.6g}"
        measures.SpacingBetweenSlices = f"{spacing[0]:.6g}"
        shared = Dataset()
        shared.PixelMeasuresSequence = [measures]
        if laterality:
            anatomy = Dataset()
            anatomy.FrameLaterality = laterality
            shared.FrameAnatomySequence = [anatomy]
        ds.SharedFunctionalGroupsSequence = [shared]
    return _save(ds, path)


def write_sc(
    path: Union[str, Path],
    image: np.ndarray,
    *,
    modality: str = "OT",
    laterality: Laterality = "",
    patient_name: str = "SYNTHETIC^CAPTURE",
    patient_id: str = "SYNTH0000",
    birth_date: str = "19000101",
) -> Path:
    """Secondary Capture: ``image`` (H, W) grey or (H, W, 3) RGB uint8."""
    ds = _base(SECONDARY_CAPTURE, modality, laterality=laterality, patient_name=patient_name,
               patient_id=patient_id, birth_date=birth_date, study_uid=None, series_number=3)
    ds.ConversionType = "WSD"
    _pixels(ds, image)
    return _save(ds, path)


def write_exam(folder: Union[str, Path], exam: Exam) -> list[Path]:
    """Write ``exam`` as ``<folder>/<id>_fundus.dcm`` (OP) and ``<folder>/<id>_oct.dcm`` (OPT), one study."""
    folder = Path(folder)
    laterality = _EYE_TO_LATERALITY[exam.eye]
    study = generate_uid()
    written: list[Path] = []
    if exam.fundus is not None:
        spacing = exam.fundus_spacing.mm if exam.fundus_spacing is not None else None
        written.append(write_op(folder / f"{exam.exam_id}_fundus.dcm", exam.fundus, laterality=laterality,  # type: ignore[arg-type]
                                pixel_spacing=spacing, patient_id=exam.exam_id, study_uid=study))
    if exam.oct is not None:
        spacing = exam.oct_spacing.mm if exam.oct_spacing is not None else None
        written.append(write_opt(folder / f"{exam.exam_id}_oct.dcm", exam.oct, laterality=laterality,  # type: ignore[arg-type]
                                 spacing=spacing, patient_id=exam.exam_id, study_uid=study))
    return written


__all__ = ["OPT", "OP_8BIT", "SECONDARY_CAPTURE", "write_exam", "write_op", "write_opt", "write_sc"]
