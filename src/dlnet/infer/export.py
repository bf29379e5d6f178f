"""ONNX export of a DLNet: the file dlnet writes and what it records in it.

The exported graph maps raw L ``(B, 1, H, W)`` (0..100, float32) to raw a*b* ``(B, 2, H, W)``,
with B, H and W dynamic. It is traced (``torch.onnx.export(dynamo=False)``: the TorchScript
tracer exports DenseNet in seconds, the dynamo exporter took 30 s and specialised the padding
away) from an example whose sides are *not* multiples of 32, so the model's own padding to a
multiple of 32 is recorded with amounts computed from the input's shape: the graph accepts any
H and W. The colorizers always feed multiples of 32 anyway (see ``working_shape``), where the
padding is a no-op. The model's config is written into the file's metadata
(:data:`CONFIG_KEY`), so a file describes itself (:func:`onnx_config` reads it back). The graph
computes a*b* at gain 1; the model's own gain (its config's ``saturation``) is recorded there and
applied by the runner, as the PyTorch path does (files exported by earlier versions have the gain
in the graph and no :data:`GAIN_KEY`: :func:`graph_gain` says which).

Running a file, checking it against PyTorch and the per-user cache of exports are
:mod:`dlnet.infer.onnxrun`'s. Importing this module does not import torch; exporting does.

Example:
    >>> export_onnx(load_model(), "dlnet.onnx")                     # doctest: +SKIP
    PosixPath('dlnet.onnx')
    >>> check_onnx("dlnet.onnx", load_model())                      # doctest: +SKIP
    1.5e-06
"""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from dlnet.infer.pipeline import without_gain
from dlnet.io.atomic import atomic_path

if TYPE_CHECKING:
    from dlnet.model.net import DLNet

__all__ = ["export_onnx", "onnx_config", "graph_gain", "OPSET", "CONFIG_KEY", "GAIN_KEY"]

OPSET = 17
CONFIG_KEY = "dlnet_config"  # metadata: the model's ModelConfig.to_dict() as JSON
GAIN_KEY = "dlnet_graph_gain"  # metadata: the a*b* gain inside the graph ("1": the runner applies it)
# Sides deliberately not multiples of 32 (see the module docstring).
_EXAMPLE_SHAPE = (1, 1, 77, 99)


def export_onnx(model: DLNet, path: str | Path, opset: int = OPSET) -> Path:
    """Write ``model`` (fp32) as ONNX at ``path``, atomically (never half a file under its
    name); returns the path. Check it with :func:`dlnet.infer.onnxrun.check_onnx`."""
    import torch

    path = Path(path)
    config = model.config.to_dict()  # with the model's gain, which the runner applies
    model, _ = without_gain(copy.deepcopy(model).float().eval().to(memory_format=torch.contiguous_format))
    example = (torch.rand(_EXAMPLE_SHAPE) * 100,)
    names = ["l"]
    io = "l: raw L* (B,1,H,W) 0..100 float32 -> ab: raw a*b* (B,2,H,W)"
    if config.get("hints"):  # a hint model: its hint maps are the second input
        example += (None, torch.zeros(_EXAMPLE_SHAPE[0], 3, *_EXAMPLE_SHAPE[2:]))  # (l, temperature, hints)
        names.append("hints")
        io = "l: raw L* (B,1,H,W) 0..100, hints: raw a*, b*, 0/1 mask (B,3,H,W), float32 -> ab: raw a*b* (B,2,H,W)"
    dynamic = {"batch": 0, "height": 2, "width": 3}
    with atomic_path(path, suffix=".onnx") as tmp, warnings.catch_warnings():
        # The tracer warns that Python-level shape logic is recorded as traced: that is the point.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # ... and that the tracer-based exporter is legacy: chosen deliberately (docstring above).
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model, example, str(tmp), dynamo=False, opset_version=opset,
            input_names=names, output_names=["ab"],
            dynamic_axes={name: {i: d for d, i in dynamic.items()} for name in [*names, "ab"]},
        )
        _add_metadata(tmp, {CONFIG_KEY: json.dumps(config), GAIN_KEY: "1", "dlnet_io": io})
    return path


def _add_metadata(path: Path, meta: dict[str, str]) -> None:
    import onnx

    proto = onnx.load(str(path))
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))


def onnx_config(session) -> dict | None:
    """The model's config (``ModelConfig.to_dict()``) that :func:`export_onnx` wrote into the
    file's metadata, read from an onnxruntime session; None for a file without it."""
    meta = session.get_modelmeta().custom_metadata_map
    return json.loads(meta[CONFIG_KEY]) if CONFIG_KEY in meta else None


def graph_gain(session) -> float:
    """The a*b* gain computed inside an exported graph: 1 for files written by
    :func:`export_onnx`, the recorded ``saturation`` for older files, which had it in the graph."""
    meta = session.get_modelmeta().custom_metadata_map
    if GAIN_KEY in meta:
        return float(meta[GAIN_KEY])
    config = onnx_config(session) or {}
    return float(config.get("saturation", 1.0))
