"""Zhang, Isola & Efros, "Colorful Image Colorization", ECCV 2016: the network, for speed only.

Written from the paper's description (its Table 4 and Section 2), random weights: it exists so
that ``benchmarks/inference.py`` can time DL-Net against it side by side on the same machine.

Eight conv blocks, VGG-style 3x3 convolutions + ReLU, BatchNorm after each block:

    block  convs  channels  stride / dilation     resolution (224 input)
    1      2      64        last conv stride 2    112
    2      2      128       last conv stride 2    56
    3      3      256       last conv stride 2    28
    4      3      512       -                     28
    5      3      512       dilation 2            28
    6      3      512       dilation 2            28
    7      3      512       -                     28
    8      3      256       first is a 4x4 transposed conv, stride 2   56

then a 1x1 conv to 313 colour bins, a softmax, and the annealed-mean decode to a*b*
(``T = 0.38``: softmax of logits / T, expectation over the bin centres), upsampled x4 to the
input size.

Example:
    >>> net = ZhangECCV16().eval()
    >>> net(torch.rand(1, 1, 224, 224) * 100).shape
    torch.Size([1, 2, 224, 224])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ZhangECCV16", "ab_bins"]


def ab_bins(step: float = 10.0, n: int = 313) -> torch.Tensor:
    """``(n, 2)`` a*b* bin centres on a ``step`` grid. The paper keeps the 313 grid cells that
    hold in-gamut colours; for timing only the count matters, so the ``n`` grid points nearest
    the origin stand in for them."""
    r = torch.arange(-110.0, 110.0 + step, step)
    grid = torch.cartesian_prod(r, r)
    return grid[grid.norm(dim=1).argsort()[:n]]


def _block(cin: int, cout: int, n: int, stride_last: int = 1, dilation: int = 1) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(n):
        stride = stride_last if i == n - 1 else 1
        layers += [nn.Conv2d(cin if i == 0 else cout, cout, 3, stride, padding=dilation, dilation=dilation),
                   nn.ReLU(inplace=True)]
    layers.append(nn.BatchNorm2d(cout))
    return nn.Sequential(*layers)


class ZhangECCV16(nn.Module):
    """Raw L ``(B, 1, H, W)`` 0..100 -> raw a*b* ``(B, 2, H, W)`` (H, W multiples of 8)."""

    def __init__(self, temperature: float = 0.38) -> None:
        super().__init__()
        self.temperature = temperature
        self.features = nn.Sequential(
            _block(1, 64, 2, stride_last=2),
            _block(64, 128, 2, stride_last=2),
            _block(128, 256, 3, stride_last=2),
            _block(256, 512, 3),
            _block(512, 512, 3, dilation=2),
            _block(512, 512, 3, dilation=2),
            _block(512, 512, 3),
            nn.ConvTranspose2d(512, 256, 4, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 313, 1),
        )
        self.register_buffer("bins", ab_bins())

    def forward(self, l: torch.Tensor) -> torch.Tensor:
        logits = self.features((l - 50.0) / 100.0)  # the paper centres L at 50
        probs = torch.softmax(logits.float() / self.temperature, dim=1)  # annealed mean, T = 0.38
        ab = torch.einsum("bqhw,qc->bchw", probs, self.bins)
        return F.interpolate(ab, scale_factor=4, mode="bilinear", align_corners=False)
