"""Several disc/cup networks as one: the mean of their class probabilities (imports torch; load it lazily)."""

from __future__ import annotations

import torch


class MemberMean(torch.nn.Module):
    """K networks ``(B, 3, S, S) -> (B, C, S, S)`` logits -> the log of their mean softmax probabilities
    ``(B, C, S, S)``, so a softmax of the output gives the mean probabilities back."""

    def __init__(self, networks: list[torch.nn.Module]) -> None:
        super().__init__()
        self.members = torch.nn.ModuleList(networks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = torch.stack([torch.softmax(m(x).float(), 1) for m in self.members]).mean(0)
        return torch.log(mean.clamp_min(1e-8))
