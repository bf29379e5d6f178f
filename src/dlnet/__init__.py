"""dlnet: DL-Net image colorization (Gain & Debnath, IEEE Access 2023) and beyond.

The model takes raw L (B, 1, H, W) in 0..100 and predicts raw a*b* (B, 2, H, W).
"""

from .color import LabToRgb, RgbToLab, lab_to_rgb, merge_l_ab, rgb_to_lab
from .encoders import create_encoder, list_encoders, register_encoder
from .kmeans import kmeans
from .losses import GlobalLoss, LocalLoss, global_loss, local_loss
from .model import DLNet, ModelConfig
from .weights import available_models, load_model, save_model



def _installed_version() -> str:
    """The installed distribution's version (pyproject.toml's), the one version lookup."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dlnet")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "0+unknown"


__version__ = _installed_version()

__all__ = [
    "DLNet", "ModelConfig", "GlobalLoss", "LocalLoss", "global_loss", "local_loss", "kmeans",
    "rgb_to_lab", "lab_to_rgb", "merge_l_ab", "RgbToLab", "LabToRgb",
    "create_encoder", "list_encoders", "register_encoder",
    "load_model", "save_model", "available_models", "Colorizer", "InferenceOptions",
]


def __getattr__(name: str):
    # The inference API pulls in image I/O; import it on first use only.
    if name == "Colorizer":
        from .colorizer import Colorizer

        return Colorizer
    if name == "InferenceOptions":
        from .options import InferenceOptions

        return InferenceOptions
    raise AttributeError(f"module 'dlnet' has no attribute {name!r}")
