"""GAMMA challenge layouts (glaucoma grading from fundus + OCT; disc/cup segmentation).

Accepted layouts, found from the folder passed as ``--data``:

1. GAMMA training set (multi-modality)::

       training/
         glaucoma_grading_training_GT.xlsx   (or .csv) columns data, non, early, mid_advanced (one-hot)
         multi-modality_images/<ID>/<ID>.jpg           fundus photo
         multi-modality_images/<ID>/<ID>/<k>_image.jpg  the OCT volume, k = 0..255 (B-scans in order)
         Disc_Cup_Mask/<ID>.png                        optional: 0 cup, 128 disc rim, 255 background

2. Fundus-only: ``glaucoma_grading_training_GT.csv`` beside ``images/<ID>.jpg`` (the shared sample
   ``gamma_fundus_grading/``).
3. A test folder without the GT table (``multi-modality_images/<ID>/...`` or ``<ID>/<ID>.jpg`` or ``images/``):
   items have ``label = -1``; ``evaluate`` writes a submission CSV for it.

``<ID>`` is the zero-padded 4-digit case id (``0001``); the table may hold ``1`` (Excel drops the zeros).
Items: ``{"id", "fundus": path, "oct": [B-scan paths in order] or [], "mask": path or None, "label": int}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Union

from engine.train.datasets.common import IMAGE_SUFFIXES, LayoutError, find_file, image_files, natural_key, read_table

CLASSES = ("non", "early", "mid_advanced")
GT_STEM = "glaucoma_grading_training_GT"
GT_NAMES = (f"{GT_STEM}.csv", f"{GT_STEM}.xlsx", f"../{GT_STEM}.csv", f"../{GT_STEM}.xlsx")
IMAGE_FOLDERS = ("multi-modality_images", "Multi-modality_images", "images")
MASK_FOLDERS = ("Disc_Cup_Mask", "Disc_Cup_Masks", "disc_cup_masks", "Disc_Cup_Mask/Disc_Cup_Mask")
EXPECTED = (
    f"{GT_STEM}.csv/.xlsx (columns data,non,early,mid_advanced) beside multi-modality_images/<ID>/<ID>.jpg "
    "(+ <ID>/<ID>/<k>_image.jpg OCT B-scans) or images/<ID>.jpg"
)


def find_gt(root: Path) -> Optional[Path]:
    """The GAMMA grading table in ``root`` (or its parent), csv preferred; None when absent."""
    return find_file(root, GT_NAMES)


def read_grades(path: Path) -> dict[str, int]:
    """``{case id (4 digits): class index}`` from the one-hot GT table.

    Raises:
        LayoutError: missing columns, a row that is not one-hot.
    """
    rows = read_table(path)
    header = {k.lower(): k for k in rows[0]}
    missing = [c for c in ("data", *CLASSES) if c not in header]
    if missing:
        raise LayoutError(path, f"label table lacks column(s) {', '.join(missing)} (has {', '.join(rows[0])})",
                          "columns data,non,early,mid_advanced")
    grades: dict[str, int] = {}
    for line, row in enumerate(rows, start=2):
        case = row[header["data"]].strip()
        if not case:
            continue
        try:
            onehot = [int(float(row[header[c]] or 0)) for c in CLASSES]
        except ValueError:
            raise LayoutError(path, f"row {line} ({case}): grade columns are not 0/1 numbers") from None
        if sorted(onehot) != [0, 0, 1]:
            raise LayoutError(path, f"row {line} ({case}): expected exactly one 1 in non,early,mid_advanced, got {onehot}")
        grades[normalise_id(case)] = onehot.index(1)
    return grades


def normalise_id(case: str) -> str:
    """``"1"`` / ``"1.0"`` / ``"0001"`` -> ``"0001"``; other ids unchanged."""
    text = case.strip()
    if text.endswith(".0") and text[:-2].isdigit():
        text = text[:-2]
    return text.zfill(4) if text.isdigit() else text


def _image_root(root: Path) -> tuple[Optional[Path], str]:
    """(folder holding the cases, "multi" | "flat")."""
    for name in IMAGE_FOLDERS:
        folder = root / name
        if folder.is_dir():
            return folder, "flat" if name == "images" else "multi"
    # ``root`` may itself be multi-modality_images (or a test folder of <ID>/<ID>.jpg)
    if any((d / f"{d.name}.jpg").is_file() or (d / f"{d.name}.png").is_file() for d in root.iterdir() if d.is_dir()):
        return root, "multi"
    if image_files(root):
        return root, "flat"
    return None, ""


def _oct_slices(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return [str(p) for p in sorted(image_files(folder), key=lambda p: natural_key(p.stem))]


def _fundus_in(case_dir: Path, case: str) -> Optional[Path]:
    for suffix in IMAGE_SUFFIXES:
        candidate = case_dir / f"{case}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def read_gamma(root: Union[str, Path], *, require_labels: bool = False, require_oct: bool = False) -> list[dict[str, Any]]:
    """Every case of a GAMMA folder (any layout above), sorted by id.

    Raises:
        LayoutError: the folder does not exist / holds no cases; a labelled case has no fundus photo (or no
            OCT when ``require_oct``); the table is missing when ``require_labels``.
    """
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(root, "folder not found", EXPECTED)
    gt = find_gt(root)
    if gt is None and require_labels:
        raise LayoutError(root, f"no {GT_STEM}.csv or .xlsx here or in the parent folder", EXPECTED)
    grades = read_grades(gt) if gt is not None else {}
    images, kind = _image_root(root)
    if images is None:
        raise LayoutError(root, "no multi-modality_images/ or images/ folder and no case images", EXPECTED)
    mask_dir = next((root / m for m in MASK_FOLDERS if (root / m).is_dir()), None)

    found: dict[str, dict[str, Any]] = {}
    if kind == "multi":
        for case_dir in sorted(d for d in images.iterdir() if d.is_dir()):
            fundus = _fundus_in(case_dir, case_dir.name)
            if fundus is None:
                continue
            found[normalise_id(case_dir.name)] = {"fundus": str(fundus), "oct": _oct_slices(case_dir / case_dir.name)}
    else:
        for path in image_files(images):
            found[normalise_id(path.stem)] = {"fundus": str(path), "oct": []}

    ids = sorted(grades) if grades else sorted(found)
    items = []
    for case in ids:
        entry = found.get(case)
        if entry is None:
            where = f"{images.name}/{case}/{case}.jpg" if kind == "multi" else f"{images.name}/{case}.jpg"
            raise LayoutError(root, f"case {case} is in {gt.name if gt else 'the table'} but {where} is missing",
                              EXPECTED)
        if require_oct and not entry["oct"]:
            raise LayoutError(root, f"case {case} has no OCT B-scans ({images.name}/{case}/{case}/<k>_image.jpg)",
                              EXPECTED)
        mask = None
        if mask_dir is not None:
            m = _fundus_in(mask_dir, case) or find_file(mask_dir, [f"{case}.png", f"{case}.bmp"])
            mask = str(m) if m else None
        items.append({"id": case, "fundus": entry["fundus"], "oct": entry["oct"], "mask": mask,
                      "label": grades.get(case, -1)})
    if not items:
        raise LayoutError(root, "no GAMMA cases found", EXPECTED)
    return items
