"""DL-Net: a grey-input encoder and a plain upsampling CNN decoder that predicts a*b*.

The model takes raw L ``(B, 1, H, W)`` in 0..100 and returns raw a*b* ``(B, 2, H, W)`` (about
-110..110): all normalisation lives inside, so callers never need to know the encoder's
statistics. H and W may be anything; inputs are padded to a multiple of 32 and cropped back.

Decoder (the paper's Table 2, C1..C8 here): 3x3 conv + ReLU blocks with nearest-neighbour x2
upsampling after C1, C2, C4, C6 and C7, so five upsamplings undo the encoder's /32:

    features (C, H/32) -> 512 -> up -> 256 -> up -> 256 -> 128 -> up -> 128 -> 64 -> up -> 32 -> up
    -> 2 (linear, times ``ab_scale``)

That decoder rebuilds colour from the 1/32 map alone (4 x 4 cells at 128 px), so colour comes
out in blobs that bleed across edges. ``decoder="unet"`` (beyond the paper) instead merges the
encoder's 1/16, 1/8, 1/4 and 1/2 maps on the way up (U-Net skip connections, conv-BN-ReLU
blocks), predicts a*b* at 1/2 and upsamples it bilinearly: colour is smooth, edges come from L.
Decoders live in a registry (:data:`DECODERS`), like encoders.

Example:
    >>> model = DLNet(ModelConfig(encoder="densenet121")).eval()
    >>> model(torch.rand(1, 1, 40, 50) * 100).shape
    torch.Size([1, 2, 40, 50])
    >>> DLNet(ModelConfig(encoder="efficientnet_lite0", decoder="unet"))(torch.rand(1, 1, 64, 64) * 100).shape
    torch.Size([1, 2, 64, 64])
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .encoders import Pretrained, create_encoder

__all__ = ["ModelConfig", "DLNet", "DECODERS", "PlainDecoder", "UNetDecoder"]

# Where the decoder upsamples: after these conv indices (0-based) of decoder_channels.
_UPSAMPLE_AFTER = (0, 1, 3, 5, 6)


@dataclass
class ModelConfig:
    """Everything needed to rebuild a DLNet; saved with every checkpoint and shipped model."""

    encoder: str = "densenet121"
    decoder: str = "plain"  # "plain" (the paper's Table 2) or "unet" (skip connections)
    decoder_channels: tuple[int, ...] | None = None  # None: the decoder's own default
    ab_scale: float = 110.0  # the head predicts a*b* / ab_scale
    pretrained: Pretrained = False  # only used when the model is first built, not on reload

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown ModelConfig fields: {sorted(unknown)}")
        d = dict(d)
        if d.get("decoder_channels") is not None:
            d["decoder_channels"] = tuple(d["decoder_channels"])
        if d.get("decoder", "plain") not in DECODERS:
            raise ValueError(f"unknown decoder {d['decoder']!r}; available: {', '.join(DECODERS)}")
        return cls(**d)


def _conv_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True))


class PlainDecoder(nn.Module):
    """The paper's Table 2: 3x3 conv + ReLU blocks, nearest x2 upsampling, linear 2-channel head.

    Takes the encoder's 1/32 map ``(B, C, H/32, W/32)``, returns ``(B, 2, H, W)``.
    """

    default_channels = (512, 256, 256, 128, 128, 64, 32)
    uses_skips = False

    def __init__(self, feature_channels: tuple[int, ...], channels: tuple[int, ...] | None = None) -> None:
        super().__init__()
        in_channels, channels = feature_channels[-1], channels or self.default_channels
        if len(channels) != 7:
            raise ValueError(f"decoder_channels needs 7 entries (C1..C7), got {len(channels)}")
        layers: list[nn.Module] = []
        cin = in_channels
        for i, cout in enumerate(channels):
            layers.append(_conv_relu(cin, cout))
            if i in _UPSAMPLE_AFTER:
                layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
            cin = cout
        layers.append(nn.Conv2d(cin, 2, 3, padding=1))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class UNetDecoder(nn.Module):
    """U-Net decoder: from 1/32 up to 1/2, each step nearest x2 up, concat the encoder's map of
    that size, two conv-BN-ReLU; a linear head at 1/2, bilinear x2 to full size.

    Takes the five maps of ``Encoder.forward_features``, returns ``(B, 2, H, W)``.
    """

    default_channels = (256, 128, 64, 32)  # at 1/16, 1/8, 1/4, 1/2
    uses_skips = True

    def __init__(self, feature_channels: tuple[int, ...], channels: tuple[int, ...] | None = None) -> None:
        super().__init__()
        channels = channels or self.default_channels
        if len(channels) != 4 or len(feature_channels) != 5:
            raise ValueError(f"unet needs 4 decoder_channels and 5 encoder maps, got {channels}, {feature_channels}")
        cin = feature_channels[-1]
        blocks = []
        for skip, cout in zip(reversed(feature_channels[:-1]), channels):
            blocks.append(nn.Sequential(_conv_bn_relu(cin + skip, cout), _conv_bn_relu(cout, cout)))
            cin = cout
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Conv2d(cin, 2, 3, padding=1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = features[-1]
        for block, skip in zip(self.blocks, reversed(features[:-1])):
            x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
            x = block(torch.cat([x, skip], dim=1))
        return F.interpolate(self.head(x), scale_factor=2, mode="bilinear", align_corners=False)


DECODERS: dict[str, type[nn.Module]] = {"plain": PlainDecoder, "unet": UNetDecoder}
Decoder = PlainDecoder  # the name of earlier versions


class DLNet(nn.Module):
    """Raw L ``(B, 1, H, W)`` in 0..100 -> raw a*b* ``(B, 2, H, W)``."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config or ModelConfig()
        self.encoder = create_encoder(self.config.encoder, self.config.pretrained)
        if self.config.decoder not in DECODERS:
            raise ValueError(f"unknown decoder {self.config.decoder!r}; available: {', '.join(DECODERS)}")
        channels = self.config.decoder_channels
        self.decoder = DECODERS[self.config.decoder](self.encoder.feature_channels, channels and tuple(channels))
        self.register_buffer("l_mean", torch.tensor(self.encoder.mean * 100.0), persistent=False)
        self.register_buffer("l_std", torch.tensor(self.encoder.std * 100.0), persistent=False)

    def forward(self, l: torch.Tensor) -> torch.Tensor:
        h, w = l.shape[-2:]
        m = self.encoder.reduction
        pad_h, pad_w = (-h) % m, (-w) % m
        x = (l - self.l_mean) / self.l_std
        if pad_h or pad_w:
            # Replicate (not zero) padding: a black border would read as a dark object.
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        features = self.encoder.forward_features(x) if self.decoder.uses_skips else self.encoder(x)
        ab = self.decoder(features) * self.config.ab_scale
        return ab[..., :h, :w]
