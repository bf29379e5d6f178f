"""A tiny random-init DLNet saved to a file, for tests that need ``--weights`` (no shipped model)."""

from pathlib import Path

import torch

from dlnet.model.net import DLNet, ModelConfig
from dlnet.model.weights import save_model


def tiny_model(encoder: str = "efficientnet_lite0", seed: int = 0) -> DLNet:
    torch.manual_seed(seed)
    return DLNet(ModelConfig(encoder=encoder, decoder_channels=(32, 32, 16, 16, 16, 8, 8))).eval()


def tiny_model_file(folder: Path, encoder: str = "efficientnet_lite0") -> Path:
    return save_model(tiny_model(encoder), Path(folder) / f"tiny-{encoder}.safetensors")
