"""Find the exams in any mix of folders and files, and say why every other file was left out.

``discover(paths)`` only lists and classifies (it reads headers and, where a folder's meaning depends on it,
one small decode); ``ExamSource.load()`` reads the pixels. ``load_exam(path)`` does both for one exam.

How a folder is read (first rule that applies; every folder below is visited in natural order):

1. **GAMMA** ``<ID>/<ID>.jpg`` + ``<ID>/<ID>/<k>_image.jpg``: one exam ``<ID>`` (fundus + OCT, assumed
   Triton spacing).
2. **NIfTI case**: files named as MRI sequences (FLAIR, T1ce, T2, T1) make one MRI exam named after the
   folder; label maps and masks are skipped.
3. **DICOM**: one file is one exam (its stem); several files of one study and eye (at most one photo and one
   volume) are one exam named after the folder; otherwise one exam per file.
4. **Plain images**. Annotation masks (``mask``, ``seg``, ``od``/``oc``, ``bv``, ``fov``, ``*softmap``, files
   in a ``*masks`` / ``labels`` folder, ...) are skipped. Files named by role make a **patient folder** exam
   named after the folder: ``fundus.*`` (the photo), ``onh.*`` (optic-nerve-head crop: skipped when a full
   photo exists, else read as the fundus image), ``oct.*`` (one B-scan). Numbered files that share a name
   pattern (``img_0.png ... img_54.png``) and hold grey images with at most sparse gaps are one **B-scan
   series** named after the folder; a folder with exactly one colour photo beside one series is one exam
   with both. Every other image is its own exam named by its stem.

A flat folder of numbered B-scans says nothing about which patient each belongs to, so it is read as one
volume and its notes say so; ``bscans_per_exam=N`` (CLI ``--bscans-per-exam N``) splits it into exams of N
consecutive B-scans, named ``<folder>_<first>-<last>`` (the Duke DME sample: 55 B-scans, 11 per patient).

Modality of a lone image: forced by ``modality``, else a hint in its name or the nearest folder name
(``oct``, ``bscan``, ``fundus``, ``xray``, ``radiograph``, ``panoramic``, ``dental``, ...), else the pixels
(:func:`engine.io.images.guess_modality`). Eye: DICOM laterality, else ``OD``/``OS``/``left``/``right``
words, or ``R``/``L`` as the first or last word of the exam's folder or file name, else ``"unknown"``.

Sidecar: an ``exam.json`` in a folder (eye, synthetic modalities, notes; see :mod:`engine.io.sidecar`)
applies to every exam found directly in that folder; a broken one becomes a note, never a failed load.

Guard rails: symbolic-link loops are not followed, unreadable files and folders, empty folders, hidden and
non-image files are reported with their reason, and the walk stops after ``max_entries`` directory entries
so that a huge tree still answers in bounded time. Nothing is ever written.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

import numpy as np

from engine.io import bscans, dicom, gamma, images, nifti
from engine.io.errors import EmptyInputError, ExamLoadError
from engine.io.exam import Exam, Eye, Modality
from engine.io.sidecar import SIDECAR_NAME, Sidecar, read_sidecar
from engine.progress import CancelToken, ProgressCallback, check, report

MAX_ENTRIES = 200_000
"""Directory entries visited before the walk stops (reported as a skip)."""
MAX_DEPTH = 32

_MASK_WORDS = frozenset({
    "mask", "masks", "seg", "segmentation", "label", "labels", "gt", "groundtruth", "annotation", "annotations",
    "softmap", "bv", "fov", "vessel", "vessels", "artery", "arteries", "vein", "veins",
})
_MASK_STEMS = frozenset({"od", "oc", "cup", "disc", "fundus_od", "fundus_oc", "fundus_cup", "fundus_disc"})
_ANNOTATION_FOLDER_WORDS = frozenset({
    "mask", "masks", "label", "labels", "annotation", "annotations", "gt", "groundtruth", "segmentation",
    "segmentations", "seg",
})
_FUNDUS_ROLE = frozenset({"fundus", "cfp", "color_fundus", "colour_fundus"})
_OCT_ROLE = frozenset({"oct", "bscan", "b-scan", "b_scan"})
_HINTS: tuple[tuple[Modality, re.Pattern[str]], ...] = (
    ("oct", re.compile(r"(?<![a-z])(oct|octs|b[-_ ]?scans?|tomograph\w*|spectralis|cirrus)(?![a-z])")),
    ("xray", re.compile(r"(?<![a-z])(x[-_ ]?rays?|radiograph\w*|panoramic|pano|dental|cxr|opg)(?![a-z])")),
    ("fundus", re.compile(r"(?<![a-z])(fundus|fundi|fundoscopy|cfp)(?![a-z])")),
)
_NON_IMAGE_WORDS = {
    ".csv": "a table", ".tsv": "a table", ".xlsx": "a spreadsheet", ".xls": "a spreadsheet", ".txt": "a text file",
    ".md": "a text file", ".json": "a data file", ".xml": "a data file", ".pdf": "a document",
    ".zip": "an archive", ".gz": "an archive", ".tar": "an archive", ".mat": "a MATLAB file",
    ".npy": "a NumPy array", ".npz": "a NumPy archive", ".py": "a program", ".ipynb": "a notebook",
}


@dataclass(frozen=True)
class Skipped:
    """A file or folder that yields no exam, and why (one line, fit for a report)."""

    path: str
    reason: str


@dataclass
class ExamSource:
    """One exam found on disk, not loaded yet.

    ``kind``: ``"gamma"``, ``"patient-folder"``, ``"bscan-series"``, ``"image"``, ``"dicom"`` or ``"nifti"``.
    ``paths``: every file ``load`` will read. ``folder``: the folder the exam was found as (None for a lone
    file). Role fields say what each file is; ``bscans`` are in name-number order.
    """

    exam_id: str
    kind: str
    paths: list[Path]
    folder: Optional[Path] = None
    eye: Eye = "unknown"
    modality: Optional[Modality] = None
    fundus: Optional[Path] = None
    bscans: list[Path] = field(default_factory=list)
    mri: dict[str, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    sidecar: Optional[Sidecar] = None

    def load(
        self,
        progress: Optional[ProgressCallback] = None,
        cancel: Optional[CancelToken] = None,
        *,
        reduce: int = 1,
    ) -> Exam:
        """Read the pixels: an :class:`Exam`, or one typed :class:`ExamLoadError` for bad input."""
        check(cancel)
        if self.kind in ("gamma", "patient-folder", "bscan-series"):
            ordered = self.bscans if len(self.bscans) <= 1 else bscans.order_bscans(self.bscans)
            spacing, notes = None, list(self.notes)
            if self.kind == "gamma" and ordered:
                spacing = gamma.assumed_triton_spacing(len(ordered), images.probe(ordered[0]).width)
                notes.append(gamma.ASSUMED_NOTE)
            exam = bscans.assemble_exam(
                self.exam_id, fundus=self.fundus, bscan_paths=ordered, oct_spacing=spacing, reduce=reduce,
                eye=self.eye, reader=f"engine.io.discover ({self.kind})", notes=notes, progress=progress,
                cancel=cancel,
            )
        elif self.kind == "image":
            exam = images.load_image_exam(
                self.paths[0], modality=self.modality, exam_id=self.exam_id, eye=self.eye, reduce=reduce,
                notes=list(self.notes),
            )
        elif self.kind == "dicom":
            exam = dicom.load_dicom(self.paths, exam_id=self.exam_id, modality=self.modality, reduce=reduce)
            exam.provenance.notes.extend(self.notes)
        elif self.kind == "nifti":
            exam = nifti.load_nifti(self.mri, exam_id=self.exam_id, progress=progress, cancel=cancel)
            exam.provenance.notes.extend(self.notes)
        else:  # pragma: no cover - kinds are set in this module only
            raise ValueError(f"unknown exam source kind {self.kind!r}")
        if exam.eye == "unknown" and self.eye != "unknown":
            exam.eye = self.eye
        if self.sidecar is not None:
            _apply_sidecar(exam, self.sidecar)
        return exam

    def load_photo(self) -> Optional[np.ndarray]:
        """The fundus photo alone, (H, W, 3) uint8 as :meth:`load` decodes it, where it has a file of its own
        (a GAMMA folder's OCT volume is then not read); otherwise the whole exam is read for it. None: no photo.

        Raises:
            ExamLoadError: bad input (one line), as :meth:`load`.
        """
        if self.fundus is not None:
            reader = f"engine.io.discover ({self.kind})"
            return bscans.assemble_exam(self.exam_id, fundus=self.fundus, reader=reader).fundus
        return self.load().fundus


def _apply_sidecar(exam: Exam, sidecar: Sidecar) -> None:
    """The sidecar's eye wins over names (a conflict with the file's own laterality is noted)."""
    prov = exam.provenance
    if sidecar.eye is not None and sidecar.eye != exam.eye:
        if exam.eye != "unknown" and prov.reader.startswith("engine.io.dicom"):
            prov.notes.append(f"{sidecar.path.name} says eye {sidecar.eye}, the file says {exam.eye}; "
                              f"{sidecar.eye} is used")
        exam.eye = sidecar.eye
    if sidecar.synthetic_modalities:
        prov.synthetic_modalities = tuple(dict.fromkeys((*prov.synthetic_modalities, *sidecar.synthetic_modalities)))
        present = set(exam.modalities)
        if present and present <= set(prov.synthetic_modalities):
            prov.synthetic = True
        for modality in sidecar.synthetic_modalities:
            if modality in present:
                prov.notes.append(f"{modality} is synthetic (generated, not acquired), as {sidecar.path.name} says")
    prov.notes.extend(sidecar.all_notes())
    if sidecar.source is not None:
        prov.files.append(sidecar.source)


@dataclass
class Discovery:
    """What :func:`discover` found: exam sources in a stable order, and every skipped path with its reason."""

    sources: list[ExamSource] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------ naming


def _words(name: str) -> list[str]:
    return [w for w in re.split(r"[^A-Za-z0-9]+", name) if w]


def eye_from_name(name: str) -> Eye:
    """``OD``/``OS`` (upper case), ``left``/``right``, or ``R``/``L``/``RE``/``LE`` as first or last word."""
    words = _words(name)
    found: set[str] = set()
    for i, word in enumerate(words):
        edge = i in (0, len(words) - 1)
        if word == "OD" or word.lower() == "right" or (edge and word in ("R", "RE")):
            found.add("OD")
        elif word == "OS" or word.lower() == "left" or (edge and word in ("L", "LE")):
            found.add("OS")
    return found.pop() if len(found) == 1 else "unknown"  # type: ignore[return-value]


def printable_id(name: str) -> str:
    """``name`` as valid text: bytes of a file name that are not UTF-8 (lone surrogates) become U+FFFD."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def modality_hint(names: Iterable[str]) -> tuple[Optional[Modality], Optional[str]]:
    """The modality named by the first name (nearest first) that names exactly one, and that name."""
    for name in names:
        low = name.lower()
        hits = {modality for modality, pattern in _HINTS if pattern.search(low)}
        if len(hits) == 1:
            return hits.pop(), name
    return None, None


def mask_reason(path: Path) -> Optional[str]:
    """Why an image file looks like an annotation mask, or None."""
    stem = path.stem.lower()
    words = [w.lower() for w in _words(path.stem)]
    if stem in _MASK_STEMS:
        return f"annotation mask (named {path.name}), not an image to analyse"
    if any(w in _MASK_WORDS or w.endswith(("mask", "softmap")) for w in words):
        return f"annotation mask (named {path.name}), not an image to analyse"
    return None


def _annotation_folder(folder: Path, root: Path) -> Optional[str]:
    for part in [folder, *folder.parents]:
        words = [w.lower() for w in re.split(r"[^A-Za-z0-9]+", part.name) if w]
        if any(w in _ANNOTATION_FOLDER_WORDS or w.endswith("masks") for w in words):
            return part.name
        if part == root:
            break
    return None


def _unique_ids(sources: list[ExamSource]) -> None:
    """Make exam ids unique: a repeated id is prefixed with its parent folder's name (then numbered)."""
    counts: dict[str, int] = {}
    for s in sources:
        counts[s.exam_id] = counts.get(s.exam_id, 0) + 1
    seen: set[str] = set()
    for s in sources:
        if counts[s.exam_id] > 1:
            anchor = s.folder if s.folder is not None else s.paths[0]
            candidate = f"{anchor.parent.name}-{s.exam_id}" if anchor.parent.name else s.exam_id
            k = 2
            base = candidate
            while candidate in seen:
                candidate, k = f"{base}-{k}", k + 1
            s.exam_id = candidate
        seen.add(s.exam_id)


# ------------------------------------------------------------------------------------------------ walking


class _Walk:
    def __init__(
        self,
        modality: Optional[Modality],
        bscans_per_exam: Optional[int],
        max_entries: int,
        progress: Optional[ProgressCallback],
        cancel: Optional[CancelToken],
    ) -> None:
        self.modality = modality
        self.per_exam = bscans_per_exam
        self.max_entries = max_entries
        self.progress = progress
        self.cancel = cancel
        self.entries = 0
        self.stopped = False
        self.visited: dict[tuple[int, int], Path] = {}
        self.out = Discovery()

    def skip(self, path: Union[str, Path], reason: str) -> None:
        self.out.skipped.append(Skipped(str(path), reason))

    # -- a given path -------------------------------------------------------------------------------------

    def given(self, path: Path) -> None:
        if not os.path.lexists(path):
            self.skip(path, "does not exist")
        elif path.is_symlink() and not path.exists():
            self.skip(path, "broken symbolic link")
        elif path.is_dir():
            self.walk(path)
        elif path.is_file():
            if not os.access(path, os.R_OK):
                self.skip(path, "cannot be read (permission denied)")
                return
            self.lone_file(path)
        else:
            self.skip(path, "not a regular file or folder")

    def lone_file(self, path: Path) -> None:
        """A file given on its own: read it whatever its name says (masks included)."""
        suffix = path.suffix.lower()
        if nifti.is_nifti(path):
            seq = nifti.sequence_of(path) or "unknown"
            self.add(ExamSource(nifti.stem(path), "nifti", [path], mri={seq: path}))
        elif suffix in images.IMAGE_SUFFIXES:
            self.add_image(path, self.hint(path.parent))
        elif dicom.looks_like_dicom(path):
            self.add(ExamSource(path.stem, "dicom", [path], eye=eye_from_name(path.stem), modality=self.modality))
        else:
            self.skip(path, self.non_image_reason(path))

    def add(self, source: ExamSource) -> None:
        source.exam_id = printable_id(source.exam_id)
        self.out.sources.append(source)

    def hint(self, folder: Path) -> tuple[Optional[Modality], Optional[str]]:
        """The modality forced by the caller, else the one the nearest folder name suggests (and that name)."""
        if self.modality is not None:
            return self.modality, None
        return modality_hint([folder.name, *(p.name for p in folder.parents)])

    def add_image(self, path: Path, folder_hint: tuple[Optional[Modality], Optional[str]]) -> None:
        """One image as its own exam; its own name's hint beats the folder's."""
        modality, name = folder_hint if self.modality is not None else modality_hint([path.stem])
        if modality is None:
            modality, name = folder_hint
        notes = [f"read as {modality}: the name {name!r} says so"] if name else []
        self.add(ExamSource(path.stem, "image", [path], eye=eye_from_name(path.stem), modality=modality,
                            notes=notes))

    @staticmethod
    def non_image_reason(path: Path) -> str:
        suffix = path.suffix.lower()
        if suffix in images.OTHER_IMAGE_SUFFIXES:
            return f"image format {suffix} is not read (JPEG, PNG, TIFF, BMP, DICOM, NIfTI are)"
        what = _NON_IMAGE_WORDS.get(suffix)
        if what:
            return f"not an image file ({what}, {suffix})"
        return f"not an image file ({suffix or 'no extension'})"

    # -- folders ------------------------------------------------------------------------------------------

    def walk(self, root: Path) -> None:
        stack: list[tuple[Path, int, frozenset[tuple[int, int]]]] = [(root, 0, frozenset())]
        done = 0
        while stack and not self.stopped:
            check(self.cancel)
            folder, depth, ancestors = stack.pop()
            try:
                st = folder.stat()
            except OSError as exc:
                self.skip(folder, f"folder cannot be read ({exc.strerror or type(exc).__name__})")
                continue
            key = (st.st_dev, st.st_ino)
            if key in ancestors:
                self.skip(folder, f"symbolic link loop: leads back to {self.visited.get(key, folder)}; not followed")
                continue
            if key in self.visited:
                self.skip(folder, f"already scanned as {self.visited[key]}; not followed twice")
                continue
            self.visited[key] = folder
            subdirs = self.scan(root, folder)
            done += 1
            report(self.progress, done / (done + len(stack) + len(subdirs)), f"scanned {folder.name}")
            if depth >= MAX_DEPTH and subdirs:
                self.skip(folder, f"sub-folders deeper than {MAX_DEPTH} levels are not scanned")
                continue
            for sub in reversed(subdirs):
                stack.append((sub, depth + 1, ancestors | {key}))

    def scan(self, root: Path, folder: Path) -> list[Path]:
        """Classify one folder's entries; add its exams; return the sub-folders still to visit (in order)."""
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: bscans.natural_key(e.name))
        except PermissionError:
            self.skip(folder, "folder cannot be read (permission denied)")
            return []
        except OSError as exc:
            self.skip(folder, f"folder cannot be read ({exc.strerror or type(exc).__name__})")
            return []
        self.entries += len(entries)
        if self.entries > self.max_entries:
            self.stopped = True
            self.skip(folder, f"scan stopped: more than {self.max_entries:,} entries below the given folders")
            return []
        if not entries:
            self.skip(folder, "empty folder")
            return []
        files: list[Path] = []
        subdirs: list[Path] = []
        for entry in entries:
            path = Path(entry.path)
            if entry.name.startswith("."):
                self.skip(path, "hidden file or folder")
                continue
            try:
                is_dir = entry.is_dir()
                is_file = not is_dir and entry.is_file()
            except OSError:
                is_dir = is_file = False
            if is_dir:
                subdirs.append(path)
            elif is_file:
                if not os.access(path, os.R_OK):
                    self.skip(path, "cannot be read (permission denied)")
                else:
                    files.append(path)
            elif entry.is_symlink() and not path.exists():
                self.skip(path, "broken symbolic link")
            else:
                self.skip(path, "not a regular file or folder")
        sidecar = self.take_sidecar(files)
        first = len(self.out.sources)
        consumed = self.gamma(folder, files, subdirs)
        self.group(root, folder, files)
        if sidecar is not None:
            mine = self.out.sources[first:]
            for source in mine:
                source.sidecar = sidecar
                if sidecar.eye is not None:
                    source.eye = sidecar.eye
            if not mine:
                self.skip(sidecar.path, "exam sidecar, but this folder holds no exam of its own")
        return [d for d in subdirs if d not in consumed]

    @staticmethod
    def take_sidecar(files: list[Path]) -> Optional[Sidecar]:
        """Remove this folder's ``exam.json`` from ``files`` and read it (never raises)."""
        path = next((f for f in files if f.name.lower() == SIDECAR_NAME), None)
        if path is None:
            return None
        files.remove(path)
        return read_sidecar(path)

    def gamma(self, folder: Path, files: list[Path], subdirs: list[Path]) -> set[Path]:
        """Rule 1: ``<ID>/<ID>/`` numbered B-scans (+ ``<ID>/<ID>.jpg``). Claims the files it uses."""
        inner = folder / folder.name
        if inner not in subdirs:
            return set()
        try:
            children = sorted(inner.iterdir(), key=lambda p: bscans.natural_key(p.name))
        except OSError:
            return set()
        scans = [p for p in children if p.is_file() and p.suffix.lower() in images.IMAGE_SUFFIXES
                 and not p.name.startswith(".") and bscans.parse_number(p)]
        if not scans:
            return set()
        try:
            st = inner.stat()
            self.visited[(st.st_dev, st.st_ino)] = inner
        except OSError:
            pass
        self.entries += len(children)
        for p in children:
            if p not in scans:
                self.skip(p, "not a numbered B-scan image in a GAMMA B-scan folder")
        fundus = next((f for f in files if f.stem == folder.name and f.suffix.lower() in images.IMAGE_SUFFIXES), None)
        if fundus is not None:
            files.remove(fundus)
        self.add(ExamSource(
            folder.name, "gamma", ([fundus] if fundus else []) + _number_sorted(scans), folder=folder,
            eye=eye_from_name(folder.name), fundus=fundus, bscans=_number_sorted(scans),
        ))
        return {inner}

    def group(self, root: Path, folder: Path, files: list[Path]) -> None:
        """Rules 2-4 for the files of one folder."""
        imgs: list[Path] = []
        niis: list[Path] = []
        dcms: list[Path] = []
        for path in files:
            if nifti.is_nifti(path):
                niis.append(path)
            elif path.suffix.lower() in images.IMAGE_SUFFIXES:
                imgs.append(path)
            elif path.suffix.lower() in dicom.DICOM_SUFFIXES or (not path.suffix and dicom.looks_like_dicom(path)):
                dcms.append(path)
            else:
                self.skip(path, self.non_image_reason(path))
        if niis:
            self.nifti_case(folder, niis)
        if dcms:
            self.dicom_files(folder, dcms)
        if imgs:
            self.image_files(root, folder, imgs)

    def nifti_case(self, folder: Path, niis: list[Path]) -> None:
        named: dict[str, Path] = {}
        for path in niis:
            seq = nifti.sequence_of(path)
            if seq and seq not in named:
                named[seq] = path
            elif seq:
                self.skip(path, f"a second {seq.upper()} volume in one case folder ({named[seq].name} is used)")
        if named:
            for path in niis:
                if path not in named.values() and nifti.sequence_of(path) is None:
                    self.skip(path, nifti.skip_reason(path))
            self.add(ExamSource(folder.name, "nifti", list(named.values()), folder=folder, mri=named))
            return
        for path in niis:
            if nifti.is_label(path):
                self.skip(path, nifti.skip_reason(path))
            else:
                self.add(ExamSource(nifti.stem(path), "nifti", [path], mri={"unknown": path},
                                    notes=["the file name does not say which MRI sequence this is"]))

    def dicom_files(self, folder: Path, dcms: list[Path]) -> None:
        headers: list[dicom.DicomHeader] = []
        for path in dcms:
            try:
                headers.append(dicom.read_header(path))
            except ExamLoadError as err:
                self.skip(path, err.reason)
        if len(headers) == 1:
            h = headers[0]
            self.add(ExamSource(h.path.stem, "dicom", [h.path], eye=h.eye, modality=self.modality))
            return
        groups: dict[tuple[str, str], list[dicom.DicomHeader]] = {}
        for h in headers:
            groups.setdefault((h.study, h.eye), []).append(h)
        eyes_distinct = len({eye for _, eye in groups}) == len(groups)
        for (_, eye), members in groups.items():
            kinds = [m.kind for m in members]
            one_each = all(kinds.count(k) <= 1 for k in ("fundus", "oct", "xray")) and None not in kinds
            if len(members) > 1 and one_each and (len(groups) == 1 or eyes_distinct):
                exam_id = folder.name if len(groups) == 1 else f"{folder.name}_{eye}"
                self.add(ExamSource(exam_id, "dicom", [m.path for m in members], folder=folder, eye=eye,
                                    modality=self.modality))
            else:
                for m in members:
                    self.add(ExamSource(m.path.stem, "dicom", [m.path], eye=m.eye, modality=self.modality))

    def image_files(self, root: Path, folder: Path, imgs: list[Path]) -> None:
        annotation = _annotation_folder(folder, root)
        if annotation is not None:
            for path in imgs:
                self.skip(path, f"in an annotation folder ({annotation}): masks are not images to analyse")
            return
        kept: list[Path] = []
        for path in imgs:
            reason = mask_reason(path)
            if reason:
                self.skip(path, reason)
            else:
                kept.append(path)
        kept = self.roles(folder, kept)
        if kept:
            self.generic(folder, kept)

    def roles(self, folder: Path, imgs: list[Path]) -> list[Path]:
        """Patient-folder files named by role (``fundus``, ``onh``, ``oct``, or ``<folder name>``)."""
        fundus = [p for p in imgs if p.stem.lower() in _FUNDUS_ROLE or p.stem == folder.name]
        onh = [p for p in imgs if p.stem.lower() == "onh"]
        octs = [p for p in imgs if p.stem.lower() in _OCT_ROLE]
        if not (fundus or onh or octs):
            return imgs
        notes: list[str] = []
        for extra in fundus[1:]:
            self.skip(extra, f"a second fundus photo in one patient folder ({fundus[0].name} is read)")
        for extra in octs[1:]:
            self.skip(extra, f"a second single OCT B-scan in one patient folder ({octs[0].name} is read)")
        photo = fundus[0] if fundus else None
        if onh and photo is not None:
            for crop in onh:
                self.skip(crop, f"optic-nerve-head crop of {photo.name}; the full photo is read")
        elif onh:
            photo = onh[0]
            notes.append(f"only the optic-nerve-head crop ({photo.name}) is present; it is read as the fundus image")
            for extra in onh[1:]:
                self.skip(extra, f"a second optic-nerve-head crop ({photo.name} is read)")
        scan = octs[:1]
        if scan:
            notes.append(f"{scan[0].name} is one OCT B-scan (a volume of 1)")
        paths = ([photo] if photo else []) + scan
        self.add(ExamSource(folder.name, "patient-folder", paths, folder=folder, eye=eye_from_name(folder.name),
                            fundus=photo, bscans=scan, notes=notes))
        used = set(fundus) | set(onh) | set(octs)
        return [p for p in imgs if p not in used]

    def generic(self, folder: Path, imgs: list[Path]) -> None:
        """Rule 4 without role names: B-scan series, photo + series, or one exam per image."""
        folder_hint = self.hint(folder)
        hint = folder_hint[0]
        groups: dict[tuple[str, str, str], list[bscans.Numbered]] = {}
        singles: list[Path] = []
        for path in imgs:
            item = bscans.parse_number(path)
            if item is None:
                singles.append(path)
            else:
                groups.setdefault(item.series, []).append(item)
        series: list[list[bscans.Numbered]] = []
        for members in groups.values():
            if len(members) >= 2 and _dense(members) and self.is_bscan_series(members, hint):
                series.append(members)
            else:
                singles.extend(m.path for m in members)
        singles.sort(key=lambda p: bscans.natural_key(p.name))
        photo = _peek(singles[0]) if len(series) == 1 and len(singles) == 1 and hint != "oct" else None
        if photo is not None and not photo[0]:
            scans = _number_sorted([m.path for m in series[0]])
            self.add(ExamSource(folder.name, "patient-folder", [singles[0], *scans], folder=folder,
                                eye=eye_from_name(folder.name), fundus=singles[0], bscans=scans,
                                notes=[f"{singles[0].name} read as the fundus photo beside the B-scan series"]))
            return
        for members in series:
            self.add_series(folder, members, named=len(series) > 1)
        for path in singles:
            self.add_image(path, folder_hint)

    def is_bscan_series(self, members: list[bscans.Numbered], hint: Optional[Modality]) -> bool:
        if hint in ("fundus", "xray"):
            return False
        if hint == "oct":
            return True
        for m in sorted(members, key=lambda m: m.number)[:3]:
            peek = _peek(m.path)
            if peek is not None:  # grey and not larger than a B-scan (tiny synthetic slices count)
                return peek[0] and peek[1] <= images.GREY_MAX_SIDE_FOR_BSCAN
        return True  # nothing decodes: keep them together so the load names the broken file once

    def add_series(self, folder: Path, members: list[bscans.Numbered], *, named: bool) -> None:
        base = folder.name
        if named:
            base = f"{folder.name}_{members[0].prefix.strip('_- .') or 'series'}"
        eye = eye_from_name(folder.name)
        ordered = sorted(members, key=lambda m: (m.number, bscans.natural_key(m.path.name)))
        numbers = [m.number for m in ordered]
        n = self.per_exam
        if n and len(ordered) > n and len(set(numbers)) == len(numbers):
            for start in range(0, len(ordered), n):
                chunk = [m.path for m in ordered[start : start + n]]
                first, last = numbers[start], numbers[min(start + n, len(ordered)) - 1]
                self.add(ExamSource(
                    f"{base}_{first}-{last}", "bscan-series", chunk, folder=folder, eye=eye, bscans=chunk,
                    notes=[f"B-scans {first}-{last} of {folder.name}/ (split every {n} B-scans as asked)"],
                ))
            return
        paths = [m.path for m in ordered]
        note = (
            f"the {len(paths)} numbered B-scans of {folder.name}/ are read as one volume (names carry no patient "
            "boundary; --bscans-per-exam N splits a folder that mixes patients)"
        )
        self.add(ExamSource(base, "bscan-series", paths, folder=folder, eye=eye, bscans=paths, notes=[note]))


def _number_sorted(paths: Sequence[Path]) -> list[Path]:
    def key(p: Path) -> tuple:
        item = bscans.parse_number(p)
        return (item.number if item else -1, bscans.natural_key(p.name))

    return sorted(paths, key=key)


def _dense(members: list[bscans.Numbered]) -> bool:
    """Numbers close enough to be one acquisition (a missing slice or two is an error at load, not a split)."""
    numbers = [m.number for m in members]
    span = max(numbers) - min(numbers) + 1
    return span <= 2 * len(numbers)


def _peek(path: Path) -> Optional[tuple[bool, int]]:
    """(grey?, longest side in px) of ``path`` from one 1/8-size decode, or None when it does not decode."""
    try:
        small = images.read_image(path, reduce=8)
        info = images.probe(path)
    except ExamLoadError:
        return None
    return images.is_grey(small), max(info.width, info.height)


# ----------------------------------------------------------------------------------------------- public


def discover(
    paths: Union[str, Path, Sequence[Union[str, Path]]],
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
    *,
    modality: Optional[Modality] = None,
    bscans_per_exam: Optional[int] = None,
    max_entries: int = MAX_ENTRIES,
) -> Discovery:
    """Find the exams in folders and/or files (see the module docstring for the rules).

    ``modality`` forces how lone images and DICOM files are read (``"fundus"``, ``"oct"``, ``"xray"``).
    ``bscans_per_exam`` splits flat B-scan series into exams of that many consecutive B-scans.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    if bscans_per_exam is not None and bscans_per_exam < 1:
        raise ValueError("bscans_per_exam must be at least 1")
    walk = _Walk(modality, bscans_per_exam, max_entries, progress, cancel)
    for path in paths:
        walk.given(Path(path))
    _unique_ids(walk.out.sources)
    report(progress, 1.0, f"found {len(walk.out.sources)} exams, skipped {len(walk.out.skipped)} paths")
    return walk.out


def load_exam(
    path: Union[str, Path],
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
    *,
    reduce: int = 1,
    modality: Optional[Modality] = None,
) -> Exam:
    """The one exam in ``path`` (a patient folder or a file).

    Raises :class:`EmptyInputError` (with the first skip reasons) when none is found, and
    :class:`ExamLoadError` when the folder holds several (use :func:`discover` for those).
    """
    found = discover([path], cancel=cancel, modality=modality)
    if not found.sources:
        reasons = "; ".join(f"{Path(s.path).name}: {s.reason}" for s in found.skipped[:3])
        raise EmptyInputError(f"no exam found ({reasons})" if reasons else "no exam found", path)
    if len(found.sources) > 1:
        ids = ", ".join(s.exam_id for s in found.sources[:5])
        more = "" if len(found.sources) <= 5 else f" and {len(found.sources) - 5} more"
        raise ExamLoadError(f"holds {len(found.sources)} exams ({ids}{more}); open one of them", path)
    return found.sources[0].load(progress, cancel, reduce=reduce)


__all__ = ["Discovery", "ExamSource", "Skipped", "discover", "eye_from_name", "load_exam", "modality_hint"]
