"""Quantised a*b*: the colour bins, the training photos' colour prior and its rebalancing weights.

Zhang, Isola & Efros (ECCV 2016) turn colorization into classification over a*b* bins of 10
units and fight the pull towards grey by weighting each pixel by the inverse of how common its
colour is. This module holds the pieces, shared by the ``rebalanced`` and ``classification``
losses (:mod:`dlnet.train.losses`) and the classification head of :class:`dlnet.model.net.DLNet`:

- :func:`gamut_bins`: the bins on the 10-unit grid that some sRGB colour falls in (262 with
  dlnet's D65 Lab; Zhang et al.'s 313 are the same idea drawn more generously, from a hull);
- :func:`nearest_bin`, :func:`soft_encode`: a pixel's bin, and its target spread over the 5
  nearest bins with a Gaussian (sigma 5);
- :func:`ab_prior` -> :class:`ABPrior`: how often each bin occurs in the training photos,
  Gaussian-smoothed, and the weights ``w ∝ 1 / ((1 - λ) p̃ + λ / Q)`` normalised so that
  ``Σ p̃ w = 1`` (λ = 0.5); saved with a run as JSON;
- :func:`annealed_mean`: logits -> a*b*, the expectation over bin centres of
  ``softmax(logits / T)``, T = 0.38: between the mean (T = 1, greyish) and the mode (T -> 0,
  vivid but patchy).

This is not :mod:`dlnet.color.rebalance`, the colour post-process applied at inference.

Example (a prior where grey is 3 times as common as red: red pixels weigh 10/6 as much):

    >>> import torch
    >>> bins = torch.tensor([[0.0, 0.0], [60.0, 40.0]])
    >>> rebalancing_weights(torch.tensor([0.75, 0.25]), lam=0.5)
    tensor([0.8571, 1.4286])
    >>> ab = torch.tensor([[[[1.0]], [[-2.0]]]])              # (1, 2, 1, 1), near grey
    >>> nearest_bin(ab, bins).tolist()
    [[[0]]]
    >>> annealed_mean(torch.tensor([[[[5.0]], [[0.0]]]]), bins, temperature=0.01).flatten().tolist()
    [0.0, 0.0]
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

__all__ = ["GRID", "SIGMA", "LAMBDA", "TEMPERATURE", "NEIGHBOURS", "ABPrior", "gamut_bins", "nearest_bin",
           "soft_encode", "smooth_prior", "rebalancing_weights", "ab_prior", "annealed_mean"]

GRID = 10.0  # bin spacing in a*b* units; a bin covers its centre +- 5
SIGMA = 5.0  # Gaussian of the soft-encoding and of the prior's smoothing, a*b* units
LAMBDA = 0.5  # share of the uniform distribution mixed into the prior
TEMPERATURE = 0.38  # annealed-mean temperature (Zhang et al.'s choice)
NEIGHBOURS = 5  # bins a target is soft-encoded over
_REACH = 12  # grid cells -12..12 cover a*b* -125..125, beyond every sRGB colour (-86..99, -108..95)


def _cell(ab: torch.Tensor) -> torch.Tensor:
    """Grid index of a*b* values: round half up, so that a bin covers [c - 5, c + 5)."""
    return torch.floor(ab / GRID + 0.5).long().clamp(-_REACH, _REACH)


@functools.lru_cache(maxsize=1)
def _gamut_cells() -> tuple[tuple[int, int], ...]:
    from dlnet.color.lab import rgb_to_lab

    # The ab projection of the sRGB cube is the projection of its six faces; 128 steps per side
    # find the same cells as 2048 (a sliver at (20, -80) is the finest one).
    v = torch.linspace(0, 1, 128)
    u, w = (t.reshape(-1) for t in torch.meshgrid(v, v, indexing="ij"))
    faces = []
    for axis in range(3):
        for value in (0.0, 1.0):
            rgb = [u, w]
            rgb.insert(axis, torch.full_like(u, value))
            faces.append(torch.stack(rgb))
    lab = rgb_to_lab(torch.cat(faces, 1)[None, :, :, None])[0, 1:, :, 0]
    return tuple(map(tuple, torch.unique(_cell(lab).T, dim=0).tolist()))


def gamut_bins() -> torch.Tensor:
    """Centres ``(Q, 2)`` float32 of the 10-unit a*b* bins that some sRGB colour falls in (Q = 262),
    sorted by a* then b*. Computed once per process (a fraction of a second)."""
    return torch.tensor(_gamut_cells(), dtype=torch.float32) * GRID


def nearest_bin(ab: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """Each pixel's bin: ``(B, 2, H, W)`` a*b* -> ``(B, H, W)`` int64 indices into ``bins`` ``(Q, 2)``.

    A pixel goes to its 10-unit grid cell and the cell to the bin nearest its centre: exact for
    bins on the grid (a cell that is a bin is its own nearest), a table look-up however many
    pixels (the prior of 2,000 photos is 30 M pixels).
    """
    side = 2 * _REACH + 1
    grid = torch.arange(-_REACH, _REACH + 1, device=ab.device, dtype=torch.float32) * GRID
    centres = torch.stack(torch.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 2)
    table = torch.cdist(centres, bins.to(ab.device, torch.float32)).argmin(1)  # (side * side,)
    cell = _cell(ab.detach().float()) + _REACH
    return table[cell[:, 0] * side + cell[:, 1]]


@torch.no_grad()
def soft_encode(ab: torch.Tensor, bins: torch.Tensor, sigma: float = SIGMA, k: int = NEIGHBOURS,
                chunk: int = 1 << 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Zhang et al.'s soft target: each pixel spread over its ``k`` nearest bins with a Gaussian.

    Args:
        ab: target a*b* ``(B, 2, H, W)``.
        bins: bin centres ``(Q, 2)``.
        sigma: the Gaussian's standard deviation in a*b* units.
        k: bins per pixel (at most Q).
        chunk: pixels per distance computation (bounds memory at ``chunk * Q`` floats).

    Returns:
        ``(index, weight)``, both ``(B, k, H, W)``: bin indices, nearest first, and weights that sum
        to 1 over ``k``.
    """
    b, _, h, w = ab.shape
    k = min(k, len(bins))
    pixels = ab.detach().float().permute(0, 2, 3, 1).reshape(-1, 2)
    centres = bins.to(ab.device, torch.float32)
    dist, index = zip(*(torch.cdist(p, centres).topk(k, dim=1, largest=False) for p in pixels.split(chunk)))
    d2 = torch.cat(dist).pow(2)
    # Relative to the nearest bin, so a pixel far from every bin still gets weights that sum to 1.
    weight = torch.softmax(-(d2 - d2[:, :1]) / (2 * sigma**2), dim=1)
    index = torch.cat(index)
    return index.view(b, h, w, k).permute(0, 3, 1, 2), weight.view(b, h, w, k).permute(0, 3, 1, 2)


def smooth_prior(prior: torch.Tensor, bins: torch.Tensor, sigma: float = SIGMA) -> torch.Tensor:
    """Gaussian smoothing of a distribution over bins: each bin's mass is spread over the bins by
    ``exp(-d^2 / (2 sigma^2))`` of the distance between centres, normalised per source bin, so the
    total stays 1. With 10-unit bins and sigma 5 a bin keeps 1 / (1 + 4 e^-2 + 4 e^-4) = 64%.

    Args:
        prior: ``(Q,)`` non-negative, summing to 1.
        bins: centres ``(Q, 2)``.
    """
    kernel = torch.exp(-torch.cdist(bins.float(), bins.float()).pow(2) / (2 * sigma**2))
    return prior.float() @ (kernel / kernel.sum(1, keepdim=True))


def rebalancing_weights(smoothed: torch.Tensor, lam: float = LAMBDA) -> torch.Tensor:
    """Zhang et al.'s Eq. 4: ``w ∝ 1 / ((1 - lam) p̃ + lam / Q)``, scaled so ``Σ p̃ w = 1``.

    A colour the photos never show weighs at most ``Q / lam`` times a colour of probability 1
    before scaling: lam = 0.5 bounds the boost while still lifting rare colours.

    Args:
        smoothed: the smoothed prior ``p̃`` ``(Q,)``.
        lam: weight of the uniform distribution, 0..1 (0: pure inverse frequency; 1: all ones).

    Returns:
        ``(Q,)`` float32 weights whose expectation under ``p̃`` is 1.
    """
    p = smoothed.float()
    w = 1.0 / ((1 - lam) * p + lam / len(p))
    return w / (p * w).sum()


@dataclass
class ABPrior:
    """The training photos' a*b* prior and the rebalancing weights drawn from it (all ``(Q,)``).

    ``to_dict``/``from_dict`` give plain lists, as saved in a run's ``ab_prior.json`` and in its
    checkpoints' hyper-parameters.
    """

    bins: torch.Tensor  # (Q, 2) centres
    prior: torch.Tensor  # (Q,) empirical share of pixels per bin
    smoothed: torch.Tensor  # (Q,) Gaussian-smoothed prior
    weights: torch.Tensor  # (Q,) rebalancing weights, E_smoothed[w] = 1
    sigma: float = SIGMA
    lam: float = LAMBDA
    photos: int = 0
    pixels: int = 0

    def to_dict(self) -> dict:
        return {f.name: (v.tolist() if isinstance(v := getattr(self, f.name), torch.Tensor) else v)
                for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: dict) -> "ABPrior":
        d = dict(d)
        for key in ("bins", "prior", "smoothed", "weights"):
            d[key] = torch.tensor(d[key], dtype=torch.float32)
        return cls(**d)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict()))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "ABPrior":
        return cls.from_dict(json.loads(Path(path).read_text()))


@torch.no_grad()
def ab_prior(photos: torch.Tensor | Iterable[torch.Tensor], bins: torch.Tensor | None = None,
             sigma: float = SIGMA, lam: float = LAMBDA) -> ABPrior:
    """The a*b* prior of photos and its rebalancing weights.

    Args:
        photos: uint8 RGB ``(N, 3, H, W)``, or an iterable of such batches (any sizes).
        bins: centres ``(Q, 2)``; default :func:`gamut_bins`.
        sigma: smoothing of the prior, a*b* units.
        lam: uniform share of :func:`rebalancing_weights`.

    Returns:
        an :class:`ABPrior` (CPU tensors).

    Example:
        >>> red = torch.tensor([255, 0, 0], dtype=torch.uint8).view(1, 3, 1, 1).expand(1, 3, 4, 4)
        >>> p = ab_prior(red)
        >>> p.photos, p.pixels, round(float(p.prior.max()), 3), round(float(p.smoothed.sum()), 3)
        (1, 16, 1.0, 1.0)
    """
    from dlnet.color.lab import rgb_to_lab

    bins = gamut_bins() if bins is None else bins.float().cpu()
    counts = torch.zeros(len(bins), dtype=torch.float64)
    n_photos = 0
    for batch in [photos] if isinstance(photos, torch.Tensor) else photos:
        for part in batch.split(64):  # bounded memory whatever the batch
            ab = rgb_to_lab(part.float() / 255.0)[:, 1:]
            counts += torch.bincount(nearest_bin(ab, bins).reshape(-1).cpu(), minlength=len(bins)).double()
        n_photos += len(batch)
    if counts.sum() == 0:
        raise ValueError("no photos to compute the a*b* prior from")
    prior = (counts / counts.sum()).float()
    smoothed = smooth_prior(prior, bins, sigma)
    return ABPrior(bins, prior, smoothed, rebalancing_weights(smoothed, lam), sigma, lam, n_photos,
                   int(counts.sum()))


def annealed_mean(logits: torch.Tensor, bins: torch.Tensor, temperature: float = TEMPERATURE) -> torch.Tensor:
    """Bin logits ``(B, Q, H, W)`` -> a*b* ``(B, 2, H, W)`` float32: ``Σ_q softmax(logits / T)_q c_q``.

    T = 1 gives the mean of the predicted distribution, T -> 0 its mode's centre. Computed in
    float32 with element-wise products (no matmul), so autocast cannot lower it to bf16; exports
    to ONNX as Softmax, Mul and ReduceSum.
    """
    probs = F.softmax(logits.float() / temperature, dim=1)
    centres = bins.float().T.reshape(1, 2, -1, 1, 1)  # (1, 2, Q, 1, 1)
    return (probs.unsqueeze(1) * centres).sum(2)
