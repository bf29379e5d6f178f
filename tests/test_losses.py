"""The losses: hand-computed values, cluster weights and balance, rebalanced regression, classification,
k-means vs scikit-learn, overfitting."""

import math

import numpy as np
import pytest
import torch

from dlnet import GlobalLoss, LocalLoss, global_loss, kmeans, local_loss
from dlnet.train.losses import classification_loss, cluster_target, rebalanced_loss

from _tiny_model import tiny_model


def _two_colour_target(frac_rare: float = 0.1, rare=(40.0, -30.0)) -> torch.Tensor:
    """90% grey background (a*=b*=0), 10% one saturated colour."""
    t = torch.zeros(2, 2, 10, 10)
    rows = round(10 * frac_rare)
    t[:, 0, :rows], t[:, 1, :rows] = rare
    return t


def test_global_loss_is_plain_mse():
    p, t = torch.zeros(1, 2, 2, 2), torch.tensor([1.0, 2, 3, 4, 5, 6, 7, 8]).view(1, 2, 2, 2)
    assert global_loss(p, t).item() == pytest.approx((1 + 4 + 9 + 16 + 25 + 36 + 49 + 64) / 8)


def test_local_over_global_is_ten_for_90_10_target():
    t = _two_colour_target()
    p = torch.zeros_like(t)
    g, l = global_loss(p, t), local_loss(p, t, k=2)
    # global: 10% of pixels with error (40^2+30^2)/2 = 1250 -> 125; local: the rare cluster alone -> 1250
    assert g.item() == pytest.approx(125.0)
    assert l.item() == pytest.approx(1250.0)
    assert (l / g).item() == pytest.approx(10.0)


def test_cluster_weights_scale_their_clusters():
    t = _two_colour_target()
    p = torch.full_like(t, 5.0)  # error in both clusters
    per = [local_loss(p, t, k=2, weights=w).item() for w in ([1, 0], [0, 1], [1, 1], [2, 3])]
    grey_part, rare_part = per[0], per[1]
    assert grey_part == pytest.approx(25.0)  # (5^2 + 5^2) / 2 on the grey cluster (cluster 0: least saturated)
    assert per[2] == pytest.approx(grey_part + rare_part)
    assert per[3] == pytest.approx(2 * grey_part + 3 * rare_part)
    with pytest.raises(ValueError):
        local_loss(p, t, k=2, weights=[1, 2, 3])


def test_balance_runs_from_global_to_local():
    t = _two_colour_target()
    p = torch.zeros_like(t)
    # grey cluster error 0; red cluster (10% of pixels) error 1250
    assert local_loss(p, t, k=2, balance=0.5).item() == pytest.approx(0.1 ** 0.5 * 1250)  # geometric mean 395.3
    q = torch.full_like(t, 5.0) + t * 0.5  # error in both clusters
    assert local_loss(q, t, k=2, balance=0.0).item() == pytest.approx(global_loss(q, t).item(), rel=1e-6)
    assert local_loss(q, t, k=2, balance=1.0).item() == pytest.approx(local_loss(q, t, k=2).item())
    assert local_loss(q, t, k=2, balance=0.5, weights=[0, 1]).item() == pytest.approx(
        0.1 ** 0.5 * local_loss(q, t, k=2, weights=[0, 1]).item())


def test_rebalanced_loss_by_hand():
    t = _two_colour_target()  # 10% at (40, -30): the bin (40, -30); the rest grey
    p = torch.zeros_like(t)
    bins = torch.tensor([[0.0, 0.0], [40.0, -30.0], [-50.0, 50.0]])
    assert rebalanced_loss(p, t, bins, torch.tensor([1.0, 3.0, 7.0])).item() == pytest.approx(0.1 * 3 * 1250)
    q = torch.randn_like(t)
    assert rebalanced_loss(q, t, bins, torch.ones(3)).item() == pytest.approx(global_loss(q, t).item(), rel=1e-6)
    # every grey pixel counts twice: 90% of pixels with error 1^2 + the red 10% with error 0
    assert rebalanced_loss(t + 1, t, bins, torch.tensor([2.0, 0.0, 0.0])).item() == pytest.approx(0.9 * 2)


def test_classification_loss_against_a_one_hot_target_is_minus_log_softmax():
    bins = torch.tensor([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0]])  # far apart: soft-encoding is one-hot
    logits = torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(0))
    target = torch.zeros(2, 2, 4, 5)
    target[1, 0] = 100.0  # the second photo on bin 1
    log_p = torch.log_softmax(logits, 1)
    expected = -torch.cat([log_p[0, 0].flatten(), log_p[1, 1].flatten()]).mean()
    assert classification_loss(logits, target, bins).item() == pytest.approx(expected.item(), rel=1e-6)
    # weights multiply each pixel's term by its bin's weight
    weighted = -torch.cat([2 * log_p[0, 0].flatten(), 5 * log_p[1, 1].flatten()]).mean()
    assert classification_loss(logits, target, bins, torch.tensor([2.0, 5.0, 9.0])).item() == pytest.approx(weighted.item())
    # a target twice the logits' size is averaged over 2x2 blocks first
    big = target.repeat_interleave(2, -1).repeat_interleave(2, -2)
    assert classification_loss(logits, big, bins).item() == pytest.approx(expected.item(), rel=1e-6)


def test_classification_loss_with_a_soft_target_and_its_gradient():
    bins = torch.tensor([[0.0, 0.0], [10.0, 0.0], [100.0, 100.0]])
    logits = torch.zeros(1, 3, 1, 1, requires_grad=True)
    target = torch.tensor([5.0, 0.0]).view(1, 2, 1, 1)  # halfway between bins 0 and 1: z = 1/2, 1/2, ~0
    loss = classification_loss(logits, target, bins)
    assert loss.item() == pytest.approx(math.log(3), rel=1e-5)  # uniform prediction: -log(1/3)
    loss.backward()
    # d/dlogits = softmax - z = 1/3 - (1/2, 1/2, 0)
    assert logits.grad.flatten().tolist() == pytest.approx([-1 / 6, -1 / 6, 1 / 3], abs=1e-5)


def test_empty_clusters_never_nan_and_uniform_target_equals_global():
    t = torch.full((2, 2, 8, 8), 7.0)  # one colour: k=5 leaves clusters empty
    p = torch.randn_like(t)
    l = local_loss(p, t, k=5)
    assert torch.isfinite(l)
    assert l.item() == pytest.approx(global_loss(p, t).item(), rel=1e-5)


def test_deterministic_for_a_seed_and_no_gradient_through_clustering():
    torch.manual_seed(0)
    t = torch.randn(2, 2, 16, 16) * 30
    p = torch.randn(2, 2, 16, 16, requires_grad=True)
    a, b = local_loss(p, t, k=5, seed=3), local_loss(p, t, k=5, seed=3)
    assert a.item() == b.item()
    a.backward()
    assert p.grad is not None and torch.isfinite(p.grad).all()
    t_req = t.clone().requires_grad_(True)
    local_loss(p.detach(), t_req, k=5).backward()
    # the target gets a gradient only through the error term, never through the cluster labels
    assert torch.isfinite(t_req.grad).all()


def test_kmeans_agrees_with_scikit_learn_on_clear_clusters():
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    centres = np.array([[-60, 40], [0, 0], [50, 50], [30, -70]], dtype=np.float32)
    x = np.concatenate([c + rng.normal(0, 3, (200, 2)) for c in centres]).astype(np.float32)
    ours, labels = kmeans(torch.from_numpy(x), k=4, seed=0)
    with threadpool_limits(1):  # tiny problem: OpenMP threads only add start-up and contention
        ref = KMeans(4, n_init=10, random_state=0).fit(x)
    ours_sorted = np.array(sorted(ours.tolist()))
    ref_sorted = np.array(sorted(ref.cluster_centers_.tolist()))
    np.testing.assert_allclose(ours_sorted, ref_sorted, atol=0.05)
    # same partition up to relabelling
    pairs = set(zip(labels.tolist(), ref.labels_.tolist()))
    assert len(pairs) == 4


def test_batched_kmeans_solves_each_problem():
    """B independent problems at once give each problem its own clear clusters."""
    torch.manual_seed(1)
    centres = torch.tensor([[[-50.0, 0], [0, 40], [60, -60]], [[10, 10], [-40, -40], [80, 0]]])
    x = torch.cat([centres[:, i:i + 1] + torch.randn(2, 100, 2) for i in range(3)], dim=1)
    c, l = kmeans(x, k=3, sample=None, seed=0)
    assert c.shape == (2, 3, 2) and l.shape == (2, 300)
    for i in range(2):
        got = sorted(c[i].tolist())
        want = sorted(centres[i].tolist())
        np.testing.assert_allclose(got, want, atol=0.5)
        single, _ = kmeans(x[i], k=3, sample=None, seed=5)
        np.testing.assert_allclose(sorted(single.tolist()), want, atol=0.5)


def test_clusters_ordered_by_chroma():
    labels, centroids = cluster_target(_two_colour_target(), k=2)
    assert centroids[0].norm() < centroids[1].norm()
    assert (labels == 1).float().mean().item() == pytest.approx(0.1)


def test_module_twins():
    t = _two_colour_target()
    p = torch.zeros_like(t)
    assert GlobalLoss()(p, t).item() == pytest.approx(global_loss(p, t).item())
    assert LocalLoss(k=2, seed=0)(p, t).item() == pytest.approx(local_loss(p, t, k=2).item())


@pytest.mark.parametrize("loss_name", ["global", "local"])
def test_overfit_one_batch(loss_name):
    """A tiny model fitted on one small batch drives the loss down at least tenfold."""
    from conftest import gradient_photo
    from dlnet.color.lab import rgb_to_lab

    rgb = torch.stack([torch.from_numpy(gradient_photo(32, 32, seed=s)) for s in range(2)]).permute(0, 3, 1, 2)
    lab = rgb_to_lab(rgb.float() / 255)
    l, ab = lab[:, :1], lab[:, 1:]
    model = tiny_model().train()  # tiny_model() returns eval mode
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    fn = global_loss if loss_name == "global" else (lambda p, t: local_loss(p, t, k=5))
    first = fn(model(l), ab).item()
    for _ in range(150):
        opt.zero_grad()
        loss = fn(model(l), ab)
        loss.backward()
        opt.step()
    assert loss.item() < first / 10, f"{loss_name}: {first:.1f} -> {loss.item():.1f}"
