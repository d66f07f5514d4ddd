"""Numbered B-scan folders: numeric order, parallel decode, guard rails, 16-bit, reduce, progress, cancel."""

from __future__ import annotations

import random
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from io_helpers import bscan, write_image
from engine.io import bscans
from engine.io.errors import CorruptFileError, ImageTooLargeError, InconsistentVolumeError
from engine.progress import CancelToken, Cancelled


def _series(folder: Path, n: int, pattern: str = "img_{k}.png", shape=(160, 200), start: int = 0) -> list[Path]:
    return [write_image(folder / pattern.format(k=k), bscan(k, shape)) for k in range(start, start + n)]


def _slice_index(image: np.ndarray) -> int:
    """Recover k from the bright layer written by ``bscan(k)``."""
    h = image.shape[0]
    return int(round((float(image[h // 3 + 2 : h // 2 - 2].mean()) - 40) / 3))


@pytest.mark.parametrize(
    "name,prefix,number,suffix",
    [
        ("frame_001.png", "frame_", 1, ""),
        ("img_7.png", "img_", 7, ""),
        ("12.tif", "", 12, ""),
        ("0_image.jpg", "", 0, "_image"),
        ("hc01_scan_R_frame_049.png", "hc01_scan_R_frame_", 49, ""),
    ],
)
def test_parse_number_uses_the_last_digit_run(name, prefix, number, suffix):
    parsed = bscans.parse_number(name)
    assert (parsed.prefix, parsed.number, parsed.suffix) == (prefix, number, suffix)


def test_parse_number_without_digits_is_none():
    assert bscans.parse_number("fundus.jpg") is None


def test_order_is_numeric_not_string(tmp_path):
    files = _series(tmp_path, 12)
    shuffled = files[:]
    random.Random(1).shuffle(shuffled)
    ordered = bscans.order_bscans(shuffled)
    assert [p.name for p in ordered] == [f"img_{k}.png" for k in range(12)]
    assert [p.name for p in sorted(files)] != [p.name for p in ordered]  # a string sort would scramble it


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 10_000), min_size=1, max_size=40, unique=True), st.randoms())
def test_order_property_any_numbers_any_padding(numbers, rnd):
    contiguous = list(range(min(numbers), min(numbers) + len(numbers)))
    names = [Path(f"scan_{k:0{rnd.randint(1, 6)}d}.png") for k in contiguous]
    rnd.shuffle(names)
    ordered = bscans.order_bscans(names)
    assert [bscans.parse_number(p).number for p in ordered] == contiguous


def test_natural_key_sorts_digit_runs_as_numbers():
    names = ["a10.png", "a2.png", "A1.png", "b1.png", "a2b3.png", "a2b10.png"]
    assert sorted(names, key=bscans.natural_key) == ["A1.png", "a2.png", "a2b3.png", "a2b10.png", "a10.png", "b1.png"]


def test_read_bscans_parallel_equals_the_sequential_loop(tmp_path, frozen):
    files = _series(tmp_path, 20)
    check = frozen(tmp_path)
    volume, hashes = bscans.read_bscans(bscans.order_bscans(files), workers=4)
    check()
    naive = np.stack([cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) for f in files])
    assert volume.dtype == np.uint8 and volume.shape == (20, 160, 200)
    assert np.array_equal(volume, naive)
    assert [_slice_index(s) for s in volume] == list(range(20))
    assert len(set(hashes)) == 20 and all(len(h) == 64 for h in hashes)


def test_load_bscan_folder_builds_an_exam(tmp_path, frozen):
    folder = tmp_path / "P 07 é"  # spaces and non-ASCII in the path
    _series(folder, 9, "frame_{k:03d}.png", start=1)
    check = frozen(tmp_path)
    exam = bscans.load_bscan_folder(folder)
    check()
    assert exam.exam_id == "P 07 é" and exam.oct.shape == (9, 160, 200)
    assert [Path(p).name for p in exam.bscan_files] == [f"frame_{k:03d}.png" for k in range(1, 10)]
    assert len(exam.provenance.files) == 9


@pytest.mark.parametrize("factor", [2, 4])
def test_reduced_volume_matches_opencv_reduced_decoding(tmp_path, factor):
    files = [write_image(tmp_path / f"{k}_image.jpg", bscan(k, (992 // 4, 512 // 4))) for k in range(6)]
    volume, _ = bscans.read_bscans(bscans.order_bscans(files), reduce=factor)
    flag = {2: cv2.IMREAD_REDUCED_GRAYSCALE_2, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4}[factor]
    expected = np.stack([cv2.imread(str(f), flag) for f in files])
    assert np.array_equal(volume, expected)


def test_16_bit_slices_share_one_bit_depth(tmp_path):
    a = np.full((40, 50), 1000, np.uint16)
    b = np.full((40, 50), 4095, np.uint16)  # the volume's maximum: 12 significant bits for every slice
    files = [write_image(tmp_path / "s_0.png", a), write_image(tmp_path / "s_1.png", b)]
    volume, _ = bscans.read_bscans(files)
    assert volume.dtype == np.uint8
    assert volume[0, 0, 0] == round(1000 * 255 / 4095) and volume[1, 0, 0] == 255


def test_mixed_bit_depths_are_refused(tmp_path):
    files = [write_image(tmp_path / "s_0.png", np.full((8, 8), 9, np.uint8)),
             write_image(tmp_path / "s_1.png", np.full((8, 8), 4000, np.uint16))]
    with pytest.raises(InconsistentVolumeError, match=r"s_1\.png: is 16-bit while s_0\.png is 8-bit"):
        bscans.read_bscans(files)


def test_odd_sized_slice_is_named(tmp_path):
    files = _series(tmp_path, 6)
    write_image(files[4], bscan(4, (160, 210)))
    with pytest.raises(InconsistentVolumeError) as err:
        bscans.read_bscans(bscans.order_bscans(files))
    assert "img_4.png" in str(err.value)
    assert "is 210 x 160 px but img_0.png is 200 x 160 px" in str(err.value)


def test_missing_slice_is_named(tmp_path):
    files = _series(tmp_path, 6)
    files[3].unlink()
    with pytest.raises(InconsistentVolumeError, match=r"B-scan number 3 is missing between img_2\.png and img_4\.png"):
        bscans.order_bscans([f for f in files if f.exists()])
    del files[3:5]
    for f in list(tmp_path.iterdir()):
        if f.name == "img_4.png":
            f.unlink()
    with pytest.raises(InconsistentVolumeError, match=r"number 3-4 is missing"):
        bscans.order_bscans(list(tmp_path.iterdir()))
    assert len(bscans.order_bscans(list(tmp_path.iterdir()), allow_gaps=True)) == 4


def test_duplicate_numbers_are_named(tmp_path):
    files = _series(tmp_path, 4)
    dup = write_image(tmp_path / "img_002.png", bscan(2))
    with pytest.raises(InconsistentVolumeError, match=r"two files claim B-scan number 2: img_002\.png and img_2\.png"):
        bscans.order_bscans(files + [dup])  # both named, in a fixed order whatever the input order
    with pytest.raises(InconsistentVolumeError, match=r"two files claim B-scan number 2: img_002\.png and img_2\.png"):
        bscans.order_bscans([dup] + files[::-1])


def test_unnumbered_file_is_refused(tmp_path):
    with pytest.raises(InconsistentVolumeError, match="has no slice number"):
        bscans.order_bscans([tmp_path / "a.png", tmp_path / "b_1.png"])


def test_a_corrupt_slice_names_its_file_and_leaves_no_thread(tmp_path):
    files = _series(tmp_path, 30)
    data = files[17].read_bytes()
    files[17].write_bytes(data[: len(data) // 2])
    before = threading.active_count()
    with pytest.raises(CorruptFileError, match=r"img_17\.png: is truncated"):
        bscans.read_bscans(bscans.order_bscans(files), workers=4)
    assert threading.active_count() == before


def test_voxel_cap(tmp_path):
    files = _series(tmp_path, 3)
    with pytest.raises(ImageTooLargeError, match="3 B-scans of 200 x 160 = 96,000 voxels, above the cap of 50,000"):
        bscans.read_bscans(files, max_voxels=50_000)


def test_progress_reaches_one(tmp_path):
    files = _series(tmp_path, 40)
    seen: list[float] = []
    bscans.read_bscans(files, progress=lambda f, m: seen.append(f))
    assert seen and seen[-1] == 1.0 and all(0 <= f <= 1 for f in seen)
    assert seen == sorted(seen)


def test_cancel_before_and_during(tmp_path):
    files = _series(tmp_path, 64)
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        bscans.read_bscans(files, cancel=token)
    token = CancelToken()
    before = threading.active_count()

    def progress(fraction: float, message: str) -> None:
        if fraction > 0.2:
            token.cancel()

    with pytest.raises(Cancelled):
        bscans.read_bscans(files, cancel=token, progress=progress, workers=2)
    assert threading.active_count() == before
