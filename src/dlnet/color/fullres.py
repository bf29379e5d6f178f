"""Full-resolution colour work, torch-free: photo -> L*, and L* + a*b* -> 8-bit sRGB (inference, evaluation).

At 12 MP these two steps, not the network, dominate run time and memory when written as
whole-image float conversions: a float32 RGB copy alone is 144 MB, kornia's Lab code makes
several such temporaries, and each of its ~15 element-wise torch ops is a parallel region whose
barrier stalls badly when the CPU cores are shared (we measured 3-25 s per direction on 2 busy
cores). Here the work runs on strips of 64 k pixels, small enough for every temporary to stay in
the CPU cache, in NumPy on a small thread pool (one strip per task: no barriers), and through
lookup tables where the data are 8-bit:

- sRGB uint8 -> linear RGB: a 256-entry table instead of a power per pixel;
- linear RGB -> sRGB uint8: a 65536-entry table (the linear value quantised to 16 bits, finer
  than one 8-bit step everywhere, including the steep part near black).

a*b* arrive at the working size and are upsampled bilinearly strip by strip, so the full-size
a*b* (96 MB at 12 MP) never exist. Constants and formulas are kornia's (D65, CIE L*a*b*, as in
:mod:`dlnet.color.lab`): results match ``rgb_to_lab``'s L within 1e-4 and ``merge_l_ab`` within one
8-bit level (``tests/test_colorizer.py`` checks both).

Example:
    >>> l = lightness(np.zeros((3000, 4000, 3), np.uint8))          # (H, W) float32, 0..100
    >>> merge_rgb8(l, np.zeros((2, 192, 256), np.float32)).shape   # a*b* upsampled on the fly
    (3000, 4000, 3)
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

__all__ = ["lightness", "merge_rgb8", "resize_l", "resize_plane", "threads", "srgb_to_lab", "STRIP_PIXELS"]

STRIP_PIXELS = 1 << 16  # a (strip, 3) float32 temporary is 0.8 MB: cache-resident

# kornia's constants (kornia.color.lab / xyz), kept identical so both paths agree.
_Y_FROM_RGB = np.array([0.212671, 0.715160, 0.072169], np.float32)
_XYZ_TO_RGB = np.array([[3.2404813432005266, -1.5371515162713185, -0.4985363261688878],
                        [-0.9692549499965682, 1.8759900014898907, 0.0415559265582928],
                        [0.0556466391351772, -0.2040413383665112, 1.0573110696453443]])
_WHITE = np.array([0.95047, 1.0, 1.08883])
_EPS = np.float32(0.008856)  # (6/29)^3: below it the L* curve is linear
_KAPPA = np.float32(903.2963)  # slope of that linear part
_LEVELS = 65535


def _srgb_to_linear(v: np.ndarray) -> np.ndarray:
    return np.where(v > 0.04045, ((np.maximum(v, 0.04045) + 0.055) / 1.055) ** 2.4, v / 12.92)


def _build_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y_tables = (_Y_FROM_RGB[:, None] * _srgb_to_linear(np.arange(256) / 255.0)[None]).astype(np.float32)
    q = np.linspace(0.0, 1.0, _LEVELS + 1)
    encode = np.round(255 * np.where(q > 0.0031308, 1.055 * q ** (1 / 2.4) - 0.055, 12.92 * q)).astype(np.uint8)
    # f(X), f(Y), f(Z) rows -> linear RGB columns, with the white point folded in.
    f_to_rgb = (_WHITE[:, None] * _XYZ_TO_RGB.T).astype(np.float32)
    return y_tables, encode, f_to_rgb


_Y_TABLES, _ENCODE, _F_TO_RGB = _build_tables()


def _strips(h: int, w: int) -> list[slice]:
    step = max(1, STRIP_PIXELS // max(w, 1))
    return [slice(r, min(r + step, h)) for r in range(0, h, step)]


def threads() -> int:
    """The CPU threads to use: torch's setting once torch is loaded, else ``OMP_NUM_THREADS``
    where set (as torch and onnxruntime would read it: a Ray actor given one CPU has it at 1),
    else the CPUs this process may run on (so the torch-free path never imports torch to ask)."""
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "get_num_threads"):
        return torch.get_num_threads()
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    asked = os.environ.get("OMP_NUM_THREADS", "").strip()
    return min(int(asked), cpus) if asked.isdigit() and int(asked) > 0 else cpus


def _parallel(fn, strips: list[slice]) -> None:
    """Run ``fn(rows)`` for every strip on :func:`threads` threads."""
    workers = max(1, min(threads(), len(strips)))
    if workers == 1:
        for rows in strips:
            fn(rows)
        return
    with ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(fn, strips):  # NumPy releases the GIL inside its loops
            pass


def _l_strip(x: np.ndarray, out: np.ndarray) -> None:
    """sRGB strip ``(h, W, 3)`` (uint8 or float 0..1) -> L* written into ``out`` ``(h, W)``."""
    if x.dtype == np.uint8:
        y = _Y_TABLES[0][x[..., 0]]
        y += _Y_TABLES[1][x[..., 1]]
        y += _Y_TABLES[2][x[..., 2]]
    else:
        y = (_srgb_to_linear(x.astype(np.float32)) @ _Y_FROM_RGB).astype(np.float32)
    linear_part = y * _KAPPA
    np.cbrt(np.maximum(y, _EPS, out=y), out=y)
    y *= np.float32(116.0)
    y -= np.float32(16.0)
    np.copyto(out, np.where(linear_part < _KAPPA * _EPS, linear_part, y))


def lightness(rgb: np.ndarray) -> np.ndarray:
    """sRGB ``(H, W, 3)``, uint8 0..255 or float 0..1 -> L* ``(H, W)`` float32 in 0..100."""
    h, w = rgb.shape[:2]
    out = np.empty((h, w), np.float32)
    _parallel(lambda rows: _l_strip(rgb[rows], out[rows]), _strips(h, w))
    return out


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """A few sRGB colours ``(..., 3)`` in 0..255 -> CIE L*a*b* ``(..., 3)`` float32 (kornia's
    formulas, as :func:`dlnet.color.lab.rgb_to_lab`; for colours, not photos: no strips).

    >>> srgb_to_lab(np.array([255, 0, 0])).round(1)
    array([53.2, 80.1, 67.2], dtype=float32)
    """
    linear = _srgb_to_linear(np.asarray(rgb, np.float64) / 255.0)
    xyz = linear @ np.linalg.inv(_XYZ_TO_RGB).T / _WHITE
    f = np.where(xyz > _EPS, np.cbrt(np.maximum(xyz, _EPS)), (_KAPPA * xyz + 16.0) / 116.0)
    lab = np.stack([116.0 * f[..., 1] - 16.0, 500.0 * (f[..., 0] - f[..., 1]), 200.0 * (f[..., 1] - f[..., 2])], -1)
    return lab.astype(np.float32)


def _bilinear(n_in: int, n_out: int, start: int = 0, stop: int | None = None):
    """Source indices ``i0, i1`` and weights ``t`` of outputs ``start:stop`` of a bilinear
    (align_corners=False, no antialiasing) resize from ``n_in`` to ``n_out``, as ``F.interpolate``."""
    x = np.maximum((np.arange(start, n_out if stop is None else stop) + 0.5) * (n_in / n_out) - 0.5, 0.0)
    i0 = np.minimum(np.floor(x).astype(np.intp), n_in - 1)
    return i0, np.minimum(i0 + 1, n_in - 1), (x - i0).astype(np.float32)


def _upsample_rows(ab_wide: np.ndarray, height: int, rows: slice) -> np.ndarray:
    """Rows ``rows`` of a bilinear resize of ``ab_wide`` ``(2, h, W)`` to ``height`` rows."""
    i0, i1, t = _bilinear(ab_wide.shape[1], height, rows.start, rows.stop)
    lo = ab_wide[:, i0]
    return lo + (ab_wide[:, i1] - lo) * t[:, None]


def _resize_columns(ab: np.ndarray, width: int) -> np.ndarray:
    """A bilinear resize of ``ab`` ``(2, h, w)`` to ``width`` columns."""
    i0, i1, t = _bilinear(ab.shape[-1], width)
    lo = ab[..., i0]
    return lo + (ab[..., i1] - lo) * t


def resize_l(l: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """L* ``(H, W)`` float32 -> ``shape`` as the Colorizer's resize to the working size
    (``F.interpolate(mode="bicubic", align_corners=False, antialias=True)``, clamped to 0..100: a
    cubic filter widened by the scale when shrinking).

    Why cubic: the model learnt from photos downscaled sharply; the triangle (bilinear) filter
    blurred its input and cost 0.2 dB on real photos (BSDS500 at full size, 300 photos: +0.20
    [+0.10, +0.30] with the cubic filter; benchmarks/README.md, working-size resize). Pillow's
    bicubic resize of a float image is that filter (PyTorch's antialiased resize was written after
    it): within 1e-3 of PyTorch's. It runs in C without BLAS, whose idle threads spin on the cores
    the model needs (64 photos cost 1.6 s more CPU through a matrix product).
    """
    if tuple(shape) == l.shape:
        return l
    small = resize_plane(l, shape, Image.Resampling.BICUBIC)
    return np.clip(small, 0, 100, out=np.array(small))  # (the cubic filter overshoots at edges)


def resize_plane(x: np.ndarray, shape: tuple[int, int], resample: Image.Resampling) -> np.ndarray:
    """One float plane ``(H, W)`` -> ``shape`` by Pillow's ``resample`` filter (antialiased when
    shrinking), in C without BLAS; read-only output."""
    image = Image.fromarray(np.ascontiguousarray(x, np.float32), mode="F")
    return np.asarray(image.resize((shape[1], shape[0]), resample))


def _f_inverse(f: np.ndarray) -> np.ndarray:
    """CIE's inverse of f: f(X/Xn) -> X/Xn (cube above 6/29, linear below)."""
    return np.where(f > np.float32(6 / 29), f * f * f, (f - np.float32(4 / 29)) * np.float32(1 / 7.787))


def _encode(linear: np.ndarray, out: np.ndarray) -> None:
    """Linear RGB (any shape, float32, modified in place) -> sRGB uint8 into ``out``."""
    np.clip(linear, 0.0, 1.0, out=linear)
    linear *= np.float32(_LEVELS)
    linear += np.float32(0.5)
    np.take(_ENCODE, linear.astype(np.uint16), out=out)


def _merge_strip(l: np.ndarray, ab: np.ndarray | None, out: np.ndarray) -> None:
    """L* ``(h, W)`` + a*b* ``(2, h, W)`` (None: grey) -> sRGB uint8 written into ``out``."""
    fy = l * np.float32(1 / 116) + np.float32(16 / 116)
    if ab is None:  # neutral grey: R = G = B = sRGB(Y) exactly
        grey = np.empty(l.shape, np.uint8)
        _encode(_f_inverse(fy), grey)
        out[...] = grey[..., None]
        return
    f = np.empty(l.shape + (3,), np.float32)
    np.add(fy, ab[0] * np.float32(1 / 500), out=f[..., 0])
    f[..., 1] = fy
    np.maximum(fy - ab[1] * np.float32(1 / 200), 0.0, out=f[..., 2])  # Z < 0 is out of range
    _encode(_f_inverse(f) @ _F_TO_RGB, out)


def merge_rgb8(l: np.ndarray, ab: np.ndarray | None) -> np.ndarray:
    """L* ``(H, W)`` + a*b* ``(2, h, w)`` at any size (None: neutral grey) -> sRGB ``(H, W, 3)`` uint8.

    ``ab`` may be a torch tensor. a*b* are upsampled to ``(H, W)`` as ``F.interpolate(...,
    mode="bilinear", align_corners=False)`` would. Out-of-gamut colours are clipped per channel, as
    :func:`dlnet.color.lab.lab_to_rgb` does.
    """
    h, w = l.shape
    out = np.empty((h, w, 3), np.uint8)
    ab_wide = None
    if ab is not None:
        if not isinstance(ab, np.ndarray):  # a torch tensor, on any device
            ab = ab.detach().float().cpu().numpy()
        ab = ab.astype(np.float32, copy=False)
        # The horizontal half of the resize runs on the few working-size rows only.
        ab_wide = _resize_columns(ab, w) if ab.shape[-1] != w else ab

    def strip(rows: slice) -> None:
        if ab_wide is None:
            ab_rows = None
        elif ab_wide.shape[1] == h:
            ab_rows = ab_wide[:, rows]
        else:
            ab_rows = _upsample_rows(ab_wide, h, rows)
        _merge_strip(l[rows], ab_rows, out[rows])

    _parallel(strip, _strips(h, w))
    return out
