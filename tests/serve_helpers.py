"""Shared by the server tests: a small model file whose output is clearly coloured.

A random-init DLNet predicts nearly grey a*b*; zeroing the head's weights and setting its bias
makes it predict one constant colour, so "the result is coloured" can be asserted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dlnet import DLNet, ModelConfig, save_model


def tinted_model_file(path: Path, ab: tuple[float, float] = (30.0, -20.0)) -> Path:
    """Save an efficientnet_lite0 DLNet (random init) predicting constant a*b* = ``ab`` to ``path``."""
    torch.manual_seed(0)
    model = DLNet(ModelConfig(encoder="efficientnet_lite0", pretrained=False))
    head = model.decoder.layers[-1]
    with torch.no_grad():
        head.weight.zero_()
        head.bias.copy_(torch.tensor(ab) / model.config.ab_scale)
    return save_model(model, path)


def mean_chroma(rgb: np.ndarray) -> float:
    """Mean CIE chroma sqrt(a*^2 + b*^2) of an sRGB ``(H, W, 3)`` uint8 image (0 for greys)."""
    from skimage.color import rgb2lab

    lab = rgb2lab(rgb)
    return float(np.hypot(lab[..., 1], lab[..., 2]).mean())
