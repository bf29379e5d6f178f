"""Where bf16 autocast is slower than float32 in CPU training, train those layers in float32.

PyTorch's CPU backward of a depthwise convolution (``groups == channels``) has no fast bf16
kernel: in bf16 it is 3-18x slower than in float32 channels_last (``[32, 144, 32, 32]`` 5x5
stride 2: 157 vs 23 ms; ``[32, 672, 8, 8]`` 5x5 stride 2: 138 vs 8 ms; one thread), and in
EfficientNet-Lite's sixteen depthwise convolutions it was 43% of a training step at 128 px
(``torch.profiler``). The forward pass stays cheap either way. Running just those layers in
float32 (input cast up, autocast off) made a whole step 1.4x faster with the same loss up to
bf16 noise (benchmarks/README.md, train throughput); on a GPU nothing changes.

Example:
    >>> from dlnet.model.net import DLNet, ModelConfig
    >>> model = DLNet(ModelConfig(encoder="efficientnet_lite0", decoder="unet"))
    >>> depthwise_in_float32(model)
    16
    >>> x = torch.rand(1, 1, 64, 64) * 100
    >>> with torch.autocast("cpu", dtype=torch.bfloat16):
    ...     model(x).shape
    torch.Size([1, 2, 64, 64])
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["Float32DepthwiseConv2d", "depthwise_in_float32"]


class Float32DepthwiseConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` that runs in float32 under CPU autocast, else as it is. Same parameters and
    state_dict keys as the ``nn.Conv2d`` it replaces (:func:`depthwise_in_float32` swaps the class
    in place), so checkpoints and shipped weights do not see it. ``(B, C, H, W)`` -> float32
    ``(B, C, H', W')`` on a CPU under autocast."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            with torch.autocast("cpu", enabled=False):
                return super().forward(x.float())
        return super().forward(x)


def depthwise_in_float32(model: nn.Module) -> int:
    """Make every depthwise ``nn.Conv2d`` of ``model`` a :class:`Float32DepthwiseConv2d`, in
    place; returns how many. For training: the inference copy (:mod:`dlnet.model.fast`) runs
    them as fused oneDNN calls, where bf16 is fast."""
    n = 0
    for m in model.modules():
        if type(m) is nn.Conv2d and m.groups > 1 and m.groups == m.in_channels == m.out_channels:
            m.__class__ = Float32DepthwiseConv2d
            n += 1
    return n
