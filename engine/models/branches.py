"""Backbones by name: 2D from torchvision, 3D from MONAI, plus small ones for tests and shipped CPU models.

A :class:`Branch` is a feature extractor: ``trunk`` maps the input to a feature map (the Grad-CAM target:
its output is what the CAM weights), then global average pooling gives a ``(B, out_dim)`` vector.

- 2D input ``(B, 3, h, w)``, trunk output ``(B, C, h', w')``.
- 3D input ``(B, 1, d, h, w)``, trunk output ``(B, C, d', h', w')``.

Weights are always random at build time (``weights=None``): nothing is ever downloaded; trained weights come
from our own checkpoints. Builders sit in explicit dicts (no string-based imports) so a frozen build sees them.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn


class Branch(nn.Module):
    """``trunk`` (conv feature maps) + global average pooling.

    Attributes:
        trunk: the convolutional part; its output is the Grad-CAM target.
        out_dim: channels of the trunk output = length of the pooled feature vector.
        spatial_dims: 2 or 3.
        backbone: the name it was built from.
    """

    def __init__(self, trunk: nn.Module, out_dim: int, spatial_dims: int, backbone: str) -> None:
        super().__init__()
        self.trunk = trunk
        self.out_dim = int(out_dim)
        self.spatial_dims = int(spatial_dims)
        self.backbone = backbone

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, *spatial)`` -> trunk output ``(B, out_dim, *spatial')``."""
        return self.trunk(x)

    @staticmethod
    def pool(feature_map: torch.Tensor) -> torch.Tensor:
        """Global average over every spatial axis: ``(B, C, ...)`` -> ``(B, C)``."""
        return feature_map.flatten(2).mean(dim=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.feature_map(x))


# ----------------------------------------------------------------------------------------------- 2D builders


def _tv_resnet(name: str) -> Callable[[int], Branch]:
    def build(in_channels: int = 3) -> Branch:
        import torchvision.models as tvm

        net = {"resnet18": tvm.resnet18, "resnet34": tvm.resnet34, "resnet50": tvm.resnet50}[name](weights=None)
        if in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        trunk = nn.Sequential(
            net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4
        )
        return Branch(trunk, net.fc.in_features, 2, name)

    return build


def _tv_densenet(name: str) -> Callable[[int], Branch]:
    def build(in_channels: int = 3) -> Branch:
        import torchvision.models as tvm

        net = {"densenet121": tvm.densenet121, "densenet169": tvm.densenet169}[name](weights=None)
        if in_channels != 3:
            net.features.conv0 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        trunk = nn.Sequential(net.features, nn.ReLU(inplace=False))
        return Branch(trunk, net.classifier.in_features, 2, name)

    return build


def _tv_efficientnet_b0(in_channels: int = 3) -> Branch:
    import torchvision.models as tvm

    net = tvm.efficientnet_b0(weights=None)
    if in_channels != 3:
        net.features[0][0] = nn.Conv2d(in_channels, 32, 3, 2, 1, bias=False)
    return Branch(net.features, 1280, 2, "efficientnet_b0")


def _tv_mobilenet_v3_small(in_channels: int = 3) -> Branch:
    import torchvision.models as tvm

    net = tvm.mobilenet_v3_small(weights=None)
    if in_channels != 3:
        net.features[0][0] = nn.Conv2d(in_channels, 16, 3, 2, 1, bias=False)
    return Branch(net.features, 576, 2, "mobilenet_v3_small")


def _tv_vgg19(in_channels: int = 3) -> Branch:
    import torchvision.models as tvm

    net = tvm.vgg19(weights=None)
    if in_channels != 3:
        net.features[0] = nn.Conv2d(in_channels, 64, 3, 1, 1)
    return Branch(net.features, 512, 2, "vgg19")


def _conv_block(conv: type, norm: type, cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(conv(cin, cout, 3, stride, 1, bias=False), norm(cout), nn.ReLU(inplace=True))


def _plain_cnn(widths: tuple[int, ...], spatial_dims: int, name: str, in_channels: int) -> Branch:
    """A VGG-like stack: the first block strides 2, each following pair (conv stride 2, conv stride 1)."""
    conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
    norm = nn.BatchNorm2d if spatial_dims == 2 else nn.BatchNorm3d
    layers: list[nn.Module] = [_conv_block(conv, norm, in_channels, widths[0], 2)]
    for cin, cout in zip(widths[:-1], widths[1:]):
        layers += [_conv_block(conv, norm, cin, cout, 2), _conv_block(conv, norm, cout, cout, 1)]
    return Branch(nn.Sequential(*layers), widths[-1], spatial_dims, name)


def _tiny2d(in_channels: int = 3) -> Branch:
    """Two stride-2 blocks, 8 channels: for tests only (a few hundred parameters)."""
    return _plain_cnn((4, 8), 2, "tiny2d", in_channels)


def _small2d(in_channels: int = 3) -> Branch:
    """About 0.4 M parameters (1.6 MB): the shipped CPU fundus / disc-crop backbone."""
    return _plain_cnn((16, 32, 64, 96, 128), 2, "small2d", in_channels)


# ----------------------------------------------------------------------------------------------- 3D builders


def _monai_resnet(name: str) -> Callable[[int], Branch]:
    def build(in_channels: int = 1) -> Branch:
        from monai.networks import nets

        fn = {"resnet10_3d": nets.resnet10, "resnet18_3d": nets.resnet18}[name]
        net = fn(spatial_dims=3, n_input_channels=in_channels, num_classes=1, act=("relu", {"inplace": False}))
        trunk = nn.Sequential(
            net.conv1, net.bn1, net.act, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4
        )
        return Branch(trunk, net.fc.in_features, 3, name)

    return build


def _monai_densenet(name: str) -> Callable[[int], Branch]:
    def build(in_channels: int = 1) -> Branch:
        from monai.networks import nets

        if name == "densenet121_3d":
            net = nets.DenseNet121(spatial_dims=3, in_channels=in_channels, out_channels=1)
        else:  # densenet_small_3d: the same architecture, narrow and shallow
            net = nets.DenseNet(
                spatial_dims=3, in_channels=in_channels, out_channels=1, init_features=16, growth_rate=8,
                block_config=(2, 4, 6, 4),
            )
        out_dim = net.class_layers.out.in_features
        return Branch(nn.Sequential(net.features, nn.ReLU(inplace=False)), out_dim, 3, name)

    return build


def _tiny3d(in_channels: int = 1) -> Branch:
    """Two stride-2 3D blocks, 8 channels: for tests only."""
    return _plain_cnn((4, 8), 3, "tiny3d", in_channels)


def _small3d(in_channels: int = 1) -> Branch:
    """About 0.3 M parameters: the shipped CPU OCT backbone."""
    return _plain_cnn((8, 16, 32, 64), 3, "small3d", in_channels)


BACKBONES_2D: dict[str, Callable[..., Branch]] = {
    "resnet18": _tv_resnet("resnet18"),
    "resnet34": _tv_resnet("resnet34"),
    "resnet50": _tv_resnet("resnet50"),
    "densenet121": _tv_densenet("densenet121"),
    "densenet169": _tv_densenet("densenet169"),
    "efficientnet_b0": _tv_efficientnet_b0,
    "mobilenet_v3_small": _tv_mobilenet_v3_small,
    "vgg19": _tv_vgg19,
    "small2d": _small2d,
    "tiny2d": _tiny2d,
}
"""2D backbones (fundus photo, disc crop), input ``(B, 3, h, w)``."""

BACKBONES_3D: dict[str, Callable[..., Branch]] = {
    "densenet121_3d": _monai_densenet("densenet121_3d"),
    "densenet_small_3d": _monai_densenet("densenet_small_3d"),
    "resnet10_3d": _monai_resnet("resnet10_3d"),
    "resnet18_3d": _monai_resnet("resnet18_3d"),
    "small3d": _small3d,
    "tiny3d": _tiny3d,
}
"""3D backbones (OCT volume), input ``(B, 1, d, h, w)``."""


def build_branch(name: str, spatial_dims: int, in_channels: int | None = None) -> Branch:
    """Build backbone ``name`` for 2D (3 channels by default) or 3D (1 channel) input, random weights.

    Raises:
        ValueError: unknown name for that dimensionality (the message lists the known ones).
    """
    table = BACKBONES_2D if spatial_dims == 2 else BACKBONES_3D if spatial_dims == 3 else None
    if table is None:
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
    if name not in table:
        raise ValueError(f"unknown {spatial_dims}D backbone {name!r}; known: {', '.join(sorted(table))}")
    channels = in_channels if in_channels is not None else (3 if spatial_dims == 2 else 1)
    return table[name](channels)
