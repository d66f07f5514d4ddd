"""Self-describing checkpoints, loaded safely.

On disk a model is two files side by side:

- ``NAME.pt``: ``torch.save`` of a plain dict ``{"format", "spec", "state_dict", "card"}`` holding only
  tensors, strings, numbers, lists and dicts, so it loads with ``torch.load(weights_only=True)``
  (no code runs while loading).
- ``NAME.card.json``: the model card (what data trained it, how it was evaluated, metrics on held-out data)
  plus ``sha256`` of ``NAME.pt``. A weights file whose hash does not match its card is refused.

``spec`` says how to rebuild the network: ``{"task": ..., "architecture": ..., "kwargs": {...},
"inputs": {...sizes, normalisation...}, "classes": [...], "cam_target_layers": [...]}``. Building the module
from a spec is the job of the task's own code (the checkpoint layer never imports model code).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

FORMAT = "glaucoma-viewer-checkpoint/1"


class CheckpointError(Exception):
    """A checkpoint is missing, tampered with, or does not match its card. ``str()`` is user-readable."""


@dataclass
class Checkpoint:
    """A loaded checkpoint: rebuild with ``spec``, fill with ``state_dict``, show ``card``."""

    path: Path
    spec: dict[str, Any]
    state_dict: dict[str, Any]
    card: dict[str, Any]
    sha256: str

    @property
    def name(self) -> str:
        return str(self.card.get("name", self.path.stem))


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def card_path_for(weights: Path) -> Path:
    """``x.pt`` -> ``x.card.json``."""
    return weights.with_suffix(".card.json")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temp file in the same folder, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def finite_or_null(value: Any) -> Any:
    """``value`` with every NaN or infinite float, at any depth, replaced by ``None`` (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: finite_or_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_null(v) for v in value]
    return value


def save_checkpoint(
    path: Path, spec: Mapping[str, Any], state_dict: Mapping[str, Any], card: Mapping[str, Any]
) -> str:
    """Write ``path`` (.pt) and its card atomically; return the weights' SHA-256.

    ``card`` must be JSON-serialisable; ``spec`` too. A value not measured (NaN) is written as ``null``, so the
    card is strict JSON. The card written to disk gains ``sha256``, ``spec`` and ``format``.
    """
    import io

    import torch

    path = Path(path)
    spec = json.loads(json.dumps(spec))  # proves JSON-ability and drops tuples
    card = json.loads(json.dumps(finite_or_null(card), allow_nan=False))
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, "spec": spec, "state_dict": tensors, "card": card}, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    digest = sha256_file(path)
    full_card = {**card, "format": FORMAT, "spec": spec, "weights_file": path.name, "sha256": digest}
    atomic_write_bytes(card_path_for(path), (json.dumps(full_card, indent=2) + "\n").encode())
    return digest


def read_card(path: Path) -> dict[str, Any]:
    """The model card beside a weights file (no weights are loaded)."""
    card_file = card_path_for(Path(path))
    try:
        return json.loads(card_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{card_file}: model card missing") from None
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{card_file}: model card unreadable ({err})") from None


def load_checkpoint(path: Path, *, expected_task: Optional[str] = None, map_location: str = "cpu") -> Checkpoint:
    """Verify the hash against the card, then ``torch.load(weights_only=True)``.

    Raises:
        CheckpointError: file or card missing, hash mismatch (tampered or wrong card), unknown format,
            wrong task, or a file that is not a plain-data checkpoint.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    card = read_card(path)
    digest = sha256_file(path)
    if card.get("sha256") != digest:
        raise CheckpointError(
            f"{path}: SHA-256 {digest[:12]}… does not match its model card ({str(card.get('sha256'))[:12]}…); "
            "refusing to load a checkpoint that may have been altered"
        )
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError...
        raise CheckpointError(f"{path}: not a safe plain-data checkpoint ({type(err).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: unknown checkpoint format (expected {FORMAT})")
    spec = payload["spec"]
    if spec != card.get("spec"):
        raise CheckpointError(f"{path}: architecture in the weights does not match the model card")
    if expected_task is not None and spec.get("task") != expected_task:
        raise CheckpointError(f"{path}: a {spec.get('task')!r} model, expected {expected_task!r}")
    return Checkpoint(path=path, spec=spec, state_dict=payload["state_dict"], card=card, sha256=digest)
