"""MONAI transform pipelines with caching for the training readers.

Transforms before the first random one are cached by ``monai.data.CacheDataset`` (the decoded image, uint8 at
network size: a quarter of the memory of float32). :class:`ToFloat` is a MONAI ``ThreadUnsafe`` transform on
purpose: CacheDataset stops caching at it, so the float conversion is not cached. Random augmentation runs
afterwards, and only in training folds (``train=True``).

Shapes: a decoded 2D image is ``(C, h, w)`` uint8 in the cache and ``(C, h, w)`` float32 standardised in a
batch; ``(row, col)`` order; colour RGB.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np
from monai.transforms import ThreadUnsafe

from engine.train.datasets.common import DEFAULT_MEAN, DEFAULT_STD, read_grey, read_rgb, size_pair


class LoadResized:
    """Transform: ``item[key]`` (a path) -> ``(3, h, w)`` uint8 at the network size (area interpolation).

    Deterministic, so a ``CacheDataset`` keeps its result. Other keys pass through.
    """

    def __init__(self, keys: Sequence[str], size: Union[int, Sequence[int]], grey: bool = False) -> None:
        self.keys = tuple(keys)
        self.size = size_pair(size)
        self.grey = grey

    def __call__(self, item: Mapping[str, Any]) -> dict[str, Any]:
        import cv2

        out = dict(item)
        for key in self.keys:
            image = read_grey(item[key]) if self.grey else read_rgb(item[key])
            h, w = self.size
            if image.shape[:2] != (h, w):
                interp = cv2.INTER_AREA if image.shape[0] > h else cv2.INTER_LINEAR
                image = cv2.resize(image, (w, h), interpolation=interp)
            out[key] = np.ascontiguousarray(image[None] if image.ndim == 2 else image.transpose(2, 0, 1))
        return out


def augmentation_2d(keys: Sequence[str], options: Mapping[str, Any], mask_keys: Sequence[str] = ()) -> list[Any]:
    """MONAI random transforms for 2D training images (and their masks, with nearest interpolation).

    ``options`` (the config's ``[data]`` table): ``flip`` (probability, default 0.5), ``rotate_deg`` (10),
    ``zoom`` (0.1 = +-10 %), ``intensity`` (0.1 = contrast / brightness jitter), ``augment`` (false disables all).
    """
    from monai.transforms import RandAdjustContrastd, RandAffined, RandFlipd, RandScaleIntensityd

    if not options.get("augment", True):
        return []
    keys, mask_keys = list(keys), list(mask_keys)
    both = keys + mask_keys
    out: list[Any] = []
    flip = float(options.get("flip", 0.5))
    if flip > 0:
        out.append(RandFlipd(keys=both, prob=flip, spatial_axis=1))
    rotate = float(options.get("rotate_deg", 10.0))
    zoom = float(options.get("zoom", 0.1))
    if rotate > 0 or zoom > 0:
        out.append(
            RandAffined(
                keys=both,
                prob=0.8,
                rotate_range=(np.deg2rad(rotate),),
                scale_range=(zoom, zoom),
                mode=["bilinear"] * len(keys) + ["nearest"] * len(mask_keys),
                padding_mode="zeros",
            )
        )
    intensity = float(options.get("intensity", 0.1))
    if intensity > 0:
        out.append(RandScaleIntensityd(keys=keys, factors=intensity, prob=0.5))
        out.append(RandAdjustContrastd(keys=keys, gamma=(1 - intensity * 2, 1 + intensity * 2), prob=0.5))
    return out


class ToFloat(ThreadUnsafe):
    """Transform: uint8 image -> float32 in [0, 1] (so that MONAI's intensity / affine transforms apply).

    ``ThreadUnsafe`` only to mark the end of the cached part of a pipeline (it is in fact thread-safe)."""

    def __init__(self, keys: Sequence[str]) -> None:
        self.keys = tuple(keys)

    def __call__(self, item: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(item)
        for key in self.keys:
            out[key] = np.asarray(item[key], dtype=np.float32) / 255.0
        return out


class Standardise:
    """Transform: float image in [0, 1] -> float32 tensor ``(x - mean) / std`` per channel."""

    def __init__(self, keys: Sequence[str], mean: Sequence[float] = DEFAULT_MEAN, std: Sequence[float] = DEFAULT_STD) -> None:
        self.keys = tuple(keys)
        self.mean = np.asarray(mean, np.float32)
        self.std = np.asarray(std, np.float32)

    def __call__(self, item: Mapping[str, Any]) -> dict[str, Any]:
        import torch

        out = dict(item)
        for key in self.keys:
            value = item[key]
            if hasattr(value, "as_tensor"):
                value = value.as_tensor()
            t = torch.as_tensor(value, dtype=torch.float32)
            c = t.shape[0]
            shape = (c,) + (1,) * (t.dim() - 1)
            mean = torch.as_tensor(self.mean[:c]).reshape(shape)
            std = torch.as_tensor(self.std[:c]).reshape(shape)
            out[key] = ((t - mean) / std).contiguous()
        return out


class SelectKeys:
    """Transform: keep only ``keys`` (drops paths etc. that the default collate cannot batch usefully);
    lists of numbers (multi-label targets) become float32 arrays so that they batch to ``(B, L)``."""

    def __init__(self, keys: Sequence[str]) -> None:
        self.keys = tuple(keys)

    def __call__(self, item: Mapping[str, Any]) -> dict[str, Any]:
        out = {}
        for k in self.keys:
            if k in item:
                v = item[k]
                if isinstance(v, (list, tuple)) and v and all(isinstance(x, (int, float)) for x in v):
                    v = np.asarray(v, dtype=np.float32)
                out[k] = v
        return out


def image_dataset(
    items: Sequence[Mapping[str, Any]],
    *,
    image_keys: Sequence[str] = ("image",),
    keep_keys: Sequence[str] = ("image", "label", "id"),
    size: Union[int, Sequence[int]] = 256,
    train: bool = False,
    options: Optional[Mapping[str, Any]] = None,
    mean: Sequence[float] = DEFAULT_MEAN,
    std: Sequence[float] = DEFAULT_STD,
) -> Any:
    """A MONAI ``CacheDataset`` (or plain ``Dataset`` when ``options["cache_rate"] == 0``) of 2D images.

    Pipeline: load + resize to ``size`` (cached, uint8) -> [training only: random flip / affine / intensity]
    -> standardise -> keep ``keep_keys``. ``options`` is the config's ``[data]`` table.
    """
    from monai.data import CacheDataset, Dataset
    from monai.transforms import Compose

    options = dict(options or {})
    transforms: list[Any] = [LoadResized(image_keys, size), ToFloat(image_keys)]
    if train:
        transforms += augmentation_2d(image_keys, options)
    transforms += [Standardise(image_keys, mean, std), SelectKeys(keep_keys)]
    pipeline = Compose(transforms)
    data = [dict(item) for item in items]
    cache_rate = float(options.get("cache_rate", 1.0))
    if cache_rate <= 0:
        return Dataset(data, transform=pipeline)
    return CacheDataset(data, transform=pipeline, cache_rate=cache_rate, num_workers=int(options.get("cache_workers", 0)) or None,
                        progress=False, copy_cache=True)
