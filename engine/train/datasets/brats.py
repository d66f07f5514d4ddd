"""BraTS-style NIfTI folders (brain MRI glioma: one folder per patient, one file per sequence).

Accepted layouts (``--data`` is the folder):

- BraTS 2018-2021: ``<case>/<case>_flair.nii.gz``, ``_t1``, ``_t1ce``, ``_t2``, ``_seg`` (any subset); the grade
  from ``HGG/`` and ``LGG/`` parent folders (2018/2019) or a ``name_mapping.csv`` with ``Grade`` and
  ``BraTS_20xx_subject_ID`` columns (2020).
- BraTS 2013 / SMIR: ``<case>/Flair*.nii.gz``, ``T1c*``, ``T1*``, ``T2*``, ``OTMultiClass*`` /  ``*OT*`` (the
  shared sample ``brain_mri_brats/``).

Sequences are recognised from the file name (case-insensitive): flair, t1ce (t1c, t1gd, t1_ce), t1, t2,
seg (segmentation, OT, label). Items: ``{"id", "flair", "t1ce", "t1", "t2", "seg": path or None,
"grade": "HGG" | "LGG" | None, "label": 0 (HGG) | 1 (LGG) | -1}``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Optional, Union

from engine.train.datasets.common import LayoutError, read_table

SEQUENCES = ("flair", "t1ce", "t1", "t2")
GRADES = ("HGG", "LGG")
EXPECTED = (
    "one folder per case holding NIfTI files named by sequence (<case>_flair.nii.gz, _t1ce, _t1, _t2, _seg), "
    "optionally under HGG/ and LGG/ folders or with a name_mapping.csv (Grade column)"
)
_PATTERNS = (
    ("seg", re.compile(r"(^|[_\-.])(seg|ot|otmulticlass|label|labels)([_\-.]|$)|otmulticlass", re.I)),
    ("flair", re.compile(r"flair", re.I)),
    ("t1ce", re.compile(r"t1[_\-]?(ce|c|gd|post)", re.I)),
    ("t2", re.compile(r"t2", re.I)),
    ("t1", re.compile(r"t1", re.I)),
)


def sequence_of(name: str) -> Optional[str]:
    """``"BraTS20_Training_001_t1ce.nii.gz"`` -> ``"t1ce"``; None for files that are no sequence."""
    stem = name.lower().replace(".nii.gz", "").replace(".nii", "")
    for key, pattern in _PATTERNS:
        if pattern.search(stem):
            return key
    return None


def _case_folders(root: Path) -> list[tuple[Path, Optional[str]]]:
    def has_nifti(folder: Path) -> bool:
        return any(p.name.lower().endswith((".nii", ".nii.gz")) for p in folder.iterdir() if p.is_file())

    out: list[tuple[Path, Optional[str]]] = []
    for child in sorted(root.iterdir()):
        if not child.is_dir() or child.name.startswith("."):
            continue
        if child.name.upper() in GRADES:
            out += [(d, child.name.upper()) for d in sorted(child.iterdir()) if d.is_dir() and has_nifti(d)]
        elif has_nifti(child):
            out.append((child, None))
    return out


def _mapping(root: Path) -> dict[str, str]:
    table = next((p for p in (root / "name_mapping.csv", root.parent / "name_mapping.csv") if p.is_file()), None)
    if table is None:
        return {}
    grades: dict[str, str] = {}
    for row in read_table(table):
        grade = row.get("Grade", "").strip().upper()
        for key, value in row.items():
            if key.startswith("BraTS") and value.strip() and grade in GRADES:
                grades[value.strip()] = grade
    return grades


def read_brats(root: Union[str, Path], *, require: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Every case folder under ``root``; ``require`` lists sequences every case must have (e.g. ``("flair",)``).

    Raises:
        LayoutError: no case folders, a case lacking a required sequence (the message names the case).
    """
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(root, "folder not found", EXPECTED)
    cases = _case_folders(root)
    if not cases:
        raise LayoutError(root, "no case folders with .nii/.nii.gz files", EXPECTED)
    mapping = _mapping(root)
    items = []
    for folder, grade in cases:
        files: dict[str, Optional[str]] = {key: None for key in (*SEQUENCES, "seg")}
        for path in sorted(folder.iterdir()):
            if path.is_file() and path.name.lower().endswith((".nii", ".nii.gz")):
                key = sequence_of(path.name)
                if key is not None and files[key] is None:
                    files[key] = str(path)
        missing = [s for s in require if not files.get(s)]
        if missing:
            raise LayoutError(folder, f"no {', '.join(missing)} file in this case", EXPECTED)
        grade = grade or mapping.get(folder.name)
        items.append({"id": folder.name, **files, "grade": grade,
                      "label": GRADES.index(grade) if grade in GRADES else -1})
    return items
