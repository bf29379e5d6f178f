"""Rebalancing post-process: shapes, identity, region-local smoothing, saturation."""

import pytest
import torch

from dlnet.color.rebalance import Rebalance, RebalanceConfig, rebalance, region_smooth, regions, saturate


def _two_colour_ab(b=2, h=32, w=40, noise=3.0):
    """Left half reddish (+a), right half bluish (-b), with noise: two obvious regions."""
    g = torch.Generator().manual_seed(0)
    ab = torch.zeros(b, 2, h, w)
    ab[:, 0, :, : w // 2] = 40.0
    ab[:, 1, :, w // 2:] = -50.0
    return ab + noise * torch.randn(b, 2, h, w, generator=g)


def test_shapes_dtype_and_finite():
    ab = _two_colour_ab()
    l = torch.rand(2, 1, 32, 40) * 100
    out = rebalance(ab, l, RebalanceConfig(k1=4, k2=2, kernel=5, gamma=0.8))
    assert out.shape == ab.shape and out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_constant_and_tiny_inputs_have_no_nan():
    for ab in (torch.zeros(1, 2, 16, 16), torch.full((1, 2, 1, 1), 5.0), torch.zeros(1, 2, 3, 50)):
        out = rebalance(ab, None, RebalanceConfig(k1=6, k2=3, kernel=7, gamma=0.7))
        assert torch.isfinite(out).all()


def test_gamma_one_kernel_one_is_identity():
    ab = _two_colour_ab()
    out = rebalance(ab, None, RebalanceConfig(kernel=1, gamma=1.0))
    torch.testing.assert_close(out, ab)


def test_smoothing_does_not_leak_across_regions():
    ab = _two_colour_ab(noise=0.0)
    ab[:, :, ::3, ::3] += 2.0  # texture inside each region, so smoothing has work to do
    labels = regions(ab, RebalanceConfig(k1=2, k2=1))
    out = region_smooth(ab, labels, 2, kernel=9)
    w = ab.shape[-1]
    # Pixels next to the border only average with their own side: a* stays near 40 on the left,
    # near 0 on the right; b* near 0 on the left and near -50 on the right.
    left, right = out[..., : w // 2], out[..., w // 2:]
    assert (left[:, 0] > 39).all() and (left[:, 1].abs() < 2.5).all()
    assert (right[:, 0].abs() < 2.5).all() and (right[:, 1] < -47.5).all()
    # ... while a plain box filter over the border would have mixed them.
    plain = torch.nn.functional.avg_pool2d(ab, 9, stride=1, padding=4)
    assert plain[:, 0, :, w // 2 - 1].max() < 30


def test_smoothing_reduces_noise_inside_regions():
    ab = _two_colour_ab(noise=5.0)
    cfg = RebalanceConfig(k1=2, k2=2, kernel=7, gamma=1.0)
    out = rebalance(ab, None, cfg)
    w = ab.shape[-1]
    assert out[:, 0, :, 4 : w // 2 - 4].std() < 0.5 * ab[:, 0, :, 4 : w // 2 - 4].std()


def test_stage_two_splits_far_apart_parts_of_one_colour():
    ab = torch.zeros(1, 2, 16, 48)
    ab[:, 0, :, :8] = 40.0   # red on the far left ...
    ab[:, 0, :, -8:] = 40.0  # ... and the far right, grey in between
    labels = regions(ab, RebalanceConfig(k1=2, k2=2))
    assert labels[0, 0, 0] != labels[0, 0, -1]


def test_saturation_increases_chroma_and_keeps_hue_sign():
    ab = _two_colour_ab().clamp(-100, 100)
    out = saturate(ab, gamma=0.7, ab_max=110.0)
    chroma_in, chroma_out = ab.norm(dim=1), out.norm(dim=1)
    assert (chroma_out >= chroma_in - 1e-4).all() and chroma_out.mean() > 1.1 * chroma_in.mean()
    assert torch.equal(torch.sign(out), torch.sign(ab))


def test_callable_and_config_validation():
    ab = _two_colour_ab()
    fn = Rebalance(RebalanceConfig(k1=3, kernel=3))
    torch.testing.assert_close(fn(ab, None), rebalance(ab, None, fn.config))
    with pytest.raises(ValueError):
        RebalanceConfig(kernel=4)
    with pytest.raises(ValueError):
        RebalanceConfig(gamma=0)
