"""Plumbing the three sibling tasks share: device choice, loading a task checkpoint, heat-map PNGs.

Nothing here knows a task's network: each task module passes its own ``build_model(spec)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np

from engine.models.checkpoint import CheckpointError, atomic_write_bytes, load_checkpoint


def resolve_device(device: str = "auto") -> Any:
    """``"auto"`` -> CUDA when available, else CPU; anything else is passed to ``torch.device``."""
    import torch

    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass
class TaskModel:
    """A network rebuilt from a checkpoint, in eval mode, with what describes it.

    Attributes:
        module: the ``torch.nn.Module`` (eval mode, on ``device``).
        spec: the checkpoint's ``spec`` (architecture, inputs, classes, ...).
        card: the model card (training data, metrics, limitations).
        name: the card's name (or the file stem).
        sha256: hex digest of the weights file.
        path: where it was loaded from (None for an in-memory model).
    """

    module: Any
    spec: dict[str, Any]
    card: dict[str, Any]
    name: str
    sha256: str = ""
    path: Optional[Path] = None

    @property
    def device(self) -> Any:
        return next(self.module.parameters()).device


def load_task_model(
    path: Union[str, Path], task: str, build_model: Callable[[dict[str, Any]], Any], device: str = "auto"
) -> TaskModel:
    """Verify and load ``path`` (a ``task`` checkpoint), rebuild its network and fill it.

    Raises:
        CheckpointError: missing / tampered file, wrong task, or weights that do not fit the architecture.
    """
    ckpt = load_checkpoint(Path(path), expected_task=task)
    try:
        module = build_model(ckpt.spec)
        module.load_state_dict(ckpt.state_dict, strict=True)
    except (KeyError, ValueError, RuntimeError, TypeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path}: weights do not fit the {task} architecture in the card ({first})") from None
    module.eval().to(resolve_device(device))
    return TaskModel(module, ckpt.spec, ckpt.card, ckpt.name, ckpt.sha256, Path(path))


def in_memory_model(module: Any, spec: dict[str, Any], name: str = "untrained") -> TaskModel:
    """Wrap a freshly built network (tests, training-time evaluation) as a :class:`TaskModel`."""
    return TaskModel(module.eval(), spec, {"name": name}, name)


def normalise_map(cam: np.ndarray) -> np.ndarray:
    """Scale a heat map to [0, 1] float32 (a flat map becomes zeros)."""
    cam = np.nan_to_num(np.asarray(cam, np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(cam.min(initial=0.0)), float(cam.max(initial=0.0))
    return ((cam - lo) / (hi - lo)).astype(np.float32) if hi > lo else np.zeros_like(cam, np.float32)


def colourise(heat: np.ndarray) -> np.ndarray:
    """``(H, W)`` map in [0, 1] -> ``(H, W, 3)`` uint8 RGB with the JET colour map."""
    import cv2

    grey = np.clip(np.asarray(heat, np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(grey, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.4) -> np.ndarray:
    """Blend the colourised ``heat`` (H, W) over ``image`` (H, W) grey or (H, W, 3) RGB uint8 -> RGB uint8."""
    base = np.asarray(image)
    if base.ndim == 2:
        base = np.repeat(base[..., None], 3, axis=2)
    mixed = (1.0 - alpha) * base.astype(np.float32) + alpha * colourise(heat).astype(np.float32)
    return np.clip(mixed + 0.5, 0, 255).astype(np.uint8)


def write_png(path: Union[str, Path], image: np.ndarray) -> Path:
    """Encode ``image`` ((H, W) grey or (H, W, 3) RGB uint8) as PNG and write it atomically (temp + rename)."""
    import cv2

    array = np.asarray(image)
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    ok, buffer = cv2.imencode(".png", array)
    if not ok:
        raise OSError(f"{path}: PNG encoding failed")
    atomic_write_bytes(Path(path), buffer.tobytes())
    return Path(path)


__all__ = [
    "CheckpointError",
    "TaskModel",
    "colourise",
    "in_memory_model",
    "load_task_model",
    "normalise_map",
    "overlay",
    "resolve_device",
    "write_png",
]
