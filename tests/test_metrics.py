"""dlnet.color.metrics against scikit-image's reference implementations, on real photos; colour measures by hand."""

import math

import numpy as np
import pytest
import skimage.data
import torch
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

from dlnet.color.metrics import colourfulness, hue_spread, mean_colour_bias, mse_rgb, psnr, ssim


def _pairs():
    """(truth, perturbed) uint8 96x80x3 pairs from two photos: noise plus a small colour shift."""
    rng = np.random.default_rng(0)
    pairs = []
    for photo in (skimage.data.astronaut()[100:196, 150:230], skimage.data.chelsea()[50:146, 120:200]):
        noisy = photo.astype(np.float64) + rng.normal(0, 8, photo.shape) + np.array([6.0, -4.0, 2.0])
        pairs.append((photo, np.clip(noisy, 0, 255).round().astype(np.uint8)))
    return pairs


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255


def _batch(arrays) -> torch.Tensor:
    return torch.cat([_t(a) for a in arrays])


@pytest.fixture(scope="module")
def batches():
    pairs = _pairs()
    # Same-size crops so both photos go in one batch: per-image values must not mix.
    return pairs, _batch([p[1] for p in pairs]), _batch([p[0] for p in pairs])


def test_psnr_matches_skimage(batches):
    pairs, pred, truth = batches
    got = psnr(pred, truth)
    assert got.shape == (2,)
    for i, (t, p) in enumerate(pairs):
        assert got[i].item() == pytest.approx(peak_signal_noise_ratio(t, p, data_range=255), abs=1e-6)
    assert got[0] != pytest.approx(got[1].item(), abs=1e-3)


def test_mse_matches_skimage(batches):
    pairs, pred, truth = batches
    got = mse_rgb(pred, truth)
    for i, (t, p) in enumerate(pairs):
        assert got[i].item() == pytest.approx(mean_squared_error(t, p), rel=1e-6)


def test_ssim_matches_skimage(batches):
    pairs, pred, truth = batches
    got = ssim(pred, truth)
    assert got.shape == (2,)
    for i, (t, p) in enumerate(pairs):
        ref = structural_similarity(t, p, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                    data_range=255, channel_axis=-1)
        assert got[i].item() == pytest.approx(ref, abs=5e-5)  # float32, see dlnet.color.metrics
        assert 0.2 < ref < 0.99  # the perturbation is real but not destructive


def test_identical_images():
    x = _t(skimage.data.chelsea()[:64, :64])
    assert math.isinf(psnr(x, x).item())
    assert mse_rgb(x, x).item() == 0
    assert ssim(x, x).item() == pytest.approx(1.0, abs=1e-6)


def test_ssim_rejects_tiny_images():
    x = torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match="larger than 10"):
        ssim(x, x)


def test_colourfulness_grey_is_zero():
    grey = torch.linspace(0, 1, 64).view(1, 1, 8, 8).expand(1, 3, 8, 8)
    assert colourfulness(grey).item() == pytest.approx(0.0, abs=1e-9)


def test_colourfulness_two_colours_by_hand():
    # Half pure red (255, 0, 0), half pure blue (0, 0, 255).
    img = torch.zeros(1, 3, 4, 4)
    img[0, 0, :, :2] = 1
    img[0, 2, :, 2:] = 1
    # red: rg = 255, yb = 127.5; blue: rg = 0, yb = -255
    # mean_rg = 127.5, std_rg = 127.5; mean_yb = -63.75, std_yb = 191.25
    expected = math.sqrt(127.5**2 + 191.25**2) + 0.3 * math.sqrt(127.5**2 + 63.75**2)
    assert colourfulness(img).item() == pytest.approx(expected, rel=1e-9)


def test_colourfulness_is_per_image():
    img = torch.zeros(2, 3, 4, 4)
    img[1, 0] = 1  # image 1 all red: no spread, mean rg 255, mean yb 127.5
    got = colourfulness(img)
    assert got[0].item() == pytest.approx(0.0, abs=1e-9)
    assert got[1].item() == pytest.approx(0.3 * math.sqrt(255**2 + 127.5**2), rel=1e-9)


def test_bad_shape():
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        psnr(torch.rand(3, 8, 8), torch.rand(3, 8, 8))


def _hues(degrees, chroma, h: int = 4) -> torch.Tensor:
    """a*b* (1, 2, h, len(degrees)): column j has hue degrees[j] and chroma chroma[j]."""
    rad = torch.deg2rad(torch.tensor(degrees, dtype=torch.float64))
    c = torch.as_tensor(chroma, dtype=torch.float64)
    return torch.stack([c * rad.cos(), c * rad.sin()]).view(1, 2, 1, -1).expand(1, 2, h, -1)


def test_hue_spread_by_hand():
    one_hue = _hues([40.0] * 6, [25.0] * 6)
    twelve = _hues([15.0 + 30 * k for k in range(12)], [20.0] * 12)  # each 30-degree bin once
    two = _hues([100.0, 100.0, 250.0], [10.0, 10.0, 20.0])  # 2 bins, equal chroma-weighted mass
    got = hue_spread(torch.cat([one_hue[..., :3], two]))
    assert got.shape == (2,) and got.dtype == torch.float64
    assert got[0].item() == 0.0
    assert got[1].item() == pytest.approx(math.log(2) / math.log(12), rel=1e-12)
    assert hue_spread(twelve).item() == pytest.approx(1.0, rel=1e-12)


def test_hue_spread_ignores_low_chroma_and_grey():
    grey = torch.zeros(1, 2, 8, 8)
    assert hue_spread(grey).item() == 0.0  # no pixel with chroma >= 5: 0, not nan
    faint = _hues([15.0 + 30 * k for k in range(12)], [4.9] * 12)
    assert hue_spread(faint).item() == 0.0
    # One strong hue plus faint pixels of every other hue: still one hue.
    mixed = _hues([200.0] + [15.0 + 30 * k for k in range(12)], [30.0] + [4.9] * 12)
    assert hue_spread(mixed).item() == 0.0


def test_hue_spread_bad_shape():
    with pytest.raises(ValueError, match=r"\(B, 2, H, W\)"):
        hue_spread(torch.zeros(1, 3, 4, 4))


def test_mean_colour_bias_by_hand():
    truth = torch.zeros(2, 2, 2, 2)
    truth[1, 0] = torch.tensor([[10.0, 20.0], [30.0, 40.0]])  # image 1: mean a* 25
    pred = torch.zeros(2, 2, 2, 2)
    pred[0, 1] = 6.0  # image 0: everything yellower by 6
    bias = mean_colour_bias(pred, truth)
    assert bias.shape == (2, 2)
    assert bias.tolist() == [[0.0, 6.0], [-25.0, 0.0]]
