"""ODIR-5K (Ocular Disease Intelligent Recognition): 8 labels per patient, one photo per eye.

Accepted layouts (``--data`` is the folder):

1. The challenge release: a labels table ``ODIR-5K_Training_Annotations(Updated)_V2.xlsx`` (or any .xlsx / .csv
   with the columns below) and the photos in ``ODIR-5K_Training_Dataset/`` (or ``Training Images/``,
   ``images/``, ``preprocessed_images/`` or the folder itself). Columns: ``ID``, ``Left-Fundus``,
   ``Right-Fundus`` and the labels ``N D G C A H M O`` (0/1, per patient).
2. The Kaggle re-packaging ``full_df.csv`` (one row per photo): ``filename`` plus ``N D G C A H M O``.

Labels are per patient in the release, so each eye's photo gets its patient's labels (the usual per-eye
training) and the patient id is the group: the two eyes of a patient never straddle folds.
Items: ``{"id": "0_left", "image": path, "labels": [8 ints], "patient": "0", "eye": "OS"}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Union

from engine.train.datasets.common import LayoutError, image_files, read_table

LABELS = ("N", "D", "G", "C", "A", "H", "M", "O")
LABEL_NAMES = {
    "N": "normal", "D": "diabetes", "G": "glaucoma", "C": "cataract", "A": "AMD", "H": "hypertension",
    "M": "myopia", "O": "other",
}
IMAGE_FOLDERS = ("ODIR-5K_Training_Dataset", "Training Images", "training images", "preprocessed_images", "images",
                 "ODIR-5K/Training Images")
EXPECTED = (
    "an .xlsx/.csv labels table with ID, Left-Fundus, Right-Fundus, N,D,G,C,A,H,M,O (or full_df.csv with "
    "filename and N..O) beside the photos in ODIR-5K_Training_Dataset/ (or Training Images/, images/)"
)


def _find_table(root: Path) -> Path:
    candidates = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in (".xlsx", ".csv"))
    # prefer the official annotation file, then full_df.csv, then any table with the label columns
    candidates.sort(key=lambda p: (0 if "annotation" in p.name.lower() else 1 if p.name == "full_df.csv" else 2, p.name))
    for path in candidates:
        try:
            rows = read_table(path)
        except LayoutError:
            continue
        if all(label in rows[0] for label in LABELS):
            return path
    raise LayoutError(root, "no labels table with the columns N,D,G,C,A,H,M,O", EXPECTED)


def _image_index(root: Path) -> dict[str, Path]:
    folders = [root / name for name in IMAGE_FOLDERS if (root / name).is_dir()] + [root]
    index: dict[str, Path] = {}
    for folder in folders:
        for path in image_files(folder):
            index.setdefault(path.name, path)
            index.setdefault(path.name.lower(), path)
    return index


def read_odir(root: Union[str, Path]) -> list[dict[str, Any]]:
    """Every labelled photo of an ODIR-5K folder.

    Raises:
        LayoutError: no labels table, a table row naming a photo that is not there, a label that is not 0/1.
    """
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(root, "folder not found", EXPECTED)
    table = _find_table(root)
    rows = read_table(table)
    index = _image_index(root)
    if not index:
        raise LayoutError(root, "no photos found", EXPECTED)
    per_patient = "Left-Fundus" in rows[0] and "Right-Fundus" in rows[0]
    if not per_patient and "filename" not in rows[0]:
        raise LayoutError(table, "neither Left-Fundus/Right-Fundus nor filename columns", EXPECTED)
    items: list[dict[str, Any]] = []
    seen: set[str] = set()
    for line, row in enumerate(rows, start=2):
        try:
            labels = [int(float(row[label] or 0)) for label in LABELS]
        except ValueError:
            raise LayoutError(table, f"row {line}: labels N..O must be 0/1") from None
        if any(v not in (0, 1) for v in labels):
            raise LayoutError(table, f"row {line}: labels N..O must be 0/1, got {labels}")
        patient = str(row.get("ID", "")).strip()
        photos = (
            [("OS", row["Left-Fundus"]), ("OD", row["Right-Fundus"])] if per_patient else [("unknown", row["filename"])]
        )
        for eye, name in photos:
            name = name.strip()
            if not name or name in seen:
                continue
            path = index.get(name) or index.get(name.lower())
            if path is None:
                raise LayoutError(root, f"{table.name} row {line} names {name}, which is not in the photo folders",
                                  EXPECTED)
            seen.add(name)
            stem = Path(name).stem
            pid = patient or stem.split("_")[0]
            if eye == "unknown":
                low = stem.lower()
                eye = "OS" if low.endswith("left") else "OD" if low.endswith("right") else "unknown"
            items.append({"id": stem, "image": str(path), "labels": labels, "patient": pid, "eye": eye})
    if not items:
        raise LayoutError(root, "the labels table lists no photos", EXPECTED)
    return items


def stratification_label(labels: list[int]) -> int:
    """One class index per multi-label sample for stratified folds: its rarest-in-ODIR positive label
    (G, A, H, M before D, C, O before N), so rare diseases spread over the folds."""
    priority = ("H", "A", "M", "G", "C", "D", "O", "N")
    for letter in priority:
        if labels[LABELS.index(letter)]:
            return LABELS.index(letter)
    return LABELS.index("N")
