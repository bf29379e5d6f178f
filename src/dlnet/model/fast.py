"""Inference copies of a model that compute the same a*b* with less work: what the Colorizer runs.

Two rewrites, both exact up to float rounding (fp32 within 1e-4 a*b* units), checked on a random
L before the copy is used:

- :func:`fold_batchnorm`: at inference a BatchNorm is a per-channel affine map, so
  ``bn(conv(x))`` is one convolution with scaled weights and a bias. EfficientNet-Lite's
  conv-BN-ReLU6 blocks spent about 20% of a CPU forward pass in BatchNorm.
- :class:`UpsampleConcatConv`: a U-Net step convolves (3x3) the concatenation of ``x``
  nearest-upsampled x2 and the encoder's ``skip``. Each output pixel of the upsampled half sees
  only a 2x2 neighbourhood of ``x``, so that half is four 2x2 convolutions of ``x`` at its own,
  low resolution (one per output phase, the 3x3 kernel's rows and columns summed accordingly),
  interleaved: 4/9 of the multiply-adds, and no upsampled copy or concatenation. In the shipped
  U-Net this half is more than half of the decoder's work (benchmarks/README.md, inference).

Example:
    >>> from dlnet.model.net import DLNet, ModelConfig
    >>> model = DLNet(ModelConfig(encoder="efficientnet_lite0", decoder="unet")).eval()
    >>> fast = optimize_for_inference(model)
    >>> sum(isinstance(m, nn.BatchNorm2d) for m in fast.modules()), type(fast.decoder.merges[0]).__name__
    (0, 'UpsampleConcatConv')
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from dlnet.model.net import UNetDecoder, UpsampleConcat, upsample_concat

__all__ = ["fold_batchnorm", "optimize_for_inference", "UpsampleConcatConv"]

# For output phase a (row 2i + a of the upsampled map), a 3x3 kernel's rows dy = -1, 0, 1 read
# rows i - 1, i, i (a = 0) or i, i, i + 1 (a = 1) of x: the 2x2 kernel's two taps sum these rows.
_TAPS = torch.tensor([[[1.0, 0, 0], [0, 1, 1]], [[1, 1, 0], [0, 0, 1]]])  # (phase, tap, kernel row)


class UpsampleConcatConv(nn.Module):
    """``conv(cat([nearest_x2(x), skip]))`` for a 3x3, padding-1 ``conv``, computed without
    upsampling ``x`` (see the module docstring). ``x (B, cx, h, w)``, ``skip (B, cs, 2h, 2w)`` ->
    ``(B, cout, 2h, 2w)``; other sizes fall back to the plain computation."""

    def __init__(self, conv: nn.Conv2d, cx: int) -> None:
        super().__init__()
        if conv.kernel_size != (3, 3) or conv.padding != (1, 1) or conv.stride != (1, 1) or conv.groups != 1:
            raise ValueError("UpsampleConcatConv needs a 3x3 convolution with padding 1")
        w = conv.weight.detach()
        self.cout = w.shape[0]
        self.conv = conv  # the fallback for sizes that are not exactly x2
        self.skip = nn.Conv2d(w.shape[1] - cx, self.cout, 3, padding=1, bias=conv.bias is not None)
        self.skip.weight.data.copy_(w[:, cx:])
        if conv.bias is not None:
            self.skip.bias.data.copy_(conv.bias.detach())
        taps = _TAPS.to(w)
        phases = torch.einsum("api,bqj,ocij->oabcpq", taps, taps, w[:, :cx])  # (cout, a, b, cx, 2, 2)
        self.phases = nn.Conv2d(cx, self.cout * 4, 2, bias=False)
        self.phases.weight.data.copy_(phases.reshape(self.cout * 4, cx, 2, 2))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        if tuple(skip.shape[-2:]) != (2 * h, 2 * w):
            return self.conv(upsample_concat(x, skip))
        # Phase (a, c) of output pixel (2i + a, 2j + c) is the 2x2 conv of padded x at (i + a, j + c).
        y = self.phases(F.pad(x, (1, 1, 1, 1))).view(b, self.cout, 2, 2, h + 1, w + 1)
        rows = [torch.stack([y[:, :, a, c, a:a + h, c:c + w] for c in (0, 1)], dim=-1) for a in (0, 1)]
        up = torch.stack(rows, dim=3).reshape(b, self.cout, 2 * h, 2 * w)  # (b, cout, h, a, w, c)
        return self.skip(skip) + up


def _conv_bn_pairs(root: nn.Module):
    """(parent, conv name, conv, BatchNorm name, BatchNorm): a conv and the BatchNorm registered
    right after it in the same parent (timm's blocks, ``nn.Sequential``)."""
    for parent in list(root.modules()):
        children = list(parent.named_children())
        for (conv_name, conv), (bn_name, bn) in zip(children, children[1:]):
            if (type(conv) is nn.Conv2d and isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats
                    and bn.num_features == conv.out_channels):
                yield parent, conv_name, conv, bn_name, bn


def _fold(model: nn.Module) -> None:
    """Fold every conv-BatchNorm pair of ``model`` in place; timm's ``BatchNormAct2d`` leaves its
    dropout and activation behind."""
    for parent, conv_name, conv, bn_name, bn in _conv_bn_pairs(model):
        setattr(parent, conv_name, fuse_conv_bn_eval(conv, bn))
        rest = [m for m in (getattr(bn, "drop", None), getattr(bn, "act", None)) if m is not None]
        setattr(parent, bn_name, nn.Sequential(*rest) if rest else nn.Identity())


def _fuse_upsampling(model: nn.Module) -> None:
    """Replace each U-Net step's upsample + concat + first conv by an :class:`UpsampleConcatConv`, in place."""
    for decoder in [m for m in model.modules() if isinstance(m, UNetDecoder)]:
        for i, block in enumerate(decoder.blocks):
            first = block[0][0]
            if type(decoder.merges[i]) is UpsampleConcat and isinstance(first, nn.Conv2d):
                decoder.merges[i] = UpsampleConcatConv(first, decoder.up_channels[i])
                block[0][0] = nn.Identity()


def _checked(model: nn.Module, fast: nn.Module) -> nn.Module:
    """``fast`` if it gives ``model``'s a*b* on a random L (1e-3 units), else ``model``."""
    p = next(model.parameters())
    l = (torch.rand(1, 1, 64, 64, generator=torch.Generator().manual_seed(0)) * 100).to(p.device, p.dtype)
    with torch.inference_mode():
        return fast if torch.allclose(model.eval()(l), fast(l), atol=1e-3, rtol=0) else model


def fold_batchnorm(model: nn.Module, check: bool = True) -> nn.Module:
    """An inference copy of ``model`` with every BatchNorm that directly follows a convolution
    folded into it; ``model`` is left as it is, and returned as is when it has nothing to fold
    (or, with ``check``, when the copy's output differs from it).

    Example:
        >>> from dlnet.model.net import DLNet, ModelConfig
        >>> folded = fold_batchnorm(DLNet(ModelConfig(encoder="efficientnet_lite0", decoder="unet")).eval())
        >>> sum(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
        0
    """
    return optimize_for_inference(model, check, fuse_upsampling=False)


def optimize_for_inference(model: nn.Module, check: bool = True, fuse_upsampling: bool = True) -> nn.Module:
    """An inference copy of ``model`` with BatchNorms folded (:func:`fold_batchnorm`) and, with
    ``fuse_upsampling``, U-Net upsampling fused into its convolutions (:class:`UpsampleConcatConv`);
    ``model`` is left as it is, and returned as is when nothing applies (no copy of, e.g., an ONNX
    session) or, with ``check``, when the copy's output differs from it."""
    unet = fuse_upsampling and any(isinstance(m, UNetDecoder) for m in model.modules())
    if next(_conv_bn_pairs(model), None) is None and not unet:
        return model
    fast = copy.deepcopy(model).eval()
    _fold(fast)
    if unet:
        _fuse_upsampling(fast)
    return _checked(model, fast) if check else fast
