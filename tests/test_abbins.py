"""a*b* bins, the colour prior, its rebalancing weights, soft-encoding, annealed mean: hand-computed values."""

import math

import pytest
import torch

from dlnet.color.abbins import (ABPrior, ab_prior, annealed_mean, gamut_bins, nearest_bin, rebalancing_weights,
                          smooth_prior, soft_encode)
from dlnet.color.lab import rgb_to_lab


def test_gamut_bins_are_the_10_unit_cells_srgb_colours_fall_in():
    bins = gamut_bins()
    assert bins.shape == (262, 2) and bins.dtype == torch.float32
    assert bool((bins % 10 == 0).all()) and [0.0, 0.0] in bins.tolist()
    rgb = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    cells = {tuple(c) for c in (torch.floor(rgb_to_lab(rgb)[0, 1:] / 10 + 0.5) * 10).reshape(2, -1).T.tolist()}
    assert cells <= {tuple(b) for b in bins.tolist()}


def test_nearest_bin_agrees_with_brute_force():
    bins = gamut_bins()
    ab = rgb_to_lab(torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1)))[:, 1:]
    brute = torch.cdist(ab.permute(0, 2, 3, 1).reshape(-1, 2), bins).argmin(1).view(2, 16, 16)
    assert torch.equal(nearest_bin(ab, bins), brute)
    # off the bins (a cell that is no bin, beyond the grid): the bin nearest the cell
    few = torch.tensor([[0.0, 0.0], [50.0, 0.0]])
    assert nearest_bin(torch.tensor([14.0, 0.0, 31.0, 0.0, 900.0, -3.0]).view(3, 2, 1, 1), few).flatten().tolist() == [0, 1, 1]


def test_rebalancing_weights_by_hand():
    p = torch.tensor([0.75, 0.25])
    # lam 0.5: 1 / (0.375 + 0.25) = 1.6 and 1 / (0.125 + 0.25) = 8/3; E_p = 1.2 + 2/3 = 28/15
    torch.testing.assert_close(rebalancing_weights(p, 0.5), torch.tensor([6 / 7, 10 / 7]))
    torch.testing.assert_close(rebalancing_weights(p, 0.0), torch.tensor([2 / 3, 2.0]))  # inverse frequency
    torch.testing.assert_close(rebalancing_weights(p, 1.0), torch.tensor([1.0, 1.0]))  # uniform
    q = torch.tensor([0.5, 0.3, 0.15, 0.05, 0.0])
    assert float((q * rebalancing_weights(q)).sum()) == pytest.approx(1.0)  # mean 1 over the prior
    assert float(rebalancing_weights(q)[-1]) == pytest.approx(5 / 0.5 / float((q / (0.5 * q + 0.1)).sum()))


def test_smoothing_by_hand():
    near = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    # sigma 5, distance 10: the neighbour gets e^-2 of the bin's own kernel value
    e = math.exp(-2)
    torch.testing.assert_close(smooth_prior(torch.tensor([1.0, 0.0]), near), torch.tensor([1 / (1 + e), e / (1 + e)]))
    far = torch.tensor([[0.0, 0.0], [100.0, 0.0]])
    torch.testing.assert_close(smooth_prior(torch.tensor([0.7, 0.3]), far), torch.tensor([0.7, 0.3]))
    bins = gamut_bins()
    p = torch.rand(len(bins), generator=torch.Generator().manual_seed(0))
    assert float(smooth_prior(p / p.sum(), bins).sum()) == pytest.approx(1.0)  # mass kept


def _half_red_half_grey(n: int = 3) -> torch.Tensor:
    photos = torch.full((n, 3, 4, 6), 128, dtype=torch.uint8)
    photos[:, :, :, :3] = torch.tensor([255, 0, 0], dtype=torch.uint8).view(1, 3, 1, 1)
    return photos


def test_prior_of_known_photos_and_its_round_trip(tmp_path):
    photos = _half_red_half_grey()
    prior = ab_prior(photos)
    bins = prior.bins.tolist()
    # red is a* 80.1, b* 67.2 -> bin (80, 70); grey 128 -> (0, 0)
    assert prior.prior[bins.index([0.0, 0.0])] == pytest.approx(0.5)
    assert prior.prior[bins.index([80.0, 70.0])] == pytest.approx(0.5)
    assert (prior.photos, prior.pixels) == (3, 72)
    assert float((prior.smoothed * prior.weights).sum()) == pytest.approx(1.0)
    torch.testing.assert_close(prior.weights, rebalancing_weights(prior.smoothed, 0.5))
    batches = ab_prior(iter([photos[:1], photos[1:]]))  # an iterator of batches gives the same
    torch.testing.assert_close(batches.prior, prior.prior)
    again = ABPrior.load(prior.save(tmp_path / "ab_prior.json"))
    assert again.to_dict() == prior.to_dict()
    with pytest.raises(ValueError, match="no photos"):
        ab_prior(iter([]))


def test_soft_encoding_sums_to_one_and_favours_the_nearest_bin():
    bins = gamut_bins()
    ab = rgb_to_lab(torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(2)))[:, 1:]
    index, weight = soft_encode(ab, bins, chunk=37)  # chunks that do not divide the pixels
    assert index.shape == weight.shape == (2, 5, 8, 8)
    torch.testing.assert_close(weight.sum(1), torch.ones(2, 8, 8))
    assert torch.equal(index[:, 0], nearest_bin(ab, bins))
    assert bool((weight[:, 0] >= weight[:, 1:].max(1).values).all())
    # on an inner bin's centre: itself and its 4 neighbours at distance 10 -> 1 / (1 + 4 e^-2)
    _, w = soft_encode(torch.tensor([10.0, 10.0]).view(1, 2, 1, 1), bins)
    assert float(w[0, 0]) == pytest.approx(1 / (1 + 4 * math.exp(-2)), abs=1e-5)
    assert float(w[0, 0]) > 0.5


def test_annealed_mean_by_hand():
    bins = torch.tensor([[0.0, 0.0], [40.0, -20.0], [-30.0, 50.0]])
    logits = torch.tensor([0.0, math.log(3.0), -1e4]).view(1, 3, 1, 1)  # softmax 1/4, 3/4, 0
    assert annealed_mean(logits, bins, 1.0).flatten().tolist() == pytest.approx([30.0, -15.0])  # the mean
    assert annealed_mean(logits, bins, 0.5).flatten().tolist() == pytest.approx([36.0, -18.0])  # 1/10, 9/10
    assert annealed_mean(logits, bins, 1e-3).flatten().tolist() == pytest.approx([40.0, -20.0])  # the mode
    assert annealed_mean(logits.expand(2, 3, 4, 5), bins, 1.0).shape == (2, 2, 4, 5)
