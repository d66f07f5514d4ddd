"""Plain images (JPEG, PNG, TIFF, BMP) to uint8 arrays, with the guard rails every reader shares.

Reading is two steps: :func:`probe_bytes` parses the header itself (format, size, bit depth, channels, alpha,
stored physical resolution) without decoding a pixel, so a decompression bomb is refused before any memory is
spent; then OpenCV decodes. OpenCV honours the EXIF orientation and, for JPEG, can decode at 1/2, 1/4 or 1/8 of
the full size with libjpeg's DCT scaling (``cv2.IMREAD_REDUCED_*``), which is much faster than decoding full
size and shrinking. Other formats are decoded full size and shrunk with area averaging.

Bit-depth rule (:func:`to_uint8`): pixels are always uint8 in memory. Data with more than 8 bits is scaled
linearly, ``out = round(v * 255 / (2**b - 1))``, where ``b`` is the number of significant bits: the declared
``BitsStored`` where the format says it (DICOM), else the bit length of the largest value (at least 8). A
12-bit device image in a 16-bit container therefore keeps its full brightness range instead of coming out
16 times too dark, zero stays zero, and no contrast stretch is applied. Values that already fit in 8 bits
are kept as they are.

Alpha: transparent pixels are composited onto black (``rgb * alpha / 255``), then the alpha channel dropped.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional, Union

import cv2
import numpy as np

from engine.io.errors import (
    CorruptFileError,
    ImageTooLargeError,
    UnsupportedFormatError,
    os_read_error,
)
from engine.io.exam import Exam, Modality, Provenance, SourceFile, Spacing

try:  # OpenCV's own log lines ("[ WARN:0@..] imread_...") would end up on the CLI's stderr.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
except AttributeError:  # pragma: no cover - very old OpenCV
    pass

MAX_PIXELS = 80_000_000
"""Decompression-bomb cap: an image whose header claims more pixels than this is refused before decoding.
About 10,000 x 8,000; the largest fundus cameras and panoramic radiographs are well below it."""
MAX_FILE_BYTES = 1 << 30
"""Files above 1 GiB are refused before they are read into memory."""
REDUCTIONS = (1, 2, 4, 8)
"""Decode reductions OpenCV offers (``IMREAD_REDUCED_*``)."""
MIN_PHYSICAL_PX_PER_MM = 33.0
"""A stored resolution is taken as the physical scale only when finer than this (and in metric units):
print resolutions (72-600 dpi, at most 24 px/mm) say nothing about the size of a retina or a jaw."""
GREY_MAX_SIDE_FOR_BSCAN = 1600
"""A grey image with no other hint is read as one OCT B-scan when no side is longer than this, else as a
(red-free) fundus photo: B-scans are at most 1536 px wide (Spectralis), fundus photos are larger."""
GREY_MIN_SIDE_FOR_BSCAN = 128
"""A lone grey image whose longest side is shorter than this is a crop or thumbnail, read as a fundus image."""

ImageFormat = Literal["JPEG", "PNG", "TIFF", "BMP"]
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "BigTIFF"),
    (b"MM\x00+", "BigTIFF"),
    (b"BM", "BMP"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
)
_READ_FORMATS = ("JPEG", "PNG", "TIFF", "BMP")
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".tif", ".tiff", ".bmp"})
"""File name endings the readers take as plain images (content is checked, not trusted)."""
OTHER_IMAGE_SUFFIXES = frozenset({".gif", ".webp", ".jp2", ".j2k", ".heic", ".avif", ".svg", ".ico", ".ppm", ".pgm"})


@dataclass(frozen=True)
class ImageInfo:
    """What the header says, before any pixel is decoded.

    ``width``/``height`` are as stored (before EXIF rotation); ``bits`` per sample (1, 2, 4, 8, 16, 32);
    ``channels`` 1 (grey / palette), 3 or 4; ``px_per_mm`` (row, col) when the file stores a physical
    resolution fine enough to be a real scale (see :data:`MIN_PHYSICAL_PX_PER_MM`), else None.
    """

    format: ImageFormat
    width: int
    height: int
    bits: int = 8
    channels: int = 3
    alpha: bool = False
    palette: bool = False
    floating: bool = False
    pages: int = 1
    px_per_mm: Optional[tuple[float, float]] = None

    @property
    def pixels(self) -> int:
        return self.width * self.height


# ----------------------------------------------------------------------------------------------- reading


def read_bytes(path: Union[str, Path], max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The whole file, with read problems turned into :class:`ExamLoadError` subclasses."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise UnsupportedFormatError("is a folder, not an image file", path)
        if size > max_bytes:
            raise ImageTooLargeError(f"file is {size / 2**20:.0f} MiB, above the {max_bytes >> 20} MiB cap", path)
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise os_read_error(exc, path) from None
    if not data:
        raise CorruptFileError("is empty (0 bytes)", path)
    return data


def sniff(data: bytes) -> Optional[str]:
    """The format named by the file's first bytes, or None."""
    for magic, name in _SIGNATURES:
        if data.startswith(magic):
            return name
    return None


def _describe_unknown(data: bytes) -> str:
    head = data[:512]
    if not head.strip():
        return "it holds only blank or zero bytes"
    printable = sum(32 <= b < 127 or b in (9, 10, 13) for b in head)
    if printable >= 0.95 * len(head):
        return "it looks like a text file"
    if data.startswith(b"\x1f\x8b"):
        return "it is a gzip archive"
    if data.startswith(b"PK\x03\x04"):
        return "it is a zip archive"
    if len(data) > 132 and data[128:132] == b"DICM":
        return "it is a DICOM file"
    return f"it starts with bytes {data[:8].hex(' ')}"


def probe_bytes(data: bytes, path: Union[str, Path, None] = None, max_pixels: int = MAX_PIXELS) -> ImageInfo:
    """Parse the header of an image held in ``data``; raise a typed error for anything we will not decode.

    Checks, in order: known signature, a format we read, a complete header, the pixel cap, the end marker
    (JPEG ``FFD9``, PNG ``IEND``) that a truncated file lacks.
    """
    if not data:
        raise CorruptFileError("is empty (0 bytes)", path)
    kind = sniff(data)
    if kind is None:
        raise UnsupportedFormatError(f"is not a JPEG, PNG, TIFF or BMP image: {_describe_unknown(data)}", path)
    if kind not in _READ_FORMATS:
        raise UnsupportedFormatError(f"is a {kind} image; only JPEG, PNG, TIFF and BMP are read", path)
    try:
        info = {"JPEG": _probe_jpeg, "PNG": _probe_png, "TIFF": _probe_tiff, "BMP": _probe_bmp}[kind](data)
    except (struct.error, IndexError, KeyError, ValueError, OverflowError, ZeroDivisionError) as exc:
        raise CorruptFileError(f"has a truncated or corrupt {kind} header ({exc})", path) from None
    if info.width <= 0 or info.height <= 0:
        raise CorruptFileError(f"{kind} header gives an empty size {info.width}x{info.height}", path)
    if info.pixels > max_pixels:
        raise ImageTooLargeError(
            f"header claims {info.width} x {info.height} = {info.pixels:,} pixels, above the safety cap of "
            f"{max_pixels:,} (possible decompression bomb); not decoded",
            path,
        )
    if info.floating:
        raise UnsupportedFormatError(f"is a floating-point {kind}; only integer images are read", path)
    if info.bits not in (1, 2, 4, 8, 16):
        raise UnsupportedFormatError(f"has {info.bits}-bit samples; 8- and 16-bit images are read", path)
    if kind == "JPEG" and data.rfind(b"\xff\xd9", max(0, len(data) - 4096)) < 0:
        raise CorruptFileError("is truncated: the JPEG end-of-image marker is missing", path)
    if kind == "PNG" and data.rfind(b"IEND", max(0, len(data) - 4096)) < 0:
        raise CorruptFileError("is truncated: the PNG end chunk (IEND) is missing", path)
    return info


def probe(path: Union[str, Path], max_pixels: int = MAX_PIXELS) -> ImageInfo:
    """Header of the image file at ``path`` (reads at most the first 1 MiB plus the last bytes)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(1 << 20)
            size = fh.seek(0, 2)
            if size > len(head):  # keep the end marker check meaningful for large files
                fh.seek(max(len(head), size - 4096))
                head = head + fh.read()
    except OSError as exc:
        raise os_read_error(exc, path) from None
    return probe_bytes(head, path, max_pixels)


_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _probe_jpeg(data: bytes) -> ImageInfo:
    pos, n = 2, len(data)
    density: Optional[tuple[int, int, int]] = None
    while pos < n:
        if data[pos] != 0xFF:
            raise ValueError(f"expected a marker at byte {pos}")
        while pos < n and data[pos] == 0xFF:
            pos += 1
        marker = data[pos]
        pos += 1
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            continue
        if marker in (0xD9, 0xDA):
            break
        (length,) = struct.unpack(">H", data[pos : pos + 2])
        segment = data[pos + 2 : pos + length]
        if marker == 0xE0 and segment[:5] == b"JFIF\x00" and len(segment) >= 12:
            units, xd, yd = segment[7], *struct.unpack(">HH", segment[8:12])
            density = (units, yd, xd)
        if marker in _JPEG_SOF:
            bits, height, width, comps = struct.unpack(">BHHB", segment[:6])
            px_mm = None
            if density and density[0] == 2:  # dots per cm
                px_mm = (density[1] / 10.0, density[2] / 10.0)
            return ImageInfo("JPEG", width, height, bits, comps, px_per_mm=_physical(px_mm))
        pos += length
    raise ValueError("no frame header (SOF) before the end of the data")


def _probe_png(data: bytes) -> ImageInfo:
    if data[12:16] != b"IHDR":
        raise ValueError("first chunk is not IHDR")
    width, height, bits, colour = struct.unpack(">IIBB", data[16:26])
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(colour)
    if channels is None:
        raise ValueError(f"unknown PNG colour type {colour}")
    alpha, px_mm = colour in (4, 6), None
    pos = 8
    while pos + 8 <= len(data):  # ancillary chunks before the image data: transparency and physical size
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        ctype = data[pos + 4 : pos + 8]
        if ctype in (b"IDAT", b"IEND"):
            break
        if ctype == b"tRNS":
            alpha = True
        if ctype == b"pHYs" and length >= 9:
            ppu_x, ppu_y, unit = struct.unpack(">IIB", data[pos + 8 : pos + 17])
            if unit == 1:  # per metre
                px_mm = (ppu_y / 1000.0, ppu_x / 1000.0)
        pos += 12 + length
    return ImageInfo("PNG", width, height, bits, channels, alpha, colour == 3, px_per_mm=_physical(px_mm))


_TIFF_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 16: 8}


def _probe_tiff(data: bytes) -> ImageInfo:
    order = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack(order + "I", data[4:8])
    tags: dict[int, tuple] = {}
    pages = 0
    first = ifd
    while ifd and pages < 10_000:
        (count,) = struct.unpack(order + "H", data[ifd : ifd + 2])
        if pages == 0:
            for k in range(count):
                entry = data[ifd + 2 + 12 * k : ifd + 14 + 12 * k]
                tag, typ, num = struct.unpack(order + "HHI", entry[:8])
                size = _TIFF_SIZES.get(typ, 1) * num
                raw = entry[8:12] if size <= 4 else data[struct.unpack(order + "I", entry[8:12])[0] :][:size]
                tags[tag] = _tiff_values(raw, typ, min(num, 64), order)
        pages += 1
        nxt = ifd + 2 + 12 * count
        if nxt + 4 > len(data):
            break  # only the head of a large file was probed
        (ifd,) = struct.unpack(order + "I", data[nxt : nxt + 4])
        if ifd == first:
            break
    if 256 not in tags or 257 not in tags:
        raise ValueError("no image width/height tag")
    width, height = int(tags[256][0]), int(tags[257][0])
    bits = int(tags.get(258, (1,))[0])
    channels = int(tags.get(277, (1,))[0])
    photometric = int(tags.get(262, (1,))[0])
    floating = int(tags.get(339, (1,))[0]) == 3
    alpha = 338 in tags or (photometric == 2 and channels == 4)
    px_mm = None
    if 282 in tags and 283 in tags and int(tags.get(296, (2,))[0]) == 3:  # resolution unit: centimetre
        px_mm = (float(tags[283][0]) / 10.0, float(tags[282][0]) / 10.0)
    return ImageInfo(
        "TIFF", width, height, bits, min(channels, 4), alpha, photometric == 3, floating, max(pages, 1),
        _physical(px_mm),
    )


def _tiff_values(raw: bytes, typ: int, num: int, order: str) -> tuple:
    fmt = {1: "B", 3: "H", 4: "I", 6: "b", 8: "h", 9: "i", 11: "f", 12: "d", 16: "Q"}.get(typ)
    if typ in (5, 10):  # rationals
        vals = struct.unpack(order + ("I" if typ == 5 else "i") * (2 * num), raw[: 8 * num])
        return tuple(a / b if b else 0.0 for a, b in zip(vals[::2], vals[1::2]))
    if fmt is None:
        return (0,)
    size = struct.calcsize(fmt)
    return struct.unpack(order + fmt * num, raw[: size * num])


def _probe_bmp(data: bytes) -> ImageInfo:
    width, height = struct.unpack("<ii", data[18:26])
    (bpp,) = struct.unpack("<H", data[28:30])
    channels = 1 if bpp <= 8 else 3
    px_mm = None
    if len(data) >= 46:
        ppm_x, ppm_y = struct.unpack("<ii", data[38:46])
        if ppm_x > 0 and ppm_y > 0:
            px_mm = (ppm_y / 1000.0, ppm_x / 1000.0)
    return ImageInfo("BMP", width, abs(height), 8, channels, bpp == 32, bpp <= 8, px_per_mm=_physical(px_mm))


def _physical(px_mm: Optional[tuple[float, float]]) -> Optional[tuple[float, float]]:
    if px_mm is None or min(px_mm) < MIN_PHYSICAL_PX_PER_MM or not all(np.isfinite(px_mm)):
        return None
    return px_mm


# ---------------------------------------------------------------------------------------------- decoding


def reduction_for(full_hw: tuple[int, int], target_hw: tuple[int, int]) -> int:
    """The largest decode reduction (1, 2, 4 or 8) that still gives at least ``target_hw`` (rows, cols)."""
    best = 1
    for factor in REDUCTIONS:
        if -(-full_hw[0] // factor) >= target_hw[0] and -(-full_hw[1] // factor) >= target_hw[1]:
            best = factor
    return best


def _check_reduce(reduce: int) -> None:
    if reduce not in REDUCTIONS:
        raise ValueError(f"reduce must be one of {REDUCTIONS}, got {reduce}")


_REDUCED_FLAGS = {
    (True, 2): cv2.IMREAD_REDUCED_GRAYSCALE_2,
    (True, 4): cv2.IMREAD_REDUCED_GRAYSCALE_4,
    (True, 8): cv2.IMREAD_REDUCED_GRAYSCALE_8,
    (False, 2): cv2.IMREAD_REDUCED_COLOR_2,
    (False, 4): cv2.IMREAD_REDUCED_COLOR_4,
    (False, 8): cv2.IMREAD_REDUCED_COLOR_8,
}


def decode(
    data: bytes,
    info: ImageInfo,
    *,
    grey: bool,
    reduce: int = 1,
    path: Union[str, Path, None] = None,
    bits: Optional[int] = None,
) -> np.ndarray:
    """Decode ``data`` (already probed as ``info``) to uint8: ``(H, W)`` grey or ``(H, W, 3)`` RGB.

    EXIF orientation is applied. ``reduce`` (1, 2, 4, 8) shrinks both sides by that factor (rounded up),
    with libjpeg's scaled decoding for JPEG. ``bits`` forces the significant bit count of 16-bit data (see
    :func:`to_uint8`); a volume reader passes one value for all its slices.
    """
    _check_reduce(reduce)
    buf = np.frombuffer(data, np.uint8)
    image = _decode_raw(buf, info, grey=grey, reduce=reduce)
    if image is None:
        if info.format == "JPEG":
            raise CorruptFileError("could not be decoded: corrupt or truncated JPEG data", path)
        raise CorruptFileError(f"could not be decoded: corrupt or truncated {info.format} data", path)
    if image.dtype != np.uint8:
        image = to_uint8(image, bits)
    if image.ndim == 3 and image.shape[2] == 4:
        image = _composite_on_black(image)
    if image.ndim == 3 and image.shape[2] == 2:  # grey + alpha
        image = _composite_on_black(image)
    if grey and image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    elif not grey:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if reduce > 1 and not (info.format == "JPEG" and info.bits == 8):
        h, w = image.shape[:2]
        image = cv2.resize(image, (-(-w // reduce), -(-h // reduce)), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(image)


def _decode_raw(buf: np.ndarray, info: ImageInfo, *, grey: bool, reduce: int) -> Optional[np.ndarray]:
    """OpenCV decode; BGR(A) or grey, native depth."""
    try:
        if info.format == "JPEG" and info.bits == 8:
            flags = _REDUCED_FLAGS[(grey, reduce)] if reduce > 1 else (cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR)
            return cv2.imdecode(buf, flags)
        if info.alpha:
            image = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)  # keeps alpha, but ignores EXIF orientation
            if image is not None:
                image = _apply_exif_orientation(buf, image)
            return image
        flags = cv2.IMREAD_ANYDEPTH | (cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR)
        return cv2.imdecode(buf, flags)
    except cv2.error:
        return None


def _apply_exif_orientation(buf: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Rotate/flip like OpenCV would; only needed on the alpha path (IMREAD_UNCHANGED skips EXIF)."""
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(buf.tobytes())) as pil:
            orientation = pil.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - metadata is optional; a file PIL cannot parse keeps its stored orientation
        return image
    ops = {
        2: lambda a: cv2.flip(a, 1),
        3: lambda a: cv2.rotate(a, cv2.ROTATE_180),
        4: lambda a: cv2.flip(a, 0),
        5: lambda a: cv2.transpose(a),
        6: lambda a: cv2.rotate(a, cv2.ROTATE_90_CLOCKWISE),
        7: lambda a: cv2.rotate(cv2.transpose(a), cv2.ROTATE_180),
        8: lambda a: cv2.rotate(a, cv2.ROTATE_90_COUNTERCLOCKWISE),
    }
    return ops[orientation](image) if orientation in ops else image


def _composite_on_black(image: np.ndarray) -> np.ndarray:
    colour, alpha = image[..., :-1], image[..., -1:].astype(np.uint16)
    out = (colour.astype(np.uint16) * alpha + 127) // 255
    out = out.astype(np.uint8)
    return out[..., 0] if out.shape[-1] == 1 else out


def significant_bits(max_value: int) -> int:
    """Bits needed for ``max_value``, at least 8 (see the module docstring)."""
    return max(8, int(max_value).bit_length())


def to_uint8(array: np.ndarray, bits: Optional[int] = None) -> np.ndarray:
    """Scale integer pixels to uint8 with the documented linear rule; uint8 input is returned unchanged.

    ``bits``: significant bits; None derives them from the largest value. Negative values (signed data)
    are clipped to 0. Works slice by slice on 3-D input so a 16-bit volume never becomes a float array.
    """
    if array.dtype == np.uint8:
        return array
    if not np.issubdtype(array.dtype, np.integer) and array.dtype != np.bool_:
        raise UnsupportedFormatError(f"{array.dtype} pixels: only integer images are read")
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * np.uint8(255)
    if bits is None:
        bits = significant_bits(int(array.max(initial=0)))
    if bits <= 8:
        return np.clip(array, 0, 255).astype(np.uint8)
    top = (1 << bits) - 1
    out = np.empty(array.shape, np.uint8)
    planes = array.reshape((-1,) + array.shape[-2:]) if array.ndim >= 3 else array[None]
    flat_out = out.reshape(planes.shape)
    for k, plane in enumerate(planes):
        wide = np.clip(plane, 0, top).astype(np.uint32)
        flat_out[k] = (wide * 255 + top // 2) // top
    return out


def is_grey(rgb: np.ndarray, tolerance: float = 3.0) -> bool:
    """True when an (H, W, 3) image carries no colour (channels equal up to JPEG chroma noise)."""
    if rgb.ndim == 2:
        return True
    small = rgb if rgb.shape[0] * rgb.shape[1] <= 1 << 18 else rgb[:: max(1, rgb.shape[0] // 512), :: max(1, rgb.shape[1] // 512)]
    s = small.astype(np.int16)
    spread = np.maximum(np.abs(s[..., 0] - s[..., 1]), np.abs(s[..., 1] - s[..., 2]))
    return float(spread.mean()) <= tolerance and float(np.percentile(spread, 99)) <= 6 * tolerance


def read_image(
    path: Union[str, Path], *, grey: bool = False, reduce: int = 1, max_pixels: int = MAX_PIXELS
) -> np.ndarray:
    """Read one image file: ``(H, W, 3)`` uint8 RGB, or ``(H, W)`` uint8 with ``grey=True``."""
    data = read_bytes(path)
    info = probe_bytes(data, path, max_pixels)
    return decode(data, info, grey=grey, reduce=reduce, path=path)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------------------------------- exam loading


def looks_like_bscan(grey: bool, max_side: int) -> bool:
    """A grey image of B-scan size (see :data:`GREY_MIN_SIDE_FOR_BSCAN`, :data:`GREY_MAX_SIDE_FOR_BSCAN`)."""
    return grey and GREY_MIN_SIDE_FOR_BSCAN <= max_side <= GREY_MAX_SIDE_FOR_BSCAN


def guess_modality(rgb: np.ndarray) -> Modality:
    """An OCT B-scan for a grey image of B-scan size, else a fundus photo (colour, red-free or a crop)."""
    return "oct" if looks_like_bscan(is_grey(rgb), max(rgb.shape[:2])) else "fundus"


def load_image_exam(
    path: Union[str, Path],
    *,
    modality: Optional[Modality] = None,
    exam_id: Optional[str] = None,
    eye: str = "unknown",
    reduce: int = 1,
    notes: Optional[list[str]] = None,
) -> Exam:
    """One plain image as an exam: a fundus photo, a single OCT B-scan ``(1, H, W)`` or an X-ray.

    ``modality`` None decides from the content (:func:`guess_modality`) and says so in the provenance notes.
    Scale comes from the file only when it stores a metric resolution fine enough to be physical; otherwise
    it is None (unknown).
    """
    path = Path(path)
    data = read_bytes(path)
    info = probe_bytes(data, path)
    rgb = decode(data, info, grey=False, reduce=reduce, path=path)
    notes = list(notes or [])
    if modality is None:
        modality = guess_modality(rgb)
        notes.append(f"modality guessed from the content: {_GUESS_WORDS[modality]}")
    if info.pages > 1:
        notes.append(f"the TIFF holds {info.pages} pages; only the first was read")
    if reduce > 1:
        notes.append(f"decoded at 1/{reduce} of the stored resolution")
    spacing = None
    if info.px_per_mm is not None:
        spacing = Spacing((reduce / info.px_per_mm[0], reduce / info.px_per_mm[1]), "file")
    exam = Exam(
        exam_id=exam_id or path.stem,
        eye=eye,  # type: ignore[arg-type]
        provenance=Provenance(reader="engine.io.images", files=[SourceFile(str(path), sha256_bytes(data))], notes=notes),
    )
    if modality == "fundus":
        exam.fundus, exam.fundus_spacing = rgb, spacing
    elif modality == "oct":
        exam.oct = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[None]
        exam.bscan_files = [str(path)]
        if spacing is not None:  # a B-scan file's resolution is (axial, lateral); the slice axis is unknown
            notes.append("the file's resolution gives the axial and lateral scale; the slice spacing is unknown")
    elif modality == "xray":
        exam.xray, exam.xray_spacing = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), spacing
    else:
        raise UnsupportedFormatError(f"a plain image cannot hold {modality} data", path)
    exam.__post_init__()
    return exam


_GUESS_WORDS = {
    "fundus": "colour image (or grey, but not of B-scan size) read as a fundus photo",
    "oct": "grey image read as one OCT B-scan",
    "xray": "read as an X-ray",
}


__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_PIXELS",
    "ImageInfo",
    "decode",
    "guess_modality",
    "is_grey",
    "load_image_exam",
    "probe",
    "probe_bytes",
    "read_bytes",
    "read_image",
    "reduction_for",
    "sha256_bytes",
    "significant_bits",
    "sniff",
    "to_uint8",
]
