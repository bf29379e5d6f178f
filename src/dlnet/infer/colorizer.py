"""The one inference path: CLI, Python API, server, evaluation and export parity all use it.

Following richzhang/colorization: the model predicts a*b* at a working size, the a*b* are
upsampled to the photo's full resolution and recombined with the photo's own full-resolution L,
so no detail of the original is lost.

What a call does is an :class:`~dlnet.infer.options.InferenceOptions` (working size, rebalancing,
output format and quality, pixel limit): the Colorizer's own, or one given per call, so one
Colorizer serves threads asking for different options. Photos go in and come out as
:class:`~dlnet.io.imageio.Photo` (:meth:`Colorizer.colorize_photos`), so alpha, ICC profile and
EXIF are kept the same way by the command line, the server and the Python API; photos of one
working shape share model calls (:meth:`Colorizer.colorize_stream` batches as they arrive).

Example:
    >>> from dlnet import Colorizer
    >>> c = Colorizer.from_pretrained()           # doctest: +SKIP
    >>> c.colorize("old.jpg").save("old-colour.png")   # doctest: +SKIP
    >>> working_shape(3000, 4000, 256)            # a 12-MP photo's a*b* are predicted at 192x256
    (192, 256)
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F

from dlnet.color.lab import merge_l_ab, rgb_to_lab
from dlnet.model.device import resolve_device
from dlnet.model.fast import optimize_for_inference
from dlnet.model.net import DLNet
from dlnet.infer.options import DEFAULT_SIZE, InferenceOptions, working_shape
from dlnet.infer.pipeline import PhotoPipeline, without_gain
from dlnet.color.rebalance import Rebalance

__all__ = ["Colorizer", "InferenceOptions", "working_shape", "default_precision", "DEFAULT_SIZE"]


def default_precision(device: torch.device) -> str:
    """bf16 where the hardware runs it natively (CUDA, or CPUs with AVX-512/AMX), else fp32."""
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if torch.backends.cpu.get_cpu_capability() in ("AVX512", "AMX") else "fp32"


class Colorizer(PhotoPipeline):
    """Colorize photos with a DLNet.

    Args:
        model: a trained :class:`~dlnet.model.net.DLNet`, or an exported one run by onnxruntime
            (:class:`~dlnet.infer.onnxrun.OnnxColorizer`, inside the torch pipeline).
        device: ``"cpu"``, ``"cuda"``, ... (default: CUDA if available).
        size, rebalance: shorthand for ``options``: ``InferenceOptions(size=size, rebalance=rebalance)``,
            checked there (a size of at least 32, or None; rebalance None, False, True or a
            :class:`~dlnet.color.rebalance.RebalanceConfig`); ignored when ``options`` is given.
        precision: ``"bf16"`` or ``"fp32"`` (default: what the device runs fast).
        batch_size: most photos per model call.
        compile: run the model through ``torch.compile`` (pays off for many photos of one shape).
        options: what calls do unless they say otherwise (default: :class:`InferenceOptions`'s).
        optimize: run an inference copy of the model that computes the same with less work
            (:func:`~dlnet.model.fast.optimize_for_inference`); ``self.model`` is that copy.
    """

    def __init__(self, model: DLNet, device: str | torch.device | None = None, size: int | None = DEFAULT_SIZE,
                 precision: str | None = None, rebalance=None, batch_size: int = 16, compile: bool = False,
                 options: InferenceOptions | None = None, optimize: bool = True) -> None:
        self.device = resolve_device(device)
        self.precision = precision or default_precision(self.device)
        if self.precision not in ("bf16", "fp32"):
            raise ValueError(f"precision must be bf16 or fp32, got {self.precision!r}")
        module = isinstance(model, torch.nn.Module)  # else an exported graph (OnnxColorizer)
        if optimize and module:
            # BatchNorm folded, U-Net upsampling fused (dlnet.model.fast): same output (fp32 within
            # 1e-4 a*b*), less work; the Colorizer keeps this copy, the caller's model is untouched.
            model = optimize_for_inference(model.eval())
        model, self.model_saturation = without_gain(model)  # the gain is applied once, by _saturate
        self.model = model.eval().to(self.device, memory_format=torch.channels_last) if module else model
        if compile and not module:
            raise ValueError("compile applies to a PyTorch model, not an exported ONNX graph")
        if compile:
            # Inductor with frozen weights fuses BatchNorm/ReLU (60% of eager bf16 time on a CPU)
            # into their neighbours: 1.15-1.5x the batch throughput on 2 busy cores, but each new
            # working shape costs a compile of 35-115 s (benchmarks/README.md, inference).
            self.model = torch.compile(self.model, dynamic=False, options={"freezing": True})
        self.options = options if options is not None else InferenceOptions(size=size, rebalance=rebalance)
        self.batch_size = max(1, int(batch_size))
        config = getattr(model, "config", None)  # a ModelConfig, or an exported graph's recorded dict
        self.takes_hints = bool(config.get("hints") if isinstance(config, dict) else getattr(config, "hints", False))

    @classmethod
    def from_pretrained(cls, name_or_path: str | None = None, device: str | torch.device | None = None,
                        **kwargs) -> "Colorizer":
        """A shipped model by name (default model when None) or a ``.safetensors``/``.ckpt`` path."""
        from dlnet.model.weights import load_model

        return cls(load_model(name_or_path), device=device, **kwargs)

    def _autocast(self):
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @torch.inference_mode()
    def predict_ab(self, l: torch.Tensor, temperature: float | None = None,
                   hints: torch.Tensor | None = None) -> torch.Tensor:
        """Raw L ``(B, 1, h, w)`` 0..100 -> raw a*b* ``(B, 2, h, w)`` float32, at the given size;
        ``temperature``: a classification model's annealed-mean temperature (None: its own);
        ``hints``: hint maps ``(B, 3, h, w)`` for a model with hint inputs (None: none)."""
        x = l.to(self.device, torch.float32).contiguous(memory_format=torch.channels_last)
        kwargs = {} if temperature is None else {"temperature": temperature}
        if hints is not None:
            kwargs["hints"] = hints.to(self.device, torch.float32).contiguous(memory_format=torch.channels_last)
        with self._autocast():
            ab = self.model(x, **kwargs)
        return ab.float()

    def check_options(self, options: InferenceOptions) -> None:
        super().check_options(options)
        check = getattr(self.model, "check_options", None)
        if check is not None:  # an exported graph (OnnxColorizer): its temperature is fixed
            check(options)

    def _to_working(self, l: torch.Tensor, size: int | None) -> torch.Tensor:
        """Full-resolution L ``(B, 1, H, W)`` -> L at the working shape: antialiased bicubic, as
        :func:`dlnet.color.fullres.resize_l` (why: there)."""
        h, w = l.shape[-2:]
        wh, ww = working_shape(h, w, size)
        if (wh, ww) == (h, w):
            return l
        return F.interpolate(l, size=(wh, ww), mode="bicubic", align_corners=False, antialias=True).clamp(0, 100)

    def _predict(self, small: torch.Tensor, options: InferenceOptions, hints: torch.Tensor | None = None) -> torch.Tensor:
        """Working-size L (and hint maps) -> working-size a*b*, post-processed as ``options`` say."""
        ab = self._saturate(self.predict_ab(small, options.temperature, hints), options)
        return ab if options.rebalance is None else Rebalance(options.rebalance)(ab, small)

    @staticmethod
    def _to_full(ab: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        """Working-size a*b* -> full resolution (bilinear: a*b* are smooth, L carries detail)."""
        if tuple(ab.shape[-2:]) == tuple(hw):
            return ab
        return F.interpolate(ab, size=tuple(hw), mode="bilinear", align_corners=False)

    @torch.inference_mode()
    def colorize_lab(self, l: torch.Tensor, options: InferenceOptions | None = None) -> torch.Tensor:
        """Full-resolution L ``(B, 1, H, W)`` -> a*b* ``(B, 2, H, W)`` predicted at working size."""
        options = options or self.options
        l = l.to(self.device, torch.float32)
        ab = self._predict(self._to_working(l, options.size), options)
        return self._to_full(ab, l.shape[-2:])

    @torch.inference_mode()
    def colorize_tensor(self, rgb: torch.Tensor, options: InferenceOptions | None = None) -> torch.Tensor:
        """sRGB ``(B, 3, H, W)`` in 0..1 (grey or colour) -> colorized sRGB ``(B, 3, H, W)`` in 0..1.

        Only the input's L is used: colour and sepia photos are colorized anew from their L.
        """
        l = rgb_to_lab(rgb.to(self.device))[:, :1]
        return merge_l_ab(l, self.colorize_lab(l, options)).clamp(0, 1)

    @torch.inference_mode()
    def _predict_batch(self, ls: list[np.ndarray], shape: tuple[int, int], options: InferenceOptions,
                       hints: np.ndarray | None = None) -> torch.Tensor:
        small = [self._to_working(torch.from_numpy(l)[None, None].to(self.device), options.size) for l in ls]
        return self._predict(torch.cat(small), options, None if hints is None else torch.from_numpy(hints))
