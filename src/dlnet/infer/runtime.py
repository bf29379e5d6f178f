"""Which runtime runs the model, PyTorch or onnxruntime: one decision for the CLI, the server and the API.

Both give the same photos (within :data:`dlnet.infer.onnxrun.PARITY_TOLERANCE` a*b*); they differ
in what they cost. Measured on 2 CPU cores (benchmarks/README.md, start-up and inference):

- start-up: importing torch and building the model takes 3-5 s; an onnxruntime session on the
  cached export 0.2-0.3 s (the very first run exports it, with torch: seconds, once per model);
- per photo: onnxruntime runs fp32; PyTorch runs bf16 where the CPU computes bf16 natively
  (AVX-512 BF16, AMX: about 2x onnxruntime's speed at working sizes of 224 and above), else fp32,
  where the two runtimes are equally fast (within 15%, either way by size);
- memory: the PyTorch process is about 1 GB larger.

So :func:`choose_runtime` picks onnxruntime unless PyTorch is needed (a GPU, ``compile``, a
classification model's temperature other than the one its export fixes) or faster: on a bf16
CPU, once the working pixels of the photos and films' frames make PyTorch's faster model calls
repay its start-up (:class:`Work` says how much there is; a server's work has no end). Films run
on either runtime (:meth:`~dlnet.infer.pipeline.PhotoPipeline.colorize_video`): a frame at the
default working size cost onnxruntime about 3 ms more CPU than PyTorch's bf16 on 2 cores
(benchmarks/README.md, video), the constants below say 2, so a film starts on onnxruntime
unless it is longer than about 1,700 frames (70 s at 24 frames/s). :func:`load_colorizer` loads
the chosen one; when onnxruntime was only preferred, not asked for, and cannot be had (not
installed, no usable cache folder, a failed export), PyTorch runs instead.

Example:
    >>> choose_runtime(work=Work(photos=64), bf16=False)
    'onnx'
    >>> choose_runtime(work=Work(photos=5000, size=224), bf16=True)   # repays torch's start-up
    'torch'
    >>> choose_runtime(work=Work(videos=1, frames=720), bf16=True)   # a 30-second film
    'onnx'
    >>> choose_runtime(work=Work(videos=1, frames=130_000), bf16=True)   # a 90-minute one
    'torch'
    >>> colorizer = load_colorizer(work=Work(photos=64))          # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

from dlnet.errors import DLNetError
from dlnet.infer.options import DEFAULT_SIZE, InferenceOptions

__all__ = ["RUNTIMES", "Work", "RuntimeChoiceError", "choose_runtime", "load_colorizer", "cpu_bf16", "weigh_films"]

RUNTIMES = ("torch", "onnx")
log = logging.getLogger("dlnet.infer.runtime")

# Start-up, s, on 2 cores: torch imported and the model built, vs an onnxruntime session on the
# cached export (benchmarks/README.md, start-up: 3-5 s and 0.2-0.3 s).
TORCH_START_S = 4.0
ONNX_START_S = 0.3
# Model time per megapixel of working size, s, batch of 16 at 224 (benchmarks/README.md,
# inference: onnxruntime fp32 46 img/s, PyTorch bf16 98 img/s on an AVX-512 BF16 CPU).
ONNX_S_PER_MPX = 1 / (46 * 224 * 224 / 1e6)
TORCH_BF16_S_PER_MPX = 1 / (98 * 224 * 224 / 1e6)
FULL_SIZE_MPX = 2.0  # a photo's working megapixels when it is colorized at full size (size None)
FILM_ASPECT = 9 / 16  # a film frame's shorter side over its longer (the working size is the longer)


class RuntimeChoiceError(DLNetError, ValueError):
    """A runtime asked for that cannot run this (an ``.onnx`` model on PyTorch, ``compile`` on
    onnxruntime): one line."""


@dataclass(frozen=True)
class Work:
    """What a colorizer is loaded for: ``photos`` to colorize (None: no end, a server),
    ``videos`` and their ``frames`` (all of them together; 0 where unknown), and the working
    size (longer side, px; None: full size)."""

    photos: int | None = 1
    videos: int = 0
    frames: int = 0
    size: int | None = DEFAULT_SIZE

    def megapixels(self) -> float:
        """The model's input over all photos and frames, in working megapixels (inf for no end)."""
        if self.photos is None:
            return float("inf")
        each = FULL_SIZE_MPX if self.size is None else self.size * self.size / 1e6
        return self.photos * each + self.frames * min(each, FULL_SIZE_MPX) * FILM_ASPECT


@functools.lru_cache(maxsize=1)
def cpu_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX), read from ``/proc/cpuinfo``
    without importing torch; False where that cannot be read (then PyTorch's fp32 is onnxruntime's speed)."""
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    return any(f" {flag}" in flags for flag in ("avx512_bf16", "amx_bf16"))


def _is_onnx_file(model) -> bool:
    return model is not None and str(model).endswith(".onnx")


def choose_runtime(model=None, work: Work = Work(), runtime: str | None = None, device=None, compile: bool = False,
                   temperature: float | None = None, bf16: bool | None = None) -> str:
    """``"torch"`` or ``"onnx"``: ``runtime`` when given (checked against the rest), else the
    faster for ``work`` (see the module docstring). ``model``: a shipped model's name, a model
    file (an ``.onnx`` one runs on onnxruntime) or None (the default model); ``bf16``: whether
    PyTorch would run bf16 natively here (default: :func:`cpu_bf16`). Raises :class:`RuntimeChoiceError`."""
    if runtime not in (None, *RUNTIMES):
        raise RuntimeChoiceError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    if _is_onnx_file(model):
        if runtime == "torch":
            raise RuntimeChoiceError(f"{model}: an .onnx model runs on onnxruntime; leave out the torch runtime")
        runtime = "onnx"
    if runtime == "onnx" and compile:
        raise RuntimeChoiceError("compile applies to the torch runtime only")
    if runtime is not None:
        return runtime
    gpu = str(device or "cpu").partition(":")[0] != "cpu"
    if gpu or compile or temperature is not None or importlib.util.find_spec("onnxruntime") is None:
        return "torch"  # (an export's temperature is fixed)
    if not (cpu_bf16() if bf16 is None else bf16):
        return "onnx"  # as fast per photo, and faster to start
    saving = (ONNX_S_PER_MPX - TORCH_BF16_S_PER_MPX) * work.megapixels()
    return "torch" if saving > TORCH_START_S - ONNX_START_S else "onnx"


def weigh_films(work: Work, films, model=None, runtime: str | None = None, device=None, compile: bool = False,
                temperature: float | None = None) -> Work:
    """``work`` with the frames of ``films`` (video paths) counted, as far as they can change
    :func:`choose_runtime`'s answer (its other arguments): not at all where onnxruntime wins
    whatever their length (a stated runtime, a CPU without native bf16), else film by film until
    they repay PyTorch's start-up (more frames only favour it). Each count opens a film's
    container (:func:`dlnet.infer.video.film_frames`), so a thousand films are not opened twice."""
    films = list(films)
    work = dataclasses.replace(work, videos=max(work.videos, len(films)))
    if not films or runtime is not None or not cpu_bf16():
        return work
    from dlnet.infer.video import film_frames  # (PyAV: only for films)

    for film in films:
        if choose_runtime(model, work, device=device, compile=compile, temperature=temperature) == "torch":
            break
        work = dataclasses.replace(work, frames=work.frames + film_frames(film))
    return work


def load_colorizer(model=None, work: Work = Work(), runtime: str | None = None, device=None,
                   precision: str | None = None, batch_size: int = 16, options: InferenceOptions | None = None,
                   compile: bool = False):
    """The colorizer :func:`choose_runtime` picks, loaded: an
    :class:`~dlnet.infer.onnxrun.OnnxColorizer` or a :class:`~dlnet.infer.colorizer.Colorizer`
    (photos and films alike). Arguments as
    :func:`choose_runtime`'s; ``precision``, ``compile``: PyTorch's; ``options``: the
    colorizer's defaults.

    Raises ``WeightsError`` (a model that cannot be loaded), :class:`RuntimeChoiceError`, and
    :class:`~dlnet.infer.onnxrun.OnnxUnavailable` when onnxruntime was asked for and cannot be had.
    """
    temperature = options.temperature if options is not None else None
    chosen = choose_runtime(model, work, runtime, device, compile, temperature)
    if chosen == "onnx":
        try:
            return _onnx(model, device, batch_size, options)
        except ModuleNotFoundError as e:
            if runtime is not None or _is_onnx_file(model) or e.name not in ("onnx", "onnxruntime"):
                raise
            log.warning("onnxruntime is not installed; running PyTorch")
        except Exception as e:
            from dlnet.infer.onnxrun import OnnxUnavailable
            from dlnet.model.weights import WeightsError

            if runtime is not None or _is_onnx_file(model) or isinstance(e, WeightsError):
                raise
            # No usable cache folder, a failed export: PyTorch colorizes all the same, more slowly.
            log.warning("running PyTorch: %s", e if isinstance(e, OnnxUnavailable) else f"{type(e).__name__}: {e}")
    from dlnet.infer.colorizer import Colorizer

    return Colorizer.from_pretrained(model, device=device, precision=precision, batch_size=batch_size,
                                     options=options, compile=compile)


def _onnx(model, device, batch_size: int, options: InferenceOptions | None):
    from dlnet.infer.onnxrun import OnnxColorizer

    return OnnxColorizer.from_pretrained(model, device=device, batch_size=batch_size, options=options)
