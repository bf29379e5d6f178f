"""DL-Net: a grey-input encoder and a plain upsampling CNN decoder that predicts a*b*.

The model takes raw L ``(B, 1, H, W)`` in 0..100 and returns raw a*b* ``(B, 2, H, W)`` (about
-110..110): all normalisation lives inside, so callers never need to know the encoder's
statistics. H and W may be anything; inputs are padded to a multiple of 32 and cropped back.

Decoder (the paper's Table 2, C1..C8 here): 3x3 conv + ReLU blocks with nearest-neighbour x2
upsampling after C1, C2, C4, C6 and C7, so five upsamplings undo the encoder's /32:

    features (C, H/32) -> 512 -> up -> 256 -> up -> 256 -> 128 -> up -> 128 -> 64 -> up -> 32 -> up
    -> 2 (linear, times ``ab_scale``)

Example:
    >>> model = DLNet(ModelConfig(encoder="densenet121")).eval()
    >>> model(torch.rand(1, 1, 40, 50) * 100).shape
    torch.Size([1, 2, 40, 50])
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .encoders import Pretrained, create_encoder

__all__ = ["ModelConfig", "DLNet"]

# Where the decoder upsamples: after these conv indices (0-based) of decoder_channels.
_UPSAMPLE_AFTER = (0, 1, 3, 5, 6)


@dataclass
class ModelConfig:
    """Everything needed to rebuild a DLNet; saved with every checkpoint and shipped model."""

    encoder: str = "densenet121"
    decoder_channels: tuple[int, ...] = (512, 256, 256, 128, 128, 64, 32)
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
        if "decoder_channels" in d:
            d["decoder_channels"] = tuple(d["decoder_channels"])
        return cls(**d)


def _conv_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True))


class Decoder(nn.Module):
    """Plain CNN: 3x3 conv + ReLU blocks, nearest-neighbour x2 upsampling, linear 2-channel head."""

    def __init__(self, in_channels: int, channels: tuple[int, ...]) -> None:
        super().__init__()
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


class DLNet(nn.Module):
    """Raw L ``(B, 1, H, W)`` in 0..100 -> raw a*b* ``(B, 2, H, W)``."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config or ModelConfig()
        self.encoder = create_encoder(self.config.encoder, self.config.pretrained)
        self.decoder = Decoder(self.encoder.out_channels, tuple(self.config.decoder_channels))
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
        ab = self.decoder(self.encoder(x)) * self.config.ab_scale
        return ab[..., :h, :w]
