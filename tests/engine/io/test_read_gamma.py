"""The GAMMA layout: ``<ID>/<ID>.jpg`` + ``<ID>/<ID>/k_image.jpg``, numeric order, assumed Triton spacing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from io_helpers import bscan, photo, write_image
from engine.io import gamma
from engine.io.discover import discover
from engine.io.errors import EmptyInputError, InconsistentVolumeError
from engine.synthetic import synthetic_exam, write_gamma_exam


def _gamma(root: Path, exam_id: str, n: int, shape=(124, 64)) -> Path:
    folder = root / exam_id
    write_image(folder / f"{exam_id}.jpg", photo())
    for k in range(n):
        write_image(folder / exam_id / f"{k}_image.jpg", bscan(k, shape), )
    return folder


def test_synthetic_gamma_exam_round_trip(tmp_path, frozen):
    original = synthetic_exam(grade=1, n_bscans=24, seed=3, exam_id="0042")
    folder = write_gamma_exam(tmp_path, original)
    check = frozen(tmp_path)
    exam = gamma.load_gamma(folder)
    check()
    assert exam.exam_id == "0042" and exam.modalities == ("fundus", "oct")
    assert exam.fundus.shape == original.fundus.shape and exam.oct.shape == original.oct.shape
    assert exam.oct.dtype == np.uint8 and exam.fundus.dtype == np.uint8
    # every loaded B-scan is closest to the original B-scan of the same index: order preserved
    diffs = np.abs(exam.oct[:, None].astype(np.int16) - original.oct[None].astype(np.int16)).mean(axis=(2, 3))
    assert (diffs.argmin(axis=1) == np.arange(24)).all()
    assert [Path(p).name for p in exam.bscan_files] == [f"{k}_image.jpg" for k in range(24)]
    assert len(exam.provenance.files) == 25


def test_first_character_sort_would_scramble_but_we_do_not(tmp_path):
    folder = _gamma(tmp_path, "0007", 25)
    exam = gamma.load_gamma(folder)
    names = [Path(p).name for p in exam.bscan_files]
    assert names == [f"{k}_image.jpg" for k in range(25)]
    assert names != sorted(names) and names != sorted(names, key=lambda n: n[0])
    levels = [int(round((s[124 // 3 + 2 : 124 // 2 - 2].mean() - 40) / 3)) for s in exam.oct]
    assert levels == list(range(25))


def test_assumed_triton_spacing_is_labelled(tmp_path):
    exam = gamma.load_gamma(_gamma(tmp_path, "0001", 8, shape=(992 // 8, 512 // 8)))
    assert exam.oct_spacing.source == "assumed" and not exam.oct_spacing.is_physical
    assert exam.oct_spacing.mm == pytest.approx((3.0 / 8, 0.0026, 3.0 / 64))
    assert any("assumed" in n and "Triton" in n for n in exam.provenance.notes)
    assert exam.fundus_spacing is None  # plain JPEG: scale unknown


def test_full_size_triton_volume_spacing():
    spacing = gamma.assumed_triton_spacing(256, 512)
    assert spacing.mm == pytest.approx((3.0 / 256, 0.0026, 3.0 / 512))


def test_reduced_gamma_load_scales_pixels_and_spacing(tmp_path):
    exam = gamma.load_gamma(_gamma(tmp_path, "0001", 4, shape=(248, 128)), reduce=2)
    assert exam.oct.shape == (4, 124, 64) and exam.fundus.shape == (120, 160, 3)
    assert exam.oct_spacing.mm == pytest.approx((3.0 / 4, 0.0052, 3.0 / 64))


def test_gamma_folder_without_fundus_and_without_scans(tmp_path):
    folder = _gamma(tmp_path, "0002", 3)
    (folder / "0002.jpg").unlink()
    exam = gamma.load_gamma(folder)
    assert exam.modalities == ("oct",)
    empty = tmp_path / "0003"
    empty.mkdir()
    with pytest.raises(EmptyInputError, match="is not a GAMMA exam"):
        gamma.load_gamma(empty)


def test_gamma_guard_rails_name_the_file(tmp_path):
    folder = _gamma(tmp_path, "0004", 5)
    write_image(folder / "0004" / "3_image.jpg", bscan(3, (124, 70)))
    with pytest.raises(InconsistentVolumeError, match=r"3_image\.jpg: is 70 x 124 px but 0_image\.jpg is 64 x 124"):
        gamma.load_gamma(folder)
    (folder / "0004" / "3_image.jpg").unlink()
    with pytest.raises(InconsistentVolumeError, match="number 3 is missing"):
        gamma.load_gamma(folder)


def test_discover_finds_gamma_exams_in_a_dataset_folder(tmp_path, frozen):
    root = tmp_path / "multi-modality_images"
    for exam_id in ("0001", "0010", "0002"):
        _gamma(root, exam_id, 3)
    (root / "0002" / "0002" / "notes.txt").write_text("x")
    check = frozen(tmp_path)
    found = discover([root])
    assert [s.exam_id for s in found.sources] == ["0001", "0002", "0010"]
    assert all(s.kind == "gamma" for s in found.sources)
    assert [p.name for p in found.sources[0].bscans] == ["0_image.jpg", "1_image.jpg", "2_image.jpg"]
    assert [(Path(s.path).name, s.reason) for s in found.skipped] == [
        ("notes.txt", "not a numbered B-scan image in a GAMMA B-scan folder")
    ]
    exam = found.sources[1].load()
    check()
    assert exam.oct.shape == (3, 124, 64) and exam.oct_spacing.source == "assumed"
    assert gamma.is_gamma_folder(root / "0001") and not gamma.is_gamma_folder(root)
