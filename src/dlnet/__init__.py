"""dlnet: DL-Net image colorization (Gain & Debnath, IEEE Access 2023) and beyond.

The model takes raw L (B, 1, H, W) in 0..100 and predicts raw a*b* (B, 2, H, W).

Every public name is imported on first use (PEP 562), so ``import dlnet`` and ``dlnet --help``
cost milliseconds and the inference path imports torch only when it runs the model with it.
"""

from __future__ import annotations

import importlib
import sys
import types

# public name -> the module that defines it
_LAZY = {
    **dict.fromkeys(("LabToRgb", "RgbToLab", "lab_to_rgb", "merge_l_ab", "rgb_to_lab"), "color"),
    **dict.fromkeys(("create_encoder", "list_encoders", "register_encoder"), "encoders"),
    "kmeans": "kmeans",
    **dict.fromkeys(("GlobalLoss", "LocalLoss", "global_loss", "local_loss"), "losses"),
    **dict.fromkeys(("DLNet", "ModelConfig"), "model"),
    **dict.fromkeys(("available_models", "load_model", "save_model"), "weights"),
    "Colorizer": "colorizer",
    "InferenceOptions": "options",
}


def _installed_version() -> str:
    """The installed distribution's version (pyproject.toml's), the one version lookup."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("dlnet")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "0+unknown"


__all__ = [
    "DLNet", "ModelConfig", "GlobalLoss", "LocalLoss", "global_loss", "local_loss", "kmeans",
    "rgb_to_lab", "lab_to_rgb", "merge_l_ab", "RgbToLab", "LabToRgb",
    "create_encoder", "list_encoders", "register_encoder",
    "load_model", "save_model", "available_models", "Colorizer", "InferenceOptions",
]


def __getattr__(name: str):
    if name == "__version__":
        value = _installed_version()
    elif name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    else:
        raise AttributeError(f"module 'dlnet' has no attribute {name!r}")
    globals()[name] = value  # once
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__, "__version__"])


class _Package(types.ModuleType):
    """Keeps a public name that is also a submodule's (``kmeans``) the function: importing the
    submodule ``dlnet.kmeans`` (as ``dlnet.rebalance`` does) would otherwise bind the module here,
    and ``from dlnet import kmeans`` would give the module from then on."""

    def __setattr__(self, name: str, value) -> None:
        if isinstance(value, types.ModuleType) and _LAZY.get(name) == name and hasattr(value, name):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
