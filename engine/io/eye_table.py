"""A cohort's eyes as a table: ``exam,eye`` rows, for ``grade --eyes`` and ``segment --eyes``.

A research cohort usually keeps which eye each exam shows in a spreadsheet rather than in its file names; a flat
folder of photos (``images/0001.jpg ...``) cannot say it with an ``exam.json`` either, which applies to the whole
folder. The table's eye wins over names, sidecars and the disc's side of the photo.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterable, Optional

from engine.io.exam import Eye

_WORDS: dict[str, Eye] = {"od": "OD", "right": "OD", "r": "OD", "re": "OD",
                          "os": "OS", "left": "OS", "l": "OS", "le": "OS"}


def read_eye_table(path: Path) -> dict[str, Eye]:
    """``exam,eye`` rows (the exam id as ``grade`` / ``segment`` name it; the eye ``OD`` / ``OS``, or ``right`` /
    ``left``, ``R`` / ``L``, any case) -> ``{exam id: "OD" | "OS"}``.

    Raises:
        ValueError: unreadable file, other columns, a repeated exam or an eye it cannot read (one line).
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            if [c.strip().lower() for c in reader.fieldnames or ()] != ["exam", "eye"]:
                raise ValueError(f"{path}: the columns must be exam,eye (got {','.join(reader.fieldnames or ())})")
            out: dict[str, Eye] = {}
            for n, row in enumerate(reader, start=2):
                values = list(row.values())
                exam, said = (str(v or "").strip() for v in values[:2])
                eye = _WORDS.get(said.lower())
                if not exam or eye is None:
                    raise ValueError(f"{path}, line {n}: needs an exam id and an eye OD or OS (got {said!r})")
                if exam in out:
                    raise ValueError(f"{path}, line {n}: exam {exam} is listed twice")
                out[exam] = eye
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ValueError(f"cannot read {path}: {err}") from None
    return out


def left_alone_note(table: object, named: Iterable[str], found: Iterable[str], among: str) -> Optional[str]:
    """The note for the exams a per-exam table (eyes, disc positions) names that are not among ``found`` (the exam
    ids of the run, ``among`` says what they are): ``"2 exam(s) of T not among the photos (left alone): a, b"``,
    at most five named; None when every one is found."""
    unknown = sorted(set(named) - set(found))
    if not unknown:
        return None
    return (f"{len(unknown)} exam(s) of {table} not among {among} (left alone): " + ", ".join(unknown[:5])
            + (" ..." if len(unknown) > 5 else ""))
