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

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .color import merge_l_ab, rgb_to_lab
from .fullres import lightness, merge_rgb8
from .imageio import read_image
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
        model: a trained :class:`~dlnet.model.DLNet`, or anything that maps raw L to raw a*b*
            like it (:class:`dlnet.export.OnnxModel` runs an exported model with onnxruntime).
        device: ``"cpu"``, ``"cuda"``, ... (default: CUDA if available).
        size: working size (longer side, px) at which a*b* are predicted; None = full size.
        precision: ``"bf16"`` or ``"fp32"`` (default: what the device runs fast).
        rebalance: optional post-process ``fn(ab (B,2,h,w), l (B,1,h,w)) -> ab`` applied at
            working size (see :mod:`dlnet.rebalance`).
        batch_size: most photos per model call in :meth:`colorize_batch`.
        compile: run the model through ``torch.compile`` (pays off for many photos of one shape).
    """

    def __init__(self, model: DLNet, device: str | torch.device | None = None, size: int | None = DEFAULT_SIZE,
                 precision: str | None = None, rebalance=None, batch_size: int = 16, compile: bool = False) -> None:
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.precision = precision or default_precision(self.device)
        if self.precision not in ("bf16", "fp32"):
            raise ValueError(f"precision must be bf16 or fp32, got {self.precision!r}")
        self.model = model.eval().to(self.device, memory_format=torch.channels_last)
        if compile:
            # Inductor with frozen weights fuses BatchNorm/ReLU (60% of eager bf16 time on a CPU)
            # into their neighbours: 1.15-1.5x the batch throughput on 2 busy cores, but each new
            # working shape costs a compile of 35-115 s (benchmarks/README.md, inference).
            self.model = torch.compile(self.model, dynamic=False, options={"freezing": True})
        self.size = size
        self.rebalance = rebalance
        self.batch_size = max(1, int(batch_size))

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

    def _to_working(self, l: torch.Tensor, size: int | None) -> torch.Tensor:
        """Full-resolution L ``(B, 1, H, W)`` -> L at the working shape (antialiased)."""
        h, w = l.shape[-2:]
        wh, ww = working_shape(h, w, size)
        if (wh, ww) == (h, w):
            return l
        return F.interpolate(l, size=(wh, ww), mode="bilinear", align_corners=False, antialias=True)

    def _predict_working(self, small: torch.Tensor, rebalance="default") -> torch.Tensor:
        """Working-size L -> working-size a*b*, rebalanced if a post-process is set (``rebalance``:
        ``"default"`` = ``self.rebalance``, None = none, or a post-process for this call only)."""
        ab = self.predict_ab(small)
        rebalance = self.rebalance if isinstance(rebalance, str) and rebalance == "default" else rebalance
        return ab if rebalance is None else rebalance(ab, small)

    @staticmethod
    def _to_full(ab: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        """Working-size a*b* -> full resolution (bilinear: a*b* are smooth, L carries detail)."""
        if tuple(ab.shape[-2:]) == tuple(hw):
            return ab
        return F.interpolate(ab, size=tuple(hw), mode="bilinear", align_corners=False)

    def _size(self, size: int | None | str) -> int | None:
        return self.size if size == "default" else size

    @torch.inference_mode()
    def colorize_lab(self, l: torch.Tensor, size: int | None | str = "default") -> torch.Tensor:
        """Full-resolution L ``(B, 1, H, W)`` -> a*b* ``(B, 2, H, W)`` predicted at working size."""
        l = l.to(self.device, torch.float32)
        ab = self._predict_working(self._to_working(l, self._size(size)))
        return self._to_full(ab, l.shape[-2:])

    @torch.inference_mode()
    def colorize_tensor(self, rgb: torch.Tensor, size: int | None | str = "default") -> torch.Tensor:
        """sRGB ``(B, 3, H, W)`` in 0..1 (grey or colour) -> colorized sRGB ``(B, 3, H, W)`` in 0..1.

        Only the input's L is used: colour and sepia photos are colorized anew from their L.
        """
        l = rgb_to_lab(rgb.to(self.device))[:, :1]
        return merge_l_ab(l, self.colorize_lab(l, size)).clamp(0, 1)

    def colorize(self, image, size: int | None | str = "default", side_by_side: bool = False,
                 rebalance="default") -> Image.Image:
        """Colorize one photo: a path, PIL image or numpy array -> PIL RGB image of the same size.

        Arrays may be ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)`` of uint8, uint16 or float 0..1
        (see :func:`dlnet.imageio.read_image`); EXIF orientation of files is applied. With
        ``side_by_side`` the result is twice as wide: grey input | colour output. ``size`` and
        ``rebalance`` (None, or a post-process as in the constructor) override the Colorizer's own
        for this call only, so one Colorizer can serve threads asking for different options.

        Example:
            >>> Colorizer.from_pretrained().colorize("grandma.jpg").save("grandma-colour.png")
        """
        return self.colorize_batch([image], size, side_by_side, rebalance)[0]

    @torch.inference_mode()
    def colorize_batch(self, images, size: int | None | str = "default", side_by_side: bool = False,
                       rebalance="default") -> list[Image.Image]:
        """Colorize several photos (as :meth:`colorize`), batching those of the same working
        shape through the model, up to ``batch_size`` at a time. Results keep the input order.

        The full-resolution work (L* in, colour out) runs on the CPU in small strips, through
        lookup tables where the source is 8-bit (:mod:`dlnet.fullres`): a 12-MP photo never
        needs a full-size float RGB or a*b* copy, and only the working-size L* goes to the device.
        The L* of all given photos are held at once (48 MB per 12-MP photo): pass large photos a
        few at a time, as ``dlnet colorize`` does (``--batch-size``).
        """
        size = self._size(size)
        ls = [lightness(read_image(im).rgb) for im in images]  # (H, W) float32 L*, on the CPU
        groups: dict[tuple[int, int], list[int]] = {}
        for i, l in enumerate(ls):
            groups.setdefault(working_shape(*l.shape, size), []).append(i)
        out: list[Image.Image | None] = [None] * len(ls)
        for idx in groups.values():
            for start in range(0, len(idx), self.batch_size):
                chunk = idx[start:start + self.batch_size]
                small = [self._to_working(torch.from_numpy(ls[i])[None, None].to(self.device), size) for i in chunk]
                ab = self._predict_working(torch.cat(small), rebalance)
                for j, i in enumerate(chunk):
                    l, ls[i] = ls[i], None  # free each full-res L as soon as it is used
                    colour = merge_rgb8(l, ab[j])  # a*b* upsampled strip by strip
                    if side_by_side:
                        colour = np.concatenate([merge_rgb8(l, None), colour], axis=1)
                    out[i] = Image.fromarray(colour)
        return out

    def colorize_video(self, src, dst, **options):
        """Colorize a video (path or file object) into ``dst`` (``.mp4``, ``.mkv``, ...): every
        frame as a photo, colour smoothed over time (``temporal``, 0 = off), audio copied, frames
        streamed. Options and result: :func:`dlnet.video.colorize_video`.

        Example:
            >>> Colorizer.from_pretrained().colorize_video("film.avi", "film-colour.mp4")  # doctest: +SKIP
        """
        from .video import colorize_video

        return colorize_video(self, src, dst, **options)
