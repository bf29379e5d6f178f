"""Image-quality metrics for colorization, per image, on sRGB tensors.

Every function takes sRGB ``(B, 3, H, W)`` in 0..1 and returns one value per image, shape
``(B,)``, float64; the colour measures :func:`hue_spread` and :func:`mean_colour_bias` take
CIE a*b* ``(B, 2, H, W)`` instead (raw Lab units, see :mod:`dlnet.color.lab`) and
:func:`mean_colour_bias` returns ``(B, 2)``. The RGB scores are computed on the 0..255 scale, as
in the DL-Net paper (Gain & Debnath 2023, Eq. 29) and in scikit-image with ``data_range=255``, so
numbers are comparable with published tables. PSNR, MSE and colourfulness are computed in float64; SSIM in
float32, because CPU convolutions in float64 are ten times slower (0.7 s per 256 px image),
at a cost of about 1e-5 (its local variances ``E[x^2] - E[x]^2`` lose a few digits).

Example:
    >>> import torch
    >>> truth = torch.rand(2, 3, 32, 32)
    >>> psnr(truth, truth)                      # identical images
    tensor([inf, inf], dtype=torch.float64)
    >>> colourfulness(torch.full((1, 3, 8, 8), 0.5))
    tensor([0.], dtype=torch.float64)
"""

from __future__ import annotations

import math

import torch
from torchmetrics.functional.image import structural_similarity_index_measure

__all__ = ["psnr", "ssim", "mse_rgb", "colourfulness", "hue_spread", "mean_colour_bias", "PEAK",
           "HUE_BINS", "HUE_MIN_CHROMA", "SSIM_SIGMA", "SSIM_WINDOW", "SSIM_K1", "SSIM_K2"]

PEAK = 255.0  # L of Wang et al. and the paper's Eq. 29: scores are on 8-bit RGB
SSIM_SIGMA = 1.5  # Gaussian window of Wang et al. (2004)
SSIM_WINDOW = 11  # = 2 * int(3.5 * sigma + 0.5) + 1, the window scikit-image uses for sigma 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
HUE_BINS = 12  # 30-degree hue sectors of the a*b* plane
HUE_MIN_CHROMA = 5.0  # a*b* pixels with less chroma count as grey: their hue is noise


def _to_255(rgb: torch.Tensor) -> torch.Tensor:
    if rgb.ndim != 4 or rgb.shape[1] != 3:
        raise ValueError(f"expected sRGB (B, 3, H, W), got shape {tuple(rgb.shape)}")
    return rgb.to(torch.float64) * PEAK


def mse_rgb(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over all pixels and the three channels, on 0..255. ``(B,)``."""
    return (_to_255(pred) - _to_255(target)).square().mean(dim=(1, 2, 3))


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB, ``10 log10(255^2 / MSE_RGB)`` (paper Eq. 29). ``(B,)``.

    Identical images give ``inf`` (MSE 0): callers decide how to average that (see
    :data:`dlnet.evaluate.report.PSNR_CAP_DB`).
    """
    return 10.0 * torch.log10(PEAK**2 / mse_rgb(pred, target))


def ssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004) on RGB 0..255, mean over the channels. ``(B,)``.

    Gaussian window sigma 1.5 (11 x 11), k1 0.01, k2 0.03, L 255: the same numbers as
    scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=255, channel_axis=-1)``.
    """
    p, t = _to_255(pred).float(), _to_255(target).float()
    _, ssim_map = structural_similarity_index_measure(
        p, t, gaussian_kernel=True, sigma=SSIM_SIGMA, kernel_size=SSIM_WINDOW, data_range=PEAK,
        k1=SSIM_K1, k2=SSIM_K2, reduction="none", return_full_image=True)
    # Why crop: torchmetrics averages the map over the reflect-padded border too; Wang et al.
    # (and scikit-image) average only where the whole window lies inside the image.
    pad = (SSIM_WINDOW - 1) // 2
    if min(p.shape[-2:]) <= 2 * pad:
        raise ValueError(f"SSIM needs images larger than {2 * pad} px a side, got {tuple(p.shape[-2:])}")
    return ssim_map[..., pad:-pad, pad:-pad].double().mean(dim=(1, 2, 3))


def colourfulness(rgb: torch.Tensor) -> torch.Tensor:
    """Colourfulness M of Hasler & Suesstrunk (2003) on RGB 0..255. ``(B,)``; grey images give 0.

    With ``rg = R - G`` and ``yb = (R + G) / 2 - B`` over all pixels (population std):
    ``M = sqrt(std_rg^2 + std_yb^2) + 0.3 * sqrt(mean_rg^2 + mean_yb^2)``.
    """
    r, g, b = _to_255(rgb).flatten(2).unbind(1)
    rg = r - g
    yb = 0.5 * (r + g) - b
    spread = (rg.var(dim=1, unbiased=False) + yb.var(dim=1, unbiased=False)).sqrt()
    offset = (rg.mean(dim=1).square() + yb.mean(dim=1).square()).sqrt()
    return spread + 0.3 * offset


def _ab(ab: torch.Tensor) -> torch.Tensor:
    if ab.ndim != 4 or ab.shape[1] != 2:
        raise ValueError(f"expected a*b* (B, 2, H, W), got shape {tuple(ab.shape)}")
    return ab.to(torch.float64)


def hue_spread(ab: torch.Tensor) -> torch.Tensor:
    """How evenly a photo's colour is spread over the hues, 0..1; a*b* ``(B, 2, H, W)`` -> ``(B,)``.

    The normalised entropy of the chroma-weighted hue histogram: hue ``atan2(b*, a*)`` in
    :data:`HUE_BINS` (12) equal bins over 0..360 degrees, over the pixels with chroma
    ``sqrt(a*^2 + b*^2) >= HUE_MIN_CHROMA`` (5), each weighted by its chroma; the entropy is
    divided by ``log(12)``. 0: one hue only (a colour cast, e.g. sepia) or no pixel with chroma
    of at least 5 (a grey photo); 1: all twelve hues carry the same weight.

    Example:
        >>> ab = torch.zeros(2, 2, 4, 4)
        >>> ab[0, 1] = 20.0                         # image 0: all b* = 20 (yellow), one hue
        >>> ab[1, 0, :, :2], ab[1, 0, :, 2:] = 30.0, -30.0   # image 1: half red, half green
        >>> hue_spread(ab)                          # 0 and log(2) / log(12)
        tensor([0.0000, 0.2789], dtype=torch.float64)
    """
    a, b = _ab(ab).flatten(2).unbind(1)
    chroma = torch.hypot(a, b)
    weight = torch.where(chroma >= HUE_MIN_CHROMA, chroma, torch.zeros_like(chroma))
    hue = torch.rad2deg(torch.atan2(b, a)).remainder(360.0)
    # Why clamp: remainder can round -1e-15 up to exactly 360, one past the last bin.
    bins = (hue * (HUE_BINS / 360.0)).long().clamp_(0, HUE_BINS - 1)
    hist = torch.zeros(ab.shape[0], HUE_BINS, dtype=torch.float64, device=ab.device).scatter_add_(1, bins, weight)
    p = hist / hist.sum(dim=1, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)
    entropy = torch.special.entr(p).sum(dim=1)  # -sum p log p, with 0 log 0 = 0; 0 for no chroma
    # where, not clamp: one hue gives -0.0, which should print as 0.
    return torch.where(entropy > 0, entropy / math.log(HUE_BINS), 0.0).clamp_(max=1.0)


def mean_colour_bias(pred_ab: torch.Tensor, target_ab: torch.Tensor) -> torch.Tensor:
    """Mean colour cast: mean a* and mean b* of ``pred_ab`` minus those of ``target_ab``.

    a*b* ``(B, 2, H, W)`` each -> ``(B, 2)`` (a* bias, b* bias), float64, in Lab units. Positive
    a* means redder than the truth (negative: greener), positive b* yellower (negative: bluer);
    0 means no overall cast, which does not mean the right colours.

    Example:
        >>> truth = torch.zeros(1, 2, 4, 4)
        >>> mean_colour_bias(truth + torch.tensor([3.0, 8.0]).view(1, 2, 1, 1), truth)   # a sepia cast
        tensor([[3., 8.]], dtype=torch.float64)
    """
    pred, target = _ab(pred_ab), _ab(target_ab)
    if pred.shape != target.shape:
        raise ValueError(f"a*b* shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    return (pred - target).mean(dim=(2, 3))
