"""Inference copies of a model that compute the same a*b* with less work: what the Colorizer runs.

Three rewrites, all exact up to float rounding (fp32 within 1e-4 a*b* units), checked on a random
L before the copy is used:

- :func:`fold_batchnorm`: at inference a BatchNorm is a per-channel affine map, so
  ``bn(conv(x))`` is one convolution with scaled weights and a bias. EfficientNet-Lite's
  conv-BN-ReLU6 blocks spent about 20% of a CPU forward pass in BatchNorm.
- :class:`UpsampleConcatConv`: a U-Net step convolves (3x3) the concatenation of ``x``
  nearest-upsampled x2 and the encoder's ``skip``. Each output pixel of the upsampled half sees
  only a 2x2 neighbourhood of ``x`` (the 3x3 kernel's rows and columns summed per output phase),
  which is exactly a stride-2 transposed convolution of ``x`` with a 4x4 kernel: 4/9 of the
  multiply-adds, no upsampled copy or concatenation, and the phases come out interleaved. In the
  shipped U-Net this half is more than half of the decoder's work (benchmarks/README.md, inference).
- :class:`ConvAct`: on a CPU, a convolution and the ReLU/ReLU6 after it (and a U-Net step's
  sum + ReLU) run as one oneDNN call (the fused operators Inductor uses), instead of writing the
  convolution's output to memory and reading it back: the activations were 10% of a bf16 pass.

Example:
    >>> from dlnet.model.net import DLNet, ModelConfig
    >>> model = DLNet(ModelConfig(encoder="efficientnet_lite0", decoder="unet")).eval()
    >>> fast = optimize_for_inference(model)
    >>> sum(isinstance(m, nn.BatchNorm2d) for m in fast.modules()), type(fast.decoder.merges[0]).__name__
    (0, 'UpsampleConcatConv')
    >>> sum(isinstance(m, ConvAct) for m in fast.modules()) > 0  # on a CPU build with oneDNN
    True
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from dlnet.model.net import UNetDecoder, UpsampleConcat, upsample_concat

__all__ = ["fold_batchnorm", "optimize_for_inference", "UpsampleConcatConv", "ConvAct"]

# oneDNN's convolution with fused pointwise operators (what Inductor emits on a CPU); None where
# this build of torch lacks it, and then every fused module runs the plain ops.
_POINTWISE = (torch.ops.mkldnn._convolution_pointwise
              if torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise") else None)
# The activations it fuses: oneDNN's name and scalars for each module type.
_ACTS = {nn.ReLU: ("relu", []), nn.ReLU6: ("hardtanh", [0.0, 6.0])}


def _fused_args(x: torch.Tensor, conv: nn.Conv2d, *others: torch.Tensor) -> list | None:
    """``[x, others..., weight, bias]`` in the dtype the convolution would run in (autocast's, on
    a CPU), or None where the fused operator is not for this call: not a CPU, no oneDNN, or under
    ``torch.compile``, which fuses on its own (and whose shape rules for this operator disagree
    with its eager strides)."""
    if _POINTWISE is None or x.device.type != "cpu" or torch.compiler.is_compiling():
        return None
    dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype
    return [t if t is None else t.to(dtype) for t in (x, *others, conv.weight, conv.bias)]


class ConvAct(nn.Module):
    """``act(conv(x))`` for a ``nn.Conv2d`` and an ``nn.ReLU``/``nn.ReLU6``, as one oneDNN call on a
    CPU (the plain two ops elsewhere). ``(B, cin, H, W)`` -> ``(B, cout, H', W')``."""

    def __init__(self, conv: nn.Conv2d, act: nn.Module) -> None:
        super().__init__()
        if type(conv) is not nn.Conv2d or type(act) not in _ACTS or conv.padding_mode != "zeros":
            raise ValueError("ConvAct needs an nn.Conv2d (zero padding) and an nn.ReLU or nn.ReLU6")
        self.conv, self.act = conv, act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        args = _fused_args(x, self.conv)
        if args is None or isinstance(self.conv.padding, str):
            return self.act(self.conv(x))
        c = self.conv
        return _POINTWISE(*args, list(c.padding), list(c.stride), list(c.dilation), c.groups, *_ACTS[type(self.act)], "")


# A 3x3 conv (rows r = 0, 1, 2 at offsets -1, 0, 1) of x nearest-upsampled x2 reads input row m at
# output rows y with (y + r - 1) // 2 = m. A transposed convolution (stride 2, padding 1) writes
# input row m to output row y = 2m - 1 + k with its tap k, so tap k is the sum of the kernel rows
# with k + r in {2, 3}; the same holds for columns.
_TAPS = torch.tensor([[0.0, 0, 1], [0, 1, 1], [1, 1, 0], [1, 0, 0]])  # (transposed tap k, kernel row)


class UpsampleConcatConv(nn.Module):
    """``conv(cat([nearest_x2(x), skip]))`` for a 3x3, padding-1 ``conv``, computed without
    upsampling ``x`` (see the module docstring). ``x (B, cx, h, w)``, ``skip (B, cs, 2h, 2w)`` ->
    ``(B, cout, 2h, 2w)``; other sizes fall back to the plain computation. With ``relu``, the ReLU
    that follows the convolution is applied too (fused with the sum on a CPU)."""

    def __init__(self, conv: nn.Conv2d, cx: int, relu: bool = False) -> None:
        super().__init__()
        if conv.kernel_size != (3, 3) or conv.padding != (1, 1) or conv.stride != (1, 1) or conv.groups != 1:
            raise ValueError("UpsampleConcatConv needs a 3x3 convolution with padding 1")
        w = conv.weight.detach()
        self.conv, self.relu = conv, relu  # conv: the fallback for sizes that are not exactly x2
        self.skip = nn.Conv2d(w.shape[1] - cx, w.shape[0], 3, padding=1, bias=conv.bias is not None)
        self.skip.weight.data.copy_(w[:, cx:])
        if conv.bias is not None:
            self.skip.bias.data.copy_(conv.bias.detach())
        taps = _TAPS.to(w)
        self.up = nn.ConvTranspose2d(cx, w.shape[0], 4, stride=2, padding=1, bias=False)
        self.up.weight.data.copy_(torch.einsum("kr,ls,oirs->iokl", taps, taps, w[:, :cx]))  # (cx, cout, 4, 4)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        if tuple(skip.shape[-2:]) != (2 * x.shape[-2], 2 * x.shape[-1]):
            y = self.conv(upsample_concat(x, skip))
        else:
            up = self.up(x)
            # oneDNN fuses the sum for channels_last maps (what the Colorizer runs); in NCHW its bf16
            # add + ReLU falls back to an ATen kernel that does not exist
            cl = skip.is_contiguous(memory_format=torch.channels_last) and up.is_contiguous(memory_format=torch.channels_last)
            args = _fused_args(skip, self.skip, up) if cl else None
            if args is not None:  # skip's convolution, + up, then ReLU, in one oneDNN call
                return _POINTWISE.binary(*args, [1, 1], [1, 1], [1, 1], 1, "add", 1.0,
                                         "relu" if self.relu else None, [], None)
            y = self.skip(skip) + up
        return torch.relu(y) if self.relu else y


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
                # the step's ReLU (after the folded BatchNorm) moves into the fused module
                relu = [type(m) for m in block[0][1:]] in ([nn.ReLU], [nn.Identity, nn.ReLU])
                decoder.merges[i] = UpsampleConcatConv(first, decoder.up_channels[i], relu)
                block[0][0] = nn.Identity()
                if relu:
                    block[0][-1] = nn.Identity()


def _activation(m: nn.Module) -> nn.Module | None:
    """The ReLU/ReLU6 that ``m`` is, or that a folded BatchNorm left behind (a Sequential of it and
    Identities), else None."""
    rest = [c for c in m if not isinstance(c, nn.Identity)] if type(m) is nn.Sequential else [m]
    return rest[0] if len(rest) == 1 and type(rest[0]) in _ACTS else None


def _fuse_activations(model: nn.Module) -> None:
    """Replace each convolution registered right before its activation (Identities between) by a
    :class:`ConvAct`, in place; the activation becomes an Identity."""
    if _POINTWISE is None:
        return
    for parent in list(model.modules()):
        children = list(parent.named_children())
        for i, (name, conv) in enumerate(children):
            j = i + 1
            while j < len(children) and type(children[j][1]) is nn.Identity:
                j += 1
            if type(conv) is nn.Conv2d and j < len(children) and (act := _activation(children[j][1])) is not None:
                setattr(parent, name, ConvAct(conv, act))
                setattr(parent, children[j][0], nn.Identity())


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
    return optimize_for_inference(model, check, fuse_upsampling=False, fuse_activations=False)


def optimize_for_inference(model: nn.Module, check: bool = True, fuse_upsampling: bool = True,
                           fuse_activations: bool = True) -> nn.Module:
    """An inference copy of ``model`` with BatchNorms folded (:func:`fold_batchnorm`) and, with
    ``fuse_upsampling``, U-Net upsampling fused into its convolutions (:class:`UpsampleConcatConv`)
    and, with ``fuse_activations``, activations into theirs (:class:`ConvAct`); ``model`` is left
    as it is, and returned as is when nothing applies (no copy of, e.g., an ONNX session) or, with
    ``check``, when the copy's output differs from it."""
    unet = fuse_upsampling and any(isinstance(m, UNetDecoder) for m in model.modules())
    if next(_conv_bn_pairs(model), None) is None and not unet:
        return model
    fast = copy.deepcopy(model).eval()
    _fold(fast)
    if unet:
        _fuse_upsampling(fast)
    if fuse_activations:
        _fuse_activations(fast)
    return _checked(model, fast) if check else fast
