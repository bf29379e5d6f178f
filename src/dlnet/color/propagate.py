"""Colour hints as maps, and spread by optimisation (Levin, Lischinski & Weiss 2004), torch-free.

:func:`hint_map` draws users' colour points into a working-size hint map ``(3, h, w)``: raw a*,
raw b* and a 0/1 mask, what a hint model takes (:data:`dlnet.model.net.HINT_CHANNELS`) and what
:func:`propagate` spreads.

:func:`propagate` is "Colorization using Optimization" with the model's prediction as the
starting point: neighbouring pixels with similar L* should get similar colour, so each pixel's
*correction* ``D = U - P`` (``U`` the result, ``P`` the model's a*b*) should be the weighted
mean of its 3x3 neighbours' corrections, with Levin et al.'s weights
``w_rs ~ exp(-(L_r - L_s)^2 / (2 var_r))`` (``var_r`` the L* variance of r's window), summing to
1. At hint pixels ``D`` is fixed (``U`` is the hint); ``decay`` adds ``decay * D_r`` to every
other pixel's equation, so that far from any hint the correction fades and the model's own
colour stays. How far is a choice: the default (:data:`DECAY`, the best on validation photos)
is small, so a lone hint's correction reaches most of the photo, as in Levin et al. (a red
point on a dress also warms the rest a little: on average that fixes the model's overall cast);
larger decays keep corrections near their hints and their regions. The system is sparse (9
entries per row) and solved directly (SciPy's SuperLU), once for a* and b* together, at half the
working size (``coarsen=2``: 2 x 2 means of L*, of the prediction and of the hints): the U-Net
predicts a*b* at half the working size anyway, and a quarter of the unknowns factorises about 4x
faster (a 1-MP photo's update, benchmarks/README.md) at the same accuracy on validation photos
(docs/RESULTS.md). The correction is upsampled bilinearly and the hint pixels are set exactly.
No hints: the model's a*b* unchanged.

Example:
    >>> from dlnet.io.hints import Hint
    >>> l = np.zeros((8, 8), np.float32); l[:, 4:] = 80          # a dark and a light region
    >>> hints = hint_map([Hint(1, 1, (200, 30, 30)), Hint(6.5, 6.5, (30, 30, 200))], (8, 8), (8, 8))
    >>> out = propagate(l, np.zeros((2, 8, 8), np.float32), hints)    # the model said grey
    >>> bool((out[0, :, :3] > 50).all()), bool((out[1, :, 5:] < -60).all())   # each fills its region
    (True, True)
    >>> exact = propagate(l, np.zeros((2, 8, 8), np.float32), hints, coarsen=1)  # solved at 8 x 8: sharp
    >>> bool((exact[0, :, :4] > 50).all()), bool((exact[1, :, 4:] < -60).all())
    (True, True)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from dlnet.color.fullres import resize_plane, srgb_to_lab

__all__ = ["hint_map", "propagate", "DEFAULT_RADIUS", "DECAY", "COARSEN"]

DEFAULT_RADIUS = 1.5  # a hint without a radius covers 3 x 3 working-size pixels around its own
DECAY = 4e-5  # how fast a correction fades away from its hints, per pixel of the solve (validation photos: docs/RESULTS.md)
COARSEN = 2  # the solve's grid: the working size / COARSEN, the U-Net's own output grid


def hint_map(hints: Sequence, photo_hw: tuple[int, int], work_hw: tuple[int, int]) -> np.ndarray:
    """Hints of a ``photo_hw`` photo drawn at the working size ``work_hw``.

    Args:
        hints: :class:`dlnet.io.hints.Hint` s (anything with ``x``, ``y`` in the photo's pixels,
            x to the right and y down from the top left; ``color``, sRGB 0..255, of which only
            the a*b* count; ``radius`` in the photo's pixels, None for :data:`DEFAULT_RADIUS`
            working pixels).
        photo_hw, work_hw: the photo's and the working size's (height, width).

    Returns:
        ``(3, h, w)`` float32: raw a*, b* and the mask. A hint covers the working pixels whose
        centres lie strictly inside its square (at least the pixel under the point); where
        hints overlap, the later one wins.
    """
    (big_h, big_w), (h, w) = photo_hw, work_hw
    out = np.zeros((3, h, w), np.float32)
    if not hints:
        return out
    sy, sx = h / big_h, w / big_w
    ab = srgb_to_lab(np.array([hint.color for hint in hints], np.float64))[:, 1:]
    for hint, (a, b) in zip(hints, ab):
        rw = DEFAULT_RADIUS if hint.radius is None else hint.radius * (sx + sy) / 2
        rows, cols = _span(hint.y * sy, rw, h), _span(hint.x * sx, rw, w)
        out[0, rows, cols], out[1, rows, cols], out[2, rows, cols] = a, b, 1.0
    return out


def _span(c: float, r: float, n: int) -> slice:
    """The pixels ``i`` of ``0..n-1`` with ``|i + 0.5 - c| < r``, or the one containing ``c``."""
    lo, hi = max(0, int(np.floor(c - r - 0.5)) + 1), min(n, int(np.ceil(c + r - 0.5)))
    if hi <= lo:
        i = min(n - 1, max(0, int(c)))
        return slice(i, i + 1)
    return slice(lo, hi)


def _weights(l: np.ndarray):
    """Levin et al.'s affinities: for every pixel, its 8 neighbours' weights (summing to 1)."""
    import scipy.sparse as sp

    h, w = l.shape
    n = h * w
    pad = np.pad(l.astype(np.float64), 1, mode="edge")
    shifts = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
    window = np.stack([pad[1 + dy:1 + dy + h, 1 + dx:1 + dx + w] for dy, dx in shifts + [(0, 0)]])
    var = window.var(0) * 0.6  # as Levin et al.'s code: a little below the window's variance
    var = np.maximum(var, 2e-6 * 100 ** 2)  # L* in 0..100: their floor of 2e-6 on 0..1 intensities
    idx = np.arange(n).reshape(h, w)
    rows, cols, vals = [], [], []
    for dy, dx in shifts:
        ys, xs = slice(max(0, -dy), h - max(0, dy)), slice(max(0, -dx), w - max(0, dx))
        ns = slice(max(0, dy), h + min(0, dy)), slice(max(0, dx), w + min(0, dx))
        rows.append(idx[ys, xs].ravel())
        cols.append(idx[ns].ravel())
        vals.append(np.exp(-(l[ys, xs] - l[ns]).astype(np.float64).ravel() ** 2 / (2 * var[ys, xs].ravel())))
    rows, cols, vals = map(np.concatenate, (rows, cols, vals))
    sums = np.bincount(rows, vals, n)
    return sp.csr_matrix((vals / sums[rows], (rows, cols)), shape=(n, n))


def propagate(l: np.ndarray, ab: np.ndarray, hints: np.ndarray, decay: float | None = None,
              coarsen: int = COARSEN) -> np.ndarray:
    """Spread hints over the model's a*b* along L* (see the module doc).

    Args:
        l: working-size L* ``(h, w)``, 0..100.
        ab: the model's raw a*b* ``(2, h, w)`` at that size.
        hints: ``(3, h, w)`` from :func:`hint_map`.
        decay: > 0; larger keeps corrections closer to their hints (None: :data:`DECAY`).
        coarsen: solve on a grid this many times coarser (1: at the working size itself).

    Returns:
        ``(2, h, w)`` float32: the hints at their pixels, the model's colour far from them.
    """
    mask = hints[2] > 0
    if not mask.any():
        return ab
    decay = DECAY if decay is None else decay
    if coarsen == 1:
        return ab + _correction(l, ab, hints, decay)
    h, w = l.shape
    ph, pw = -h % coarsen, -w % coarsen  # odd sizes: edge rows and columns repeated

    def pooled(x: np.ndarray) -> np.ndarray:  # (..., h, w) -> 2 x 2 (coarsen x coarsen) means
        x = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(0, ph), (0, pw)], mode="edge")
        return x.reshape(*x.shape[:-2], x.shape[-2] // coarsen, coarsen, x.shape[-1] // coarsen, coarsen).mean((-3, -1))

    share = pooled(mask.astype(np.float64))
    small = np.concatenate([pooled(hints[:2] * mask) / np.maximum(share, 1e-12), (share > 0)[None]]).astype(np.float32)
    d = _correction(pooled(l).astype(np.float32), pooled(ab).astype(np.float32), small, decay)
    # bilinear, as the model's a*b* are upsampled
    d = np.stack([resize_plane(c, (h + ph, w + pw), Image.Resampling.BILINEAR) for c in d])[:, :h, :w]
    out = ab + d
    out[:, mask] = hints[:2][:, mask]  # the hints exactly where they are
    return out.astype(np.float32)


def _correction(l: np.ndarray, ab: np.ndarray, hints: np.ndarray, decay: float) -> np.ndarray:
    """The solve: ``D = U - P`` ``(2, h, w)`` for working-size (or coarsened) inputs."""
    import scipy.sparse as sp
    from scipy.sparse.linalg import splu

    mask = hints[2].ravel() > 0
    h, w = l.shape
    n = h * w
    free = (1.0 + decay) * sp.identity(n, format="csr") - _weights(l)
    # hint rows become identity rows: D_r = hint - prediction there
    keep = sp.diags((~mask).astype(np.float64))
    a = (keep @ free + sp.diags(mask.astype(np.float64))).tocsc()
    rhs = np.zeros((n, 2))
    rhs[mask] = (hints[:2].reshape(2, -1)[:, mask] - ab.reshape(2, -1)[:, mask]).T
    # Every free row's diagonal (1 + decay) outweighs its neighbours' weights (they sum to 1) and
    # hint rows are identity rows: no pivoting is needed, and a symmetric ordering of A + A^T
    # halves the factorisation time (98-119 ms against 168-216 for a 128 x 96 system).
    d = splu(a, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options={"SymmetricMode": True}).solve(rhs)
    return d.T.reshape(2, h, w).astype(np.float32)
