"""Every backbone builds by name without downloading, gives a feature map and a pooled vector."""

import pytest
import torch

from engine.models.branches import BACKBONES_2D, BACKBONES_3D, build_branch


@pytest.mark.parametrize("name", sorted(BACKBONES_2D))
def test_2d_backbones_build_offline_and_pool(name):
    branch = build_branch(name, 2).eval()
    with torch.no_grad():
        fmap = branch.feature_map(torch.zeros(1, 3, 40, 56))  # non-square
        vec = branch(torch.zeros(2, 3, 40, 56))
    assert fmap.ndim == 4 and fmap.shape[1] == branch.out_dim
    assert vec.shape == (2, branch.out_dim)


@pytest.mark.parametrize("name", sorted(BACKBONES_3D))
def test_3d_backbones_build_offline_and_pool(name):
    branch = build_branch(name, 3).eval()
    with torch.no_grad():
        fmap = branch.feature_map(torch.zeros(1, 1, 32, 32, 48))
    assert fmap.ndim == 5 and fmap.shape[1] == branch.out_dim
    assert branch.pool(fmap).shape == (1, branch.out_dim)


def test_unknown_backbone_lists_the_known_ones():
    with pytest.raises(ValueError, match="resnet18"):
        build_branch("resnet1000", 2)
    with pytest.raises(ValueError, match="spatial_dims"):
        build_branch("tiny2d", 4)


def test_shipped_small_backbones_stay_small():
    n2d = sum(p.numel() for p in build_branch("small2d", 2).parameters())
    n3d = sum(p.numel() for p in build_branch("small3d", 3).parameters())
    assert n2d * 4 < 3e6 and n3d * 4 < 3e6  # a few MB of float32 each
