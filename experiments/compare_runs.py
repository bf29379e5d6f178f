"""Side-by-side check of training runs on a pack's validation photos (model selection only).

For the short probes that decide a recipe before the long runs: every model colorizes the same
validation photos (never the test photos) at one size, and one table gives PSNR, the share of
photos beating the grey baseline, colourfulness and hue spread beside the truth's, and the mean
colour bias (mean a*, b* of the output minus the truth's) with the correlation of per-photo
mean colour. Final numbers come from ``dlnet evaluate`` on the test photos, not from here.
``--saturation 1,1.2,1.4`` scores every model at each a*b* gain (``ModelConfig.saturation``, on
top of the model's own): the curve a shipped model's gain is chosen from; ``--temperature 0.2,0.38``
decodes a classification model at each annealed-mean temperature (towards 0: the mode, more colour).

Usage:
    python experiments/compare_runs.py /work/runs/places128.pack \\
        base=dlnet-effnet-unet A=RUN_A/checkpoints/last.ckpt B=RUN_B/checkpoints/last.ckpt
"""

from __future__ import annotations

import argparse

import torch

from dlnet.color.lab import merge_l_ab, rgb_to_lab
from dlnet.color.metrics import colourfulness, hue_spread, psnr
from dlnet.train.packed import load_packed
from dlnet.model.weights import load_model


def _corr(x: torch.Tensor, y: torch.Tensor) -> float:
    x, y = x - x.mean(), y - y.mean()
    return float((x * y).sum() / (x.norm() * y.norm()).clamp_min(1e-12))


@torch.inference_mode()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pack")
    ap.add_argument("models", nargs="+", help="NAME=PATH or shipped name")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--limit", type=int)
    ap.add_argument("--saturation", default="1", help="comma-separated a*b* gains to score each model at (default 1)")
    ap.add_argument("--temperature", default="",
                    help="comma-separated annealed-mean temperatures to decode at (default: each model's own)")
    args = ap.parse_args()
    rgb = load_packed(args.pack)["val"][: args.limit].float() / 255
    if rgb.shape[-1] != args.size:
        rgb = torch.nn.functional.interpolate(rgb, size=(args.size, args.size), mode="bicubic",
                                              antialias=True).clamp(0, 1)
    lab = rgb_to_lab(rgb)
    l, ab = lab[:, :1], lab[:, 1:]
    grey = merge_l_ab(l, torch.zeros_like(ab))
    keep = colourfulness(rgb) >= 1  # grey-truth photos say nothing about colour
    rgb, l, ab, grey = rgb[keep], l[keep], ab[keep], grey[keep]
    grey_psnr = psnr(grey, rgb).clamp(max=60)
    print(f"{int(keep.sum())} colour photos ({int((~keep).sum())} grey truths left out), {args.size} px")
    print(f"| model | PSNR | beats grey | colourfulness | hue spread | mean da* | mean db* | corr a* | corr b* |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| grey | {grey_psnr.mean():.2f} | | 0.0 | 0.000 | | | | |")
    print(f"| truth | | | {colourfulness(rgb).mean():.1f} | {hue_spread(ab).mean():.3f} | | | | |")
    temperatures = [float(t) for t in args.temperature.split(",") if t] or [None]
    gains = [float(g) for g in args.saturation.split(",")]
    for spec in args.models:
        name, _, path = spec.rpartition("=")
        model = load_model(path).eval()
        for t in temperatures:
            pred = torch.cat([model(l[i:i + 64], temperature=t) for i in range(0, len(l), 64)])
            for gain in gains:
                label = (name or path) + ("" if t is None else f" T{t:g}") + ("" if gain == 1 else f" x{gain:g}")
                print(_row(label, pred * gain, l, ab, rgb, grey_psnr))


def _row(label: str, pred: torch.Tensor, l: torch.Tensor, ab: torch.Tensor, rgb: torch.Tensor,
         grey_psnr: torch.Tensor) -> str:
    """One table row: a model's predicted a*b* scored against the truth."""
    out = merge_l_ab(l, pred)
    p = psnr(out, rgb).clamp(max=60)
    m_pred, m_true = pred.mean(dim=(2, 3)), ab.mean(dim=(2, 3))
    bias = (m_pred - m_true).mean(0)
    return (f"| {label} | {p.mean():.2f} | {(p > grey_psnr).double().mean():.0%} | "
            f"{colourfulness(out).mean():.1f} | {hue_spread(pred).mean():.3f} | {bias[0]:+.1f} | {bias[1]:+.1f} | "
            f"{_corr(m_pred[:, 0], m_true[:, 0]):.2f} | {_corr(m_pred[:, 1], m_true[:, 1]):.2f} |")


if __name__ == "__main__":
    main()
