"""Shared helpers: photos made here, so the suite needs nothing outside the repo (tiny models: _tiny_model.py)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

torch.set_num_threads(2)


@pytest.fixture(scope="session", autouse=True)
def _onnx_cache(tmp_path_factory):
    """The ONNX exports of ``dlnet colorize`` (dlnet.infer.onnxrun) go to a folder of this run, not ~/.cache."""
    old = os.environ.get("DLNET_CACHE")
    os.environ["DLNET_CACHE"] = str(tmp_path_factory.mktemp("dlnet-cache"))
    yield
    if old is None:
        os.environ.pop("DLNET_CACHE", None)
    else:
        os.environ["DLNET_CACHE"] = old


def gradient_photo(h: int = 64, w: int = 64, seed: int = 0) -> np.ndarray:
    """A colourful uint8 RGB photo-like image (smooth gradients plus a saturated patch)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    phase = rng.uniform(0, 2 * np.pi, 3)
    rgb = np.stack([0.5 + 0.4 * np.sin(4 * x + 3 * y + p) for p in phase], axis=-1)
    rgb[h // 4: h // 2, w // 4: w // 2] = rng.uniform(0, 1, 3)
    return (rgb * 255).clip(0, 255).astype(np.uint8)


def write_photo_folder(root, categories: int = 2, per_category: int = 10, size: int = 64) -> None:
    """An ImageFolder-style tree of synthetic photos: root/cat{i}/{j}.jpg."""
    for c in range(categories):
        folder = root / f"cat{c}"
        folder.mkdir(parents=True, exist_ok=True)
        for j in range(per_category):
            Image.fromarray(gradient_photo(size, size, seed=c * 1000 + j)).save(folder / f"{j}.jpg", quality=95)
