"""Module twins equal their functions, values and gradients: RgbToLab, LabToRgb, GlobalLoss,
LocalLoss (seeded, and unseeded: a fresh k-means seed per call) and Rebalance."""

from __future__ import annotations

import pytest
import torch

from dlnet import GlobalLoss, LabToRgb, LocalLoss, RgbToLab, global_loss, lab_to_rgb, local_loss, rgb_to_lab
from dlnet.color.rebalance import Rebalance, RebalanceConfig, rebalance


def _pair(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    pred = (torch.rand(2, 2, 16, 24, generator=g) - 0.5) * 120
    target = (torch.rand(2, 2, 16, 24, generator=g) - 0.5) * 120
    return pred.requires_grad_(), target


def _value_and_grad(fn, x, *args):
    x = x.detach().clone().requires_grad_()
    y = fn(x, *args)
    y.sum().backward()
    return y.detach(), x.grad


@pytest.mark.parametrize("module, function", [(RgbToLab(), rgb_to_lab), (LabToRgb(), lab_to_rgb),
                                              (LabToRgb(clip=False), lambda t: lab_to_rgb(t, clip=False))])
def test_colour_twins(module, function):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 8, 12, generator=g)
    if isinstance(module, LabToRgb):
        x = torch.cat([x[:, :1] * 100, (x[:, 1:] - 0.5) * 200], 1)
    (ym, gm), (yf, gf) = _value_and_grad(module, x), _value_and_grad(function, x)
    torch.testing.assert_close(ym, yf)
    torch.testing.assert_close(gm, gf)


def test_global_loss_twin():
    pred, target = _pair()
    (ym, gm), (yf, gf) = _value_and_grad(GlobalLoss(), pred, target), _value_and_grad(global_loss, pred, target)
    torch.testing.assert_close(ym, yf)
    torch.testing.assert_close(gm, gf)


@pytest.mark.parametrize("k, weights, balance", [(2, None, 1.0), (5, None, 1.0), (3, [0.5, 1.0, 2.0], 1.0),
                                                 (4, None, 0.5)])
def test_local_loss_twin_with_a_seed(k, weights, balance):
    pred, target = _pair(k)
    module = LocalLoss(k=k, weights=weights, seed=7, balance=balance)
    for _ in range(2):  # a fixed seed: the same every call
        (ym, gm) = _value_and_grad(module, pred, target)
        (yf, gf) = _value_and_grad(lambda p, t: local_loss(p, t, k, weights, seed=7, balance=balance), pred, target)
        torch.testing.assert_close(ym, yf)
        torch.testing.assert_close(gm, gf)


def test_local_loss_twin_without_a_seed_uses_the_call_count():
    pred, target = _pair(3)
    module = LocalLoss(k=4)
    for call in range(3):
        torch.testing.assert_close(module(pred, target), local_loss(pred, target, 4, seed=call))


def test_rebalance_twin():
    ab = _pair(5)[1]
    config = RebalanceConfig(k1=3, kernel=3, gamma=0.7)
    torch.testing.assert_close(Rebalance(config)(ab), rebalance(ab, None, config))
    torch.testing.assert_close(Rebalance()(ab, ab[:, :1]), rebalance(ab))
