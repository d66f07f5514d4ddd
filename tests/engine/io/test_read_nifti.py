"""NIfTI MRI: sequence names, RAS+ reorientation to (D, H, W), spacing from the header, guard rails."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest

from engine.io import nifti
from engine.io.discover import discover
from engine.io.errors import CorruptFileError, ImageTooLargeError, InconsistentVolumeError, UnsupportedFormatError


def write_nii(path, data, zooms=(1.0, 2.0, 3.0), affine=None):
    if affine is None:
        affine = np.diag([*zooms, 1.0])
    img = nib.Nifti1Image(data, affine)
    img.header.set_zooms(tuple(zooms) + (1.0,) * (data.ndim - 3))
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))
    return path


@pytest.mark.parametrize(
    ("name", "seq"),
    [
        ("BraTS20_001_flair.nii.gz", "flair"), ("BraTS-GLI-00001-000-t2f.nii.gz", "flair"),
        ("case_t1ce.nii", "t1ce"), ("x-t1c.nii.gz", "t1ce"), ("x_t1.nii", "t1"), ("x-t1n.nii.gz", "t1"),
        ("x_t2.nii.gz", "t2"), ("x-t2w.nii", "t2"), ("Flair_subtrMeanDivStd.nii.gz", "flair"),
        ("x_seg.nii.gz", None), ("OTMultiClass.nii.gz", None), ("brainmask.nii.gz", None), ("scan.nii", None),
    ],
)
def test_sequence_names(name, seq):
    assert nifti.sequence_of(name) == seq


def test_ras_volume_becomes_d_h_w_with_spacing(tmp_path, frozen):
    data = np.zeros((4, 5, 6), np.float32)  # identity affine: RAS+ axes x (towards right), y (anterior), z (up)
    data[0, 0, 5] = 7.0  # x=0: patient's far left; y=0: most posterior; z=5: most superior
    path = write_nii(tmp_path / "c" / "c_flair.nii.gz", data, zooms=(1.0, 2.0, 3.0))
    check = frozen(tmp_path / "c")
    vol, spacing = nifti.read_volume(path)
    assert vol.shape == (6, 5, 4) and vol.dtype == np.float32
    assert spacing == (3.0, 2.0, 1.0)
    # D inferior->superior, H anterior->posterior, W patient's right->left (radiological display)
    d, h, w = np.argwhere(vol == 7.0)[0]
    assert (d, h, w) == (5, 4, 3)
    check()


def test_flipped_affine_is_reoriented(tmp_path):
    data = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    a = write_nii(tmp_path / "a_t1.nii", data)
    flipped_affine = np.diag([-1.0, 2.0, 3.0, 1.0])
    b = write_nii(tmp_path / "b_t1.nii", data[::-1].copy(), affine=flipped_affine)
    va, _ = nifti.read_volume(a)
    vb, _ = nifti.read_volume(b)
    np.testing.assert_array_equal(va, vb)


def test_uint8_stays_uint8_and_float64_is_never_made(tmp_path):
    p = write_nii(tmp_path / "u_t2.nii.gz", np.full((3, 3, 3), 9, np.uint8))
    vol, _ = nifti.read_volume(p)
    assert vol.dtype == np.uint8
    q = write_nii(tmp_path / "f_t2.nii.gz", np.ones((3, 3, 3), np.float64))
    assert nifti.read_volume(q)[0].dtype == np.float32


def test_case_folder_is_one_mri_exam_and_labels_are_skipped(tmp_path, frozen):
    case = tmp_path / "BraTS20_Training_001"
    for seq in ("flair", "t1ce", "t2", "t1"):
        write_nii(case / f"BraTS20_Training_001_{seq}.nii.gz", np.ones((4, 5, 6), np.float32))
    write_nii(case / "BraTS20_Training_001_seg.nii.gz", np.zeros((4, 5, 6), np.uint8))
    check = frozen(tmp_path)
    found = discover(tmp_path)
    assert [s.exam_id for s in found.sources] == ["BraTS20_Training_001"]
    assert [(s.path.endswith("_seg.nii.gz"), "label map" in s.reason) for s in found.skipped] == [(True, True)]
    exam = found.sources[0].load()
    assert list(exam.mri) == ["flair", "t1ce", "t2", "t1"] and exam.modalities == ("mri",)
    assert exam.mri_spacing.source == "file" and len(exam.provenance.files) == 4
    check()


def test_sequences_on_different_grids_are_refused(tmp_path):
    write_nii(tmp_path / "c_flair.nii", np.ones((4, 5, 6), np.float32))
    write_nii(tmp_path / "c_t2.nii", np.ones((4, 5, 7), np.float32))
    with pytest.raises(InconsistentVolumeError, match="share a grid"):
        nifti.load_nifti(tmp_path)


def test_absurd_dimensions_are_refused_before_reading(tmp_path):
    hdr = nib.Nifti1Header()
    hdr.set_data_shape((30_000, 30_000, 30_000))  # int16 dims: 32767 at most
    hdr.set_data_dtype(np.float32)
    path = tmp_path / "huge_flair.nii"
    path.write_bytes(hdr.binaryblock + b"\0" * 4 + b"\0" * 64)
    with pytest.raises(ImageTooLargeError, match="absurd size"):
        nifti.read_volume(path)


def test_4d_and_truncated_and_garbage(tmp_path):
    p4 = write_nii(tmp_path / "four_t1.nii", np.ones((3, 3, 3, 2), np.float32))
    with pytest.raises(UnsupportedFormatError, match="4 dimensions"):
        nifti.read_volume(p4)
    full = write_nii(tmp_path / "full_t1.nii.gz", np.random.default_rng(0).random((20, 20, 20), np.float32))
    cut = tmp_path / "cut_t1.nii.gz"
    cut.write_bytes(full.read_bytes()[: len(full.read_bytes()) // 2])
    with pytest.raises(CorruptFileError):
        nifti.read_volume(cut)
    junk = tmp_path / "junk_t1.nii.gz"
    junk.write_bytes(gzip.compress(b"not a nifti header at all"))
    with pytest.raises(CorruptFileError, match="not a readable NIfTI"):
        nifti.read_volume(junk)
