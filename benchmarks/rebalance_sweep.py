"""Sweep the rebalancing post-process's parameters on real photos: quality and cost.

For each photo (centre-cropped and resized to ``--size``), the model's a*b* are predicted once;
then each grid point (gamma, kernel, k1) of :class:`dlnet.color.rebalance.RebalanceConfig` is applied
to those a*b* and scored against the photo's true colours: PSNR and SSIM (higher = closer to
the truth) and colourfulness (Hasler & Suesstrunk; the truth's own is printed for reference),
next to no rebalancing. Then the post-process's cost per image at 224 px is timed.

Usage:
    python benchmarks/rebalance_sweep.py --weights model.safetensors --images /work/shared/data/bsds500/val
    python benchmarks/rebalance_sweep.py --weights m.safetensors --images photos/ --limit 32 --csv sweep.csv
"""

from __future__ import annotations

import argparse
import csv
import itertools
import statistics
import time
from pathlib import Path

import numpy as np
import torch

GAMMAS = (1.0, 0.9, 0.8, 0.7)
KERNELS = (1, 5, 9)
K1S = (4, 8)


def load_photos(folder: Path, limit: int, size: int) -> torch.Tensor:
    """Up to ``limit`` photos under ``folder`` (or in a file list, e.g. a run's split/val.txt) as
    sRGB ``(N, 3, size, size)`` in 0..1, with the centre crop that training and evaluation use."""
    from dlnet.io.photolist import find_photos, read_list
    from dlnet.io.imageio import read_rgb8, resize_crop

    files = (read_list(folder) if folder.is_file() else find_photos(folder))[:limit]
    if not files:
        raise SystemExit(f"{folder}: no images found")
    arrays = [resize_crop(read_rgb8(f), size) for f in files]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255


def grid() -> list:
    """Rebalance configs to try; k1 only matters when there is smoothing (kernel > 1)."""
    from dlnet.color.rebalance import RebalanceConfig

    configs = []
    for gamma, kernel in itertools.product(GAMMAS, KERNELS):
        for k1 in (K1S if kernel > 1 else K1S[:1]):
            if gamma != 1.0 or kernel != 1:  # (1, 1) is "no rebalancing", scored separately
                configs.append(RebalanceConfig(k1=k1, k2=2, kernel=kernel, gamma=gamma))
    return configs


def scores(l: torch.Tensor, ab: torch.Tensor, truth: torch.Tensor) -> dict[str, float]:
    from dlnet.color.lab import merge_l_ab
    from dlnet.color.metrics import colourfulness, psnr, ssim  # imported late: written in parallel

    rgb = merge_l_ab(l, ab).clamp(0, 1)
    return {"psnr": psnr(rgb, truth).mean().item(), "ssim": ssim(rgb, truth).mean().item(),
            "colourfulness": colourfulness(rgb).mean().item()}


def cost_ms(config, side: int = 224, batch: int = 1, repeats: int = 7) -> float:
    """Median milliseconds per image of the post-process on random a*b* at ``side`` px."""
    from dlnet.color.rebalance import rebalance

    ab = (torch.rand(batch, 2, side, side, generator=torch.Generator().manual_seed(0)) - 0.5) * 120
    rebalance(ab, None, config)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        rebalance(ab, None, config)
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times) / batch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", required=True, help="model name or .safetensors/.ckpt path")
    ap.add_argument("--images", type=Path, required=True, help="folder of colour photos (searched recursively) or a file list")
    ap.add_argument("--limit", type=int, default=64, help="photos used (default: %(default)s)")
    ap.add_argument("--size", type=int, default=224, help="side of the square crops (default: %(default)s)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--csv", type=Path, default=None, help="also write the table here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from dlnet.color.lab import rgb_to_lab
    from dlnet.infer.colorizer import Colorizer
    from dlnet.color.metrics import colourfulness
    from dlnet.color.rebalance import rebalance

    truth = load_photos(args.images, args.limit, args.size)
    colorizer = Colorizer.from_pretrained(args.weights, device="cpu", size=None)
    l = rgb_to_lab(truth)[:, :1]
    ab = torch.cat([colorizer.predict_ab(chunk) for chunk in l.split(16)])
    print(f"{len(truth)} photos at {args.size} px; truth colourfulness {colourfulness(truth).mean().item():.2f}")

    rows = [{"gamma": 1.0, "kernel": 1, "k1": "-", **scores(l, ab, truth), "ms_per_224": 0.0}]
    for cfg in grid():
        ab2 = torch.cat([rebalance(a, None, cfg) for a in ab.split(16)])
        rows.append({"gamma": cfg.gamma, "kernel": cfg.kernel, "k1": cfg.k1 if cfg.kernel > 1 else "-",
                     **scores(l, ab2, truth), "ms_per_224": cost_ms(cfg)})
    base = rows[0]
    print(f"{'gamma':>5} {'kernel':>6} {'k1':>3} {'PSNR':>7} {'dPSNR':>6} {'SSIM':>6} {'dSSIM':>7} {'colourf.':>8} {'ms/img':>7}")
    for r in rows:
        print(f"{r['gamma']:>5} {r['kernel']:>6} {r['k1']:>3} {r['psnr']:7.2f} {r['psnr'] - base['psnr']:+6.2f} "
              f"{r['ssim']:6.4f} {r['ssim'] - base['ssim']:+7.4f} {r['colourfulness']:8.2f} {r['ms_per_224']:7.1f}")
    if args.csv:
        with args.csv.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)


if __name__ == "__main__":
    main()
