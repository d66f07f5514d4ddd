"""The layer network: a MONAI 2D BasicUNet, 9 classes (0 outside the retina + the 8 layers in anatomical order).

Classes are the labels of :mod:`engine.oct.labels` (index = label; 8 = choroid and everything below Bruch's
membrane). Each B-scan is resized to the network size (``spec["inputs"]["size"]``, (h, w) px), standardised
per image (z-score: OCT devices differ in gain, so no fixed mean/std), and the class probabilities are resized
back to the B-scan's own size. The label map is not the pixel-wise argmax: for each layer k the boundary above
it is the row that best splits the column into "above k" / "k or below" (a least-squares step fit of the
cumulative probability), and the rows are made non-decreasing, so a network result has the same form as the
graph method's (boundaries -> monotone labels). The network does not find the choroid/sclera boundary.

Shapes: B-scans (N, H, W) uint8; network tensors (B, 1, h, w) float32; boundaries (N, 9, W) float32 rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import cv2
import numpy as np

from engine.oct import BOUNDARY_NAMES, LAYER_NAMES, N_CLASSES
from engine.progress import CancelToken, ProgressCallback, check, report

TASK = "layers"
CLASSES = ("outside",) + LAYER_NAMES
DEFAULT_SIZE = (320, 256)
DEFAULT_FEATURES = (8, 16, 32, 64, 128, 8)
WEIGHTS_NAME = "oct_layers.pt"


def make_spec(size: Sequence[int] = DEFAULT_SIZE, features: Sequence[int] = DEFAULT_FEATURES,
              dropout: float = 0.0) -> dict[str, Any]:
    """The checkpoint ``spec`` (see engine.models.checkpoint) of a layer network."""
    h, w = (int(size[0]), int(size[1]))
    if h % 16 or w % 16:
        raise ValueError(f"network size must be a multiple of 16, got {(h, w)}")
    return {
        "task": TASK,
        "architecture": "monai.BasicUNet",
        "kwargs": {"spatial_dims": 2, "in_channels": 1, "out_channels": N_CLASSES,
                   "features": [int(f) for f in features], "dropout": float(dropout)},
        "inputs": {"size": [h, w], "normalisation": "per-image z-score", "channels": "grey"},
        "classes": list(CLASSES),
        "cam_target_layers": [],
    }


def build_network(spec: Mapping[str, Any]) -> Any:
    """A fresh (random) network from ``spec``."""
    from monai.networks.nets import BasicUNet

    if spec.get("architecture") != "monai.BasicUNet":
        raise ValueError(f"unknown layer network architecture {spec.get('architecture')!r}")
    kw = dict(spec["kwargs"])
    kw["features"] = tuple(kw["features"])
    return BasicUNet(**kw)


def prepare_bscans(scans: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """(n, H, W) uint8 (or float 0..255) -> (n, 1, h, w) float32 network input, each B-scan z-scored after its
    saturated-white export padding is set to background (as the graph search does)."""
    from engine.oct.graph_boundaries import remove_padding

    h, w = int(size[0]), int(size[1])
    out = np.empty((len(scans), 1, h, w), np.float32)
    for i, scan in enumerate(scans):
        grey = remove_padding(np.array(scan, np.float32)[None])[0]  # white export padding -> background
        small = cv2.resize(grey, (w, h), interpolation=cv2.INTER_AREA)
        out[i, 0] = (small - small.mean()) / (small.std() + 1e-3)
    return out


def boundaries_from_probabilities(probs: np.ndarray, max_jump: Optional[int] = None) -> np.ndarray:
    """(C = 9, H, W) class probabilities of one B-scan -> (9, W) float32 boundary rows (choroid/sclera NaN).

    For layer k, q = P(label >= k) per pixel, and the cost of putting the boundary at row r of a column is
    ``sum_{r' < r} q + sum_{r' >= r} (1 - q)`` (the least-squares step from "above" to "at or below"),
    rescaled to [0, 1] per column. The boundary is then the minimum-cost left-to-right path through that cost
    (:func:`engine.oct.graph_boundaries.shortest_paths`: at most ``max_jump`` rows between neighbouring
    columns, default from H / W), searched at or below the boundary above it, so the rows are continuous and
    in anatomical order like the graph method's.
    """
    from engine.oct.graph_boundaries import shortest_paths

    c, h, w = probs.shape
    jump = int(max_jump) if max_jump else max(2, int(np.ceil(0.6 * h / w)))
    at_or_below = np.cumsum(probs[::-1], axis=0)[::-1]  # at_or_below[k] = P(label >= k)
    out = np.full((len(BOUNDARY_NAMES), w), np.nan, np.float32)
    lo = np.zeros((1, w), np.int32)
    hi = np.full((1, w), h - 1, np.int32)
    for k in range(1, c):
        score = np.cumsum(2.0 * at_or_below[k] - 1.0, axis=0)  # score[r] = sum_{r' <= r}
        cost = np.concatenate([np.zeros((1, w), np.float32), score[:-1]], axis=0)  # boundary at r: rows < r above
        cost -= cost.min(axis=0, keepdims=True)
        cost /= cost.max(axis=0, keepdims=True) + 1e-6
        path = shortest_paths(cost[None].astype(np.float32), lo, hi, jump, 0.01)
        out[k - 1] = path[0]
        lo = path
    return out


@dataclass
class LayerNetwork:
    """A loaded layer network ready for inference (plain attributes; the module lives on ``device``)."""

    module: Any
    spec: dict[str, Any]
    card: dict[str, Any]
    sha256: str
    path: Optional[Path]
    device: str = "cpu"

    @property
    def name(self) -> str:
        return str(self.card.get("name", self.path.stem if self.path else "oct_layers"))

    def probabilities(self, scans: np.ndarray, batch_size: int = 8) -> np.ndarray:
        """(n, H, W) uint8 -> (n, 9, h, w) float32 softmax at the network size."""
        import torch

        x = prepare_bscans(scans, self.spec["inputs"]["size"])
        outs = []
        with torch.inference_mode():
            for s in range(0, len(x), batch_size):
                logits = self.module(torch.from_numpy(x[s : s + batch_size]).to(self.device))
                outs.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
        return np.concatenate(outs, axis=0)

    def find_boundaries(
        self,
        volume: np.ndarray,
        *,
        batch_size: int = 8,
        progress: Optional[ProgressCallback] = None,
        cancel: Optional[CancelToken] = None,
    ) -> np.ndarray:
        """(N, H, W) or (H, W) uint8 -> (N, 9, W) / (9, W) float32 boundary rows (choroid/sclera NaN)."""
        arr = np.asarray(volume)
        single = arr.ndim == 2
        if single:
            arr = arr[None]
        n, h, w = arr.shape
        out = np.empty((n, len(BOUNDARY_NAMES), w), np.float32)
        report(progress, 0.0, f"layer network on {n} B-scan(s)")
        for s in range(0, n, batch_size):
            check(cancel)
            probs = self.probabilities(arr[s : s + batch_size], batch_size)
            for i, p in enumerate(probs):
                big = np.stack([cv2.resize(ch, (w, h), interpolation=cv2.INTER_LINEAR) for ch in p])
                out[s + i] = boundaries_from_probabilities(big)
            report(progress, min(n, s + batch_size) / n, f"layers: {min(n, s + batch_size)}/{n} B-scans")
        return out[0] if single else out


class LayerModelMissing(FileNotFoundError):
    """No layer-network weights where they were looked for. ``str()`` is user-readable."""


def default_weights_path() -> Path:
    """``<resources>/models/oct_layers.pt`` (may not exist in a bare install)."""
    from engine.resources import models_dir

    return models_dir() / WEIGHTS_NAME


def load_layer_network(path: Optional[Path] = None, device: str = "cpu") -> LayerNetwork:
    """Load (hash-checked, weights only) a layer network; ``path`` None = the shipped default.

    Raises:
        LayerModelMissing: no weights file.
        engine.models.checkpoint.CheckpointError: tampered / not a layers checkpoint.
    """
    from engine.models.checkpoint import load_checkpoint

    path = Path(path) if path is not None else default_weights_path()
    if not path.is_file():
        raise LayerModelMissing(f"{path}: layer-network weights not found (use --method graph, which needs none)")
    ckpt = load_checkpoint(path, expected_task=TASK, map_location="cpu")
    module = build_network(ckpt.spec)
    module.load_state_dict(ckpt.state_dict)
    module.eval().to(device)
    return LayerNetwork(module, ckpt.spec, ckpt.card, ckpt.sha256, path, device)
