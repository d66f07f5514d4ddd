"""A short seeded fuzz run of the image and DICOM readers: bit flips, truncations, inserted junk, header edits.

Every mutated file must either load (a valid exam) or raise one :class:`ExamLoadError` with a one-line
message; any other exception, a hang or a crash fails the run. Seeded, so a failure is repeatable.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from corpus_kit import SECRETS, assert_no_secrets
from engine.io import dicom, dicom_write, images
from engine.io.errors import ExamLoadError

PER_FORMAT = 60
SECONDS_PER_INPUT = 2.0


def _seeds() -> dict[str, bytes]:
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 255, (40, 56, 3), dtype=np.uint8)
    out = {}
    for suffix in (".jpg", ".png", ".tif", ".bmp"):
        ok, buf = cv2.imencode(suffix, rgb)
        assert ok
        out[suffix] = buf.tobytes()
    return out


def mutate(data: bytes, rnd: random.Random) -> bytes:
    buf = bytearray(data)
    kind = rnd.choice(("flip", "truncate", "insert", "header", "zero"))
    if kind == "flip":
        for _ in range(rnd.randint(1, 12)):
            buf[rnd.randrange(len(buf))] ^= 1 << rnd.randrange(8)
    elif kind == "truncate":
        del buf[rnd.randrange(1, len(buf)):]
    elif kind == "insert":
        at = rnd.randrange(len(buf))
        buf[at:at] = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 64)))
    elif kind == "header":  # overwrite a few bytes where sizes and tags live
        at = rnd.randrange(min(len(buf), 400))
        buf[at : at + 4] = rnd.choice((b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x7f\xff\xff\xff"))
    else:
        start = rnd.randrange(len(buf))
        buf[start : start + rnd.randint(1, 256)] = b"\0" * len(buf[start : start + 256])
    return bytes(buf)


def _check(load, path: Path, counts: dict[str, int]) -> None:
    start = time.perf_counter()
    try:
        load(path)
        counts["loaded"] += 1
    except ExamLoadError as err:
        assert "\n" not in str(err) and str(path.name) in str(err)
        assert_no_secrets(str(err))
        counts["refused"] += 1
    assert time.perf_counter() - start < SECONDS_PER_INPUT, path.name


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".tif", ".bmp"])
def test_fuzz_image_reader(tmp_path, suffix):
    seed = _seeds()[suffix]
    rnd = random.Random(f"images{suffix}")
    counts = {"loaded": 0, "refused": 0}
    for k in range(PER_FORMAT):
        path = tmp_path / f"m{k}{suffix}"
        path.write_bytes(mutate(seed, rnd))
        _check(lambda p: images.load_image_exam(p, modality="fundus"), path, counts)
    assert sum(counts.values()) == PER_FORMAT and counts["refused"] > 0


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns about every mangled element
def test_fuzz_dicom_reader(tmp_path):
    name, birth = SECRETS[1] + "^" + SECRETS[0], SECRETS[2]
    sources = [
        dicom_write.write_op(tmp_path / "op.dcm", np.full((24, 32, 3), 120, np.uint8), patient_name=name,
                             birth_date=birth).read_bytes(),
        dicom_write.write_opt(tmp_path / "opt.dcm", np.full((3, 16, 20), 60, np.uint8), patient_name=name,
                              birth_date=birth).read_bytes(),
    ]
    rnd = random.Random("dicom")
    counts = {"loaded": 0, "refused": 0}
    for k in range(PER_FORMAT):
        path = tmp_path / f"m{k}.dcm"
        path.write_bytes(mutate(rnd.choice(sources), rnd))
        _check(dicom.load_dicom, path, counts)
    assert sum(counts.values()) == PER_FORMAT and counts["refused"] > 0
