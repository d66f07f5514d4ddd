"""Discs placed, outlines drawn and eyes set by hand, kept in a file: remembered by the viewer between sessions
and read by its batch export, ``engine grade --disc-corrections`` and ``engine segment --disc-corrections``.

Keyed by :func:`photo_sha256` (the photo's pixels and shape), so a correction follows the photo wherever its folder
is opened from and never lands on another photo; the file holds no names, ids or paths. The viewer keeps it beside
its settings (``disc_corrections.json``) and writes it atomically on a worker thread after every change (a
thousand corrected photos make a 2 MB file: about 0.14 s to write, too long for the UI thread).
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import numpy as np

FILE_NAME = "disc_corrections.json"
VERSION = 1
_WRITING = threading.Lock()
"""One :meth:`CorrectionStore.write` at a time, so the one that starts last (with the newest records) ends last."""


class CorrectionsFileError(ValueError):
    """A corrections file that is not there or cannot be read (one line)."""


def read_corrections(path: Path) -> "CorrectionStore":
    """The corrections file at ``path``, for a command or an import that needs it.

    Raises:
        CorrectionsFileError: there is no such file, or it cannot be read.
    """
    if not Path(path).is_file():
        raise CorrectionsFileError(f"{path}: no such file")
    store = CorrectionStore(path)
    if store.problem:
        raise CorrectionsFileError(store.problem)
    return store


def photo_sha256(image: np.ndarray) -> str:
    """SHA-256 (hex) of a (H, W, 3) uint8 photo's shape and pixels, as decoded by ``engine.io`` (20 ms for 12 MP)."""
    image = np.ascontiguousarray(image)
    digest = hashlib.sha256(str(image.shape).encode())
    digest.update(image.data)
    return digest.hexdigest()


class CorrectionStore:
    """``photo SHA-256 -> (disc_at, outlines)``: the disc's (row, col) px placed by hand or None, and the
    :class:`engine.fundus.hand_outline.HandOutlines` drawn, or None (:meth:`get`); and the eye set by hand for the
    photo (:meth:`eye`), kept in the same record.

    Attributes:
        path: the JSON file.
        problem: why the file could not be read ("" when it could, or when there is none yet); it is then
            started afresh on the next change.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.problem = ""
        self._photos: dict[str, dict[str, Any]] = {}
        if not self.path.exists():
            return
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if data.get("version") != VERSION or not isinstance(data.get("photos"), dict):
                raise ValueError(f"not a version-{VERSION} corrections file")
            self._photos = {str(k): dict(v) for k, v in data["photos"].items()}
        except (OSError, ValueError, TypeError, AttributeError) as err:
            self.problem = f"{self.path.name} could not be read ({err})"

    def __len__(self) -> int:
        return len(self._photos)

    def snapshot(self) -> "CorrectionStore":
        """A copy to read on another thread or process while this one goes on changing."""
        return copy.deepcopy(self)

    def get(self, photo_sha256: str) -> tuple[Optional[tuple[float, float]], Any]:
        """The placement and outlines remembered for the photo (None, None when nothing is, or a record is bad)."""
        from engine.fundus.hand_outline import HandOutlines, OutlineError

        record = self._photos.get(photo_sha256)
        if not photo_sha256 or record is None:
            return None, None
        try:
            at = record.get("disc_at")
            disc_at = None if at is None else (float(at[0]), float(at[1]))
            outlines = HandOutlines()
            for part in ("disc", "cup"):
                if record.get(part) is not None:
                    outlines = outlines.replace(part, record[part])
        except (OutlineError, TypeError, ValueError, IndexError):
            return None, None
        return disc_at, outlines if outlines.parts else None

    def eye(self, photo_sha256: str) -> Optional[str]:
        """The eye set by hand for the photo (``"OD"`` / ``"OS"``), or None."""
        eye = (self._photos.get(photo_sha256) or {}).get("eye")
        return eye if eye in ("OD", "OS") else None

    def put(self, photo_sha256: str, disc_at: Optional[tuple[float, float]], outlines: Any) -> bool:
        """Remember the photo's placement and outlines (both None: forget them; an eye set stays), in memory;
        returns whether the records changed (then :meth:`write` them)."""
        if not photo_sha256:
            return False
        record: dict[str, Any] = {"disc_at": None if disc_at is None else [float(v) for v in disc_at]}
        for part in () if outlines is None else outlines.parts:
            record[part] = np.round(np.asarray(getattr(outlines, part), np.float64), 2).tolist()
        return self._keep(photo_sha256, record, self.eye(photo_sha256))

    def put_eye(self, photo_sha256: str, eye: Optional[str]) -> bool:
        """Remember the eye set by hand for the photo (None: forget it; a placement or outlines stay), in memory;
        returns whether the records changed (then :meth:`write` them)."""
        if not photo_sha256 or eye == self.eye(photo_sha256):
            return False
        kept = {k: v for k, v in (self._photos.get(photo_sha256) or {}).items() if k not in ("eye", "saved")}
        return self._keep(photo_sha256, kept, eye)

    def _keep(self, photo_sha256: str, record: dict[str, Any], eye: Optional[str]) -> bool:
        """Store ``record`` (placement and outlines) with ``eye`` and the time, or drop the photo's record when it
        holds nothing; returns whether the records changed."""
        if eye is not None:
            record["eye"] = eye
        if record.get("disc_at") is None and not any(k in record for k in ("disc", "cup", "eye")):
            return self._photos.pop(photo_sha256, None) is not None
        record["saved"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self._photos[photo_sha256] = record  # a new record: one being written is never changed under it
        return True

    def merge(self, other: "CorrectionStore") -> set[str]:
        """Take ``other``'s records (e.g. a colleague's file) where this store has none for the photo or an older
        one (by the time each was saved); returns the photo SHA-256s whose record changed (then :meth:`write`)."""
        taken = set()
        for key, record in other._photos.items():
            mine = self._photos.get(key)
            if mine is None or str(record.get("saved", "")) > str(mine.get("saved", "")):
                self._photos[key] = dict(record)
                taken.add(key)
        return taken

    def forget_all(self) -> set[str]:
        """Forget every record (then :meth:`write`); returns the photo SHA-256s that had one."""
        keys = set(self._photos)
        self._photos = {}
        return keys

    def write(self, path: Optional[Path] = None) -> None:
        """Write the records as they are now to :attr:`path` (or a copy of them to ``path``), atomically (callable
        from a worker thread while :meth:`put` goes on in another).

        Raises:
            OSError: the file cannot be written.
        """
        from engine.models.checkpoint import atomic_write_bytes

        with _WRITING:
            text = json.dumps({"version": VERSION, "photos": dict(self._photos)}, indent=1)
            atomic_write_bytes(Path(path or self.path), text.encode("utf-8"))
            if path is None:
                self.problem = ""
