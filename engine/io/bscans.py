"""A folder (or list) of numbered B-scan images as one ``(N, H, W)`` uint8 volume.

Order is the number in the file name, never the string order: ``img_10.png`` comes after ``img_9.png``, and
``0_image.jpg ... 255_image.jpg`` (GAMMA) are not scrambled the way a first-character sort scrambles them.
The number is the last run of digits in the file's stem; files of one series share what stands before and
after it (``frame_007.png`` and ``frame_012.png`` are one series, ``mask_007.png`` another).

Guard rails: two files with the same number, a gap in the numbering, a slice whose size differs from the
others, or a slice that does not decode all raise :class:`InconsistentVolumeError` (or the slice's own error)
naming the file. Decoding runs on a thread pool (OpenCV releases the GIL) and writes straight into one
preallocated uint8 array; with ``reduce`` 2/4/8, JPEG slices are decoded at reduced size by libjpeg.
"""

from __future__ import annotations

import os
import re
import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

import cv2
import numpy as np

from engine.io import images
from engine.io.errors import CorruptFileError, EmptyInputError, ImageTooLargeError, InconsistentVolumeError
from engine.io.exam import Exam, Provenance, SourceFile, Spacing
from engine.progress import CancelToken, Cancelled, ProgressCallback, check, report, sub_progress

MAX_VOLUME_VOXELS = 1 << 30
"""A volume above 1 Gi voxels (1 GiB as uint8, e.g. 1024 B-scans of 1024 x 1024) is refused before decoding."""

_NUMBER = re.compile(r"^(.*?)(\d+)(\D*)$")


@dataclass(frozen=True)
class Numbered:
    """A file name split around its last number: ``prefix`` + ``number`` + ``suffix`` + extension."""

    path: Path
    prefix: str
    number: int
    suffix: str

    @property
    def series(self) -> tuple[str, str, str]:
        """What files of one series share: text before and after the number, and the extension."""
        return (self.prefix, self.suffix, self.path.suffix.lower())


def parse_number(path: Union[str, Path]) -> Optional[Numbered]:
    """Split ``path``'s stem around its last run of digits, or None when the stem holds no digit."""
    path = Path(path)
    match = _NUMBER.match(path.stem)
    if not match:
        return None
    return Numbered(path, match.group(1), int(match.group(2)), match.group(3))


def natural_key(name: str) -> tuple:
    """Sort key that compares digit runs as numbers: ``a2 < a10``; usable for any file names."""
    parts = re.split(r"(\d+)", name)
    return tuple((0, int(p), p) if p.isdigit() else (1, p.lower(), p) for p in parts)


def order_bscans(paths: Iterable[Union[str, Path]], *, allow_gaps: bool = False) -> list[Path]:
    """The B-scan files in acquisition order (by the number in their names).

    Raises :class:`InconsistentVolumeError` when a file has no number, two files carry the same number, or
    (unless ``allow_gaps``) a number between the first and the last is missing.
    """
    parsed: list[Numbered] = []
    for p in paths:
        item = parse_number(p)
        if item is None:
            raise InconsistentVolumeError("has no slice number in its name; B-scan files must be numbered", p)
        parsed.append(item)
    if not parsed:
        raise InconsistentVolumeError("no B-scan files given")
    parsed.sort(key=lambda n: (n.number, natural_key(n.path.name)))
    for a, b in zip(parsed, parsed[1:]):
        if a.number == b.number:
            raise InconsistentVolumeError(
                f"two files claim B-scan number {a.number}: {a.path.name} and {b.path.name}", b.path
            )
        if not allow_gaps and b.number != a.number + 1:
            missing = a.number + 1 if b.number == a.number + 2 else f"{a.number + 1}-{b.number - 1}"
            raise InconsistentVolumeError(
                f"B-scan number {missing} is missing between {a.path.name} and {b.path.name}", b.path
            )
    return [n.path for n in parsed]


@dataclass
class _Slice:
    data: bytes
    info: images.ImageInfo
    sha256: str


def read_bscans(
    paths: Sequence[Union[str, Path]],
    *,
    reduce: int = 1,
    workers: Optional[int] = None,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
    max_voxels: int = MAX_VOLUME_VOXELS,
) -> tuple[np.ndarray, list[str]]:
    """Decode B-scans (already in order) into ``(N, H, W)`` uint8; also return each file's SHA-256.

    The first slice fixes the size; any other size raises :class:`InconsistentVolumeError` naming the file.
    16-bit slices are scaled to 8 bits with one bit depth for the whole volume (see
    :func:`engine.io.images.to_uint8`). ``workers`` defaults to the CPU count (at most 16).
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise InconsistentVolumeError("no B-scan files given")
    images._check_reduce(reduce)
    check(cancel)
    first = _read_slice(paths[0])
    first_image = images.decode(first.data, first.info, grey=True, reduce=reduce, path=paths[0])
    height, width = first_image.shape
    voxels = len(paths) * first.info.pixels
    if voxels > max_voxels:
        raise ImageTooLargeError(
            f"{len(paths)} B-scans of {first.info.width} x {first.info.height} = {voxels:,} voxels, above the "
            f"cap of {max_voxels:,}",
            paths[0].parent,
        )
    deep = first.info.bits > 8
    volume = np.empty((len(paths), height, width), np.uint16 if deep else np.uint8)
    hashes: list[str] = [""] * len(paths)
    hashes[0] = first.sha256
    volume[0] = _raw_grey(first, paths[0], reduce) if deep else first_image
    done = [1]
    lock = threading.Lock()
    stop = threading.Event()

    def work(k: int) -> None:
        if stop.is_set() or (cancel is not None and cancel.cancelled):
            return
        item = _read_slice(paths[k])
        if (item.info.bits > 8) != deep:
            raise InconsistentVolumeError(
                f"is {item.info.bits}-bit while {paths[0].name} is {first.info.bits}-bit; one volume needs one depth",
                paths[k],
            )
        image = _raw_grey(item, paths[k], reduce) if deep else images.decode(
            item.data, item.info, grey=True, reduce=reduce, path=paths[k]
        )
        if image.shape != (height, width):
            raise InconsistentVolumeError(
                f"is {image.shape[1]} x {image.shape[0]} px but {paths[0].name} is {width} x {height} px; "
                "all B-scans of a volume must have one size",
                paths[k],
            )
        volume[k] = image
        hashes[k] = item.sha256
        with lock:
            done[0] += 1
            count = done[0]
        if count % 16 == 0 or count == len(paths):
            report(progress, count / len(paths), f"decoded {count}/{len(paths)} B-scans")

    n_workers = workers or min(16, os.cpu_count() or 1)
    if len(paths) > 1:
        with ThreadPoolExecutor(max_workers=max(1, n_workers), thread_name_prefix="bscan-decode") as pool:
            futures = [pool.submit(work, k) for k in range(1, len(paths))]
            pending = set(futures)
            while pending:
                finished, pending = wait(pending, timeout=0.1, return_when=FIRST_EXCEPTION)
                failed = next((f for f in finished if f.exception() is not None), None)
                if failed is not None or (cancel is not None and cancel.cancelled):
                    stop.set()
                    for f in pending:
                        f.cancel()
                    wait(pending)
                    if failed is not None:
                        raise _first_error(futures)
                    raise Cancelled("cancelled while decoding B-scans")
    check(cancel)
    if deep:
        volume = images.to_uint8(volume, images.significant_bits(int(volume.max(initial=0))))
    report(progress, 1.0, f"decoded {len(paths)} B-scans")
    return volume, hashes


def _first_error(futures: list) -> BaseException:
    """The error of the lowest-numbered failed slice, so the message is repeatable run to run."""
    for f in futures:
        if f.done() and not f.cancelled() and f.exception() is not None:
            return f.exception()
    raise AssertionError("no failed future")  # pragma: no cover


def _read_slice(path: Path) -> _Slice:
    data = images.read_bytes(path)
    info = images.probe_bytes(data, path)
    return _Slice(data, info, images.sha256_bytes(data))


def _raw_grey(item: _Slice, path: Path, reduce: int) -> np.ndarray:
    """A 16-bit slice kept at 16 bits (scaled once for the whole volume later)."""
    buf = np.frombuffer(item.data, np.uint8)
    image = cv2.imdecode(buf, cv2.IMREAD_ANYDEPTH | cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise CorruptFileError(f"could not be decoded: corrupt or truncated {item.info.format} data", path)
    if reduce > 1:
        h, w = image.shape
        image = cv2.resize(image, (-(-w // reduce), -(-h // reduce)), interpolation=cv2.INTER_AREA)
    return image.astype(np.uint16, copy=False)


def load_bscan_folder(
    paths: Union[str, Path, Sequence[Union[str, Path]]],
    *,
    exam_id: Optional[str] = None,
    eye: str = "unknown",
    spacing: Optional[Spacing] = None,
    reduce: int = 1,
    notes: Optional[list[str]] = None,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
) -> Exam:
    """A folder of numbered B-scans (or the files themselves) as an exam with only an OCT volume.

    Given a folder, every image file in it is taken as a B-scan; the exam id defaults to the folder name.
    """
    if isinstance(paths, (str, Path)):
        folder = Path(paths)
        files = [p for p in sorted(folder.iterdir()) if p.suffix.lower() in images.IMAGE_SUFFIXES and p.is_file()]
        if not files:
            raise EmptyInputError("holds no B-scan image files", folder)
        exam_id = exam_id or folder.name
    else:
        files = [Path(p) for p in paths]
        exam_id = exam_id or (files[0].parent.name if files else "bscans")
    return assemble_exam(
        exam_id, bscan_paths=order_bscans(files), oct_spacing=spacing, reduce=reduce, eye=eye,
        reader="engine.io.bscans", notes=notes, progress=progress, cancel=cancel,
    )


def assemble_exam(
    exam_id: str,
    *,
    fundus: Optional[Path] = None,
    bscan_paths: Optional[Sequence[Path]] = None,
    oct_spacing: Optional[Spacing] = None,
    reduce: int = 1,
    eye: str = "unknown",
    reader: str,
    notes: Optional[list[str]] = None,
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
) -> Exam:
    """An exam from a fundus image and/or B-scan files already in order (shared by the folder readers).

    ``oct_spacing`` is the full-resolution (slice, axial, lateral) spacing; with ``reduce`` > 1 the axial and
    lateral sizes are scaled to the decoded pixels. The fundus scale comes from its file when it stores one.
    """
    notes = list(notes or [])
    files: list[SourceFile] = []
    exam = Exam(exam_id=exam_id, eye=eye, provenance=Provenance(reader=reader, files=files, notes=notes))  # type: ignore[arg-type]
    check(cancel)
    if fundus is not None:
        data = images.read_bytes(fundus)
        info = images.probe_bytes(data, fundus)
        exam.fundus = images.decode(data, info, grey=False, reduce=reduce, path=fundus)
        files.append(SourceFile(str(fundus), images.sha256_bytes(data)))
        if info.px_per_mm is not None:
            exam.fundus_spacing = Spacing((reduce / info.px_per_mm[0], reduce / info.px_per_mm[1]), "file")
        report(progress, 0.1, f"read {fundus.name}")
    if bscan_paths:
        volume, hashes = read_bscans(
            bscan_paths, reduce=reduce, progress=sub_progress(progress, 0.1, 1.0), cancel=cancel
        )
        exam.oct = volume
        exam.bscan_files = [str(p) for p in bscan_paths]
        files.extend(SourceFile(str(p), h) for p, h in zip(bscan_paths, hashes))
        if oct_spacing is not None:
            mm = oct_spacing.mm
            exam.oct_spacing = Spacing((mm[0], mm[1] * reduce, mm[2] * reduce), oct_spacing.source)
    if reduce > 1:
        notes.append(f"decoded at 1/{reduce} of the stored resolution")
    exam.__post_init__()
    report(progress, 1.0, f"loaded {exam_id}")
    return exam


__all__ = [
    "MAX_VOLUME_VOXELS",
    "assemble_exam",
    "Numbered",
    "load_bscan_folder",
    "natural_key",
    "order_bscans",
    "parse_number",
    "read_bscans",
]
