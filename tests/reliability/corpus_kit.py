"""The bad-input corpus, written at test time (no binaries are committed), and shared helpers.

(A module of its own, not ``conftest``: ``from conftest import`` is ambiguous when several test folders are
collected in one run.)

:func:`build_corpus` writes one folder per case under a root; every :class:`Case` says what a load of it
must give: ``expect`` is a regular expression the one-line error must match, or ``None`` when the input is
odd but valid and must load. ``secret`` strings (DICOM patient name and birth date) must never appear in any
message, CSV or report.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import cv2
import nibabel as nib
import numpy as np
import pydicom
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGLSLossless

from engine.io import dicom_write

PATIENT = "Roe^Richard"
BIRTH = "19451231"
SECRETS = ("Roe", "Richard", BIRTH)
TINY_FILES = 10_000


@dataclass(frozen=True)
class Case:
    """One corpus input: ``path`` (file or folder), ``expect`` (regex of the error, None = must load)."""

    name: str
    path: Path
    expect: Optional[str]
    modalities: tuple[str, ...] = field(default=())


def _img(shape=(48, 64), seed=0, colour=True) -> np.ndarray:
    rng = np.random.default_rng(seed)
    grey = rng.integers(0, 255, shape, dtype=np.uint8)
    if not colour:
        return grey
    img = np.dstack([grey, grey // 2, 255 - grey])
    img[:8, :8] = (0, 200, 0)
    return img


def _encode(suffix: str, array: np.ndarray, params: Optional[list[int]] = None) -> bytes:
    ok, buf = cv2.imencode(suffix, array, params or [])
    assert ok
    return buf.tobytes()


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose header claims ``width x height`` RGB pixels (a decompression bomb)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1024)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def tiff_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A little-endian TIFF whose IFD claims ``width x height`` 8-bit grey pixels in one strip."""
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 4, 1, 8 + 2 + 12 * 9 + 4), (277, 3, 1, 1), (278, 4, 1, height), (279, 4, 1, 16)]
    ifd = struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        ifd += struct.pack("<HHI", tag, typ, count) + (struct.pack("<HH", value, 0) if typ == 3 else struct.pack("<I", value))
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + b"\0" * 16


def _dicom_named(path: Path) -> Path:
    return dicom_write.write_op(path, _img((32, 40)), patient_name=PATIENT, birth_date=BIRTH)


def _nifti(path: Path, data: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    return path


def _bscan_folder(folder: Path, numbers, shapes=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, k in enumerate(numbers):
        shape = shapes[i] if shapes else (40, 48)
        _write(folder / (k if isinstance(k, str) else f"{k}.png"), _encode(".png", _img(shape, k if isinstance(k, int) else i, False)))
    return folder


def build_corpus(root: Path) -> list[Case]:
    """Write every case below ``root`` and return them (the order is stable)."""
    cases: list[Case] = []

    def add(name: str, path: Path, expect: Optional[str], modalities: tuple[str, ...] = ()) -> None:
        cases.append(Case(name, path, expect, modalities))

    d = root / "files"
    jpg = _encode(".jpg", cv2.cvtColor(_img(), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    png = _encode(".png", _img())
    tif = _encode(".tif", _img())
    for ext, data in ((".jpg", jpg), (".png", png), (".tif", tif)):
        add(f"truncated{ext}", _write(d / f"truncated{ext}", data[: len(data) // 2]), r"truncated|corrupt|could not")
        add(f"zero-byte{ext}", _write(d / f"zero{ext}", b""), r"empty|0 bytes|zero")
    add("text-as-jpg", _write(d / "text.jpg", b"Dear colleague, please find the scan attached.\n"),
        r"not .*(JPEG|image)|text|unknown")
    add("png-bomb", _write(d / "bomb.png", png_bomb()), r"100,?000 x 100,?000|above the cap|too large")
    add("tiff-bomb", _write(d / "bomb.tif", tiff_bomb()), r"100,?000 x 100,?000|above the cap|too large")
    add("png-16bit", _write(d / "deep.png", _encode(".png", (_img() .astype(np.uint16) * 257))), None, ("fundus",))
    add("tiff-16bit-grey", _write(d / "deep_oct.tif", _encode(".tif", _img(colour=False).astype(np.uint16) * 64)),
        None, ("oct",))
    cmyk = _cmyk_jpeg()
    if cmyk is not None:
        add("jpeg-cmyk", _write(d / "cmyk.jpg", cmyk), None, ("fundus",))
    add("png-rgba", _write(d / "alpha.png", _encode(".png", np.dstack([_img(), np.full((48, 64), 128, np.uint8)]))),
        None, ("fundus",))
    add("unicode-space-path", _write(root / "Patiént 12 (ÖS) ñame" / "fundus photo é.jpg", jpg), None, ("fundus",))

    dd = root / "dicom"
    base = _dicom_named(dd / "ok.dcm")
    add("dicom-ok-with-patient-name", base, None, ("fundus",))
    ds = pydicom.dcmread(base)
    del ds.PixelData
    ds.save_as(dd / "nopixels.dcm", enforce_file_format=True)
    add("dicom-missing-pixel-data", dd / "nopixels.dcm", r"no pixel data")
    ds = pydicom.dcmread(base)
    ds.PixelData = ds.PixelData[:999]
    ds.save_as(dd / "short.dcm", enforce_file_format=True)
    add("dicom-wrong-length", dd / "short.dcm", r"pixel data holds")
    ds = pydicom.dcmread(base)
    ds.NumberOfFrames = 2_000_000_000
    ds.save_as(dd / "frames.dcm", enforce_file_format=True)
    add("dicom-absurd-frames", dd / "frames.dcm", r"2,000,000,000 frames")
    ds = pydicom.dcmread(base)
    ds.file_meta.TransferSyntaxUID = JPEGLSLossless
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xf7" + b"\x00" * 64])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.save_as(dd / "jpegls.dcm", enforce_file_format=True)
    add("dicom-unsupported-syntax", dd / "jpegls.dcm", r"JPEG-LS Lossless.*install one of")
    add("dicom-truncated", _write(dd / "cut.dcm", base.read_bytes()[:400]), r"cut\.dcm: .*(no pixel data|truncated)")

    nd = root / "nifti"
    hdr = nib.Nifti1Header()
    hdr.set_data_shape((30_000, 30_000, 30_000))
    hdr.set_data_dtype(np.float32)
    add("nifti-absurd-dims", _write(nd / "huge_flair.nii", hdr.binaryblock + b"\0" * 68), r"absurd size")
    add("nifti-4d", _nifti(nd / "four_t1.nii", np.zeros((3, 3, 3, 2), np.float32)), r"4 dimensions")

    bd = root / "bscans"
    add("bscans-odd-size", _bscan_folder(bd / "odd_oct", range(5), [(40, 48)] * 3 + [(40, 50), (40, 48)]),
        r"3\.png: is 50 x 40 px but 0\.png is 48 x 40")
    add("bscans-missing-slice", _bscan_folder(bd / "gap_oct", [0, 1, 2, 4, 5]), r"missing.*3|3.*missing")
    add("bscans-duplicate-numbers", _bscan_folder(bd / "dup_oct", ["scan_1.png", "scan_01.png", "scan_2.png", "scan_3.png"]),
        r"two files claim B-scan number 1: scan_01\.png and scan_1\.png")

    ld = root / "loop" / "case"
    _write(ld / "eye.jpg", jpg)
    os.symlink(root / "loop", ld / "back")
    add("symlink-loop", root / "loop", None, ("fundus",))
    (root / "empty").mkdir()
    add("empty-folder", root / "empty", r"empty folder")
    add("broken-symlink", _symlink(root / "dangling.jpg", root / "does-not-exist.jpg"), r"broken symbolic link")
    add("missing-path", root / "no such folder", r"does not exist")
    return cases


def _symlink(link: Path, target: Path) -> Path:
    os.symlink(target, link)
    return link


def _cmyk_jpeg() -> Optional[bytes]:
    """A CMYK (Adobe) JPEG written with Pillow when it is installed, else None."""
    try:
        from PIL import Image
    except ImportError:
        return None
    import io

    buf = io.BytesIO()
    Image.fromarray(_img()).convert("CMYK").save(buf, "JPEG", quality=90)
    return buf.getvalue()


def write_tiny_files(folder: Path, n: int = TINY_FILES) -> Path:
    """``n`` 2 x 2 grey PNGs named ``0.png .. n-1.png``.

    They are hard links of one file where the file system allows it: the walk and the loader see ``n``
    directory entries and ``n`` files all the same, and writing 10,000 files on a slow disk takes seconds.
    """
    folder.mkdir(parents=True, exist_ok=True)
    first = _write(folder / "0.png", _encode(".png", np.full((2, 2), 7, np.uint8)))
    for k in range(1, n):
        try:
            os.link(first, folder / f"{k}.png")
        except OSError:
            (folder / f"{k}.png").write_bytes(first.read_bytes())
    return folder


def assert_no_secrets(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"patient data {secret!r} leaked into: {text[:200]}"


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
