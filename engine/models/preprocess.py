"""Preprocessing that models carry with them: input sizes, normalisation, the disc crop, OCT resampling.

Every grader checkpoint's ``spec["inputs"]`` holds one :class:`InputSpec` per level (``fundus``, ``disc``,
``oct``), so the pipeline and the viewer never hard-code a size or a mean. The functions here turn exam arrays
into network tensors quickly (uint8 -> float32 only at the small network size, never float64) and return a
:class:`Placement` that says where the network input sits in the original image, so maps computed on the
network input (Grad-CAM) can be put back in the original coordinates.

Shapes: fundus ``(H, W, 3)`` uint8 RGB, ``(row, col)``; OCT ``(N, H, W)`` uint8, N B-scans.
Tensors: 2D ``(1, 3, h, w)`` float32, 3D ``(1, 1, d, h, w)`` float32.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

import cv2
import numpy as np

LEVELS = ("fundus", "disc", "oct")
"""Grader levels in their fixed order: whole fundus photo, optic-disc crop, OCT volume."""
LEVEL_MODALITY = {"fundus": "fundus", "disc": "fundus", "oct": "oct"}
"""The exam modality each level reads (the disc crop is cut from the fundus photo)."""

# Plain per-channel statistics; models trained from scratch here use these unless their spec says otherwise.
DEFAULT_2D_MEAN = (0.5, 0.5, 0.5)
DEFAULT_2D_STD = (0.25, 0.25, 0.25)
DEFAULT_3D_MEAN = (0.3,)
DEFAULT_3D_STD = (0.2,)


@dataclass(frozen=True)
class InputSpec:
    """How one level's input is made.

    Attributes:
        size: network input size, ``(h, w)`` for 2D levels, ``(d, h, w)`` for the OCT level.
        mean, std: per-channel normalisation applied to values scaled to [0, 1].
        crop_scale: disc level only: side of the square crop as a multiple of the disc diameter.
    """

    size: tuple[int, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_scale: float = 2.5

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.std) or any(s <= 0 for s in self.std):
            raise ValueError(f"bad normalisation mean={self.mean} std={self.std}")
        if any(int(s) < 1 for s in self.size):
            raise ValueError(f"bad input size {self.size}")

    def to_dict(self) -> dict[str, Any]:
        return {"size": list(self.size), "mean": list(self.mean), "std": list(self.std), "crop_scale": self.crop_scale}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "InputSpec":
        return cls(
            size=tuple(int(v) for v in data["size"]),
            mean=tuple(float(v) for v in data["mean"]),
            std=tuple(float(v) for v in data["std"]),
            crop_scale=float(data.get("crop_scale", 2.5)),
        )


def default_input_spec(level: str, size: Optional[Sequence[int]] = None) -> InputSpec:
    """A sensible :class:`InputSpec` for ``level`` (224 px 2D, 64 x 128 x 128 OCT unless ``size`` given)."""
    if level == "oct":
        return InputSpec(tuple(size or (64, 128, 128)), DEFAULT_3D_MEAN, DEFAULT_3D_STD)
    if level in ("fundus", "disc"):
        return InputSpec(tuple(size or (224, 224)), DEFAULT_2D_MEAN, DEFAULT_2D_STD)
    raise ValueError(f"unknown level {level!r}; expected one of {LEVELS}")


@dataclass(frozen=True)
class Placement:
    """Where a network input sits in the original array.

    ``box`` is ``(row0, col0, row1, col1)`` in original pixels (end exclusive, may extend past the image when
    a crop was padded); the network input of size ``net_size`` covers exactly that box. For the OCT level
    the box is the whole volume and ``shape`` is ``(N, H, W)``.
    """

    shape: tuple[int, ...]
    box: tuple[int, int, int, int]
    net_size: tuple[int, ...]


@dataclass
class Prepared:
    """A network input plus how to map back. ``tensor`` is float32 ``(1, C, ...)``."""

    tensor: Any
    placement: Placement
    notes: list[str] = field(default_factory=list)


def _normalise_to_tensor(array: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> Any:
    """``array`` (h, w, C) or (d, h, w) uint8 -> float32 torch tensor (1, C, ...) normalised."""
    import torch

    if array.ndim == 3 and array.shape[-1] in (1, 3) and len(mean) == array.shape[-1]:
        t = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)  # (C, h, w)
    else:
        t = torch.from_numpy(np.ascontiguousarray(array))[None]  # (1, d, h, w)
    t = t.to(torch.float32).div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(-1, *([1] * (t.ndim - 1)))
    s = torch.tensor(std, dtype=torch.float32).view(-1, *([1] * (t.ndim - 1)))
    return t.sub_(m).div_(s)[None]


def prepare_fundus(image: np.ndarray, spec: InputSpec) -> Prepared:
    """Whole fundus photo ``(H, W, 3)`` uint8 -> ``(1, 3, h, w)`` (area-resized, no aspect change)."""
    h, w = image.shape[:2]
    small = cv2.resize(image, (spec.size[1], spec.size[0]), interpolation=cv2.INTER_AREA)
    return Prepared(_normalise_to_tensor(small, spec.mean, spec.std), Placement((h, w), (0, 0, h, w), spec.size))


def crop_box_around(
    shape: tuple[int, int], center: tuple[float, float], disc_diameter_px: float, crop_scale: float
) -> tuple[int, int, int, int]:
    """A square ``(row0, col0, row1, col1)`` box of side ``crop_scale * disc_diameter_px`` centred on the disc."""
    side = max(8, int(round(crop_scale * disc_diameter_px)))
    r0 = int(round(center[0] - side / 2))
    c0 = int(round(center[1] - side / 2))
    return (r0, c0, r0 + side, c0 + side)


def cut_box(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The pixels of ``box`` from ``image`` (H, W, ...), zero-padded where the box leaves the image."""
    r0, c0, r1, c1 = box
    h, w = image.shape[:2]
    out = np.zeros((r1 - r0, c1 - c0, *image.shape[2:]), image.dtype)
    rr0, cc0, rr1, cc1 = max(r0, 0), max(c0, 0), min(r1, h), min(c1, w)
    if rr1 > rr0 and cc1 > cc0:
        out[rr0 - r0 : rr1 - r0, cc0 - c0 : cc1 - c0] = image[rr0:rr1, cc0:cc1]
    return out


def prepare_disc(image: np.ndarray, box: tuple[int, int, int, int], spec: InputSpec) -> Prepared:
    """The disc crop ``box`` of the fundus -> ``(1, 3, h, w)``; the box may extend past the image (zero pad)."""
    h, w = image.shape[:2]
    # Downscale first for big photos: cut from a reduced copy when the crop is far larger than the net input.
    crop = cut_box(image, box)
    interp = cv2.INTER_AREA if crop.shape[0] > spec.size[0] else cv2.INTER_LINEAR
    small = cv2.resize(crop, (spec.size[1], spec.size[0]), interpolation=interp)
    return Prepared(_normalise_to_tensor(small, spec.mean, spec.std), Placement((h, w), box, spec.size))


def locate_disc_by_brightness(image: np.ndarray) -> tuple[tuple[float, float], float]:
    """Fallback disc locator: the brightest large blob of a heavily blurred photo.

    Returns ``((row, col) px, disc diameter px)``. A rough heuristic used only when the disc/cup analysis
    (``engine.fundus``) is unavailable or failed; the diameter is taken as 1/7 of the photo's short side.
    """
    h, w = image.shape[:2]
    scale = 256.0 / max(h, w)
    small = cv2.resize(image, (max(1, int(w * scale)), max(1, int(h * scale))), interpolation=cv2.INTER_AREA)
    lum = small[..., 0].astype(np.float32) * 0.5 + small[..., 1].astype(np.float32) * 0.5
    lum = cv2.GaussianBlur(lum, (0, 0), 6)
    _, _, _, (x, y) = cv2.minMaxLoc(lum)
    return (y / scale, x / scale), min(h, w) / 7.0


def disc_from_location(found: Any) -> tuple[tuple[float, float], float, str]:
    """What :func:`locate_disc` returns for an :class:`engine.fundus.localize.DiscLocation` ``found``: its centre
    ``(row, col)`` px, the expected disc diameter px and ``"engine.fundus.localize"``."""
    return (float(found.center[0]), float(found.center[1])), 2.0 * float(found.radius_px), "engine.fundus.localize"


def locate_disc(image: np.ndarray) -> tuple[tuple[float, float], float, str]:
    """Disc centre ``(row, col)`` px, diameter px and the method's name, for the grader's disc crop.

    Uses the training-free localiser ``engine.fundus.localize.locate_disc`` when installed (the expected disc
    size comes from the camera's field of view, so the crop holds the same anatomy at any resolution), else
    :func:`locate_disc_by_brightness`. Training and grading both call this, so crops match.
    """
    try:
        from engine.fundus.localize import locate_disc as _locate
    except ImportError:
        _locate = None
    if _locate is not None:
        try:
            return disc_from_location(_locate(image))
        except Exception:  # a failed localisation falls back to the heuristic below
            pass
    center, diameter = locate_disc_by_brightness(image)
    return center, diameter, "brightness heuristic"


def resample_volume(volume: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """``(N, H, W)`` uint8 -> ``(d, h, w)`` float32 in [0, 255], area-averaged, fast.

    In-plane: ``cv2.resize(INTER_AREA)`` of every B-scan on uint8; then the slice axis with linear
    (area when shrinking by an integer factor) interpolation on the small float32 stack. Never float64.
    """
    import torch
    import torch.nn.functional as F

    d, h, w = (int(s) for s in size)
    n = volume.shape[0]
    plane = np.empty((n, h, w), np.uint8)
    for k in range(n):
        interp = cv2.INTER_AREA if volume.shape[1] >= h and volume.shape[2] >= w else cv2.INTER_LINEAR
        plane[k] = cv2.resize(volume[k], (w, h), interpolation=interp)
    t = torch.from_numpy(plane).to(torch.float32)  # (n, h, w)
    if n != d:
        t = t.permute(1, 2, 0).reshape(1, h * w, n)  # resample along slices as a 1D signal
        if n > d and n % d == 0:
            t = F.avg_pool1d(t, kernel_size=n // d)
        else:
            t = F.interpolate(t, size=d, mode="linear", align_corners=False)
        t = t.reshape(h, w, d).permute(2, 0, 1)
    return t.contiguous().numpy()


def prepare_oct(volume: np.ndarray, spec: InputSpec) -> Prepared:
    """OCT ``(N, H, W)`` uint8 -> ``(1, 1, d, h, w)`` float32 normalised; the placement covers the volume."""
    import torch

    small = torch.from_numpy(resample_volume(volume, spec.size))
    t = small.div_(255.0).sub_(spec.mean[0]).div_(spec.std[0])[None, None]
    n, h, w = volume.shape
    return Prepared(t, Placement((n, h, w), (0, 0, h, w), tuple(spec.size)))


def map_to_original_2d(cam: np.ndarray, placement: Placement) -> np.ndarray:
    """A 2D map on the network input (any size) -> ``(H, W)`` float32 in the original photo.

    The map is resized to the crop box (bilinear) and pasted into a zero image; parts of the box outside
    the photo are dropped. For the whole-fundus level the box is the whole photo, so this is a resize.
    """
    h, w = placement.shape[:2]
    r0, c0, r1, c1 = placement.box
    if (r0, c0, r1, c1) == (0, 0, h, w):
        return cv2.resize(np.asarray(cam, np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    if r1 - r0 == c1 - c0:
        try:  # the disc/cup package's inverse of its crop, when installed: one convention for every crop map
            from engine.fundus.crop import map_to_image
        except ImportError:
            pass
        else:
            return map_to_image(np.asarray(cam, np.float32), placement.box, (h, w))
    resized = cv2.resize(np.asarray(cam, np.float32), (c1 - c0, r1 - r0), interpolation=cv2.INTER_LINEAR)
    out = np.zeros((h, w), np.float32)
    rr0, cc0, rr1, cc1 = max(r0, 0), max(c0, 0), min(r1, h), min(c1, w)
    if rr1 > rr0 and cc1 > cc0:
        out[rr0:rr1, cc0:cc1] = resized[rr0 - r0 : rr1 - r0, cc0 - c0 : cc1 - c0]
    return out


def map_to_volume(cam: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """A 3D map ``(d, h, w)`` -> ``(N, H, W)`` uint8 (0..255 = map 0..1), one slice per B-scan.

    Separable and memory-lean: linear along slices on the small map, then a bilinear ``cv2.resize`` per
    B-scan straight into the uint8 output (no full-size float volume is ever made).
    """
    import torch
    import torch.nn.functional as F

    n, h, w = (int(s) for s in shape)
    cam = np.asarray(cam, np.float32)
    d, ch, cw = cam.shape
    t = torch.from_numpy(np.ascontiguousarray(cam)).permute(1, 2, 0).reshape(1, ch * cw, d)
    t = F.interpolate(t, size=n, mode="linear", align_corners=False) if d != n else t
    per_slice = t.reshape(ch, cw, n).permute(2, 0, 1).contiguous().numpy()  # (n, ch, cw)
    per_slice = np.clip(per_slice * 255.0 + 0.5, 0, 255)
    out = np.empty((n, h, w), np.uint8)
    for k in range(n):
        out[k] = cv2.resize(per_slice[k], (w, h), interpolation=cv2.INTER_LINEAR).astype(np.uint8)
    return out
