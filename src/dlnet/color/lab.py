"""RGB <-> CIE L*a*b* (D65) for batched tensors.

Thin, documented wrappers over kornia's differentiable conversions (sRGB gamma, D65 white point,
the same formulas as scikit-image's ``rgb2lab``/``lab2rgb``). dlnet works in raw Lab units
everywhere: L in 0..100, a* and b* roughly -110..110 for displayable sRGB colours.

Example:
    >>> import torch
    >>> lab = rgb_to_lab(torch.ones(1, 3, 2, 2))      # white
    >>> round(float(lab[0, 0, 0, 0]), 3)
    100.0
"""

from __future__ import annotations

import kornia.color
import torch
from torch import nn

__all__ = ["rgb_to_lab", "lab_to_rgb", "merge_l_ab", "RgbToLab", "LabToRgb"]


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in 0..1, shape ``(B, 3, H, W)`` -> Lab ``(B, 3, H, W)`` (L 0..100, a*b* ~ -110..110).

    Computed in float32 whatever the input dtype: Lab needs more precision than bf16 gives.
    """
    return kornia.color.rgb_to_lab(rgb.float())


def lab_to_rgb(lab: torch.Tensor, clip: bool = True) -> torch.Tensor:
    """Lab ``(B, 3, H, W)`` -> sRGB ``(B, 3, H, W)``; with ``clip`` the result lies in 0..1.

    Colours outside the sRGB gamut are clipped per channel, as scikit-image does.
    """
    return kornia.color.lab_to_rgb(lab.float(), clip=clip)


def merge_l_ab(l: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """Recombine L ``(B, 1, H, W)`` with a*b* ``(B, 2, H, W)`` into sRGB 0..1 ``(B, 3, H, W)``."""
    return lab_to_rgb(torch.cat([l.float(), ab.float()], dim=1))


class RgbToLab(nn.Module):
    """Module twin of :func:`rgb_to_lab`."""

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        return rgb_to_lab(rgb)


class LabToRgb(nn.Module):
    """Module twin of :func:`lab_to_rgb`."""

    def __init__(self, clip: bool = True) -> None:
        super().__init__()
        self.clip = clip

    def forward(self, lab: torch.Tensor) -> torch.Tensor:
        return lab_to_rgb(lab, self.clip)
