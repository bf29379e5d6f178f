"""Colour that stays put over time: smoothing a*b* predicted frame by frame, and measuring flicker.

A colorizer guesses every frame's colour afresh; small changes of a frame (grain, exposure
flicker of old film, compression noise) change the guess, and the colour flickers although the
scene does not. :class:`TemporalSmoother` averages the guesses over time where the scene is
still, follows them where it moves, and starts afresh at scene cuts; :func:`flicker` measures
what is left (docs/VIDEO.md has the numbers).

Example:
    >>> smoother = TemporalSmoother(0.9)
    >>> ab = smoother(ab_of_frame, l_of_frame)   # (2, h, w), (1, h, w) float32 at working size  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

__all__ = ["DEFAULT_TEMPORAL", "TemporalSmoother", "flicker"]

DEFAULT_TEMPORAL = 0.9  # weight of the past at still pixels; chosen by `benchmarks/video.py flicker` (docs/VIDEO.md)


class TemporalSmoother:
    """Per-pixel exponential moving average of a*b* at the working size, restarted at scene cuts.

    ``strength`` (0..1) is the weight of the past where the scene is still: 0.9 averages over
    about 10 frames. Where L* moved away from its own running average (motion), the weight falls
    as ``exp(-(dL/motion)^2)``, so colour follows moving edges instead of trailing them. L* is
    compared after matching each frame's mean and spread, so exposure flicker is not motion.

    A cut restarts the average: consecutive frames whose standardised L* correlate less than
    ``cut_corr``, or whose histograms of it differ by more than ``cut_hist`` (total variation).
    Measured at 256 px (docs/VIDEO.md): still frames with grain and exposure flicker correlate
    above 0.99, a slow pan 0.9, a fast one (5 % of the width per frame) 0.57, cuts between
    photos below 0.15; the histograms alone missed cuts (0.16..0.57 for cuts, 0.16 for the fast pan).
    """

    def __init__(self, strength: float = DEFAULT_TEMPORAL, motion: float = 6.0, cut_corr: float = 0.3,
                 cut_hist: float = 0.4) -> None:
        if not 0.0 <= strength < 1.0:
            raise ValueError(f"temporal strength must lie in 0..1 (1 excluded), got {strength}")
        self.strength, self.motion, self.cut_corr, self.cut_hist = strength, motion, cut_corr, cut_hist
        self.cuts = 0
        self._ab = self._ref = self._prev = self._hist = None

    def __call__(self, ab: np.ndarray, l: np.ndarray) -> np.ndarray:
        """a*b* ``(2, h, w)`` and L* ``(1, h, w)`` of one frame (float32) -> smoothed a*b*.

        NumPy, not torch: a few small operations per frame, which as OpenMP regions stall for
        milliseconds each on busy cores."""
        if self.strength == 0:
            return ab
        std = max(float(l.std()), 2.0)
        z = (l - l.mean()) / np.float32(std)
        hist = np.histogram(z, bins=32, range=(-3, 3))[0] / z.size
        if self._ab is None or self._is_cut(z, hist):
            self.cuts += self._ab is not None
            self._ab, self._ref = ab, z
        else:
            w = self.strength * np.exp(-np.square((z - self._ref) * np.float32(std / self.motion)))
            self._ab, self._ref = ab + (self._ab - ab) * w, z + (self._ref - z) * w
        self._prev, self._hist = z, hist
        return self._ab

    def _is_cut(self, z: np.ndarray, hist: np.ndarray) -> bool:
        return float((z * self._prev).mean()) < self.cut_corr or 0.5 * float(np.abs(hist - self._hist).sum()) > self.cut_hist


def flicker(frames: Iterable[np.ndarray], block: int = 8) -> float:
    """Mean absolute change of a* and b* between consecutive frames (CIE units, both channels) of
    sRGB ``(H, W, 3)`` uint8 frames: 0 for colour that never changes.

    a*b* are first averaged over ``block`` x ``block`` pixels: colour flicker is a change of
    regions, and single pixels of 8-bit video carry rounding and compression noise in a*b* (a
    level of a dark grey moves a*b* by several units) that no colorizer can remove.
    ``block=1``: per pixel."""
    import torch

    from dlnet.color.lab import rgb_to_lab

    total, n, prev = 0.0, 0, None
    for rgb in frames:
        ab = rgb_to_lab(torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255)[:, 1:]
        ab = torch.nn.functional.avg_pool2d(ab, block, ceil_mode=True) if block > 1 else ab
        if prev is not None:
            total, n = total + float((ab - prev).abs().mean()), n + 1
        prev = ab
    return total / max(n, 1)
