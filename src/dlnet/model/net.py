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

``head="classification"`` (beyond the paper; Zhang et al. 2016) makes the decoder's last conv
output one logit per a*b* bin (``bins``, default :func:`dlnet.color.abbins.gamut_bins`) instead of
a*b*; :meth:`DLNet.forward_logits` returns them for the classification loss, and
:meth:`DLNet.forward` decodes them with the annealed mean (``model.temperature``, default 0.38),
so it still returns raw a*b* and every caller (inference, ONNX export) is unchanged.

``saturation`` (default 1) multiplies the a*b* the model returns: a regression model predicts the
mean of the colours a grey value could have, which is greyer than any of them, and a gain above
1 gives back colour for some accuracy (docs/RESULTS.md measures the trade). It is an inference
setting saved in the model file: a shipped model carries the gain chosen for it on validation
photos, ``InferenceOptions(saturation=...)`` overrides it per call, training ignores it.

``hints=True`` (beyond the paper; Zhang et al. 2017, "Real-Time User-Guided Image Colorization")
gives the encoder three more input channels, a hint map ``(B, 3, H, W)``: the raw a*b* a user
asked for at some pixels and a 0/1 mask of those pixels (:data:`HINT_CHANNELS`). Their weights
start at zero, so a hint model made from a trained one computes exactly what that one did until
it is trained with simulated hints; with no hints (``hints=None``: an all-zero map) it is an
automatic colorizer like any other. ``hint_skips=True`` (U-Net only) also adds the hint map to
each of the encoder's five maps on their way to the decoder (:func:`pool_hints` to that map's
size, then a zero-initialised 1x1 conv): through the encoder's input alone a few points of
colour reach the decoder only after thousands of training steps, while at the decoder's own
scales a point's colour is one layer from the output.

Example:
    >>> model = DLNet(ModelConfig(encoder="densenet121")).eval()
    >>> model(torch.rand(1, 1, 40, 50) * 100).shape
    torch.Size([1, 2, 40, 50])
    >>> DLNet(ModelConfig(encoder="efficientnet_lite0", decoder="unet"))(torch.rand(1, 1, 64, 64) * 100).shape
    torch.Size([1, 2, 64, 64])
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dlnet.color.abbins import TEMPERATURE, annealed_mean, gamut_bins
from dlnet.model.encoders import Pretrained, create_encoder

__all__ = ["ModelConfig", "DLNet", "DECODERS", "HINT_CHANNELS", "PlainDecoder", "UNetDecoder", "UpsampleConcat",
           "pool_hints", "upsample_concat"]

# Where the decoder upsamples: after these conv indices (0-based) of decoder_channels.
_UPSAMPLE_AFTER = (0, 1, 3, 5, 6)
HEADS = ("regression", "classification")
_HEAD_FIELDS = ("head", "bins", "temperature")  # left out of a regression model's saved config
HINT_CHANNELS = 3  # a hint map's channels: raw a*, raw b* (0 where no hint), mask (1 where a hint)


@dataclass
class ModelConfig:
    """Everything needed to rebuild a DLNet; saved with every checkpoint and shipped model."""

    encoder: str = "densenet121"
    decoder: str = "plain"  # "plain" (the paper's Table 2) or "unet" (skip connections)
    decoder_channels: tuple[int, ...] | None = None  # None: the decoder's own default
    ab_scale: float = 110.0  # the head predicts a*b* / ab_scale
    pretrained: Pretrained = False  # only used when the model is first built, not on reload
    head: str = "regression"  # "regression" (a*b*) or "classification" (logits over a*b* bins)
    bins: list[list[float]] | None = None  # classification: bin centres (Q, 2); None: the gamut bins
    temperature: float = TEMPERATURE  # classification: annealed-mean temperature (inference option)
    saturation: float = 1.0  # a*b* gain at the output (inference option; 1 = as trained)
    hints: bool = False  # the encoder also takes a hint map (user colour points), see the module doc
    hint_skips: bool = False  # hints: the map also joins each skip connection (U-Net), see the module doc

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        if self.head == "regression":  # saved exactly as before the classification head existed
            for name in _HEAD_FIELDS:
                del d[name]
        if self.saturation == 1.0:  # likewise before the saturation existed
            del d["saturation"]
        if not self.hints:  # likewise before hint inputs existed
            del d["hints"]
        if not self.hint_skips:
            del d["hint_skips"]
        return d

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
        if d.get("head", "regression") not in HEADS:
            raise ValueError(f"unknown head {d['head']!r}; available: {', '.join(HEADS)}")
        return cls(**d)


def pool_hints(hints: torch.Tensor, factor: int) -> torch.Tensor:
    """A hint map ``(B, 3, H, W)`` (a*, b*, mask) at ``1/factor`` of its size: the mask is 1
    where any pixel of a cell is hinted and a*b* the mean of the cell's hinted pixels, so a
    3-pixel point is as strong at 1/32 as at full size. H and W must be multiples of ``factor``.

    Example:
        >>> h = torch.zeros(1, 3, 4, 4); h[0, :, 0, 0] = torch.tensor([0.5, -0.5, 1.0])
        >>> pool_hints(h, 2)[0, :, 0, 0].tolist(), pool_hints(h, 2)[0, 2].sum().item()
        ([0.5, -0.5, 1.0], 1.0)
    """
    if factor == 1:
        return hints
    ab, mask = hints[:, :2], hints[:, 2:]
    share = F.avg_pool2d(mask, factor)
    ab = F.avg_pool2d(ab * mask, factor) / share.clamp_min(1e-6)
    return torch.cat([ab, (share > 0).to(hints.dtype)], dim=1)


def _conv_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True))


class PlainDecoder(nn.Module):
    """The paper's Table 2: 3x3 conv + ReLU blocks, nearest x2 upsampling, linear 2-channel head.

    Takes the encoder's 1/32 map ``(B, C, H/32, W/32)``, returns ``(B, out_channels, H, W)``.
    """

    default_channels = (512, 256, 256, 128, 128, 64, 32)
    uses_skips = False
    stride = 1  # the head predicts at full size

    def __init__(self, feature_channels: tuple[int, ...], channels: tuple[int, ...] | None = None,
                 out_channels: int = 2) -> None:
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
        layers.append(nn.Conv2d(cin, out_channels, 3, padding=1))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, upsample: bool = True) -> torch.Tensor:
        return self.layers(x)


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def upsample_concat(x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
    """A U-Net step's input: ``x`` nearest-upsampled to ``skip``'s size, concatenated with it
    ``(B, Cx + Cs, h, w)``."""
    return torch.cat([F.interpolate(x, size=skip.shape[-2:], mode="nearest"), skip], dim=1)


class UpsampleConcat(nn.Module):
    """:func:`upsample_concat` as a module, so that an inference copy can fuse it with the conv
    that follows (:class:`dlnet.model.fast.UpsampleConcatConv`)."""

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return upsample_concat(x, skip)


class UNetDecoder(nn.Module):
    """U-Net decoder: from 1/32 up to 1/2, each step nearest x2 up, concat the encoder's map of
    that size, two conv-BN-ReLU; a linear head at 1/2, bilinear x2 to full size.

    Takes the five maps of ``Encoder.forward_features``, returns ``(B, out_channels, H, W)``, or
    the head's ``(B, out_channels, H/2, W/2)`` with ``upsample=False``.
    """

    default_channels = (256, 128, 64, 32)  # at 1/16, 1/8, 1/4, 1/2
    uses_skips = True
    stride = 2  # the head predicts at 1/2 size

    def __init__(self, feature_channels: tuple[int, ...], channels: tuple[int, ...] | None = None,
                 out_channels: int = 2) -> None:
        super().__init__()
        channels = channels or self.default_channels
        if len(channels) != 4 or len(feature_channels) != 5:
            raise ValueError(f"unet needs 4 decoder_channels and 5 encoder maps, got {channels}, {feature_channels}")
        cin = feature_channels[-1]
        blocks, self.up_channels = [], []  # up_channels: each step's upsampled input's channels
        for skip, cout in zip(reversed(feature_channels[:-1]), channels):
            blocks.append(nn.Sequential(_conv_bn_relu(cin + skip, cout), _conv_bn_relu(cout, cout)))
            self.up_channels.append(cin)
            cin = cout
        self.blocks = nn.ModuleList(blocks)
        self.merges = nn.ModuleList(UpsampleConcat() for _ in blocks)  # no weights
        self.head = nn.Conv2d(cin, out_channels, 3, padding=1)

    def forward(self, features: list[torch.Tensor], upsample: bool = True) -> torch.Tensor:
        x = features[-1]
        for merge, block, skip in zip(self.merges, self.blocks, reversed(features[:-1])):
            x = block(merge(x, skip))
        x = self.head(x)
        # bilinear x2 of a 2-channel map is 2.5x faster from NCHW than from channels_last, and 3x
        # faster again in fp32 than in autocast's bf16 (CPU); fp32 a*b* are also what every caller wants
        return F.interpolate(x.contiguous().float(), scale_factor=2, mode="bilinear", align_corners=False) if upsample else x


DECODERS: dict[str, type[nn.Module]] = {"plain": PlainDecoder, "unet": UNetDecoder}
Decoder = PlainDecoder  # the name of earlier versions


class DLNet(nn.Module):
    """Raw L ``(B, 1, H, W)`` in 0..100 -> raw a*b* ``(B, 2, H, W)``.

    With ``head="classification"`` the bin centres are the buffer ``bins`` ``(Q, 2)`` (rebuilt from
    the config, not saved in the state dict) and ``temperature`` (> 0) may be set on a loaded
    model; an ONNX export records the temperature the model has when exported. ``saturation``
    (>= 0, the a*b* gain) may be set on any model and is recorded the same way.
    """

    def __init__(self, config: ModelConfig | None = None) -> None:
        super().__init__()
        config = config or ModelConfig()
        if config.head not in HEADS:
            raise ValueError(f"unknown head {config.head!r}; available: {', '.join(HEADS)}")
        if config.head == "classification" and config.bins is None:
            config = dataclasses.replace(config, bins=gamut_bins().tolist())  # saved explicitly
        self.config = config
        self.encoder = create_encoder(self.config.encoder, self.config.pretrained)
        if config.hints:
            self.encoder.widen_input(HINT_CHANNELS)
        if self.config.decoder not in DECODERS:
            raise ValueError(f"unknown decoder {self.config.decoder!r}; available: {', '.join(DECODERS)}")
        if config.hint_skips and not (config.hints and DECODERS[config.decoder].uses_skips):
            raise ValueError("hint_skips needs hints=True and a decoder with skip connections (unet)")
        if config.hint_skips:  # zero: the model starts out computing what it did without them
            self.hint_convs = nn.ModuleList(nn.Conv2d(HINT_CHANNELS, c, 1) for c in self.encoder.feature_channels)
            for conv in self.hint_convs:
                nn.init.zeros_(conv.weight)
                nn.init.zeros_(conv.bias)
        channels = self.config.decoder_channels
        out_channels = 2 if config.head == "regression" else len(config.bins)
        self.decoder = DECODERS[self.config.decoder](self.encoder.feature_channels, channels and tuple(channels),
                                                     out_channels)
        self.register_buffer("l_mean", torch.tensor(self.encoder.mean * 100.0), persistent=False)
        self.register_buffer("l_std", torch.tensor(self.encoder.std * 100.0), persistent=False)
        if config.head == "classification":
            self.register_buffer("bins", torch.tensor(config.bins, dtype=torch.float32).view(-1, 2), persistent=False)
            self.temperature = config.temperature  # checked
        self.saturation = config.saturation  # checked

    @property
    def temperature(self) -> float:
        """Annealed-mean temperature of a classification head (1: the mean, towards 0: the mode)."""
        return self.config.temperature

    @temperature.setter
    def temperature(self, value: float) -> None:
        if not float(value) > 0:
            raise ValueError(f"temperature must be > 0, got {value!r}")
        self.config.temperature = float(value)

    @property
    def saturation(self) -> float:
        """The a*b* gain applied to every output (1: as trained; > 1 more colour, < 1 less)."""
        return self.config.saturation

    @saturation.setter
    def saturation(self, value: float) -> None:
        if not 0 <= float(value) < float("inf"):
            raise ValueError(f"saturation must be a finite number >= 0, got {value!r}")
        self.config.saturation = float(value)

    def _decode(self, l: torch.Tensor, upsample: bool = True, hints: torch.Tensor | None = None) -> torch.Tensor:
        """The decoder's output for L padded to a multiple of 32 (uncropped)."""
        h, w = l.shape[-2:]
        m = self.encoder.reduction
        pad_h, pad_w = (-h) % m, (-w) % m
        x = (l - self.l_mean) / self.l_std
        if pad_h or pad_w:
            # Replicate (not zero) padding: a black border would read as a dark object.
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        if self.config.hints:
            h = self._hint_input(hints, l, pad_h, pad_w).to(x.dtype)
            x = torch.cat([x, h], dim=1)
        elif hints is not None:
            raise ValueError("this model takes no hints (ModelConfig.hints is False)")
        features = self.encoder.forward_features(x) if self.decoder.uses_skips else self.encoder(x)
        if self.config.hint_skips:  # each map plus its hints, pooled to its size
            features = [f + conv(pool_hints(h, x.shape[-1] // f.shape[-1]))
                        for f, conv in zip(features, self.hint_convs)]
        return self.decoder(features, upsample)

    def _hint_input(self, hints: torch.Tensor | None, l: torch.Tensor, pad_h: int, pad_w: int) -> torch.Tensor:
        """The encoder's hint channels: a*b* / ab_scale and the mask, zero-padded (no hints there)."""
        if hints is None:
            b, _, h, w = l.shape
            return l.new_zeros(b, HINT_CHANNELS, h + pad_h, w + pad_w)
        if hints.shape[1] != HINT_CHANNELS or hints.shape[-2:] != l.shape[-2:]:
            raise ValueError(f"hints must be (B, {HINT_CHANNELS}, H, W) like L {tuple(l.shape)}, got {tuple(hints.shape)}")
        scale = hints.new_tensor([1 / self.config.ab_scale, 1 / self.config.ab_scale, 1.0]).view(1, -1, 1, 1)
        return F.pad(hints * scale, (0, pad_w, 0, pad_h))

    def forward(self, l: torch.Tensor, temperature: float | None = None,
                hints: torch.Tensor | None = None) -> torch.Tensor:
        """Raw L ``(B, 1, H, W)`` -> raw a*b* ``(B, 2, H, W)``. ``temperature`` overrides the
        classification head's annealed-mean temperature for this call (a regression head has none).
        ``hints`` ``(B, 3, H, W)``: raw a*, b* and a 0/1 mask of the pixels a user coloured
        (models with ``config.hints`` only; None: no hints)."""
        h, w = l.shape[-2:]
        if self.config.head == "regression":
            ab = self._decode(l, hints=hints) * self.config.ab_scale
        else:
            ab = self.logits_to_ab(self._decode(l, upsample=False, hints=hints), temperature)
        if self.config.saturation != 1.0:
            ab = ab * self.config.saturation
        return ab[..., :h, :w]

    def logits_to_ab(self, logits: torch.Tensor, temperature: float | None = None) -> torch.Tensor:
        """Bin logits ``(B, Q, h, w)`` -> a*b* ``(B, 2, h*s, w*s)`` float32: the annealed mean at
        ``temperature`` (default: the model's), then bilinear upsampling by the decoder's stride ``s``."""
        ab = annealed_mean(logits, self.bins, self.temperature if temperature is None else temperature)
        if self.decoder.stride > 1:
            ab = F.interpolate(ab, scale_factor=self.decoder.stride, mode="bilinear", align_corners=False)
        return ab

    def forward_logits(self, l: torch.Tensor, hints: torch.Tensor | None = None) -> torch.Tensor:
        """Raw L ``(B, 1, H, W)`` -> bin logits ``(B, Q, ceil(H/s), ceil(W/s))`` of a classification
        head, at the decoder's own output size (``s = decoder.stride``: 1 plain, 2 U-Net)."""
        if self.config.head != "classification":
            raise ValueError("forward_logits needs a model with head='classification'")
        s = self.decoder.stride
        return self._decode(l, upsample=False, hints=hints)[..., :-(-l.shape[-2] // s), :-(-l.shape[-1] // s)]

