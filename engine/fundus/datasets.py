"""Readers for fundus photos with optic disc / cup masks, in the layouts they are published in.

Every reader returns :class:`DiscCupCase` records (paths only, nothing decoded); :func:`load_case` decodes one
into ``(image, disc, cup)``:

- ``image``: ``(H, W, 3)`` uint8 RGB;
- ``disc``, ``cup``: ``(H, W)`` bool, ``cup`` always inside ``disc``.

Mask conventions differ between sources (and two of them are exact opposites), so each case carries its
``convention``:

=================  ==================================================================================
``gamma``          one joint mask: 0 = cup, 128 = disc rim, 255 = background (GAMMA, REFUGE, this
                   project's output files). Disc = value < 192, cup = value < 64.
``odoc``           one joint mask: 0 = background, 128 = disc rim, 255 = cup (``odoc100/`` in the shared
                   samples). Disc = value >= 64, cup = value >= 192.
``label``          one joint mask of class indices: 0 = background, 1 = disc rim, 2 = cup (ORIGA Kaggle).
``white``          two masks, white = structure (SMDG re-packaging: REFUGE binary, ORIGA/PAPILA/G1020
                   JPEG). Threshold at 128.
``soft``           two Drishti-GS soft maps, 0/64/128/191/255 = how many of 4 experts marked the pixel;
                   at least 2 of 4 (>= 128) is the structure.
=================  ==================================================================================

``source`` is the group used for held-out evaluation: cases from one source (camera, site, annotators)
are never split between training and test folds.
"""

from __future__ import annotations

import csv
import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Literal, Optional

import numpy as np

Convention = Literal["gamma", "odoc", "label", "white", "soft"]
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")


class DatasetLayoutError(ValueError):
    """A folder does not match any known disc/cup layout. ``str()`` says what was expected."""


@dataclass(frozen=True)
class DiscCupCase:
    """One photo with its disc/cup annotation (paths only).

    Attributes:
        case_id: unique within a collection, e.g. ``"odoc100/001"``.
        source: held-out group (``"drishti"``, ``"odoc100"``, ``"refuge"``, ``"origa"``, ...).
        image: the photo.
        masks: one joint mask, or ``(disc, cup)`` for the two-mask conventions.
        convention: see the module docstring.
        eye: ``"OD"``, ``"OS"`` or ``"unknown"``.
        expert_vcdr: vertical CDRs given by the dataset's experts (Drishti-GS ``cdrValues.txt``), if any.
    """

    case_id: str
    source: str
    image: Path
    masks: tuple[Path, ...]
    convention: Convention
    eye: str = "unknown"
    expert_vcdr: tuple[float, ...] = field(default=())


def describe_cases(cases: Iterable[DiscCupCase], folder: str) -> str:
    """The training data line of a model card: ``"110 fundus photos with disc/cup masks from data: drishti 50,
    odoc100 60"`` (:func:`sources_in_description` reads it back)."""
    counts: dict[str, int] = {}
    for c in cases:
        counts[c.source] = counts.get(c.source, 0) + 1
    return f"{sum(counts.values())} fundus photos with disc/cup masks from {folder}: " + ", ".join(
        f"{k} {v}" for k, v in sorted(counts.items()))


def sources_in_description(description: str) -> Optional[dict[str, int]]:
    """``{source: photos}`` from a :func:`describe_cases` line; None when the line is not one."""
    head, sep, tail = description.rpartition(": ")
    if not sep or "fundus photos with disc/cup masks" not in head:
        return None
    pairs = [item.rsplit(" ", 1) for item in tail.split(", ")]
    if not all(len(p) == 2 and p[1].isdigit() for p in pairs):
        return None
    return {name: int(n) for name, n in pairs}


def read_rgb(path: Path, reduce: int = 1) -> np.ndarray:
    """Decode a photo as ``(H, W, 3)`` uint8 RGB. ``reduce`` in {1, 2, 4, 8} decodes JPEGs at 1/reduce size."""
    import cv2

    flags = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
             8: cv2.IMREAD_REDUCED_COLOR_8}[reduce]
    data = np.fromfile(str(path), dtype=np.uint8)  # works for non-ASCII paths too
    bgr = cv2.imdecode(data, flags)
    if bgr is None:
        from PIL import Image  # GIF and a few TIFF flavours OpenCV cannot decode

        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
        if reduce > 1:
            rgb = cv2.resize(rgb, (rgb.shape[1] // reduce, rgb.shape[0] // reduce), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(rgb)
    return np.ascontiguousarray(bgr[:, :, ::-1])


def read_gray(path: Path) -> np.ndarray:
    """Decode a mask as ``(H, W)`` uint8 (colour masks are averaged; palette masks keep their indices)."""
    from PIL import Image

    with Image.open(path) as im:
        if im.mode == "P":
            return np.asarray(im).astype(np.uint8)
        if im.mode in ("1", "L", "I", "I;16", "F"):
            a = np.asarray(im)
            if a.dtype == bool:
                return a.astype(np.uint8) * 255
            if a.dtype != np.uint8:
                a = np.clip(a, 0, 255).astype(np.uint8) if a.max() <= 255 else (a / a.max() * 255).astype(np.uint8)
            return a
        return np.asarray(im.convert("L"))


def decode_masks(masks: list[np.ndarray], convention: Convention) -> tuple[np.ndarray, np.ndarray]:
    """Turn raw mask arrays into ``(disc, cup)`` (H, W) bool with ``cup`` inside ``disc``."""
    if convention in ("gamma", "odoc", "label"):
        if len(masks) != 1:
            raise ValueError(f"convention {convention!r} takes one joint mask, got {len(masks)}")
        m = masks[0]
        if convention == "gamma":
            disc, cup = m < 192, m < 64
        elif convention == "odoc":
            disc, cup = m >= 64, m >= 192
        else:
            disc, cup = m >= 1, m >= 2
    elif convention in ("white", "soft"):
        if len(masks) != 2:
            raise ValueError(f"convention {convention!r} takes (disc, cup) masks, got {len(masks)}")
        disc, cup = masks[0] >= 128, masks[1] >= 128
    else:
        raise ValueError(f"unknown mask convention {convention!r}")
    if disc.shape != cup.shape:
        raise ValueError(f"disc and cup masks differ in shape: {disc.shape} vs {cup.shape}")
    return disc | cup, cup


def load_case(case: DiscCupCase) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode ``(image (H, W, 3) uint8, disc (H, W) bool, cup (H, W) bool)``; masks resized to the photo if needed."""
    import cv2

    image = read_rgb(case.image)
    raw = [read_gray(p) for p in case.masks]
    disc, cup = decode_masks(raw, case.convention)
    h, w = image.shape[:2]
    if disc.shape != (h, w):
        if disc.shape == (h, w // 2) or disc.shape[1] * 2 == w:  # RIM-ONE r3 stereo pairs: masks of the left view
            image = np.ascontiguousarray(image[:, : disc.shape[1]])
        else:
            disc = cv2.resize(disc.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
            cup = cv2.resize(cup.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    return image, disc, cup & disc


# --------------------------------------------------------------------------------------------------------------
# The project's shared real samples (../shared/data)


# Images that appear twice in the shared samples (same photo, re-packaged): keep the first, skip the second.
_SHARED_DUPLICATES = {
    "fundus_glaucoma/DRISHTI-GS1-train-23": "drishti_gs1/drishtiGS_044",
    "fundus_glaucoma/DRISHTI-GS1-train-26": "drishti_gs1/drishtiGS_047",
}


def _source_of_smdg(sample: str) -> str:
    name = sample.split("-")[0].lower()
    return {"drishti": "drishti", "refuge1": "refuge"}.get(name, name)


def read_shared_samples(root: Path, include_duplicates: bool = False) -> list[DiscCupCase]:
    """All photos with disc/cup masks in the project's shared data folder (``GV_SAMPLE_DATA``).

    Reads ``fundus_glaucoma/`` (SMDG re-packaging: REFUGE binary, Drishti-GS soft maps, ORIGA/PAPILA/G1020 JPEG;
    eye from ``labels.csv``), ``fundus_disc_cup/drishti_gs1/`` (soft maps, expert CDRs) and
    ``fundus_disc_cup/odoc100/`` (joint masks, 0 background / 128 rim / 255 cup). Two SMDG Drishti-GS training
    images are the same photos as ``drishtiGS_044`` / ``_047`` and are skipped unless ``include_duplicates``.
    """
    root = Path(root)
    cases: list[DiscCupCase] = []
    smdg = root / "fundus_glaucoma"
    if smdg.is_dir():
        eyes: dict[str, str] = {}
        labels = smdg / "labels.csv"
        if labels.is_file():
            with open(labels, newline="", encoding="utf-8") as fh:
                for row in csv.DictReader(fh):
                    eyes[row["sample"]] = row.get("eye") or "unknown"
        for folder in sorted(p for p in smdg.iterdir() if p.is_dir()):
            key = f"fundus_glaucoma/{folder.name}"
            if key in _SHARED_DUPLICATES and not include_duplicates:
                continue
            image = _first(folder, ("fundus",))
            disc = _first(folder, ("fundus_od", "od"))
            cup = _first(folder, ("fundus_oc", "oc"))
            if image is None or disc is None or cup is None:
                continue
            convention: Convention = "soft" if folder.name.upper().startswith("DRISHTI") else "white"
            eye = eyes.get(folder.name, "unknown")
            cases.append(DiscCupCase(key, _source_of_smdg(folder.name), image, (disc, cup), convention,
                                     eye if eye in ("OD", "OS") else "unknown"))
    drishti = root / "fundus_disc_cup" / "drishti_gs1"
    if drishti.is_dir():
        for folder in sorted(p for p in drishti.iterdir() if p.is_dir()):
            case = _drishti_case(folder, folder.name, image=_first(folder, ("fundus", folder.name)))
            if case is not None:
                cases.append(dataclasses.replace(case, case_id=f"drishti_gs1/{folder.name}"))
    odoc = root / "fundus_disc_cup" / "odoc100"
    if odoc.is_dir():
        for folder in sorted(p for p in odoc.iterdir() if p.is_dir()):
            image, mask = _first(folder, ("fundus",)), _first(folder, ("mask",))
            if image is not None and mask is not None:
                cases.append(DiscCupCase(f"odoc100/{folder.name}", "odoc100", image, (mask,), "odoc"))
    return cases


def _first(folder: Path, stems: Iterable[str]) -> Optional[Path]:
    """The first file in ``folder`` whose stem is one of ``stems`` (case-insensitive) with an image suffix."""
    files = {p.stem.lower(): p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
    for stem in stems:
        if stem.lower() in files:
            return files[stem.lower()]
    return None


def _drishti_case(gt_folder: Path, case_id: str, image: Optional[Path]) -> Optional[DiscCupCase]:
    """A Drishti-GS case from its GT folder (soft maps directly inside it or in ``SoftMap/``)."""
    if image is None:
        return None
    soft = gt_folder / "SoftMap" if (gt_folder / "SoftMap").is_dir() else gt_folder
    disc = next(iter(sorted(soft.glob("*ODsegSoftmap.*"))), None)
    cup = next(iter(sorted(soft.glob("*cupsegSoftmap.*"))), None)
    if disc is None or cup is None:
        return None
    cdrs: tuple[float, ...] = ()
    cdr_file = next(iter(sorted(gt_folder.glob("*cdrValues.txt"))), None)
    if cdr_file is not None:
        values = re.findall(r"[-+]?\d*\.\d+|\d+", cdr_file.read_text(encoding="utf-8", errors="replace"))
        cdrs = tuple(float(v) for v in values if 0.0 < float(v) < 1.0)
    return DiscCupCase(case_id, "drishti", image, (disc, cup), "soft", "unknown", cdrs)


# --------------------------------------------------------------------------------------------------------------
# Published layouts


def _images_by_stem(root: Path, exclude: Iterable[Path] = ()) -> dict[str, Path]:
    excluded = {p.resolve() for p in exclude}
    out: dict[str, Path] = {}
    for p in sorted(root.rglob("*")):
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and p.resolve() not in excluded:
            out.setdefault(p.stem.lower(), p)
    return out


def read_joint_mask_layout(root: Path, source: str, convention: Convention = "gamma") -> list[DiscCupCase]:
    """GAMMA / REFUGE style: a folder named like ``Disc_Cup_Mask(s)`` (any depth) holds one joint mask per
    photo, named after it (``.bmp`` / ``.png``), 0 cup / 128 rim / 255 background; photos anywhere else in the
    tree, matched by file stem.

    GAMMA: ``.../Disc_Cup_Mask/0001.png`` + ``.../0001/0001.jpg`` (or ``fundus color images/0001.jpg``).
    REFUGE: ``Annotation-Training400/Disc_Cup_Masks/Glaucoma/g0001.bmp`` + ``Training400/Glaucoma/g0001.jpg``;
    ``REFUGE-Validation400-GT/Disc_Cup_Masks/V0001.bmp`` + ``REFUGE-Validation400/V0001.jpg``.
    """
    mask_dirs = [d for d in root.rglob("*") if d.is_dir() and re.search(r"disc.?cup.?mask", d.name, re.I)]
    masks = [p for d in mask_dirs for p in sorted(d.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES]
    images = _images_by_stem(root, exclude=masks)
    cases = []
    for m in masks:
        image = images.get(m.stem.lower())
        if image is not None:
            cases.append(DiscCupCase(f"{source}/{m.stem}", source, image, (m,), convention))
    return cases


def read_drishti_layout(root: Path) -> list[DiscCupCase]:
    """Drishti-GS1: ``Training/Images/drishtiGS_002.png`` + ``Training/GT/drishtiGS_002/SoftMap/*Softmap.png``
    (and the same under ``Test/`` when its ground truth is present)."""
    images = _images_by_stem(root)
    cases = []
    for soft in sorted(root.rglob("*ODsegSoftmap.*")):
        case_id = soft.name.split("_ODsegSoftmap")[0]
        gt_folder = soft.parent.parent if soft.parent.name.lower() == "softmap" else soft.parent
        case = _drishti_case(gt_folder, f"drishti/{case_id}", images.get(case_id.lower()))
        if case is not None:
            cases.append(case)
    return cases


def read_named_masks_layout(root: Path, source: str) -> list[DiscCupCase]:
    """Disc and cup masks as separate white-on-black files named after the photo, anywhere in the tree.

    Covers RIM-ONE r1/r2/r3 (``Im001-exp1-Disc*.bmp``, ``N-1-L-Disc-Avg.png`` / ``-Cup-Avg.png``), ORIGA/PAPILA
    re-packagings (``<id>_disc.png``, ``<id>_cup.png``, ``od``/``oc`` suffixes) and similar. A mask is a file
    whose name is ``<photo stem>`` + separator + ``disc|od|optic_disc`` or ``cup|oc|optic_cup`` (plus any
    suffix such as ``-Avg`` or ``-exp1``). RIM-ONE r3 stereo photos whose masks cover the left view are
    cropped to it on load.
    """
    files = [p for p in sorted(root.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    pattern = re.compile(r"^(?P<stem>.+?)[-_ ](?:exp\d+[-_ ])?(?P<kind>disc|od|optic[-_ ]?disc|cup|oc|optic[-_ ]?cup)"
                         r"(?:[-_ ].*)?$", re.I)
    discs: dict[str, Path] = {}
    cups: dict[str, Path] = {}
    for p in files:
        m = pattern.match(p.stem)
        if not m:
            continue
        kind = m.group("kind").lower()
        (cups if "c" in kind else discs).setdefault(m.group("stem").lower(), p)
    mask_set = set(discs.values()) | set(cups.values())
    images = {p.stem.lower(): p for p in files if p not in mask_set}
    cases = []
    for stem, disc in discs.items():
        cup, image = cups.get(stem), images.get(stem)
        if cup is not None and image is not None:
            cases.append(DiscCupCase(f"{source}/{image.stem}", source, image, (disc, cup), "white"))
    return cases


def read_origa_layout(root: Path) -> list[DiscCupCase]:
    """ORIGA as commonly distributed: ``Images/<id>.jpg`` + ``Masks/<id>.png`` with class indices
    0 background / 1 disc / 2 cup (or a 0/128/255 GAMMA-style joint mask, detected from the values)."""
    mask_dir = next((d for d in root.rglob("*") if d.is_dir() and d.name.lower() in ("masks", "mask", "gt")), None)
    if mask_dir is None:
        return []
    masks = [p for p in sorted(mask_dir.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    images = _images_by_stem(root, exclude=masks)
    cases = []
    for m in masks:
        image = images.get(m.stem.lower())
        if image is None:
            continue
        convention: Convention = "label" if int(read_gray(m).max()) <= 2 else "gamma"
        cases.append(DiscCupCase(f"origa/{m.stem}", "origa", image, (m,), convention))
    return cases


LAYOUTS = ("shared", "gamma", "refuge", "drishti", "origa", "rim-one", "named")


def discover(root: Path, layout: str = "auto", source: Optional[str] = None) -> list[DiscCupCase]:
    """Find every disc/cup case under ``root``.

    Args:
        root: a dataset folder.
        layout: one of :data:`LAYOUTS` or ``"auto"`` (the shared samples when ``fundus_disc_cup`` or
            ``fundus_glaucoma`` is inside, else the first layout that finds cases).
        source: group name for held-out folds (default: from the layout or folder name).

    Raises:
        DatasetLayoutError: nothing matched; the message lists what each layout expects.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetLayoutError(f"{root}: not a folder")
    name = source or root.name.lower()
    readers = {
        "shared": lambda: read_shared_samples(root),
        "gamma": lambda: read_joint_mask_layout(root, source or "gamma"),
        "refuge": lambda: read_joint_mask_layout(root, source or "refuge"),
        "drishti": lambda: read_drishti_layout(root),
        "origa": lambda: read_origa_layout(root),
        "rim-one": lambda: read_named_masks_layout(root, source or "rim-one"),
        "named": lambda: read_named_masks_layout(root, name),
    }
    if layout != "auto":
        if layout not in readers:
            raise DatasetLayoutError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
        found = readers[layout]()
    elif (root / "fundus_disc_cup").is_dir() or (root / "fundus_glaucoma").is_dir():
        found = readers["shared"]()
    else:
        found = []
        guess = "refuge" if "refuge" in name else "gamma"
        for key in (guess, "drishti", "origa", "named"):
            found = readers[key]()
            if found:
                break
    if not found:
        raise DatasetLayoutError(
            f"{root}: no photo with disc/cup masks found (layout {layout}). Expected one of: "
            "GAMMA/REFUGE: a 'Disc_Cup_Mask(s)' folder of 0/128/255 masks named after the photos; "
            "Drishti-GS: 'GT/<id>/SoftMap/<id>_ODsegSoftmap.png' + 'Images/<id>.png'; "
            "ORIGA: 'Images/<id>.jpg' + 'Masks/<id>.png' (0/1/2); "
            "RIM-ONE and others: '<stem>-Disc*.png' / '<stem>-Cup*.png' beside '<stem>.jpg'; "
            "the project's shared samples: 'fundus_glaucoma/' and/or 'fundus_disc_cup/'."
        )
    return found


def source_folds(cases: list[DiscCupCase], groups: Optional[list[list[str]]] = None) -> list[tuple[list[int], list[int]]]:
    """Leave-source-out folds: ``[(train_indices, test_indices), ...]``, one per source group.

    ``groups`` lists which sources are held out together (default: each source alone).
    """
    if groups is None:
        groups = [[s] for s in sorted({c.source for c in cases})]
    folds = []
    for group in groups:
        test = [i for i, c in enumerate(cases) if c.source in group]
        train = [i for i, c in enumerate(cases) if c.source not in group]
        if test and train:
            folds.append((train, test))
    return folds
