"""The torch-free inference path: a model exported to ONNX once, cached, run by onnxruntime.

Importing torch costs 2-3 s and building the shipped model another 1-3 s (timm, torchvision),
more than colorizing a few photos takes. So ``dlnet colorize`` on a few photos runs the model
as ONNX with onnxruntime (0.2 s to start) and does everything else in NumPy
(:class:`~dlnet.infer.pipeline.PhotoPipeline`): torch is not imported at all.

The ONNX file is exported from the model the first time it is needed (seconds, with torch;
:func:`dlnet.infer.export.export_onnx`, checked against PyTorch) and kept in a per-user cache,
``$DLNET_CACHE`` or ``$XDG_CACHE_HOME/dlnet`` or ``~/.cache/dlnet``, named by a key made of the
model file's SHA-256 (a shipped model's recorded one), the ONNX opset and the source of the
modules that define the graph: a new model, a retrained default model or a change of the
architecture's code gets a new file, never a stale one. Files are written atomically
(:mod:`dlnet.io.atomic`), so concurrent first runs are safe. Nothing is shipped: the repository
stays small.

The working-size L* is computed as the PyTorch path does (:func:`dlnet.color.fullres.resize_l`), and
onnxruntime runs in fp32: photos agree with the PyTorch fp32 path within one 8-bit level
(``tests/test_onnxrun.py``).

Example:
    >>> colorizer = OnnxColorizer.from_pretrained()     # doctest: +SKIP
    >>> colorizer.colorize("old.jpg").save("old-colour.png")   # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np

from dlnet.color.fullres import resize_l, threads as default_threads
from dlnet.infer.options import InferenceOptions, OptionError
from dlnet.infer.pipeline import PhotoPipeline

__all__ = ["OnnxColorizer", "check_temperature", "cache_dir", "cached_onnx", "ort_session", "onnx_config", "OPSET"]

OPSET = 17
# The modules whose code decides the exported graph: part of the cache key.
_GRAPH_SOURCES = ("model/net.py", "model/encoders.py", "color/abbins.py", "infer/export.py")  # under dlnet/
_MAX_EXPORT_DIFF = 0.05  # a*b* units; an export further from PyTorch than this is refused


def cache_dir() -> Path:
    """The per-user cache folder: ``$DLNET_CACHE``, else ``$XDG_CACHE_HOME/dlnet``, else ``~/.cache/dlnet``."""
    if os.environ.get("DLNET_CACHE"):
        return Path(os.environ["DLNET_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dlnet"


def _model_digest(name_or_path: str | Path | None) -> str:
    """The SHA-256 of a model's weights: a shipped model's recorded one, else the file's."""
    from dlnet.model.weights import WEIGHTS_DIR, WeightsError, _resolve, sha256_file

    path = _resolve(name_or_path)
    record = path.with_suffix(".json")
    if path.parent == WEIGHTS_DIR and record.is_file():
        return json.loads(record.read_text())["sha256"]
    if not path.is_file():
        raise WeightsError(f"{path}: no such model file")
    return sha256_file(path)


def cache_key(name_or_path: str | Path | None = None) -> str:
    """The cached ONNX file's name (without ``.onnx``) for a model (see the module docstring)."""
    h = hashlib.sha256(f"{_model_digest(name_or_path)} opset {OPSET}".encode())
    package = Path(__file__).parents[1]
    for name in _GRAPH_SOURCES:
        h.update((package / name).read_bytes())
    return h.hexdigest()[:32]


def cached_onnx(name_or_path: str | Path | None = None) -> Path:
    """A shipped model's name (default model when None) or a ``.safetensors``/``.ckpt`` file
    as ONNX in the cache, exported and checked against PyTorch on first use (needs torch)."""
    path = cache_dir() / f"{cache_key(name_or_path)}.onnx"
    if path.is_file():
        return path
    import onnx  # noqa: F401  (the export writes metadata with it: fail before building the model)

    path.parent.mkdir(parents=True, exist_ok=True)
    if not os.access(path.parent, os.W_OK):
        raise PermissionError(f"{path.parent}: the ONNX cache folder is not writable")
    from dlnet.infer.export import export_onnx
    from dlnet.model.weights import load_model

    diff = export_onnx(load_model(name_or_path), path)
    if not diff <= _MAX_EXPORT_DIFF:
        path.unlink(missing_ok=True)
        raise RuntimeError(f"the ONNX export differs from PyTorch by {diff:g} a*b* units")
    return path


def ort_session(path: str | Path, device=None, threads: int | None = None):
    """An onnxruntime session for ``path``: CUDA when ``device`` is CUDA and onnxruntime has it,
    else the CPU with ``threads`` intra-op threads (default: :func:`dlnet.color.fullres.threads`)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or default_threads()
    providers = ["CPUExecutionProvider"]
    if str(device or "cpu").startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    return ort.InferenceSession(str(path), options, providers=providers)


def onnx_config(session) -> dict | None:
    """The model's config (``ModelConfig.to_dict()``) that :func:`dlnet.infer.export.export_onnx`
    wrote into the file's metadata, or None for a file without it."""
    meta = session.get_modelmeta().custom_metadata_map
    return json.loads(meta["dlnet_config"]) if "dlnet_config" in meta else None


def check_temperature(config: dict | None, temperature: float | None) -> None:
    """Raise :class:`~dlnet.infer.options.OptionError` if ``temperature`` asks an exported model
    (its ``config``) for another annealed-mean temperature than the one fixed in its graph; a
    regression model has none and takes any."""
    config = config or {}
    if temperature is None or config.get("head", "regression") != "classification":
        return
    own = float(config["temperature"])  # saved with every classification model
    if not math.isclose(temperature, own, rel_tol=1e-6):
        raise OptionError("temperature", f"is fixed at {own:g} in an ONNX model when it is exported; "
                                         "use --runtime torch, or export again with --temperature")


class OnnxColorizer(PhotoPipeline):
    """Colorize photos with an exported model run by onnxruntime, without torch (unless
    rebalancing, whose k-means runs in torch). The photo methods are
    :class:`~dlnet.infer.pipeline.PhotoPipeline`'s, as :class:`~dlnet.infer.colorizer.Colorizer`'s are.

    Args:
        path: an ``.onnx`` file written by :func:`dlnet.infer.export.export_onnx`.
        device: ``"cuda"`` uses onnxruntime's CUDA provider when installed, else the CPU.
        batch_size: most photos per model call.
        options: what calls do unless they say otherwise (default: :class:`InferenceOptions`'s).
        threads: intra-op threads (default: the CPUs this process may use).
    """

    precision = "fp32"

    def __init__(self, path: str | Path, device=None, batch_size: int = 16, options: InferenceOptions | None = None,
                 threads: int | None = None) -> None:
        self.path = Path(path)
        self.session = ort_session(self.path, device, threads)
        self.config = onnx_config(self.session)
        self.model_saturation = float((self.config or {}).get("saturation", 1.0))
        self.options = options or InferenceOptions()
        self.batch_size = max(1, int(batch_size))

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path | None = None, **kwargs) -> OnnxColorizer:
        """A shipped model by name (default model when None), a ``.safetensors``/``.ckpt`` file
        (both through the cache) or an ``.onnx`` file."""
        onnx_file = name_or_path is not None and str(name_or_path).endswith(".onnx")
        return cls(name_or_path if onnx_file else cached_onnx(name_or_path), **kwargs)

    def check_options(self, options: InferenceOptions) -> None:
        super().check_options(options)
        check_temperature(self.config, options.temperature)

    def _predict_batch(self, ls: list[np.ndarray], shape: tuple[int, int], options: InferenceOptions) -> np.ndarray:
        self.check_options(options)
        small = np.stack([resize_l(l, shape) for l in ls])[:, None].astype(np.float32, copy=False)
        (ab,) = self.session.run(["ab"], {"l": small})
        ab = self._saturate(ab, options)
        if options.rebalance is not None:
            import torch

            from dlnet.color.rebalance import Rebalance

            ab = Rebalance(options.rebalance)(torch.from_numpy(ab), torch.from_numpy(small)).numpy()
        return ab
