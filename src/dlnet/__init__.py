"""dlnet: DL-Net image colorization (Gain & Debnath, IEEE Access 2023) and beyond.

The model takes raw L (B, 1, H, W) in 0..100 and predicts raw a*b* (B, 2, H, W).

The subpackages follow the data path: :mod:`dlnet.io` (photos in and out, atomic writes) ->
:mod:`dlnet.color` (RGB <-> L*a*b*, a*b* bins, k-means, rebalancing) -> :mod:`dlnet.model` (the
network, its encoders, saved and shipped weights) -> :mod:`dlnet.infer` (the one inference
path: photos, films, ONNX) and :mod:`dlnet.train` (data, losses, training), scored by
:mod:`dlnet.evaluate`; :mod:`dlnet.apps` is what users run (the ``dlnet`` command, the server).

Every public name is imported on first use (PEP 562), so ``import dlnet`` and ``dlnet --help``
cost milliseconds and the inference path imports torch only when it runs the model with it.
"""

from __future__ import annotations

import importlib

# public name -> the module that defines it (the package's layout: see the subpackages' docstrings)
_LAZY = {
    **dict.fromkeys(("LabToRgb", "RgbToLab", "lab_to_rgb", "merge_l_ab", "rgb_to_lab"), "color.lab"),
    "kmeans": "color.kmeans",
    **dict.fromkeys(("create_encoder", "list_encoders", "register_encoder"), "model.encoders"),
    **dict.fromkeys(("DLNet", "ModelConfig"), "model.net"),
    **dict.fromkeys(("available_models", "load_model", "save_model"), "model.weights"),
    **dict.fromkeys(("GlobalLoss", "LocalLoss", "global_loss", "local_loss"), "train.losses"),
    "Colorizer": "infer.colorizer",
    "load_colorizer": "infer.runtime",
    "InferenceOptions": "infer.options",
    "Hint": "io.hints",
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
    "load_model", "save_model", "available_models", "Colorizer", "load_colorizer", "InferenceOptions", "Hint",
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
