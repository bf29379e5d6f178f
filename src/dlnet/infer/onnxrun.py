"""The ONNX runtime path: a model exported to ONNX once, cached, run by onnxruntime, without torch.

Importing torch costs 2-3 s and building the shipped model another 1-3 s (timm, torchvision),
more than colorizing a few photos takes. :class:`OnnxColorizer` runs the model as ONNX with
onnxruntime (0.2 s to start) and does everything else in NumPy
(:class:`~dlnet.infer.pipeline.PhotoPipeline`), photos and films alike: torch is not imported
at all. It is also the one ONNX runner of the PyTorch path: ``Colorizer(OnnxColorizer(path))``
runs an exported model inside the torch pipeline. Which runtime a command uses: :mod:`dlnet.infer.runtime`.

This module holds the ONNX file helpers: the per-user cache of exports, the onnxruntime
session, the parity check against PyTorch (:func:`check_onnx`, :data:`PARITY_TOLERANCE`) and
the temperature an export fixes. The file itself is written by :func:`dlnet.infer.export.export_onnx`.

The cache: ``$DLNET_CACHE`` or ``$XDG_CACHE_HOME/dlnet`` or ``~/.cache/dlnet``, one file per
model named by a key made of the model file's SHA-256 (a shipped model's recorded one), the ONNX
opset and the source of the modules that define the graph: a new model, a retrained default
model or a change of the architecture's code gets a new file, never a stale one. Files are
written atomically (:mod:`dlnet.io.atomic`), so concurrent first runs are safe; a cached file
that onnxruntime cannot load (damaged on disk) is exported again. Nothing is shipped: the
repository stays small.

The working-size L* is computed as the PyTorch path does (:func:`dlnet.color.fullres.resize_l`)
and onnxruntime runs in fp32, so the model's a*b* agree with PyTorch fp32's within
:data:`PARITY_TOLERANCE`; what that means for the 8-bit photos: ``benchmarks/onnx_parity.py``.

Example:
    >>> colorizer = OnnxColorizer.from_pretrained()     # doctest: +SKIP
    >>> colorizer.colorize("old.jpg").save("old-colour.png")   # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import numpy as np

from dlnet.errors import DLNetError
from dlnet.color.fullres import resize_l, threads as default_threads
from dlnet.infer.export import OPSET, export_onnx, graph_gain, onnx_config
from dlnet.infer.options import InferenceOptions, OptionError
from dlnet.infer.pipeline import PhotoPipeline, without_gain
from dlnet.model.weights import DEFAULT_MODEL, WeightsError, load_model, model_digest

__all__ = ["OnnxColorizer", "OnnxUnavailable", "PARITY_TOLERANCE", "cache_dir", "cache_key", "cached_onnx",
           "check_onnx", "check_temperature", "ort_session"]

# The largest a*b* difference (units of a*b*, 0..~100) between onnxruntime and PyTorch fp32 that
# an export may have: the cache refuses a worse one and `dlnet export` fails on it. Exports of
# the shipped models differ by about 1e-4 (benchmarks/onnx_parity.py).
PARITY_TOLERANCE = 1e-2
# The modules whose code decides the exported graph: part of the cache key.
_GRAPH_SOURCES = ("model/net.py", "model/encoders.py", "color/abbins.py", "infer/export.py")  # under dlnet/
_CHECK_SHAPES = ((2, 1, 64, 96), (1, 1, 77, 45))


class OnnxUnavailable(DLNetError, RuntimeError):
    """The ONNX path cannot be had here (the cache folder unusable, the export failing its
    check): one line saying why. :mod:`dlnet.infer.runtime` then runs PyTorch instead."""


def cache_dir() -> Path:
    """The per-user cache folder: ``$DLNET_CACHE``, else ``$XDG_CACHE_HOME/dlnet``, else ``~/.cache/dlnet``."""
    if os.environ.get("DLNET_CACHE"):
        return Path(os.environ["DLNET_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dlnet"


def _usable_cache_dir() -> Path:
    """:func:`cache_dir`, created; :class:`OnnxUnavailable` naming it (and ``$DLNET_CACHE`` when
    that set it) if it is a file, cannot be made or is not writable."""
    folder = cache_dir()
    named = f"$DLNET_CACHE={folder}" if os.environ.get("DLNET_CACHE") else str(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OnnxUnavailable(f"{named}: the ONNX cache must be a folder, and this is a file") from None
    except OSError as e:
        raise OnnxUnavailable(f"{named}: cannot make the ONNX cache folder ({e.strerror or e})") from None
    if not folder.is_dir():
        raise OnnxUnavailable(f"{named}: the ONNX cache must be a folder, and this is a file")
    if not os.access(folder, os.W_OK):
        raise OnnxUnavailable(f"{named}: the ONNX cache folder is not writable")
    return folder


def cache_key(name_or_path: str | Path | None = None) -> str:
    """The cached ONNX file's name (without ``.onnx``) for a model (see the module docstring)."""
    h = hashlib.sha256(f"{model_digest(name_or_path)} opset {OPSET}".encode())
    package = Path(__file__).parents[1]
    for name in _GRAPH_SOURCES:
        h.update((package / name).read_bytes())
    return h.hexdigest()[:32]


def cached_onnx(name_or_path: str | Path | None = None, rebuild: bool = False) -> Path:
    """A shipped model's name (default model when None) or a ``.safetensors``/``.ckpt`` file
    as ONNX in the cache, exported and checked against PyTorch on first use (needs torch) or
    when ``rebuild``. Raises ``WeightsError`` for a bad model, :class:`OnnxUnavailable` for a
    cache that cannot be used or an export that fails its check."""
    path = cache_dir() / f"{cache_key(name_or_path)}.onnx"
    if path.is_file() and not rebuild:
        return path
    import onnx  # noqa: F401  (the export writes metadata with it: fail before building the model)

    _usable_cache_dir()
    model = load_model(name_or_path)
    export_onnx(model, path)
    diff = check_onnx(path, model)
    if not diff <= PARITY_TOLERANCE:
        path.unlink(missing_ok=True)
        raise OnnxUnavailable(f"the ONNX export differs from PyTorch by {diff:g} a*b* units "
                              f"(more than {PARITY_TOLERANCE:g})")
    return path


def ort_session(path: str | Path, device=None, threads: int | None = None):
    """An onnxruntime session for ``path``: CUDA when ``device`` is CUDA and onnxruntime has it,
    else the CPU with ``threads`` intra-op threads (default: :func:`dlnet.color.fullres.threads`).
    Raises ``WeightsError`` (one line naming the file) for a file onnxruntime cannot load."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or default_threads()
    # Threads that spin-wait for work after each run steal the cores from the NumPy and Pillow
    # work between runs: on 2 busy cores, 64 photos cost 1.5x the CPU time with spinning.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    providers = ["CPUExecutionProvider"]
    if str(device or "cpu").startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    try:
        return ort.InferenceSession(str(path), options, providers=providers)
    except Exception as e:  # onnxruntime's own errors (a truncated or foreign file) have no common base
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise WeightsError(f"{path}: not a usable ONNX model ({reason[:200]})") from None


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


def check_onnx(path: str | Path, model, shapes=_CHECK_SHAPES, seed: int = 0) -> float:
    """The largest a*b* difference between the ONNX file (onnxruntime) and ``model`` (a
    :class:`~dlnet.model.net.DLNet`, run in fp32) on random L* of a few ``shapes`` (and, for a
    hint model, with random hints too)."""
    import torch

    runner = OnnxColorizer(path)
    model, _ = without_gain(model.float().eval())  # the runner's call, like the graph, is at gain 1
    rng = np.random.default_rng(seed)
    worst = 0.0
    for shape in shapes:
        l = (rng.random(shape) * 100).astype(np.float32)
        hint_maps = [None]
        if runner.takes_hints:  # and with some hints: a few pixels of random colour
            mask = (rng.random((shape[0], 1, *shape[2:])) < 0.02).astype(np.float32)
            hint_maps.append(np.concatenate([(rng.random((shape[0], 2, *shape[2:])) * 160 - 80) * mask, mask], 1))
        for hints in hint_maps:
            with torch.inference_mode():
                want = model(torch.from_numpy(l), hints=None if hints is None else torch.from_numpy(hints)).numpy()
            worst = max(worst, float(np.abs(runner(l, hints=hints) - want).max()))
    return worst


class OnnxColorizer(PhotoPipeline):
    """Colorize photos with an exported model run by onnxruntime, without torch (unless
    rebalancing, whose k-means runs in torch). The photo methods are
    :class:`~dlnet.infer.pipeline.PhotoPipeline`'s, as :class:`~dlnet.infer.colorizer.Colorizer`'s are.

    Called on raw L ``(B, 1, H, W)`` (a float32 array, or a torch tensor) it returns the
    model's raw a*b* ``(B, 2, H, W)`` of the same kind, as the model would: so a
    :class:`~dlnet.infer.colorizer.Colorizer` can run it as its model.

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
        self.takes_hints = bool((self.config or {}).get("hints", False))  # the graph's second input, "hints"
        self._graph_gain = graph_gain(self.session)  # 1, except in files exported by older versions
        self.options = options or InferenceOptions()
        self.batch_size = max(1, int(batch_size))

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path | None = None, **kwargs) -> OnnxColorizer:
        """A shipped model by name (default model when None), a ``.safetensors``/``.ckpt`` file
        (both through the cache; a cached file that cannot be loaded is exported again) or an
        ``.onnx`` file. Raises ``WeightsError`` or :class:`OnnxUnavailable` (one line)."""
        if name_or_path is not None and str(name_or_path).endswith(".onnx"):
            if not Path(name_or_path).is_file():
                raise WeightsError(f"{name_or_path}: no such model file")
            return cls(name_or_path, **kwargs)
        path = cached_onnx(name_or_path)  # (WeightsError here: the model file itself is bad)
        try:
            return cls(path, **kwargs)
        except WeightsError:  # the cached file is damaged (a full disk, a copy cut short): export it again
            try:
                return cls(cached_onnx(name_or_path, rebuild=True), **kwargs)
            except WeightsError as e:
                raise OnnxUnavailable(f"{name_or_path or DEFAULT_MODEL}: the ONNX export cannot be loaded ({e})") from None

    def __call__(self, l, temperature: float | None = None, hints=None):
        """Raw L ``(B, 1, H, W)`` -> raw a*b* ``(B, 2, H, W)`` float32, an array for an array and a
        tensor (on ``l``'s device) for a tensor; a ``temperature`` other than the one fixed at
        export is refused (:func:`check_temperature`). ``hints`` ``(B, 3, H, W)``: hint maps for a
        model with hint inputs (None: none)."""
        check_temperature(self.config, temperature)
        array = isinstance(l, np.ndarray)
        x = _array(l)
        feed = {"l": x}
        if self.takes_hints:
            feed["hints"] = np.zeros((x.shape[0], 3, *x.shape[2:]), np.float32) if hints is None else _array(hints)
        elif hints is not None:
            raise ValueError("this model takes no hints (exported without hint inputs)")
        (ab,) = self.session.run(["ab"], feed)
        if self._graph_gain not in (0.0, 1.0):  # an older export, with the model's gain in its graph
            ab /= self._graph_gain
        if array:
            return ab
        import torch

        return torch.from_numpy(ab).to(l.device)

    def eval(self) -> OnnxColorizer:
        """As a torch model's: nothing to switch (an exported graph always runs for inference)."""
        return self

    def check_options(self, options: InferenceOptions) -> None:
        super().check_options(options)
        check_temperature(self.config, options.temperature)
        if self._graph_gain == 0 and options.saturation not in (None, 0):
            raise OptionError("saturation", f"cannot be used with {self.path.name}: it was exported by an older dlnet "
                                            "at saturation 0 (grey in its graph); export the model again")

    def _predict_batch(self, ls: list[np.ndarray], shape: tuple[int, int], options: InferenceOptions,
                       hints: np.ndarray | None = None) -> np.ndarray:
        self.check_options(options)
        small = np.stack([resize_l(l, shape) for l in ls])[:, None].astype(np.float32, copy=False)
        ab = self._saturate(self(small, hints=hints), options)
        if options.rebalance is not None:
            import torch

            from dlnet.color.rebalance import Rebalance

            ab = Rebalance(options.rebalance)(torch.from_numpy(ab), torch.from_numpy(small)).numpy()
        return ab


def _array(x) -> np.ndarray:
    """A float32 C-contiguous array from an array or a torch tensor (on any device)."""
    if isinstance(x, np.ndarray):
        return np.ascontiguousarray(x, np.float32)
    return x.detach().float().cpu().contiguous().numpy()
