"""Overlay images for reports, ``grade --cams`` and ``segment --overlays``: pure NumPy/OpenCV, no Qt.

Grad-CAM (PNG):

- fundus: the photo with the fundus-level map (downscaled to at most ``max_side`` px);
- disc: the disc crop with the disc-level map;
- oct: the B-scan where the map is strongest, and an en-face view (mean intensity over depth) with the map's
  maximum over depth.

Disc/cup outlines (:func:`disc_cup_overlay`): the photo and the disc region side by side, to check a batch's
segmentations at a glance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

import cv2
import numpy as np

from engine.models.checkpoint import atomic_write_bytes
from engine.models.preprocess import cut_box


def blend(gray_or_rgb: np.ndarray, heat: np.ndarray, alpha: float = 0.4) -> np.ndarray:
    """``(H, W)`` or ``(H, W, 3)`` uint8 image + ``(H, W)`` uint8 map -> ``(H, W, 3)`` uint8 RGB overlay (jet)."""
    base = gray_or_rgb if gray_or_rgb.ndim == 3 else np.repeat(gray_or_rgb[..., None], 3, axis=2)
    colour = cv2.cvtColor(cv2.applyColorMap(heat, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    weight = (alpha * heat.astype(np.float32) / 255.0)[..., None]
    return np.clip(base * (1 - weight) + colour * weight, 0, 255).astype(np.uint8)


def _shrink(image: np.ndarray, max_side: int) -> np.ndarray:
    h, w = image.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return image
    return cv2.resize(image, (max(1, int(w * scale)), max(1, int(h * scale))), interpolation=cv2.INTER_AREA)


def write_png(path: Path, rgb: np.ndarray) -> None:
    """Encode ``(H, W, 3)`` uint8 RGB as PNG and write it atomically."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"could not encode {path}")
    atomic_write_bytes(Path(path), buf.tobytes())


def overlay_images(exam: Any, cams: dict[str, Any], max_side: int = 1024) -> dict[str, np.ndarray]:
    """``{name: (H, W, 3) uint8}`` overlays for each CAM level present (names: fundus, disc, oct, oct_enface)."""
    out: dict[str, np.ndarray] = {}
    if "fundus" in cams and exam.fundus is not None:
        out["fundus"] = _shrink(blend(exam.fundus, cams["fundus"].heatmap), max_side)
    if "disc" in cams and exam.fundus is not None:
        box = cams["disc"].box
        out["disc"] = _shrink(blend(cut_box(exam.fundus, box), cut_box(cams["disc"].heatmap, box)), 512)
    if "oct" in cams and exam.oct is not None:
        heat = cams["oct"].heatmap  # (N, H, W) uint8
        k = int(np.argmax(heat.reshape(heat.shape[0], -1).mean(axis=1)))
        out["oct"] = _shrink(blend(exam.oct[k], heat[k]), max_side)
        enface = exam.oct.mean(axis=1, dtype=np.float32)  # (N, W)
        enface = cv2.normalize(enface, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
        out["oct_enface"] = _shrink(blend(enface, heat.max(axis=1)), max_side)
    return out


def write_cam_overlays(exam: Any, cams: dict[str, Any], folder: Path, stem: str) -> list[Path]:
    """Write ``<folder>/<stem>_<name>.png`` for every overlay; return the paths written."""
    written = []
    for name, image in overlay_images(exam, cams).items():
        path = Path(folder) / f"{stem}_{name}.png"
        write_png(path, image)
        written.append(path)
    return written


DISC_COLOUR = (0, 220, 255)
"""RGB of the disc outline (cyan, as in the viewer)."""
CUP_COLOUR = (255, 200, 0)
"""RGB of the cup outline (amber)."""


def disc_cup_overlay(photo: np.ndarray, disc: np.ndarray, cup: np.ndarray, box: Sequence[float],
                     height: int = 512, caption: str = "") -> np.ndarray:
    """The photo (left) and its disc region ``box`` (top, left, bottom, right) px enlarged (right), both
    ``height`` px high, with the disc and cup outlines drawn and ``caption`` written at the bottom left:
    (height, W, 3) uint8 RGB.

    ``photo``: (H, W, 3) uint8 RGB; ``disc``, ``cup``: (H, W) bool masks at the photo's size.
    """
    panels = []
    top, left = int(np.floor(box[0])), int(np.floor(box[1]))
    bottom, right = top + int(round(box[2] - box[0])), left + int(round(box[3] - box[1]))  # a square box stays one
    if bottom <= top or right <= left:
        raise ValueError(f"empty disc region {tuple(box)}")
    region = (top, left, bottom, right)
    for image, masks in ((photo, (disc, cup)),
                         (cut_box(photo, region), (cut_box(disc, region), cut_box(cup, region)))):
        h, w = image.shape[:2]
        size = (max(1, round(w * height / h)), height)
        panel = np.ascontiguousarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA if h > height
                                                else cv2.INTER_LINEAR))
        for mask, colour in zip(masks, (DISC_COLOUR, CUP_COLOUR)):
            small = cv2.resize(np.asarray(mask, np.uint8), size, interpolation=cv2.INTER_NEAREST)
            contours, _ = cv2.findContours(small, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(panel, contours, -1, colour, 2, lineType=cv2.LINE_AA)
        panels.append(panel)
    k = height / photo.shape[0]  # where the right panel comes from, on the left one
    cv2.rectangle(panels[0], (round(left * k), round(top * k)), (round(right * k), round(bottom * k)),
                  (255, 255, 255), 1)
    out = np.concatenate(panels, axis=1)
    for colour, width in (((0, 0, 0), 4), ((255, 255, 255), 1)):  # white on a black edge: legible anywhere
        cv2.putText(out, caption, (8, height - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, width, cv2.LINE_AA)
    return out


def write_jpeg(path: Path, rgb: np.ndarray, quality: int = 90) -> None:
    """Encode ``(H, W, 3)`` uint8 RGB as JPEG and write it atomically."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise OSError(f"could not encode {path}")
    atomic_write_bytes(Path(path), buf.tobytes())


def strongest_bscan(cam: Any) -> Optional[int]:
    """Index of the B-scan where an OCT map is strongest (None for 2D maps)."""
    if cam is None or cam.heatmap.ndim != 3:
        return None
    return int(np.argmax(cam.heatmap.reshape(cam.heatmap.shape[0], -1).mean(axis=1)))
