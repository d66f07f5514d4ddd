"""Grad-CAM for every branch of a grader, mapped back to the original image coordinates.

Computed with pytorch-grad-cam's ``GradCAM`` (it handles Conv3d feature maps since its PR #466) through a
per-branch wrapper, so multi-input graders work: the wrapper feeds one level's tensor while the other levels'
features stay fixed. Hooks are released by a context manager (:func:`gradcam`) even when an error occurs.

Fast path (the default target, a branch's trunk output): the inference pass already kept every trunk output
(:class:`engine.models.multilevel.ForwardCache`), so the CAM wrapper takes the cached feature map itself as
its input and only the pooling + fusion head run forward and backward again. A target layer inside a trunk
(a checkpoint may name one) takes the general path: that level's branch runs again with hooks.

Maps: every :class:`CamMap` ``heatmap`` is uint8, 0..255 = relevance 0..1 (min-max normalised per map),
in the original array's coordinates:

- ``fundus``: ``(H, W)`` of the photo; ``disc``: ``(H, W)`` of the photo, zero outside the crop box;
- ``oct``: ``(N, H, W)`` of the volume, one slice per B-scan.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Mapping, Optional, Sequence

import numpy as np
import torch
from torch import nn

from engine.heatmaps import CamMap
from engine.models.multilevel import ForwardCache, MultiLevelGrader
from engine.models.preprocess import LEVEL_MODALITY, Placement, Prepared, map_to_original_2d, map_to_volume


@contextmanager
def gradcam(model: nn.Module, target_layer: nn.Module) -> Iterator[Any]:
    """A pytorch-grad-cam ``GradCAM`` whose forward/backward hooks are released on exit, error or not."""
    from pytorch_grad_cam import GradCAM

    cam = GradCAM(model=model, target_layers=[target_layer])
    try:
        yield cam
    finally:
        cam.activations_and_grads.release()


class _HeadWrapper(nn.Module):
    """Input: one level's trunk output ``(B, C, ...)``; output: logits with the other levels held fixed."""

    def __init__(self, model: MultiLevelGrader, level: str, cache: ForwardCache) -> None:
        super().__init__()
        self.model = model
        self.level = level
        self.anchor = nn.Identity()  # the Grad-CAM target: its output is the level's feature map
        self._others = {k: v for k, v in cache.feature_maps.items() if k != level}
        self._extra = cache.extra

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        fm = self.anchor(feature_map.detach().requires_grad_(True))
        return self.model.head_from_maps({**self._others, self.level: fm}, self._extra)


class _BranchWrapper(nn.Module):
    """Input: one level's network input; output: logits with the other levels' feature maps held fixed."""

    def __init__(self, model: MultiLevelGrader, level: str, cache: ForwardCache) -> None:
        super().__init__()
        self.model = model
        self.level = level
        self._others = {k: v for k, v in cache.feature_maps.items() if k != level}
        self._extra = cache.extra

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fm = self.model.branches[self.level].feature_map(x.detach().requires_grad_(True))
        return self.model.head_from_maps({**self._others, self.level: fm}, self._extra)


def raw_cams(
    model: MultiLevelGrader,
    cache: ForwardCache,
    target_class: int,
    levels: Optional[Sequence[str]] = None,
    inputs: Optional[Mapping[str, torch.Tensor]] = None,
    target_layers: Optional[Mapping[str, str]] = None,
) -> dict[str, np.ndarray]:
    """Grad-CAM of ``target_class`` for each level, float32 in [0, 1] at the CAM's own resolution.

    Args:
        model: the grader network (eval mode).
        cache: from ``model.forward_cached(inputs)`` (batch of 1).
        target_class: class index to explain.
        levels: subset of ``model.level_names`` (default: all).
        inputs: the network inputs; needed only for target layers inside a trunk.
        target_layers: ``{level: dotted module name}``; default (and fast) is ``branches.<level>.trunk``.
    """
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    out: dict[str, np.ndarray] = {}
    targets = [ClassifierOutputTarget(int(target_class))]
    with torch.enable_grad():
        for level in levels or model.level_names:
            layer_name = (target_layers or {}).get(level, f"branches.{level}.trunk")
            if layer_name == f"branches.{level}.trunk":
                wrapper: nn.Module = _HeadWrapper(model, level, cache)
                layer, tensor = wrapper.anchor, cache.feature_maps[level]
            else:
                if inputs is None:
                    raise ValueError(f"target layer {layer_name!r} needs the network inputs")
                wrapper = _BranchWrapper(model, level, cache)
                layer, tensor = model.get_submodule(layer_name), inputs[level]
            with gradcam(wrapper, layer) as cam:
                grayscale = cam(input_tensor=tensor, targets=targets)  # (1, *spatial) float32 in [0, 1]
            out[level] = np.asarray(grayscale[0], np.float32)
    return out


def to_original(level: str, raw: np.ndarray, placement: Placement, target_class: int, model: str = "") -> CamMap:
    """Put a raw map back in the original coordinates of its level (see module docstring)."""
    if level == "oct":
        heat = map_to_volume(raw, placement.shape)  # (N, H, W) uint8
    else:
        heat = np.clip(map_to_original_2d(raw, placement) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return CamMap(level, LEVEL_MODALITY[level], heat, raw, placement.box, int(target_class), model)


def explain(
    grader: Any,
    prepared: Mapping[str, Prepared],
    target_class: Optional[int] = None,
    cache: Optional[ForwardCache] = None,
    levels: Optional[Sequence[str]] = None,
    extra: Optional[torch.Tensor] = None,
) -> dict[str, CamMap]:
    """Grad-CAM maps for a :class:`engine.models.registry.Grader` on one exam, in original coordinates.

    Args:
        grader: the grader (``module``, ``name``, ``cam_target_layer``).
        prepared: ``{level: Prepared}`` from :mod:`engine.models.preprocess` (batch of 1).
        target_class: class to explain (default: the grader's own prediction).
        cache: the inference pass's cache (computed here when None).
        levels: which levels (default: all of the grader's).
        extra: ``(1, E)`` extra features when the grader uses them.
    """
    model: MultiLevelGrader = grader.module
    device = next(model.parameters()).device
    inputs = {lv: prepared[lv].tensor.to(device) for lv in model.level_names}
    if extra is not None:
        inputs["extra"] = extra.to(device)
    if cache is None:
        cache = model.forward_cached(inputs)
    if target_class is None:
        target_class = int(cache.logits[0].argmax())
    levels = tuple(levels or model.level_names)
    layers = {lv: grader.cam_target_layer(lv) for lv in levels}
    raws = raw_cams(model, cache, target_class, levels, inputs, layers)
    return {lv: to_original(lv, raws[lv], prepared[lv].placement, target_class, grader.name) for lv in levels}
