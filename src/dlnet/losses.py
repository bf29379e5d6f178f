"""The paper's two losses on a*b*: global (Eq. 1) and local, cluster-normalised (Eq. 2/21).

Both take raw a*b* ``(B, 2, H, W)`` (about -110..110) and return a scalar. The global loss is the
plain mean squared error over all pixels, so large desaturated regions (sky, walls, ground)
dominate it and the model learns to predict brownish grey. The local loss splits the *target*
pixels of the batch into ``k`` colour clusters with k-means and sums the per-cluster MSE, each
normalised by its own pixel count: a rare saturated colour then weighs as much as the background.

Example (90% grey background, 10% red, zero prediction, k=2): the global loss sees the red in
10% of the pixels; the local loss gives the red cluster a whole term, so local/global = 10.

    >>> import torch
    >>> t = torch.zeros(1, 2, 10, 10); t[:, :, 0, :] = 40.0
    >>> p = torch.zeros_like(t)
    >>> float(local_loss(p, t, k=2) / global_loss(p, t))
    10.0
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .kmeans import kmeans

__all__ = ["global_loss", "local_loss", "cluster_target", "GlobalLoss", "LocalLoss"]


def global_loss(pred_ab: torch.Tensor, target_ab: torch.Tensor) -> torch.Tensor:
    """Eq. 1: mean squared error over every pixel and both channels, in float32."""
    return F.mse_loss(pred_ab.float(), target_ab.float())


@torch.no_grad()
def cluster_target(target_ab: torch.Tensor, k: int, seed: int = 0, sample: int = 16384, iters: int = 10):
    """k-means over all target a*b* pixels of the batch.

    Returns ``labels`` ``(B, H, W)`` and ``centroids`` ``(k, 2)``, with clusters numbered by
    increasing chroma (distance of the centroid from grey), so that cluster 0 is the most
    desaturated and cluster k-1 the most saturated: a ``weights`` vector has a fixed meaning.
    """
    b, _, h, w = target_ab.shape
    pixels = target_ab.detach().float().permute(0, 2, 3, 1).reshape(-1, 2)
    centroids, labels = kmeans(pixels, k, iters=iters, sample=sample, seed=seed)
    order = centroids.norm(dim=1).argsort()
    rank = torch.empty_like(order)
    rank[order] = torch.arange(k, device=order.device)
    return rank[labels].view(b, h, w), centroids[order]


def local_loss(
    pred_ab: torch.Tensor,
    target_ab: torch.Tensor,
    k: int = 5,
    weights: Sequence[float] | torch.Tensor | None = None,
    seed: int = 0,
    sample: int = 16384,
    iters: int = 10,
) -> torch.Tensor:
    """Eq. 2/21: sum over the k target colour clusters of each cluster's own MSE.

    k-means runs on the target pixels of the whole batch (centroids fitted on a random subsample
    of ``sample`` pixels, then every pixel assigned; see :func:`dlnet.kmeans.kmeans`). The
    clustering is a constant of the step: no gradient flows through it. An empty cluster adds 0.

    Args:
        pred_ab: predicted a*b* ``(B, 2, H, W)``.
        target_ab: true a*b* ``(B, 2, H, W)``.
        k: number of colour clusters (the paper's figure uses 5).
        weights: optional priority of each cluster, ordered from least to most saturated
            (see :func:`cluster_target`); default all ones.
        seed: seed of the k-means; the loss is deterministic for a given seed.

    Returns:
        scalar ``sum_c w_c * mean_{pixels in c} mean_{a,b} (pred - target)^2``.
    """
    labels, _ = cluster_target(target_ab, k, seed=seed, sample=sample, iters=iters)
    err = (pred_ab.float() - target_ab.float()).pow(2).mean(dim=1).reshape(-1)  # (B*H*W,)
    flat = labels.reshape(-1)
    sums = torch.zeros(k, device=err.device, dtype=err.dtype).index_add(0, flat, err)
    counts = torch.bincount(flat, minlength=k).to(err.dtype)
    per_cluster = sums / counts.clamp_min(1)
    if weights is not None:
        w = torch.as_tensor(weights, dtype=err.dtype, device=err.device)
        if w.shape != (k,):
            raise ValueError(f"weights must have k={k} entries, got {tuple(w.shape)}")
        per_cluster = per_cluster * w
    return per_cluster.sum()


class GlobalLoss(nn.Module):
    """Module twin of :func:`global_loss`."""

    def forward(self, pred_ab: torch.Tensor, target_ab: torch.Tensor) -> torch.Tensor:
        return global_loss(pred_ab, target_ab)


class LocalLoss(nn.Module):
    """Module twin of :func:`local_loss`; a fresh k-means seed per call unless ``seed`` is fixed."""

    def __init__(self, k: int = 5, weights: Sequence[float] | None = None, seed: int | None = None) -> None:
        super().__init__()
        self.k = k
        self.weights = None if weights is None else list(weights)
        self.seed = seed
        self._calls = 0

    def forward(self, pred_ab: torch.Tensor, target_ab: torch.Tensor) -> torch.Tensor:
        seed = self.seed if self.seed is not None else self._calls
        self._calls += 1
        return local_loss(pred_ab, target_ab, self.k, self.weights, seed=seed)
