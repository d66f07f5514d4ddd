"""One-, two- and three-level graders: fundus, disc crop, OCT volume branches fused by concat or add.

A one-level grader is the same class with one branch, so every grader shares one forward, one checkpoint
format and one Grad-CAM path.

- ``fusion="concat"``: pooled branch features are concatenated (their widths may differ).
- ``fusion="add"``: each branch's features are first projected (Linear) to ``width``, then summed.

Optional ``extra_features`` (e.g. biomarkers such as the vertical cup-to-disc ratio) are appended to the fused
vector before the head. The head is ``Dropout -> Linear(hidden) -> ReLU -> Linear(num_classes)``.

Inputs are a dict ``{"fundus": (B, 3, h, w), "disc": (B, 3, h, w), "oct": (B, 1, d, h, w), "extra": (B, E)}``
float32; output logits ``(B, num_classes)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

import torch
from torch import nn

from engine.models.branches import Branch, build_branch
from engine.models.preprocess import LEVELS

FUSIONS = ("concat", "add")
LEVEL_DIMS = {"fundus": 2, "disc": 2, "oct": 3}


@dataclass
class ForwardCache:
    """What one forward pass computed, kept so Grad-CAM needs no second forward through the trunks.

    ``feature_maps[level]`` is the trunk output ``(B, C, ...)`` (detached), ``logits`` ``(B, K)``.
    """

    feature_maps: dict[str, torch.Tensor]
    extra: Optional[torch.Tensor]
    logits: torch.Tensor


class MultiLevelGrader(nn.Module):
    """Grader over 1-3 levels.

    Args:
        levels: ``{level: backbone_name}`` for a subset of ``("fundus", "disc", "oct")``.
        fusion: ``"concat"`` or ``"add"``.
        width: common width for ``add`` (ignored by ``concat``).
        hidden: hidden units of the head.
        dropout: dropout before the head.
        num_classes: 3 for the GAMMA grades.
        extra_features: names of scalar features appended to the fused vector (order matters).
    """

    def __init__(
        self,
        levels: Mapping[str, str],
        fusion: str = "concat",
        width: int = 128,
        hidden: int = 64,
        dropout: float = 0.2,
        num_classes: int = 3,
        extra_features: Sequence[str] = (),
    ) -> None:
        super().__init__()
        unknown = [lv for lv in levels if lv not in LEVELS]
        if not levels or unknown:
            raise ValueError(f"levels must be a non-empty subset of {LEVELS}, got {list(levels)}")
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
        self.level_names = tuple(lv for lv in LEVELS if lv in levels)  # fixed order
        self.fusion = fusion
        self.extra_features = tuple(extra_features)
        self.branches = nn.ModuleDict({lv: build_branch(levels[lv], LEVEL_DIMS[lv]) for lv in self.level_names})
        if fusion == "add":
            self.projections = nn.ModuleDict(
                {lv: nn.Linear(self.branches[lv].out_dim, width) for lv in self.level_names}
            )
            fused = width
        else:
            self.projections = nn.ModuleDict({lv: nn.Identity() for lv in self.level_names})
            fused = sum(self.branches[lv].out_dim for lv in self.level_names)
        self.head = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(fused + len(self.extra_features), hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )
        self.num_classes = num_classes

    # -------------------------------------------------------------------------------------------- forward

    def fuse(self, pooled: Mapping[str, torch.Tensor], extra: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Pooled features per level ``(B, C_level)`` (+ extra ``(B, E)``) -> logits ``(B, K)``."""
        parts = [self.projections[lv](pooled[lv]) for lv in self.level_names]
        fused = torch.cat(parts, dim=1) if self.fusion == "concat" else torch.stack(parts, 0).sum(0)
        if self.extra_features:
            if extra is None:
                raise ValueError(f"this grader needs extra features {self.extra_features}")
            fused = torch.cat([fused, extra.to(fused.dtype)], dim=1)
        return self.head(fused)

    def head_from_maps(self, maps: Mapping[str, torch.Tensor], extra: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Trunk outputs per level -> logits (pooling, projection, fusion, head)."""
        return self.fuse({lv: Branch.pool(maps[lv]) for lv in self.level_names}, extra)

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        missing = [lv for lv in self.level_names if lv not in inputs]
        if missing:
            raise ValueError(f"missing inputs for levels {missing}")
        pooled = {lv: self.branches[lv](inputs[lv]) for lv in self.level_names}
        return self.fuse(pooled, inputs.get("extra"))

    @torch.no_grad()
    def forward_cached(self, inputs: Mapping[str, torch.Tensor]) -> ForwardCache:
        """Inference forward that keeps the trunk outputs for Grad-CAM (no autograd graph)."""
        maps = {lv: self.branches[lv].feature_map(inputs[lv]) for lv in self.level_names}
        extra = inputs.get("extra")
        return ForwardCache(maps, extra, self.head_from_maps(maps, extra))

    # ------------------------------------------------------------------------- transfer and freezing

    def load_branch(self, level: str, state_dict: Mapping[str, Any], source_level: Optional[str] = None) -> None:
        """Initialise branch ``level`` from another grader's state dict (e.g. a trained one-level checkpoint).

        ``source_level`` is the branch name inside that checkpoint (default: the same level). The backbones
        must match; a mismatch raises ``RuntimeError`` from ``load_state_dict`` naming the bad keys.
        """
        prefix = f"branches.{source_level or level}."
        sub = {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}
        if not sub:
            raise ValueError(f"no weights for branch {source_level or level!r} in that state dict")
        self.branches[level].load_state_dict(sub, strict=True)

    def freeze(self, levels: Sequence[str], frozen: bool = True) -> None:
        """Stop (or restart) training of the given branches; frozen branches also stay in eval mode."""
        for lv in levels:
            for p in self.branches[lv].parameters():
                p.requires_grad_(not frozen)
        current = set(getattr(self, "_frozen", set()))
        self._frozen = current | set(levels) if frozen else current - set(levels)

    def train(self, mode: bool = True) -> "MultiLevelGrader":
        super().train(mode)
        for lv in getattr(self, "_frozen", ()):
            self.branches[lv].eval()  # keep BatchNorm statistics of frozen branches
        return self


def cam_target_layers(model: MultiLevelGrader) -> dict[str, str]:
    """Dotted names of the Grad-CAM target layer of each level (the trunk: its output is weighted)."""
    return {lv: f"branches.{lv}.trunk" for lv in model.level_names}

