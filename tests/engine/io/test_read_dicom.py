"""DICOM: OP colour photos, OPT multi-frame volumes, secondary captures, codecs, privacy of messages."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGBaseline8Bit, JPEGLSLossless, RLELossless

from io_helpers import bscan, photo
from engine.io import dicom, dicom_write
from engine.io.discover import discover
from engine.io.errors import (
    CorruptFileError,
    ExamLoadError,
    ImageTooLargeError,
    MissingCodecError,
    UnsupportedFormatError,
)

PATIENT = "Doe^Jane"
BIRTH = "19700101"


def _volume(n: int = 5) -> np.ndarray:
    return np.stack([bscan(k, (64, 80)) for k in range(n)])


def _rewrite(path: Path, **changes) -> Path:
    ds = pydicom.dcmread(path)
    for key, value in changes.items():
        if value is None:
            del ds[key]
        else:
            setattr(ds, key, value)
    ds.save_as(path, enforce_file_format=True)
    return path


def test_op_colour_photo_with_spacing_and_laterality(tmp_path, frozen):
    rgb = photo()
    path = dicom_write.write_op(tmp_path / "photo.dcm", rgb, laterality="L", pixel_spacing=(0.011, 0.012))
    check = frozen(tmp_path)
    exam = dicom.load_dicom(path)
    check()
    assert exam.exam_id == "photo" and exam.eye == "OS" and exam.modalities == ("fundus",)
    assert np.array_equal(exam.fundus, rgb)
    assert exam.fundus_spacing.mm == pytest.approx((0.011, 0.012)) and exam.fundus_spacing.source == "file"
    assert len(exam.provenance.files[0].sha256) == 64


def test_opt_multiframe_volume_with_spacing(tmp_path):
    vol = _volume(7)
    path = dicom_write.write_opt(tmp_path / "vol.dcm", vol, laterality="R", spacing=(0.05, 0.0039, 0.0117))
    exam = dicom.load_dicom(path)
    assert exam.eye == "OD" and exam.modalities == ("oct",)
    assert np.array_equal(exam.oct, vol) and exam.oct.dtype == np.uint8
    assert exam.oct_spacing.mm == pytest.approx((0.05, 0.0039, 0.0117)) and exam.oct_spacing.source == "file"
    assert exam.bscan_files == []
    header = dicom.read_header(path)
    assert (header.kind, header.eye, header.frames) == ("oct", "OD", 7)


def test_opt_without_slice_spacing_leaves_scale_unknown_and_says_why(tmp_path):
    path = dicom_write.write_opt(tmp_path / "v.dcm", _volume(3), spacing=(0.05, 0.004, 0.012))
    ds = pydicom.dcmread(path)
    measures = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
    del measures.SliceThickness
    del measures.SpacingBetweenSlices
    ds.save_as(path, enforce_file_format=True)
    exam = dicom.load_dicom(path)
    assert exam.oct_spacing is None
    assert any("no slice spacing" in n for n in exam.provenance.notes)


def test_secondary_capture_modality_from_pixels(tmp_path):
    grey = dicom_write.write_sc(tmp_path / "grey.dcm", bscan(1, (300, 400)))
    colour = dicom_write.write_sc(tmp_path / "colour.dcm", photo())
    assert dicom.load_dicom(grey).modalities == ("oct",)
    assert dicom.load_dicom(colour).modalities == ("fundus",)
    xray = dicom_write.write_sc(tmp_path / "pano.dcm", np.full((300, 600), 80, np.uint8), modality="PX")
    exam = dicom.load_dicom(xray)
    assert exam.modalities == ("xray",) and exam.xray.shape == (300, 600)


def test_jpeg_baseline_ybr_op_is_converted_to_rgb(tmp_path):
    rgb = photo()
    path = dicom_write.write_op(tmp_path / "jpeg.dcm", rgb)
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.PhotometricInterpretation = "YBR_FULL_422"
    ds.PixelData = encapsulate([jpeg.tobytes()])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.save_as(path, enforce_file_format=True)
    exam = dicom.load_dicom(path)
    assert exam.fundus.shape == rgb.shape
    assert np.abs(exam.fundus.astype(int) - rgb).mean() < 8
    assert exam.fundus[5, 5, 1] > 200 and exam.fundus[5, 5, 0] < 60  # green marker: RGB, not YCbCr


def test_uncompressed_ybr_full_is_converted_once(tmp_path):
    from pydicom.pixels import convert_color_space

    rgb = photo()
    path = dicom_write.write_op(tmp_path / "ybr.dcm", rgb)
    _rewrite(path, PhotometricInterpretation="YBR_FULL", PixelData=convert_color_space(rgb, "RGB", "YBR_FULL").tobytes())
    assert np.abs(dicom.load_dicom(path).fundus.astype(int) - rgb).mean() < 1


def test_rle_compressed_volume(tmp_path):
    vol = _volume(4)
    path = dicom_write.write_opt(tmp_path / "rle.dcm", vol)
    ds = pydicom.dcmread(path)
    ds.compress(RLELossless)
    ds.save_as(path, enforce_file_format=True)
    assert np.array_equal(dicom.load_dicom(path).oct, vol)


def test_monochrome1_is_inverted_and_12_bit_is_scaled(tmp_path):
    path = dicom_write.write_sc(tmp_path / "m1.dcm", np.zeros((4, 4), np.uint8))
    ds = pydicom.dcmread(path)
    data = np.array([[0, 4095], [2048, 1000]], np.uint16)
    ds.Rows, ds.Columns = 2, 2
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.PixelData = data.tobytes()
    ds.save_as(path, enforce_file_format=True)
    exam = dicom.load_dicom(path, modality="xray")
    assert exam.xray.dtype == np.uint8
    assert exam.xray.tolist() == [[255, 0], [round(2047 * 255 / 4095), round(3095 * 255 / 4095)]]


def test_folder_with_op_and_opt_of_one_eye_is_one_exam(tmp_path, frozen):
    from engine.synthetic import synthetic_exam

    original = synthetic_exam(n_bscans=6, bscan_shape=(64, 96), fundus_shape=(128, 128), exam_id="P9", eye="OS")
    folder = tmp_path / "patient 9"
    dicom_write.write_exam(folder, original)
    check = frozen(tmp_path)
    found = discover([folder])
    assert [(s.exam_id, s.kind, s.eye) for s in found.sources] == [("patient 9", "dicom", "OS")]
    exam = found.sources[0].load()
    check()
    assert exam.modalities == ("fundus", "oct") and exam.eye == "OS"
    assert np.array_equal(exam.oct, original.oct) and np.array_equal(exam.fundus, original.fundus)


def test_two_eyes_in_one_folder_become_two_exams(tmp_path):
    for eye, lat in (("right", "R"), ("left", "L")):
        dicom_write.write_op(tmp_path / f"{eye}_photo.dcm", photo(), laterality=lat, study_uid="1.2.3")
        dicom_write.write_opt(tmp_path / f"{eye}_oct.dcm", _volume(2), laterality=lat, study_uid="1.2.3")
    found = discover([tmp_path])
    assert sorted((s.exam_id, s.eye, len(s.paths)) for s in found.sources) == [
        (f"{tmp_path.name}_OD", "OD", 2), (f"{tmp_path.name}_OS", "OS", 2),
    ]


def test_extensionless_dicom_is_recognised_by_its_preamble(tmp_path):
    path = dicom_write.write_op(tmp_path / "IM000001.dcm", photo())
    bare = path.rename(tmp_path / "IM000001")
    assert dicom.looks_like_dicom(bare)
    found = discover([tmp_path])
    assert [(s.exam_id, s.kind) for s in found.sources] == [("IM000001", "dicom")]


# ------------------------------------------------------------------------------------------ guard rails


def _named(tmp_path: Path, name: str = "x.dcm") -> Path:
    return dicom_write.write_op(tmp_path / name, photo((32, 40)), patient_name=PATIENT, birth_date=BIRTH)


def _no_patient_data(message: str) -> None:
    for secret in ("Doe", "Jane", BIRTH):
        assert secret not in message


def test_missing_pixel_data(tmp_path):
    path = _rewrite(_named(tmp_path), PixelData=None)
    with pytest.raises(CorruptFileError, match=r"x\.dcm: has no pixel data") as err:
        dicom.load_dicom(path)
    _no_patient_data(str(err.value))


def test_wrong_pixel_data_length(tmp_path):
    path = _named(tmp_path)
    ds = pydicom.dcmread(path)
    ds.PixelData = ds.PixelData[:1000]
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(CorruptFileError, match="pixel data holds 1,000 bytes but Rows x Columns x frames x samples needs 3,840") as err:
        dicom.load_dicom(path)
    _no_patient_data(str(err.value))


def test_absurd_frame_count(tmp_path):
    path = _rewrite(dicom_write.write_opt(tmp_path / "v.dcm", _volume(2)), NumberOfFrames=2_000_000_000)
    with pytest.raises(ImageTooLargeError, match="2,000,000,000 frames of 80 x 64 px"):
        dicom.load_dicom(path)


def test_impossible_size(tmp_path):
    path = _rewrite(_named(tmp_path), Rows=0)
    with pytest.raises(CorruptFileError, match="impossible image size"):
        dicom.load_dicom(path)


def test_unsupported_transfer_syntax_names_the_codec(tmp_path):
    path = _named(tmp_path)
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = JPEGLSLossless
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xf7" + b"\x00" * 64])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(MissingCodecError) as err:
        dicom.load_dicom(path)
    message = str(err.value)
    assert "JPEG-LS Lossless" in message and str(JPEGLSLossless) in message
    assert "install one of" in message and ("pylibjpeg" in message or "gdcm" in message)
    _no_patient_data(message)


def test_not_a_dicom_and_truncated_dicom(tmp_path):
    fake = tmp_path / "fake.dcm"
    fake.write_text("hello, not DICOM\n")
    with pytest.raises(UnsupportedFormatError, match="is not a DICOM file"):
        dicom.load_dicom(fake)
    data = _named(tmp_path, "t.dcm").read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[: len(data) - 2000])
    with pytest.raises(ExamLoadError) as err:
        dicom.load_dicom(cut)
    assert "cut.dcm" in str(err.value)
    _no_patient_data(str(err.value))


def test_scrub_removes_names_and_birth_dates():
    ds = pydicom.Dataset()
    ds.PatientName = PATIENT
    ds.PatientBirthDate = BIRTH
    text = dicom._scrub(f"bad value near Doe^Jane born {BIRTH}, Jane Doe", ds)
    _no_patient_data(text)
    assert "[removed]" in text


def test_unreadable_header_in_a_folder_is_a_skip_with_reason(tmp_path):
    (tmp_path / "broken.dcm").write_bytes(b"\x00" * 10)
    dicom_write.write_op(tmp_path / "ok.dcm", photo())
    found = discover([tmp_path])
    assert [s.exam_id for s in found.sources] == ["ok"]
    assert [(Path(s.path).name, s.reason) for s in found.skipped] == [
        ("broken.dcm", "is not a DICOM file (no DICM preamble)")
    ]
