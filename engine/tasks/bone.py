"""Bone health (healthy vs osteoporosis) from a panoramic dental radiograph, with a Grad-CAM heat map.

Preprocessing after the reference: rolling-ball background subtraction with a ball of radius 180 px at full
resolution, and downscaling by 3; two input variants, the full image and a square crop. For speed the
background is estimated on a copy reduced a further ``BACKGROUND_SHRINK`` times (as ImageJ's "Subtract
Background" also shrinks the image, by block minimum, for large balls): the ball becomes an ellipsoid whose in-plane semi-axes
are ``180 / (3 * shrink)`` px and whose intensity semi-axis stays 180 grey levels, i.e. the same ball in the
full-resolution geometry; the smooth background is then resized back and subtracted
(``skimage.restoration.rolling_ball`` with ``ellipsoid_kernel``; no hand-written loops).

The classifier is a torchvision EfficientNet (the B0 layout; ``width_mult`` / ``depth_mult`` shrink it for
the small shipped CPU weights), one grey input channel, softmax over ``("healthy", "osteoporosis")``.

Shapes: radiograph ``(H, W)`` uint8 grey, ``(row, col)``; preprocessed ``(H/3, W/3)`` (full) or a square
``(H/3, H/3)`` crop (crop); network input ``(1, 1, h, w)`` float32; the heat map comes back ``(H, W)``
float32 in [0, 1] in the original radiograph's pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any, Mapping, Optional, Sequence

import cv2
import numpy as np
import torch
from torch import nn

from engine.models.preprocess import Placement, map_to_original_2d

CLASSES = ("healthy", "osteoporosis")
ARCHITECTURE = "efficientnet"
ROLLING_BALL_RADIUS = 180
"""Ball radius in px at full resolution (and in grey levels along the intensity axis)."""
DOWNSCALE = 3
BACKGROUND_SHRINK = 4
"""The background is estimated on the downscaled image reduced this many times more (speed)."""
VARIANTS = ("full", "crop")
DEFAULT_SIZES = {"full": (256, 512), "crop": (320, 320)}
MEAN, STD = 0.5, 0.25


class BoneInputError(ValueError):
    """The image cannot be used (wrong shape, empty). ``str()`` is user-readable."""


# ----------------------------------------------------------------------------------------------- preprocessing


def subtract_background(
    image: np.ndarray,
    radius: float = ROLLING_BALL_RADIUS / DOWNSCALE,
    shrink: int = BACKGROUND_SHRINK,
    intensity_radius: float = ROLLING_BALL_RADIUS,
) -> np.ndarray:
    """Rolling-ball background subtraction of an ``(H, W)`` grey image -> float32 ``(H, W)`` >= 0.

    Args:
        image: (H, W) uint8 or float.
        radius: in-plane ball radius in px of ``image`` (180 / 3 for a radiograph already downscaled by 3).
        shrink: estimate the background on a copy reduced by this factor (1 = exact, slow for big balls);
            the ball's in-plane semi-axes shrink with it, its intensity semi-axis does not.
        intensity_radius: the ball's semi-axis along the intensity axis, in grey levels (a ball of radius
            180 px at full resolution is 180 grey levels high).
    """
    from skimage import restoration

    img = np.asarray(image, np.float32)
    if img.ndim != 2 or min(img.shape) < 2:
        raise BoneInputError(f"a radiograph must be a 2-D grey image, got shape {img.shape}")
    h, w = img.shape
    shrink = max(1, int(shrink))
    # Shrink by the block minimum (as ImageJ does): the ball rolls under the surface, so the minimum keeps
    # the lower envelope it touches. Edge-pad to a whole number of blocks.
    ph, pw = -(-h // shrink) * shrink, -(-w // shrink) * shrink
    padded = np.pad(img, ((0, ph - h), (0, pw - w)), mode="edge")
    small = padded.reshape(ph // shrink, shrink, pw // shrink, shrink).min(axis=(1, 3))
    semi = max(1, int(round(radius / shrink)))
    kernel = restoration.ellipsoid_kernel((2 * semi, 2 * semi), float(intensity_radius))
    background = restoration.rolling_ball(small, kernel=kernel).astype(np.float32)
    if shrink > 1:
        background = cv2.resize(background, (pw, ph), interpolation=cv2.INTER_LINEAR)[:h, :w]
    return np.clip(img - background, 0, None).astype(np.float32)


def crop_box(shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """The square crop of an (h, w) image: side min(h, w), centred; ``(row0, col0, row1, col1)``."""
    h, w = shape
    side = min(h, w)
    r0, c0 = (h - side) // 2, (w - side) // 2
    return (r0, c0, r0 + side, c0 + side)


@dataclass
class PreparedRadiograph:
    """The network input and how it maps back.

    Attributes:
        tensor: (1, 1, h, w) float32, normalised.
        image: (h', w') uint8, the preprocessed (background-subtracted, downscaled, cropped) image.
        placement: where the network input sits in the original radiograph (for the heat map).
    """

    tensor: Any
    image: np.ndarray
    placement: Placement


def preprocess(
    image: np.ndarray, variant: str = "full", size: Optional[Sequence[int]] = None, downscale: int = DOWNSCALE
) -> PreparedRadiograph:
    """Radiograph ``(H, W)`` uint8 -> background-subtracted, downscaled (and cropped) network input."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[2] in (3, 4):
        img = cv2.cvtColor(img[..., :3], cv2.COLOR_RGB2GRAY)
    if img.ndim != 2 or min(img.shape) < 3 * downscale:
        raise BoneInputError(f"a radiograph must be a 2-D grey image of at least {3 * downscale} px, got {img.shape}")
    if img.dtype != np.uint8:
        raise BoneInputError(f"a radiograph must be uint8 grey (engine convention), got {img.dtype}")
    big_h, big_w = img.shape
    h, w = max(1, big_h // downscale), max(1, big_w // downscale)
    small = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    flat = subtract_background(small, ROLLING_BALL_RADIUS / downscale)
    flat = np.clip(flat + 0.5, 0, 255).astype(np.uint8)
    box = (0, 0, h, w)
    if variant == "crop":
        box = crop_box((h, w))
        flat = flat[box[0] : box[2], box[1] : box[3]]
    size = tuple(int(s) for s in (size or DEFAULT_SIZES[variant]))
    net_in = cv2.resize(flat, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    tensor = (torch.from_numpy(net_in).float().div_(255.0).sub_(MEAN).div_(STD))[None, None]
    sy, sx = big_h / h, big_w / w
    orig_box = (int(round(box[0] * sy)), int(round(box[1] * sx)), int(round(box[2] * sy)), int(round(box[3] * sx)))
    return PreparedRadiograph(tensor, flat, Placement((big_h, big_w), orig_box, size))


# ----------------------------------------------------------------------------------------------- network


class BoneNet(nn.Module):
    """EfficientNet trunk (B0 layout) + global pooling + dropout + linear; input (B, in_channels, h, w)."""

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        width_mult: float = 1.0,
        depth_mult: float = 1.0,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        from torchvision.models.efficientnet import EfficientNet, MBConvConfig

        bneck = partial(MBConvConfig, width_mult=float(width_mult), depth_mult=float(depth_mult))
        setting = [
            bneck(1, 3, 1, 32, 16, 1),
            bneck(6, 3, 2, 16, 24, 2),
            bneck(6, 5, 2, 24, 40, 2),
            bneck(6, 3, 2, 40, 80, 3),
            bneck(6, 5, 1, 80, 112, 3),
            bneck(6, 5, 2, 112, 192, 4),
            bneck(6, 3, 1, 192, 320, 1),
        ]  # torchvision's efficientnet_b0 configuration
        net = EfficientNet(setting, dropout=float(dropout), num_classes=int(num_classes))
        stem = net.features[0][0]
        if int(in_channels) != stem.in_channels:
            net.features[0][0] = nn.Conv2d(int(in_channels), stem.out_channels, 3, 2, 1, bias=False)
        self.trunk = net.features  # Grad-CAM target: its output feature map
        self.dropout = nn.Dropout(float(dropout))
        self.fc = nn.Linear(net.classifier[1].in_features, int(num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.trunk(x).mean(dim=(2, 3))))


def build_model(spec: Mapping[str, Any]) -> BoneNet:
    """The network a ``bone`` checkpoint spec describes (random weights)."""
    if spec.get("architecture", ARCHITECTURE) != ARCHITECTURE:
        raise ValueError(f"unknown bone architecture {spec.get('architecture')!r}; expected {ARCHITECTURE!r}")
    return BoneNet(**dict(spec.get("kwargs", {})))


def make_spec(
    variant: str = "full",
    *,
    size: Optional[Sequence[int]] = None,
    width_mult: float = 1.0,
    depth_mult: float = 1.0,
    dropout: float = 0.2,
) -> dict[str, Any]:
    """A checkpoint spec; ``width_mult = depth_mult = 1`` is EfficientNet-B0 proper."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    size = [int(s) for s in (size or DEFAULT_SIZES[variant])]
    return {
        "task": "bone",
        "architecture": ARCHITECTURE,
        "kwargs": {
            "in_channels": 1, "num_classes": 2, "width_mult": float(width_mult), "depth_mult": float(depth_mult),
            "dropout": float(dropout),
        },
        "inputs": {
            "variant": variant,
            "size": size,
            "downscale": DOWNSCALE,
            "rolling_ball_radius_px": ROLLING_BALL_RADIUS,
            "background_shrink": BACKGROUND_SHRINK,
            "mean": [MEAN],
            "std": [STD],
        },
        "classes": list(CLASSES),
        "cam_target_layers": ["trunk"],
    }


# ----------------------------------------------------------------------------------------------- inference


@dataclass
class BoneResult:
    """One radiograph's answer.

    Attributes:
        probabilities: {"healthy": p, "osteoporosis": 1 - p}.
        diagnosis: the more probable class.
        heatmap: (H, W) float32 in [0, 1], Grad-CAM of the diagnosed class in the original pixels
            (zeros outside the crop for the crop variant); None when not asked for.
        preprocessed: the background-subtracted, downscaled image the network saw (before resizing).
        model: the model's name; notes: plain sentences (variant, preprocessing).
    """

    probabilities: dict[str, float]
    diagnosis: str
    heatmap: Optional[np.ndarray]
    preprocessed: np.ndarray
    model: str
    notes: list[str] = field(default_factory=list)


def diagnose(image: np.ndarray, model: Any, *, cam: bool = True) -> BoneResult:
    """Classify one radiograph ``(H, W)`` uint8 with a loaded bone :class:`~engine.tasks._common.TaskModel`."""
    from engine.explain import gradcam

    inputs = model.spec["inputs"]
    prepared = preprocess(image, inputs["variant"], inputs["size"], int(inputs.get("downscale", DOWNSCALE)))
    net = model.module
    x = prepared.tensor.to(model.device)
    with torch.inference_mode():
        probs = torch.softmax(net(x).float(), dim=1)[0].cpu().numpy()
    label = int(np.argmax(probs))
    heat = None
    if cam:
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        with torch.enable_grad(), gradcam(net, net.trunk) as engine_cam:
            raw = engine_cam(input_tensor=x, targets=[ClassifierOutputTarget(label)])[0]
        heat = np.clip(map_to_original_2d(raw, prepared.placement), 0.0, 1.0).astype(np.float32)
    notes = [
        f"{inputs['variant']} variant; rolling-ball background ({ROLLING_BALL_RADIUS} px ball at full resolution, "
        f"estimated on a {BACKGROUND_SHRINK}x reduced copy), downscaled by {inputs.get('downscale', DOWNSCALE)}"
    ]
    return BoneResult(
        {CLASSES[0]: float(probs[0]), CLASSES[1]: float(probs[1])}, CLASSES[label], heat, prepared.image,
        model.name, notes,
    )


def __getattr__(name: str) -> Any:
    # ``TRAIN_TASK`` (the engine.train adapter) is imported on first use: inference never loads the training code.
    if name == "TRAIN_TASK":
        from engine.tasks.training import BONE_TASK

        return BONE_TASK
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
