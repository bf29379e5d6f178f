"""Colour hints simulated from the truth, to train a hint model (Zhang et al. 2017).

A user's hint says "this spot is this colour": here, a small square patch of a photo filled with
the mean of its true a*b*. A hint map is ``(B, 3, H, W)``: raw a*, raw b* (0 where no hint) and a
0/1 mask (:data:`dlnet.model.net.HINT_CHANNELS`), what :meth:`dlnet.model.net.DLNet.forward` takes.
Where patches overlap, their colours are averaged.

How many points a photo gets, as Zhang et al. but spread over every count users give: none with
probability ``p_none`` (so that the automatic result keeps being trained), else log-uniform in
``1..max_points`` (each octave, 1, 2-3, 4-7, ..., 64-128, equally likely). Positions are Gaussian
around the centre (sigma a quarter of the side), patch sides uniform in ``1..max_side`` px.

Example:
    >>> ab = torch.zeros(2, 2, 32, 32); ab[:, 0] = 40.0
    >>> hints = simulate_hints(ab, torch.Generator().manual_seed(0), p_none=0.0, points=4)
    >>> hints.shape, bool((hints[:, 0][hints[:, 2] > 0] == 40).all()), bool(hints[:, 2].sum() >= 2 * 4)
    (torch.Size([2, 3, 32, 32]), True, True)
"""

from __future__ import annotations

import math

import torch

__all__ = ["simulate_hints", "patch_hints"]


def patch_hints(ab: torch.Tensor, counts: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor,
                sides: torch.Tensor) -> torch.Tensor:
    """The hint map of square truth patches: photo ``b`` gets its first ``counts[b]`` points.

    Args:
        ab: raw a*b* ``(B, 2, H, W)``, the truth.
        counts: ``(B,)`` int, points per photo (0..P).
        ys, xs: ``(B, P)`` int, each patch's top-left pixel (clipped so the patch fits).
        sides: ``(B, P)`` int, each patch's side in px (>= 1).

    Returns:
        ``(B, 3, H, W)`` float: the patches' mean a*b* and the mask.
    """
    b, _, h, w = ab.shape
    p = ys.shape[1]
    dev = ab.device
    ab = ab.float()
    sides = sides.clamp(1, min(h, w))
    ys, xs = ys.clamp(min=0), xs.clamp(min=0)
    ys, xs = torch.minimum(ys, h - sides), torch.minimum(xs, w - sides)
    # each patch's mean a*b* from the integral image: four lookups per patch, any side
    integral = torch.nn.functional.pad(ab.cumsum(2).cumsum(3), (1, 0, 1, 0)).flatten(2)  # (B, 2, (H+1)(W+1))

    def at(y, x):
        return integral.gather(2, (y * (w + 1) + x).unsqueeze(1).expand(b, 2, p))

    y1, x1 = ys + sides, xs + sides
    mean = (at(y1, x1) - at(ys, x1) - at(y1, xs) + at(ys, xs)) / (sides * sides).unsqueeze(1)  # (B, 2, P)
    # paint: every (point, offset) pixel of every patch, offsets past a patch's side dropped
    s_max = int(sides.max()) if p else 1
    off = torch.arange(s_max, device=dev)
    dy, dx = off.view(1, 1, -1, 1), off.view(1, 1, 1, -1)
    keep = (dy < sides[..., None, None]) & (dx < sides[..., None, None])
    keep &= (torch.arange(p, device=dev).view(1, -1, 1, 1) < counts.view(-1, 1, 1, 1))
    pix = (ys[..., None, None] + dy) * w + (xs[..., None, None] + dx)  # (B, P, S, S)
    pix = torch.where(keep, pix, h * w)  # dropped offsets land in a spare slot
    values = torch.cat([mean, torch.ones_like(mean[:, :1])], 1)  # (B, 3, P): a*, b*, 1
    values = values[..., None, None].expand(b, 3, p, s_max, s_max).reshape(b, 3, -1)
    out = ab.new_zeros(b, 3, h * w + 1).scatter_add_(2, pix.reshape(b, 1, -1).expand(b, 3, -1), values)
    out = out[..., :-1].view(b, 3, h, w)
    n = out[:, 2:]
    return torch.cat([out[:, :2] / n.clamp(min=1), (n > 0).float()], 1)  # overlaps averaged


def simulate_hints(ab: torch.Tensor, generator: torch.Generator | None = None, p_none: float = 0.5,
                   max_points: int = 128, max_side: int = 5, points: int | None = None,
                   side: int | None = None) -> torch.Tensor:
    """Random hints from the truth ``ab`` ``(B, 2, H, W)`` -> hint map ``(B, 3, H, W)``.

    ``points`` and ``side`` fix the count and the patch side (validation, benchmarks) instead of
    drawing them; ``generator`` lives on ``ab``'s device (None: the global one).
    """
    b, _, h, w = ab.shape
    dev = ab.device

    def rand(*shape):
        return torch.rand(*shape, device=dev, generator=generator)

    if points is None:  # none, or log-uniform in 1..max_points
        counts = torch.exp(rand(b) * math.log(max_points + 1)).floor().long().clamp(1, max_points)
        counts = torch.where(rand(b) < p_none, 0, counts)
        p = max(int(counts.max()), 1)
    else:
        counts, p = torch.full((b,), points, device=dev, dtype=torch.long), max(points, 1)
    sides = (torch.full((b, p), side, device=dev) if side is not None
             else (rand(b, p) * max_side).floor().long() + 1)
    g = torch.randn(b, p, 2, device=dev, generator=generator)
    cy = (h / 2 + g[..., 0] * h / 4).clamp(0, h - 1)  # Gaussian around the centre, as Zhang et al.
    cx = (w / 2 + g[..., 1] * w / 4).clamp(0, w - 1)
    ys, xs = (cy - (sides - 1) / 2).round().long(), (cx - (sides - 1) / 2).round().long()
    return patch_hints(ab, counts, ys, xs, sides.long())
