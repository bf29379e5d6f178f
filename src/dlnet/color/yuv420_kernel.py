"""The per-block colour of :meth:`dlnet.color.yuv420.Frame420.merge`, compiled by Numba.

The same float32 arithmetic, in the same order, as the NumPy expression of it that it replaced:
bit for bit the same frames (compared on 720p frames; golden frames in ``tests/test_yuv420.py``),
in one pass over each row of blocks instead of about 70 passes over the chroma planes: a 720p
frame's merge 3.4 ms instead of 8.2 (benchmarks/README.md, video). Each row runs in stages so
that the arithmetic is vectorised: the table lookups (gathers, which the compiler does not
vectorise) are loops of their own. Imported only when a film's frame is merged; compiled once
per machine (Numba's cache: beside this file, or in the user's cache folder where this one
cannot be written).
"""

from __future__ import annotations

import numpy as np
from numba import njit

_F32 = np.float32
_ZERO, _HALF = _F32(0), _F32(0.5)
_KNEE, _SLOPE = _F32(6 / 29), _F32(-3 * (6 / 29) ** 2)
_ROUND_SHIFT = _F32(16.5 + 1024)  # (+1024: rounded by truncating a positive number)
_CHROMA_ZERO = _F32(128.5)
_TO_LIMITED, _LIMITED_BLACK = _F32(219 / 255), _F32(16.5)


@njit(inline="always")
def _f_inverse(t):
    """CIE's inverse of f as m^3 + 3 (6/29)^2 (t - m), m = max(t, 6/29): no branch."""
    m = t if t > _KNEE else _KNEE
    return m * m * m + (m - t) * _SLOPE


@njit(inline="always")
def _level(lin, levels):
    """A linear channel (0..levels), clipped to the gamut, as the gamma table's index."""
    lin = lin if lin > _ZERO else _ZERO
    return np.int32((lin if lin < levels else levels) + _HALF)


@njit(nogil=True)
def _chroma_row(fa, fb, fy, ylin, sums, mean_k, mean_0, gamma, m, k, levels, cb, cr, shift, rgb, index):
    """One row of blocks: f(X) - f(Y) ``fa``, f(Z) - f(Y) ``fb``, f(Y) ``fy`` and linear Y
    ``ylin`` -> Cb, Cr, and the luma shift + 1024 (int16) of each block."""
    n = fa.shape[0]
    m00, m01, m02, m10, m11, m12, m20, m21, m22 = m[0, 0], m[0, 1], m[0, 2], m[1, 0], m[1, 1], m[1, 2], m[2, 0], m[2, 1], m[2, 2]
    kr, kg, kb, kcb, kcr = k[0], k[1], k[2], k[3], k[4]  # (held in registers: the loops vectorise)
    for c in range(n):
        fx = fa[c] + fy[c]
        fz = fb[c] + fy[c]
        fz = fz if fz > _ZERO else _ZERO  # Z < 0 is out of range
        x0, x1, x2 = _f_inverse(fx), ylin[c], _f_inverse(fz)
        index[0, c] = _level(x0 * m00 + x1 * m10 + x2 * m20, levels)
        index[1, c] = _level(x0 * m01 + x1 * m11 + x2 * m21, levels)
        index[2, c] = _level(x0 * m02 + x1 * m12 + x2 * m22, levels)
    for ch in range(3):  # sRGB-encoded R'G'B' by table (a gather)
        for c in range(n):
            rgb[ch, c] = gamma[index[ch, c]]
    for c in range(n):
        luma = rgb[0, c] * kr + rgb[1, c] * kg + rgb[2, c] * kb  # 0..219
        cb[c] = np.uint8((rgb[2, c] * _F32(219) - luma) * kcb + _CHROMA_ZERO)  # 16..240: no clipping
        cr[c] = np.uint8((rgb[0, c] * _F32(219) - luma) * kcr + _CHROMA_ZERO)
        shift[c] = np.int16(luma - (_F32(sums[c]) * mean_k + mean_0) + _ROUND_SHIFT)


@njit(nogil=True)
def _luma_row(y, full, shift, out):
    """One row of pixels: each moved by its block's shift, in 8-bit saturating steps."""
    for x in range(y.shape[0]):
        s = np.int32(shift[x >> 1]) - 1024
        down = -s if -s > 0 else 0  # a colour is darker in luma than its grey: down ...
        down = down if down < 255 else 255
        up = s if s > 0 else 0  # ... or up
        up = up if up < 255 else 255
        v = np.int32(np.uint8(_F32(y[x]) * _TO_LIMITED + _LIMITED_BLACK)) if full else np.int32(y[x])
        o = (v if v > down else down) - down
        top = 255 - up
        out[x] = (o if o < top else top) + up


@njit(cache=True, nogil=True)
def merge_blocks(wide, i0, i1, t, sums, fy_table, ylin_table, fy, ylin, mean_k, mean_0, y, full, gamma, to_rgb, k,
                 y_out, cb, cr):
    """Colour every 2 x 2 block of a frame.

    ``wide (2, h, W/2)`` float32: a*/500 and -b*/200 resized to the chroma width; ``i0, i1, t``:
    each block row's two rows of ``wide`` and its weight; ``sums (H/2, W/2)`` uint16: the blocks'
    luma sums; f(Y/Yn) and linear Y of each block: ``fy_table[sums]``, ``ylin_table[sums]`` (a
    grey frame; ``fy``, ``ylin`` empty) or ``fy``, ``ylin (H/2, W/2)`` float32; the blocks' mean
    luma code (limited range): ``sums * mean_k + mean_0``; ``y (H, W)`` uint8: the frame's luma
    (``full``: full range, made limited here); ``gamma``: linear (0..65535) -> R'G'B' 0..1;
    ``to_rgb (3, 3)`` float32: f(X), Y, f(Z) rows -> linear RGB columns, times 65535; ``k (5,)``:
    219 x the output's (Kr, 1 - Kr - Kb, Kb), then Cb's and Cr's scales. Writes ``y_out (H, W)``,
    ``cb``, ``cr (H/2, W/2)`` uint8."""
    levels = _F32(gamma.shape[0] - 1)
    w4 = sums.shape[1]
    fa, fb = np.empty(w4, np.float32), np.empty(w4, np.float32)
    fy_row, ylin_row = np.empty(w4, np.float32), np.empty(w4, np.float32)
    rgb, index, shift = np.empty((3, w4), np.float32), np.empty((3, w4), np.int32), np.empty(w4, np.int16)
    grey = fy.shape[0] == 0
    for r in range(sums.shape[0]):
        w, a0, a1, b0, b1 = t[r], wide[0, i0[r]], wide[0, i1[r]], wide[1, i0[r]], wide[1, i1[r]]
        for c in range(w4):  # a*b* upsampled to this row: (hi - lo) t + lo
            fa[c] = (a1[c] - a0[c]) * w + a0[c]
            fb[c] = (b1[c] - b0[c]) * w + b0[c]
        if grey:
            for c in range(w4):
                fy_row[c] = fy_table[sums[r, c]]
                ylin_row[c] = ylin_table[sums[r, c]]
        else:
            fy_row[:] = fy[r]
            ylin_row[:] = ylin[r]
        _chroma_row(fa, fb, fy_row, ylin_row, sums[r], mean_k, mean_0, gamma, to_rgb, k, levels, cb[r], cr[r],
                    shift, rgb, index)
        _luma_row(y[2 * r], full, shift, y_out[2 * r])
        _luma_row(y[2 * r + 1], full, shift, y_out[2 * r + 1])


@njit(cache=True, nogil=True)
def block_sums(y, out):
    """``y (H, W)`` uint8 -> ``out (H/2, W/2)`` uint16: the sum of each 2 x 2 block's codes."""
    for r in range(out.shape[0]):
        top, bottom, row = y[2 * r], y[2 * r + 1], out[r]
        for c in range(out.shape[1]):
            row[c] = (np.uint16(top[2 * c]) + np.uint16(top[2 * c + 1])) + (np.uint16(bottom[2 * c]) + np.uint16(bottom[2 * c + 1]))
