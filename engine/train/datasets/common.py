"""What every training-set reader shares: the layout error, label tables (CSV / XLSX), image decoding.

Readers return plain item dicts (paths, id, labels; nothing decoded) so that splitting is instant; the MONAI
pipelines in :mod:`engine.train.datasets.transforms` decode and cache them. Nothing heavy is imported here.
"""

from __future__ import annotations

import csv
import re
import zipfile
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence, Union
from xml.etree import ElementTree

import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")
DEFAULT_MEAN = (0.5, 0.5, 0.5)
DEFAULT_STD = (0.25, 0.25, 0.25)


class LayoutError(ValueError):
    """A dataset folder does not match its published layout. ``str()`` names what is missing and what was
    expected, e.g. ``"/data/gamma: no glaucoma_grading_training_GT.csv or .xlsx; expected ..."``."""

    def __init__(self, root: Union[str, Path], problem: str, expected: str = "") -> None:
        self.root = str(root)
        self.problem = problem
        self.expected = expected
        text = f"{root}: {problem}"
        if expected:
            text += f"; expected {expected}"
        super().__init__(text)


# ---------------------------------------------------------------------------------------------- tables
_XLSX_NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}


def _xlsx_rows(path: Path) -> list[list[str]]:
    """Cell text of the first worksheet of an .xlsx (no openpyxl needed: the file is zipped XML)."""
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        shared: list[str] = []
        if "xl/sharedStrings.xml" in names:
            root = ElementTree.fromstring(zf.read("xl/sharedStrings.xml"))
            for si in root.findall("m:si", _XLSX_NS):
                shared.append("".join(t.text or "" for t in si.iter(f"{{{_XLSX_NS['m']}}}t")))
        sheets = sorted(n for n in names if re.fullmatch(r"xl/worksheets/sheet\d+\.xml", n))
        if not sheets:
            raise ValueError("no worksheet")
        root = ElementTree.fromstring(zf.read(sheets[0]))
    rows: list[list[str]] = []
    for row in root.iter(f"{{{_XLSX_NS['m']}}}row"):
        cells: dict[int, str] = {}
        for cell in row.findall("m:c", _XLSX_NS):
            ref = cell.get("r", "")
            letters = re.match(r"[A-Z]+", ref)
            col = 0
            for ch in letters.group(0) if letters else "":
                col = col * 26 + (ord(ch) - 64)
            col = col - 1 if letters else len(cells)
            kind = cell.get("t")
            value = cell.find("m:v", _XLSX_NS)
            if kind == "s" and value is not None:
                text = shared[int(value.text or 0)]
            elif kind == "inlineStr":
                text = "".join(t.text or "" for t in cell.iter(f"{{{_XLSX_NS['m']}}}t"))
            else:
                text = value.text if value is not None and value.text is not None else ""
                if re.fullmatch(r"-?\d+\.0", text):
                    text = text[:-2]
            cells[col] = text
        if cells:
            rows.append([cells.get(i, "") for i in range(max(cells) + 1)])
    return rows


def read_table(path: Union[str, Path]) -> list[dict[str, str]]:
    """Rows of a CSV (comma / semicolon / tab, UTF-8 with or without BOM) or XLSX label table as dicts keyed
    by the (stripped) header. Raises LayoutError for an unreadable or empty file."""
    path = Path(path)
    try:
        if path.suffix.lower() in (".xlsx", ".xlsm"):
            rows = _xlsx_rows(path)
        else:
            text = path.read_text(encoding="utf-8-sig")
            try:
                dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
            except csv.Error:
                dialect = csv.excel
            rows = [row for row in csv.reader(text.splitlines(), dialect) if any(c.strip() for c in row)]
    except (OSError, ValueError, zipfile.BadZipFile, ElementTree.ParseError, UnicodeDecodeError) as err:
        raise LayoutError(path, f"cannot read the label table ({err})") from None
    if len(rows) < 2:
        raise LayoutError(path, "the label table has no data rows")
    header = [h.strip() for h in rows[0]]
    return [{header[i]: (row[i].strip() if i < len(row) else "") for i in range(len(header))} for row in rows[1:]]


def find_file(root: Path, names: Iterable[str]) -> Optional[Path]:
    """The first of ``names`` (relative paths) that exists under ``root``, case-insensitively for the last part."""
    for name in names:
        candidate = root / name
        if candidate.is_file():
            return candidate
        parent = candidate.parent
        if parent.is_dir():
            low = candidate.name.lower()
            for child in parent.iterdir():
                if child.name.lower() == low and child.is_file():
                    return child
    return None


def image_files(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` (sorted by name; hidden files skipped)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                  and not p.name.startswith("."))


def natural_key(text: str) -> list[Any]:
    """``"10_image"`` sorts after ``"9_image"``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


# ---------------------------------------------------------------------------------------------- decoding
def read_rgb(path: Union[str, Path]) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB from any image file OpenCV reads (grey images are repeated to 3 channels)."""
    import cv2

    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise LayoutError(path, "not a readable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_grey(path: Union[str, Path]) -> np.ndarray:
    """``(H, W)`` uint8 from an image file (colour images converted to grey)."""
    import cv2

    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if data.size else None
    if image is None:
        raise LayoutError(path, "not a readable image")
    return image


def size_pair(size: Union[int, Sequence[int]]) -> tuple[int, int]:
    """``256`` -> ``(256, 256)``; ``[h, w]`` -> ``(h, w)``."""
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    values = [int(v) for v in size]
    if len(values) != 2:
        raise ValueError(f"a 2D input size is one number or [h, w], got {size}")
    return values[0], values[1]
