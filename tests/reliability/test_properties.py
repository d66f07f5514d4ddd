"""Hypothesis properties of the image reader, the B-scan volume loader and the results CSV writer."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import cv2
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from engine.io import images
from engine.io.bscans import load_bscan_folder
from engine.io.discover import discover
from engine.io.errors import ExamLoadError
from engine.results_csv import COLUMNS, anonymize_id, error_row, read_csv, write_csv

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def image_arrays(draw):
    deep = draw(st.booleans())
    channels = draw(st.sampled_from([None, 3, 4]))
    h, w = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    shape = (h, w) if channels is None else (h, w, channels)
    return draw(arrays(np.uint16 if deep else np.uint8, shape))


@FAST
@given(image_arrays(), st.sampled_from([".png", ".tif", ".bmp", ".jpg"]))
def test_any_decodable_image_reads_as_rgb_uint8(array, suffix):
    if array.dtype == np.uint16 and suffix in (".bmp", ".jpg"):
        array = (array >> 8).astype(np.uint8)
    ok, buf = cv2.imencode(suffix, array)
    if not ok:
        return
    data = buf.tobytes()
    info = images.probe_bytes(data)
    rgb = images.decode(data, info, grey=False)
    h, w = array.shape[:2]
    assert rgb.shape == (h, w, 3) and rgb.dtype == np.uint8
    grey = images.decode(data, info, grey=True)
    assert grey.shape == (h, w) and grey.dtype == np.uint8
    if suffix in (".png", ".tif") and array.dtype == np.uint8 and array.ndim == 2:
        assert np.array_equal(rgb[..., 0], array) and np.array_equal(rgb[..., 2], array)  # lossless grey
    if suffix in (".png", ".tif", ".bmp") and array.dtype == np.uint8 and array.ndim == 3 and array.shape[2] == 3:
        assert np.array_equal(rgb, array[..., ::-1])  # OpenCV wrote BGR; we read RGB


@FAST
@given(st.binary(max_size=256))
def test_arbitrary_bytes_never_escape_as_another_error(data):
    try:
        info = images.probe_bytes(data)
        images.decode(data, info)
    except ExamLoadError as err:
        assert "\n" not in str(err)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(2, 14), st.integers(0, 5000), st.sampled_from(["{k}", "{k:03d}", "img_{k}", "frame-{k:04d}", "scan {k}"]),
       st.randoms(use_true_random=False))
def test_volume_slices_follow_the_numbers(n, start, pattern, rnd):
    numbers = list(range(start, start + n))
    order = numbers[:]
    rnd.shuffle(order)
    with tempfile.TemporaryDirectory() as tmp:
        for k in order:  # written in random order; names carry the number
            cv2.imwrite(os.path.join(tmp, pattern.format(k=k) + ".png"), np.full((4, 6), (k - start) * 7 % 256, np.uint8))
        exam = load_bscan_folder(tmp)
    assert exam.oct.shape == (n, 4, 6)
    assert [int(exam.oct[i, 0, 0]) for i in range(n)] == [(k - start) * 7 % 256 for k in numbers]


_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


@st.composite
def csv_rows(draw):
    n = draw(st.integers(0, 8))
    rows = []
    for i in range(n):
        row = {c: draw(_TEXT) for c in draw(st.sets(st.sampled_from(COLUMNS), max_size=6))}
        row["data"] = f"{i}-{draw(_TEXT)}"
        rows.append(row)
    return rows


@FAST
@given(csv_rows())
def test_csv_round_trips_any_text(rows):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "out.csv"
        write_csv(path, rows)
        back = read_csv(path)
        assert os.listdir(tmp) == ["out.csv"]
    assert len(back) == len(rows)
    for row, got in zip(rows, back):
        assert tuple(got) == COLUMNS
        for column in COLUMNS:
            want = row.get(column, "")
            assert got[column] == want.replace("\r\n", "\n").replace("\r", "\n") or got[column] == want


@FAST
@given(_TEXT, st.text(min_size=1, max_size=200))
def test_error_rows_are_one_line(exam_id, message):
    row = error_row(exam_id, message)
    assert row["status"] == "error" and "\n" not in row["message"] and "\r" not in row["message"]


@FAST
@given(st.text(max_size=30), st.text(max_size=30), st.text(min_size=1, max_size=20))
def test_anonymized_ids_are_stable_keyed_and_opaque(a, b, salt):
    ha = anonymize_id(a, salt)
    assert re.fullmatch(r"anon-[0-9a-f]{16}", ha) and ha == anonymize_id(a, salt)
    if a != b:
        assert ha != anonymize_id(b, salt)
    assert ha != anonymize_id(a, salt + "x")


def test_names_that_are_not_utf8_do_not_break_ids_or_the_csv(tmp_path):
    folder = os.path.join(os.fsencode(tmp_path), b"pat\xff\xfe 01")
    os.mkdir(folder)
    ok, buf = cv2.imencode(".png", np.full((20, 30, 3), 90, np.uint8))  # cv2.imwrite crashes on such names
    with open(os.path.join(folder, b"fundus.png"), "wb") as fh:
        fh.write(buf.tobytes())
    (source,) = discover([tmp_path]).sources
    assert source.exam_id == "pat\ufffd\ufffd 01"
    out = tmp_path / "x.csv"
    write_csv(out, [error_row(source.exam_id, f"{source.paths[0]}: odd")])
    (row,) = read_csv(out)
    assert row["data"] == "pat\ufffd\ufffd 01" and "\\udcff" in row["message"]
