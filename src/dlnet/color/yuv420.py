"""Colour for Y'CbCr 4:2:0 video frames without full-resolution RGB: L* from the luma plane, and
L* + a*b* -> the output's planes (BT.709, limited range), torch-free.

A film arrives as 4:2:0 (one Cb and one Cr sample per 2 x 2 pixels) and leaves as 4:2:0, so the
colour only ever exists at a quarter of the pixels. Instead of building every pixel's RGB from
L* and the upsampled a*b* (:func:`dlnet.color.fullres.merge_rgb8`) and converting it back to
Y'CbCr, each 2 x 2 block is worked out once, from its mean luma's L* and the a*b* upsampled to
the chroma planes' size: its Cb and Cr, and how far the colour moves its luma (a colour of the
same L* has a lower luma than grey, up to ~10 levels for strong colours). The frame's own luma
plane is kept, shifted by that amount per block: the fine detail of a film is in its luma, which
passes through as it was. A quarter of the pixels and no per-pixel RGB: the recombination costs
about a quarter of the full-resolution one (benchmarks/README.md, video); how far its frames are
from the photo path's is measured there and checked by ``tests/test_yuv420.py``.

Inputs may be grey (Cb = Cr = 128, the usual old film: L* through a table of the block's luma)
or in colour (L* of the block's Y'CbCr, BT.601 or BT.709), limited or full range.

Example:
    >>> frame = Frame420(np.full((4, 6), 118, np.uint8))    # a mid-grey 6 x 4 luma plane, no chroma
    >>> round(float(frame.lightness()[0, 0]), 1)             # L* of each 2 x 2 block, (2, 3)
    49.9
    >>> y, cb, cr = planes(frame.merge(np.zeros((2, 1, 1), np.float32)))   # a*b* 0: grey stays grey
    >>> int(y[0, 0]), int(cb[0, 0]), int(cr[0, 0])
    (118, 128, 128)
    >>> y, cb, cr = planes(frame.merge(np.array([[[30.0]], [[20.0]]], np.float32)))  # a* 30, b* 20: red
    >>> int(y[0, 0]), int(cb[0, 0]), int(cr[0, 0])          # (luma 5 codes lower: the same L*)
    (113, 115, 162)
"""

from __future__ import annotations

import numpy as np

from dlnet.color.fullres import _F_TO_RGB, _LEVELS, _bilinear, _resize_columns, lightness

__all__ = ["Frame420", "LUMA_WEIGHTS", "block_sums", "grey_lightness", "planes", "side_by_side"]

LUMA_WEIGHTS = {709: (0.2126, 0.0722), 601: (0.299, 0.114)}  # (Kr, Kb) of each matrix
_KR, _KB = LUMA_WEIGHTS[709]  # the output's
# linear RGB (0..1, quantised to 16 bits) -> sRGB-encoded R'G'B' (0..1), finer than 8 bits everywhere
_Q = np.linspace(0, 1, _LEVELS + 1)
_GAMMA = np.where(_Q > 0.0031308, 1.055 * _Q ** (1 / 2.4) - 0.055, 12.92 * _Q).astype(np.float32)
# f(X), Y, f(Z) rows -> linear RGB columns, times the levels; 219 x the output's luma weights, Cb's and Cr's scales
_TO_RGB = np.ascontiguousarray(_F_TO_RGB * _LEVELS, np.float32)
_K = np.array([219 * _KR, 219 * (1 - _KR - _KB), 219 * _KB, 224 / 219 / (2 * (1 - _KB)), 224 / 219 / (2 * (1 - _KR))],
              np.float32)


def _range(full: bool) -> tuple[float, float, float]:
    """``(black, luma span, chroma span)`` of 8-bit codes: limited (16..235, 16..240) or full range."""
    return (0.0, 255.0, 255.0) if full else (16.0, 219.0, 224.0)


def _grey_l_table(full: bool) -> np.ndarray:
    """L* of grey by the sum of four luma codes (0..1020: a 2 x 2 block's), float32."""
    black, span, _ = _range(full)
    grey = np.clip((np.arange(1021) / 4 - black) / span, 0, 1)
    return lightness(np.repeat(grey[:, None, None], 3, axis=2))[:, 0]


_GREY_L = {full: _grey_l_table(full) for full in (False, True)}
_GREY_FY = {full: table * np.float32(1 / 116) + np.float32(16 / 116) for full, table in _GREY_L.items()}  # f(Y/Yn)


def grey_lightness(y: np.ndarray, full: bool = False) -> np.ndarray:
    """L* ``(H, W)`` float32 of a grey frame's luma codes ``y`` (uint8), as
    :func:`~dlnet.color.fullres.lightness` gives for the frame's RGB, through a table."""
    return _GREY_L[full][::4][y]


def block_sums(y: np.ndarray) -> np.ndarray:
    """``(H, W)`` uint8 luma -> ``(H/2, W/2)`` uint16 sums of each 2 x 2 block (H, W even)."""
    from dlnet.color.yuv420_kernel import block_sums as sums  # (Numba: loaded for films only)

    out = np.empty((y.shape[0] // 2, y.shape[1] // 2), np.uint16)
    sums(y, out)
    return out


def planes(i420: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Views of the Y, Cb and Cr planes ``(H, W)``, ``(H/2, W/2)``, ``(H/2, W/2)`` of an I420
    array ``(H * 3/2, W)`` (the layout of ``av.VideoFrame.from_ndarray(..., format="yuv420p")``)."""
    h, w = i420.shape[0] * 2 // 3, i420.shape[1]
    flat = i420.reshape(-1)
    return i420[:h], flat[h * w: h * w * 5 // 4].reshape(h // 2, w // 2), flat[h * w * 5 // 4:].reshape(h // 2, w // 2)


def side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Two I420 frames of one height -> one I420 frame, ``left`` | ``right``."""
    joined = [np.concatenate(pair, axis=1) for pair in zip(planes(left), planes(right))]
    return np.concatenate([p.reshape(-1, joined[0].shape[1]) for p in joined])


class Frame420:
    """One 8-bit 4:2:0 frame's luma (and chroma, if in colour), ready to take a colour.

    Args:
        y: ``(H, W)`` uint8 luma plane, H and W even.
        cb, cr: ``(H/2, W/2)`` uint8 chroma planes, or None for a grey frame.
        full: full-range codes (JPEG, ``yuvj420p``) instead of limited (16..235).
        matrix: 601 or 709, the Y'CbCr matrix of ``cb``/``cr`` (unused when grey).

    :meth:`lightness` is the ``(H/2, W/2)`` float32 L* of each block (0..100): of its mean luma
    when grey, of its mean luma and its chroma when in colour. A grey frame holds only its luma
    and the blocks' sums (3 MB at 1080p, for the queues of a pipeline); the rest comes from
    tables when it is needed.
    """

    def __init__(self, y: np.ndarray, cb: np.ndarray | None = None, cr: np.ndarray | None = None,
                 full: bool = False, matrix: int = 709) -> None:
        self.y, self.full, self.colour = y, full, cb is not None
        self.sums = block_sums(y)
        self.shape = self.sums.shape
        self._l4 = self._colour_l(self.sums, cb, cr, full, matrix) if self.colour else None

    def lightness(self) -> np.ndarray:
        """The blocks' L*, ``(H/2, W/2)`` float32."""
        return self._l4 if self.colour else _GREY_L[self.full].take(self.sums)  # (take: a fast gather)

    @staticmethod
    def _colour_l(sums: np.ndarray, cb: np.ndarray, cr: np.ndarray, full: bool, matrix: int) -> np.ndarray:
        black, span, cspan = _range(full)
        kr, kb = LUMA_WEIGHTS[matrix]
        y = (sums * np.float32(0.25) - np.float32(black)) * np.float32(1 / span)
        u = (cb.astype(np.float32) - 128) * np.float32(1 / cspan)
        v = (cr.astype(np.float32) - 128) * np.float32(1 / cspan)
        r = np.clip(y + np.float32(2 * (1 - kr)) * v, 0, 1)
        b = np.clip(y + np.float32(2 * (1 - kb)) * u, 0, 1)
        g = np.clip((y - np.float32(kr) * r - np.float32(kb) * b) * np.float32(1 / (1 - kr - kb)), 0, 1)
        return lightness(np.stack([r, g, b], axis=-1))

    def grey(self) -> np.ndarray:
        """The frame in grey, as :meth:`merge` gives it for a*b* = 0: an I420 array."""
        if self.colour or self.full:
            return self.merge(np.zeros((2, 1, 1), np.float32))
        h, w = self.y.shape
        out = np.full((h * 3 // 2, w), 128, np.uint8)
        out[:h] = self.y
        return out

    def merge(self, ab: np.ndarray) -> np.ndarray:
        """a*b* ``(2, h, w)`` float32 at any size -> the frame in colour: an I420 array
        ``(H * 3/2, W)`` uint8 (:func:`planes` splits it), BT.709 limited range.

        a*b* are upsampled to the chroma planes' size as ``F.interpolate(..., "bilinear",
        align_corners=False)`` would, each block takes the colour L* + a*b* (out-of-gamut colours
        clipped per channel, as :func:`~dlnet.color.fullres.merge_rgb8` does), and its four luma
        codes are shifted by the change of the block's luma (one compiled pass over the blocks,
        :mod:`dlnet.color.yuv420_kernel`)."""
        from dlnet.color.yuv420_kernel import merge_blocks  # (Numba: loaded for films only)

        h4, w4 = self.shape
        ab = np.asarray(ab, np.float32)
        # a*b* enter only as f(X) = f(Y) + a*/500 and f(Z) = f(Y) - b*/200: scaled once, small.
        wide = np.ascontiguousarray(_resize_columns(ab * np.array([1 / 500, -1 / 200], np.float32)[:, None, None], w4))
        i0, i1, t = _bilinear(wide.shape[1], h4)
        out = np.empty((h4 * 3, w4 * 2), np.uint8)
        y_out, cb, cr = planes(out)
        if self.colour:  # each block's f(Y/Yn) and linear Y from its L*; a grey frame's come from tables
            fy = self._l4 * np.float32(1 / 116) + np.float32(16 / 116)
            ylin = _f_inverse(fy)
        else:
            fy = ylin = np.empty((0, 0), np.float32)
        # the blocks' mean luma codes, limited range: sums x mean_k + mean_0
        mean_k, mean_0 = (0.25 * 219 / 255, 16) if self.full else (0.25, 0)
        merge_blocks(wide, i0, i1, t, self.sums, _GREY_FY[self.full], _GREY_Y[self.full], fy, ylin, np.float32(mean_k),
                     np.float32(mean_0), self.y, self.full, _GAMMA, _TO_RGB, _K, y_out, cb, cr)
        return out


def _f_inverse(t: np.ndarray) -> np.ndarray:
    """CIE's inverse of f, f(X/Xn) -> X/Xn: the cube above 6/29, below it the cube's tangent
    there (``dlnet.color.fullres``'s formula), as m^3 + 3 (6/29)^2 (t - m) with m = max(t, 6/29):
    no branch, cheaper in NumPy."""
    m = np.maximum(t, np.float32(6 / 29))
    out = m * m
    out *= m
    m -= t
    m *= np.float32(-3 * (6 / 29) ** 2)
    out += m
    return out


_GREY_Y = {full: _f_inverse(table) for full, table in _GREY_FY.items()}  # linear Y of grey, by block sum
