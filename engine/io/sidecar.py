"""``exam.json``: an optional sidecar in an exam folder that says what the pixels cannot.

Format (every key optional; unknown keys are ignored with a note)::

    {
      "eye": "OD" | "OS" | "unknown",
      "synthetic_modalities": ["oct", ...],   # modalities that are generated, not acquired
      "notes": ["free text", ...]             # or one string
    }

The sidecar applies to every exam found directly in its folder. Reading it never fails a load: a file that is
too large, not JSON or with wrong value types becomes a provenance note saying what was ignored. Its SHA-256 is
kept with the exam's source files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from engine.io.exam import Eye, SourceFile
from engine.io.images import sha256_bytes

SIDECAR_NAME = "exam.json"
MAX_SIDECAR_BYTES = 64 * 1024
MODALITIES = ("fundus", "oct", "mri", "xray")
_KNOWN_KEYS = frozenset({"eye", "synthetic_modalities", "notes"})


@dataclass
class Sidecar:
    """What an ``exam.json`` says. ``eye`` is None when the sidecar does not name one; ``problems`` are notes."""

    path: Path
    eye: Optional[Eye] = None
    synthetic_modalities: tuple[str, ...] = ()
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    source: Optional[SourceFile] = None

    def all_notes(self) -> list[str]:
        return [*self.notes, *self.problems]


def read_sidecar(path: Path) -> Sidecar:
    """Parse ``path``; never raises (every problem becomes an entry of ``problems``)."""
    out = Sidecar(path)
    try:
        size = path.stat().st_size
        if size > MAX_SIDECAR_BYTES:
            out.problems.append(f"{path.name} ignored: {size} bytes, more than the {MAX_SIDECAR_BYTES} read")
            return out
        data = path.read_bytes()
    except OSError as exc:
        out.problems.append(f"{path.name} ignored: cannot be read ({exc.strerror or type(exc).__name__})")
        return out
    out.source = SourceFile(str(path), sha256_bytes(data))
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        out.problems.append(f"{path.name} ignored: not valid JSON ({_first_line(exc)})")
        return out
    if not isinstance(doc, dict):
        out.problems.append(f"{path.name} ignored: expected a JSON object, found {type(doc).__name__}")
        return out
    _read_eye(doc.get("eye"), out)
    _read_synthetic(doc.get("synthetic_modalities"), out)
    _read_notes(doc.get("notes"), out)
    unknown = sorted(str(k) for k in doc if k not in _KNOWN_KEYS)
    if unknown:
        out.problems.append(f"{path.name}: unknown keys ignored ({', '.join(unknown[:5])})")
    return out


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__


def _read_eye(value: Any, out: Sidecar) -> None:
    if value is None:
        return
    if isinstance(value, str) and value.strip().upper() in ("OD", "OS"):
        out.eye = value.strip().upper()  # type: ignore[assignment]
    elif isinstance(value, str) and value.strip().lower() == "unknown":
        out.eye = "unknown"
    else:
        out.problems.append(f"{out.path.name}: eye {str(value)[:20]!r} ignored (OD, OS or unknown)")


def _read_synthetic(value: Any, out: Sidecar) -> None:
    if value is None:
        return
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        out.problems.append(f"{out.path.name}: synthetic_modalities ignored (expected a list of modality names)")
        return
    good = [v.lower() for v in value if isinstance(v, str) and v.lower() in MODALITIES]
    bad = [str(v)[:20] for v in value if not (isinstance(v, str) and v.lower() in MODALITIES)]
    out.synthetic_modalities = tuple(dict.fromkeys(good))
    if bad:
        out.problems.append(f"{out.path.name}: unknown synthetic modalities ignored ({', '.join(bad[:5])})")


def _read_notes(value: Any, out: Sidecar) -> None:
    if value is None:
        return
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        out.problems.append(f"{out.path.name}: notes ignored (expected text or a list of texts)")
        return
    out.notes = [v[:1000] for v in value[:50]]


__all__ = ["MAX_SIDECAR_BYTES", "SIDECAR_NAME", "Sidecar", "read_sidecar"]
