"""The one inference path: CLI, Python API, server, evaluation and export parity all use it.

Following richzhang/colorization: the model predicts a*b* at a working size, the a*b* are
upsampled to the photo's full resolution and recombined with the photo's own full-resolution L,
so no detail of the original is lost.

Example:
    >>> from dlnet import Colorizer
    >>> c = Colorizer.from_pretrained()           # the shipped default model, offline
    >>> c.colorize("old.jpg").save("old-colour.png")
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from .color import merge_l_ab, rgb_to_lab
from .model import DLNet

__all__ = ["Colorizer", "working_shape", "default_precision"]

DEFAULT_SIZE = 256  # the working size's longer side, px


def default_precision(device: torch.device) -> str:
    """bf16 where the hardware runs it natively (CUDA, or CPUs with AVX-512/AMX), else fp32."""
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if torch.backends.cpu.get_cpu_capability() in ("AVX512", "AMX") else "fp32"


def working_shape(h: int, w: int, size: int | None) -> tuple[int, int]:
    """The model's input shape for an ``h x w`` photo: longer side ``size``, aspect kept,
    each side a multiple of 32 (at least 32). ``size=None`` keeps the photo's own size."""
    if size is None:
        return h, w
    scale = size / max(h, w)
    return (max(32, round(h * scale / 32) * 32), max(32, round(w * scale / 32) * 32))


class Colorizer:
    """Colorize photos with a DLNet.

    Args:
        model: a trained :class:`~dlnet.model.DLNet`.
        device: ``"cpu"``, ``"cuda"``, ... (default: CUDA if available).
        size: working size (longer side, px) at which a*b* are predicted; None = full size.
        precision: ``"bf16"`` or ``"fp32"`` (default: what the device runs fast).
        rebalance: optional post-process ``fn(ab (B,2,h,w), l (B,1,h,w)) -> ab`` applied at
            working size (see :mod:`dlnet.rebalance`).
    """

    def __init__(self, model: DLNet, device: str | torch.device | None = None, size: int | None = DEFAULT_SIZE,
                 precision: str | None = None, rebalance=None) -> None:
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.precision = precision or default_precision(self.device)
        if self.precision not in ("bf16", "fp32"):
            raise ValueError(f"precision must be bf16 or fp32, got {self.precision!r}")
        self.model = model.eval().to(self.device, memory_format=torch.channels_last)
        self.size = size
        self.rebalance = rebalance

    @classmethod
    def from_pretrained(cls, name_or_path: str | None = None, device: str | torch.device | None = None,
                        **kwargs) -> "Colorizer":
        """A shipped model by name (default model when None) or a ``.safetensors``/``.ckpt`` path."""
        from .weights import load_model

        return cls(load_model(name_or_path), device=device, **kwargs)

    def _autocast(self):
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @torch.inference_mode()
    def predict_ab(self, l: torch.Tensor) -> torch.Tensor:
        """Raw L ``(B, 1, h, w)`` 0..100 -> raw a*b* ``(B, 2, h, w)`` float32, at the given size."""
        x = l.to(self.device, torch.float32).contiguous(memory_format=torch.channels_last)
        with self._autocast():
            ab = self.model(x)
        return ab.float()

    @torch.inference_mode()
    def colorize_lab(self, l: torch.Tensor, size: int | None | str = "default") -> torch.Tensor:
        """Full-resolution L ``(B, 1, H, W)`` -> a*b* ``(B, 2, H, W)`` predicted at working size."""
        size = self.size if size == "default" else size
        l = l.to(self.device, torch.float32)
        h, w = l.shape[-2:]
        wh, ww = working_shape(h, w, size)
        small = l if (wh, ww) == (h, w) else F.interpolate(l, size=(wh, ww), mode="bilinear",
                                                           align_corners=False, antialias=True)
        ab = self.predict_ab(small)
        if self.rebalance is not None:
            ab = self.rebalance(ab, small)
        if (wh, ww) != (h, w):
            ab = F.interpolate(ab, size=(h, w), mode="bilinear", align_corners=False)
        return ab

    @torch.inference_mode()
    def colorize_tensor(self, rgb: torch.Tensor, size: int | None | str = "default") -> torch.Tensor:
        """sRGB ``(B, 3, H, W)`` in 0..1 (grey or colour) -> colorized sRGB ``(B, 3, H, W)`` in 0..1.

        Only the input's L is used: colour and sepia photos are colorized anew from their L.
        """
        l = rgb_to_lab(rgb.to(self.device))[:, :1]
        return merge_l_ab(l, self.colorize_lab(l, size)).clamp(0, 1)
