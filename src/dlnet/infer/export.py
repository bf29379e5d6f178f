"""ONNX export of a DLNet, its parity check, and an onnxruntime adapter for the Colorizer.

The exported graph maps raw L ``(B, 1, H, W)`` (0..100, float32) to raw a*b* ``(B, 2, H, W)``,
with B, H and W dynamic. It is traced (``torch.onnx.export(dynamo=False)``: the TorchScript
tracer exports DenseNet in seconds, the dynamo exporter took 30 s and specialised the padding
away) from an example whose sides are *not* multiples of 32, so the model's own padding to a
multiple of 32 is recorded with amounts computed from the input's shape: the graph accepts any
H and W. The Colorizer always feeds multiples of 32 anyway (see ``working_shape``), where the
padding is a no-op.

:class:`OnnxModel` runs such a file with onnxruntime and looks like the model to
:class:`~dlnet.infer.colorizer.Colorizer` (callable on a ``(B, 1, h, w)`` tensor, returns a*b*), so
the Colorizer stays the one inference path whichever runtime is used.

Example:
    >>> export_onnx(load_model(), "dlnet.onnx")            # doctest: +SKIP
    1.5e-06
    >>> Colorizer(OnnxModel("dlnet.onnx"), precision="fp32").colorize("old.jpg")   # doctest: +SKIP
"""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import torch
from torch import nn

from dlnet.io.atomic import atomic_path
from dlnet.model.net import DLNet
from dlnet.infer.onnxrun import OPSET, cached_onnx, check_temperature, onnx_config, ort_session

__all__ = ["export_onnx", "check_onnx", "OnnxModel", "onnx_model_for", "OPSET"]

# Sides deliberately not multiples of 32 (see the module docstring).
_EXAMPLE_SHAPE = (1, 1, 77, 99)
_CHECK_SHAPES = ((2, 1, 64, 96), (1, 1, 77, 45))


def export_onnx(model: DLNet, path: str | Path, opset: int = OPSET, check: bool = True) -> float | None:
    """Write ``model`` (fp32) as ONNX at ``path`` (atomically); return the max abs a*b*
    difference to PyTorch fp32 over a few shapes when ``check``, else None."""
    path = Path(path)
    model = copy.deepcopy(model).float().eval().to(memory_format=torch.contiguous_format)
    example = torch.rand(_EXAMPLE_SHAPE) * 100
    with atomic_path(path, suffix=".onnx") as tmp, warnings.catch_warnings():
        # The tracer warns that Python-level shape logic is recorded as traced: that is the point.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # ... and that the tracer-based exporter is legacy: chosen deliberately (docstring above).
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model, (example,), str(tmp), dynamo=False, opset_version=opset,
            input_names=["l"], output_names=["ab"],
            dynamic_axes={"l": {0: "batch", 2: "height", 3: "width"}, "ab": {0: "batch", 2: "height", 3: "width"}},
        )
        _add_metadata(tmp, {"dlnet_config": json.dumps(model.config.to_dict()),
                            "dlnet_io": "l: raw L* (B,1,H,W) 0..100 float32 -> ab: raw a*b* (B,2,H,W)"})
    return check_onnx(path, model) if check else None


def _add_metadata(path: Path, meta: dict[str, str]) -> None:
    import onnx

    proto = onnx.load(str(path))
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))


@torch.inference_mode()
def check_onnx(path: str | Path, model: DLNet, shapes=_CHECK_SHAPES, seed: int = 0) -> float:
    """Max abs a*b* difference between the ONNX file (onnxruntime) and ``model`` in fp32."""
    onnx_model = OnnxModel(path)
    model = model.float().eval()
    gen = torch.Generator().manual_seed(seed)
    worst = 0.0
    for shape in shapes:
        l = torch.rand(shape, generator=gen) * 100
        worst = max(worst, float((onnx_model(l) - model(l)).abs().max()))
    return worst


class OnnxModel(nn.Module):
    """An exported DLNet run by onnxruntime, usable wherever the Colorizer expects the model.

    Args:
        path: the ``.onnx`` file written by :func:`export_onnx`.
        device: ``"cuda"`` uses onnxruntime's CUDA provider when installed, else the CPU.
        threads: intra-op threads (default: ``torch.get_num_threads()``).
    """

    def __init__(self, path: str | Path, device: str | torch.device | None = None, threads: int | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        self.session = ort_session(self.path, device, threads or torch.get_num_threads())
        self.config = onnx_config(self.session)

    def forward(self, l: torch.Tensor, temperature: float | None = None) -> torch.Tensor:
        """Raw L ``(B, 1, h, w)`` -> raw a*b* ``(B, 2, h, w)`` float32 on ``l``'s device; a
        ``temperature`` other than the one fixed at export is refused (:func:`check_temperature`)."""
        check_temperature(self.config, temperature)
        x = l.detach().to("cpu", torch.float32).contiguous().numpy()
        (ab,) = self.session.run(["ab"], {"l": x})
        return torch.from_numpy(ab).to(l.device)


def onnx_model_for(weights: str | Path | None, device: str | torch.device | None = None) -> OnnxModel:
    """An :class:`OnnxModel` for ``weights``: an ``.onnx`` file as is; a shipped model name or
    ``.safetensors``/``.ckpt`` through the per-user cache (:func:`dlnet.infer.onnxrun.cached_onnx`:
    exported on first use, seconds)."""
    if weights is not None and str(weights).endswith(".onnx"):
        return OnnxModel(weights, device)
    return OnnxModel(cached_onnx(weights), device)
