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

Beyond the paper, three more remedies for washed-out colour, compared in issue 12:

- ``balance`` of :func:`local_loss` between 0 and 1: clusters weighted by their pixel share to
  the power ``1 - balance``; 0.5 (``--loss local-sqrt``) is halfway between global and local.
- :func:`rebalanced_loss`: per-pixel squared error weighted by the inverse of the training
  photos' smoothed colour prior (Zhang et al. 2016's weights on a regression loss).
- :func:`classification_loss`: Zhang et al.'s soft-encoded, rebalanced cross-entropy over a*b*
  bins, for a model with ``head="classification"``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dlnet.color.abbins import NEIGHBOURS, SIGMA, nearest_bin, soft_encode
from dlnet.color.kmeans import kmeans

__all__ = ["global_loss", "local_loss", "cluster_target", "rebalanced_loss", "classification_loss",
           "GlobalLoss", "LocalLoss"]


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
    balance: float = 1.0,
) -> torch.Tensor:
    """Eq. 2/21: sum over the k target colour clusters of each cluster's own MSE.

    k-means runs on the target pixels of the whole batch (centroids fitted on a random subsample
    of ``sample`` pixels, then every pixel assigned; see :func:`dlnet.color.kmeans.kmeans`). The
    clustering is a constant of the step: no gradient flows through it. An empty cluster adds 0.

    Args:
        pred_ab: predicted a*b* ``(B, 2, H, W)``.
        target_ab: true a*b* ``(B, 2, H, W)``.
        k: number of colour clusters (the paper's figure uses 5).
        weights: optional priority of each cluster, ordered from least to most saturated
            (see :func:`cluster_target`); default all ones.
        seed: seed of the k-means; the loss is deterministic for a given seed.
        balance: 1 (the paper): every cluster weighs the same. Otherwise cluster c is also
            weighted by ``share_c ** (1 - balance)``, its share of the batch's pixels: 0 gives
            back the global loss (each pixel the same), 0.5 weights each pixel by
            ``share_c ** -0.5``, halfway. Why halfway: the local loss lifts a pixel's weight in
            proportion to how rare its cluster is, so a cluster of a few stray pixels (a
            k-means split of noise, a highlight) weighs as much as the sky, and the paper itself
            needed Eq. 21's hand-set weights to tame it; the inverse square root still lifts
            rare colours (a 1% cluster 10x, not 100x per pixel), the damping long-tail
            classification uses for frequencies (Mikolov et al. 2013, Mahajan et al. 2018).

    Returns:
        scalar ``sum_c w_c * share_c^(1 - balance) * mean_{pixels in c} mean_{a,b} (pred - target)^2``.

    Example (90% grey, 10% red, zero prediction: the halfway loss is the geometric mean of the
    global loss, 125, and the local one, 1250):

        >>> t = torch.zeros(1, 2, 10, 10); t[:, 0, 0, :] = 40.0; t[:, 1, 0, :] = -30.0
        >>> round(float(local_loss(torch.zeros_like(t), t, k=2, balance=0.5)), 2)
        395.28
    """
    labels, _ = cluster_target(target_ab, k, seed=seed, sample=sample, iters=iters)
    err = (pred_ab.float() - target_ab.float()).pow(2).mean(dim=1).reshape(-1)  # (B*H*W,)
    flat = labels.reshape(-1)
    sums = torch.zeros(k, device=err.device, dtype=err.dtype).index_add(0, flat, err)
    counts = torch.bincount(flat, minlength=k).to(err.dtype)
    per_cluster = sums / counts.clamp_min(1)
    if balance != 1.0:
        per_cluster = per_cluster * (counts / counts.sum()).pow(1.0 - balance)
    if weights is not None:
        w = torch.as_tensor(weights, dtype=err.dtype, device=err.device)
        if w.shape != (k,):
            raise ValueError(f"weights must have k={k} entries, got {tuple(w.shape)}")
        per_cluster = per_cluster * w
    return per_cluster.sum()


def rebalanced_loss(pred_ab: torch.Tensor, target_ab: torch.Tensor, bins: torch.Tensor,
                    weights: torch.Tensor) -> torch.Tensor:
    """Per-pixel squared error weighted by the rebalancing weight of the target's bin.

    With Zhang et al.'s weights (:func:`dlnet.color.abbins.rebalancing_weights`, expectation 1 over the
    prior) a batch of typical photos keeps about the global loss's scale, but a pixel of a colour
    that the photos rarely show counts up to ~Q/(2 lam) times more than a grey one. Unlike the
    local loss, the weight comes from the whole training set, not from the batch at hand, so
    it is the same for a colour in every step.

    Args:
        pred_ab: predicted a*b* ``(B, 2, H, W)``.
        target_ab: true a*b* ``(B, 2, H, W)``.
        bins: bin centres ``(Q, 2)``.
        weights: one weight per bin ``(Q,)``.

    Returns:
        scalar ``mean_pixels w[bin(target)] * mean_{a,b} (pred - target)^2``.

    Example (the red pixels' weight is 3, the grey ones' 1):

        >>> bins, w = torch.tensor([[0.0, 0.0], [40.0, -30.0]]), torch.tensor([1.0, 3.0])
        >>> t = torch.zeros(1, 2, 10, 10); t[:, 0, 0, :] = 40.0; t[:, 1, 0, :] = -30.0
        >>> float(rebalanced_loss(torch.zeros_like(t), t, bins, w))   # 10% of pixels x 3 x 1250
        375.0
    """
    err = (pred_ab.float() - target_ab.float()).pow(2).mean(dim=1)  # (B, H, W)
    return (weights.to(err.device, err.dtype)[nearest_bin(target_ab, bins)] * err).mean()


def classification_loss(logits: torch.Tensor, target_ab: torch.Tensor, bins: torch.Tensor,
                        weights: torch.Tensor | None = None, sigma: float = SIGMA,
                        k: int = NEIGHBOURS) -> torch.Tensor:
    """Zhang et al.'s Eq. 2 and 3: soft-encoded cross-entropy over a*b* bins, rebalanced per pixel.

    The target is soft-encoded over its ``k`` nearest bins (:func:`dlnet.color.abbins.soft_encode`)
    and each pixel's cross-entropy is weighted by the weight of its nearest bin. A target larger
    than the logits (a decoder that predicts at 1/2 size) is area-downsampled to them first.

    Args:
        logits: bin logits ``(B, Q, h, w)`` (:meth:`dlnet.model.net.DLNet.forward_logits`).
        target_ab: true a*b* ``(B, 2, H, W)``.
        bins: bin centres ``(Q, 2)``.
        weights: one weight per bin ``(Q,)``; None: every pixel weighs 1.

    Returns:
        scalar ``mean_pixels w[nearest] * -sum_q z_q log softmax(logits)_q``.

    Example (one pixel exactly on a bin, the other bins far: the target is one-hot):

        >>> bins = torch.tensor([[0.0, 0.0], [100.0, 0.0]])
        >>> logits = torch.tensor([2.0, 0.0]).view(1, 2, 1, 1)
        >>> loss = classification_loss(logits, torch.zeros(1, 2, 1, 1), bins)
        >>> round(float(loss), 4), round(float(-torch.log_softmax(logits, 1)[0, 0]), 4)
        (0.1269, 0.1269)
    """
    if target_ab.shape[-2:] != logits.shape[-2:]:
        target_ab = F.interpolate(target_ab.float(), size=logits.shape[-2:], mode="area")
    index, z = soft_encode(target_ab, bins, sigma, k)  # (B, k, h, w) each
    log_p = torch.log_softmax(logits.float(), dim=1).gather(1, index)
    per_pixel = -(z * log_p).sum(1)  # (B, h, w)
    if weights is not None:
        per_pixel = per_pixel * weights.to(per_pixel.device, per_pixel.dtype)[index[:, 0]]
    return per_pixel.mean()


class GlobalLoss(nn.Module):
    """Module twin of :func:`global_loss`."""

    def forward(self, pred_ab: torch.Tensor, target_ab: torch.Tensor) -> torch.Tensor:
        return global_loss(pred_ab, target_ab)


class LocalLoss(nn.Module):
    """Module twin of :func:`local_loss`; a fresh k-means seed per call unless ``seed`` is fixed."""

    def __init__(self, k: int = 5, weights: Sequence[float] | None = None, seed: int | None = None,
                 balance: float = 1.0) -> None:
        super().__init__()
        self.k = k
        self.weights = None if weights is None else list(weights)
        self.seed = seed
        self.balance = balance
        self._calls = 0

    def forward(self, pred_ab: torch.Tensor, target_ab: torch.Tensor) -> torch.Tensor:
        seed = self.seed if self.seed is not None else self._calls
        self._calls += 1
        return local_loss(pred_ab, target_ab, self.k, self.weights, seed=seed, balance=self.balance)
