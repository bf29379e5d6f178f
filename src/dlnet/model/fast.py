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
  Every convolution, with an activation or not, runs this way with its weight packed once into
  oneDNN's layout (:class:`_Packed`), not cast and reordered per call: a quarter of one photo's
  model call.

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

__all__ = ["fold_batchnorm", "optimize_for_inference", "UpsampleConcatConv", "ConvAct", "native_bf16"]


def native_bf16(device: torch.device | str) -> bool:
    """Whether ``device`` runs bf16 fast: a CUDA GPU that supports it, or a CPU with AVX-512 or
    AMX. Elsewhere bf16 is emulated and slower than float32 (a training step of the shipped
    network at 128 px on a 2-core AVX2 EPYC: 15-22 s in bf16 autocast, 1.4-2.4 s in float32), and
    some oneDNN bf16 kernels are missing altogether."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and torch.backends.cpu.get_cpu_capability() in ("AVX512", "AMX")

# oneDNN's convolution with fused pointwise operators (what Inductor emits on a CPU); None where
# this build of torch lacks it, and then every fused module runs the plain ops.
_POINTWISE = (torch.ops.mkldnn._convolution_pointwise
              if torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise") else None)
# The activations it fuses: oneDNN's name and scalars for each module type.
_ACTS = {nn.ReLU: ("relu", []), nn.ReLU6: ("hardtanh", [0.0, 6.0])}


def _dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype a CPU convolution of ``x`` runs in: autocast's, else ``x``'s."""
    return torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype


def _fusable(x: torch.Tensor) -> bool:
    """Whether the fused operators are for this call: a CPU with oneDNN (in bf16, one that runs it
    natively), and not under ``torch.compile``, which fuses on its own (and whose shape rules for these operators disagree
    with their eager strides)."""
    return (_POINTWISE is not None and x.device.type == "cpu" and not torch.compiler.is_compiling()
            and (_dtype(x) != torch.bfloat16 or native_bf16("cpu")))  # oneDNN packs bf16 only on AVX-512/AMX


def _packable(conv: nn.Module) -> bool:
    """Whether ``conv`` is a plain ``nn.Conv2d`` that oneDNN's fused call can run: zero padding
    given as numbers (not ``"same"``), decided once when the inference copy is made."""
    return type(conv) is nn.Conv2d and conv.padding_mode == "zeros" and not isinstance(conv.padding, str)


class _Packed(nn.Module):
    """Base of the fused modules: each convolution's weight cast and reordered once into the
    blocked layout oneDNN computes in, instead of on every call (a plain weight pays that reorder
    per call: 24% of one photo's model call, 6% of a batch's). One pack per dtype and input shape:
    the layout oneDNN wants depends on the batch and the spatial size (on an AMX Xeon a pack made
    for 16 x 224 x 224 ran one 224 photo in 134 ms instead of 19, oneDNN converting the weights
    on every call), while a new pack costs one reorder. A photo's working shape is one of a few
    (:func:`dlnet.infer.options.working_shape`), so the last ``MAX_SHAPES`` are kept.
    Never saved (not a parameter or buffer), never copied, rebuilt on demand."""

    MAX_SHAPES = 8  # packs kept per module: the working shapes of one size at a few batch sizes

    def __init__(self) -> None:
        super().__init__()
        self._packs: dict[tuple[torch.dtype, tuple[int, ...]], dict[str, tuple]] = {}

    def __getstate__(self) -> dict:  # copies and pickles leave oneDNN's opaque tensors behind
        return {**super().__getstate__(), "_packs": {}}

    def _weights(self, name: str, conv: nn.Conv2d | nn.ConvTranspose2d, x: torch.Tensor) -> tuple:
        """``conv``'s (weight, bias) in oneDNN's layout for ``x``'s shape, and ``x`` in the dtype
        they run in."""
        dtype = _dtype(x)
        key = (dtype, tuple(x.shape))
        packs = self._packs.get(key)
        if packs is None:
            while len(self._packs) >= self.MAX_SHAPES:  # the oldest shape goes
                try:
                    self._packs.pop(next(iter(self._packs)), None)
                except (RuntimeError, StopIteration):  # another thread changed them meanwhile
                    break
            packs = self._packs[key] = {}  # one assignment each: safe for concurrent callers
        pack = packs.get(name)
        if pack is None:
            w = conv.weight.detach().to(dtype)
            p, s, d = list(conv.padding), list(conv.stride), list(conv.dilation)
            if isinstance(conv, nn.ConvTranspose2d):
                w = torch.ops.mkldnn._reorder_convolution_transpose_weight(
                    w, p, list(conv.output_padding), s, d, conv.groups, list(x.shape))
            else:
                w = torch._C._nn.mkldnn_reorder_conv2d_weight(w.to_mkldnn(), p, s, d, conv.groups, list(x.shape))
            b = None if conv.bias is None else conv.bias.detach().to(dtype)
            pack = packs[name] = (w, b)
        return pack[0], pack[1], x.to(dtype)


class ConvAct(_Packed):
    """``act(conv(x))`` for a ``nn.Conv2d`` and an ``nn.ReLU``/``nn.ReLU6`` (or ``conv(x)`` alone
    with ``act=None``), as one oneDNN call with a pre-packed weight on a CPU (the plain ops
    elsewhere). ``(B, cin, H, W)`` -> ``(B, cout, H', W')``."""

    def __init__(self, conv: nn.Conv2d, act: nn.Module | None = None) -> None:
        super().__init__()
        if not _packable(conv) or (act is not None and type(act) not in _ACTS):
            raise ValueError("ConvAct needs an nn.Conv2d (zero, numeric padding) and an nn.ReLU, an nn.ReLU6 or None")
        self.conv, self.act = conv, act
        self._attr = ("none", []) if act is None else _ACTS[type(act)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.conv
        if not _fusable(x):
            y = c(x)
            return y if self.act is None else self.act(y)
        w, b, x = self._weights("conv", c, x)
        return _POINTWISE(x, w, b, list(c.padding), list(c.stride), list(c.dilation), c.groups, *self._attr, "")


# A 3x3 conv (rows r = 0, 1, 2 at offsets -1, 0, 1) of x nearest-upsampled x2 reads input row m at
# output rows y with (y + r - 1) // 2 = m. A transposed convolution (stride 2, padding 1) writes
# input row m to output row y = 2m - 1 + k with its tap k, so tap k is the sum of the kernel rows
# with k + r in {2, 3}; the same holds for columns.
_TAPS = torch.tensor([[0.0, 0, 1], [0, 1, 1], [1, 1, 0], [1, 0, 0]])  # (transposed tap k, kernel row)


class UpsampleConcatConv(_Packed):
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
            u, fusable = self.up, _fusable(x)
            if fusable:  # the transposed convolution with its weight pre-packed
                w, _, xd = self._weights("up", u, x)
                up = torch.ops.mkldnn._convolution_transpose_pointwise(
                    xd, w, None, list(u.padding), list(u.output_padding), list(u.stride), list(u.dilation), 1, "none", [], "")
            else:
                up = u(x)
            # oneDNN fuses the sum for channels_last maps (what the Colorizer runs); in NCHW its bf16
            # add + ReLU falls back to an ATen kernel that does not exist
            cl = skip.is_contiguous(memory_format=torch.channels_last) and up.is_contiguous(memory_format=torch.channels_last)
            if cl and fusable:  # skip's convolution, + up, then ReLU, in one oneDNN call
                w, b, sd = self._weights("skip", self.skip, skip)
                return _POINTWISE.binary(sd, up.to(sd.dtype), w, b, [1, 1], [1, 1], [1, 1], 1, "add", 1.0,
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
    """Replace each convolution by a :class:`ConvAct`, in place, with the activation registered
    right after it (Identities between), which becomes an Identity; a convolution without one
    gains the pre-packed weight alone."""
    if _POINTWISE is None:
        return
    for parent in [m for m in model.modules() if not isinstance(m, _Packed)]:
        children = list(parent.named_children())
        for i, (name, conv) in enumerate(children):
            if not _packable(conv):  # e.g. padding="same": left as it is
                continue
            j = i + 1
            while j < len(children) and type(children[j][1]) is nn.Identity:
                j += 1
            act = _activation(children[j][1]) if j < len(children) else None
            setattr(parent, name, ConvAct(conv, act))
            if act is not None:
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
