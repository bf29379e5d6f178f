"""Choose propagation's ``decay`` (dlnet.color.propagate.DECAY) on validation photos, never the test.

For each decay, PSNR of propagated hints (benchmarks/hints.py's simulated 6 x 6 truth patches)
on the model's prediction (a hint model's with the hints, as ``dlnet colorize`` does), at a few
point counts; the model runs once per photo and count, the propagation once per decay.

    python experiments/tune_propagation.py --data PACK.split/val.txt --photos 100 \
        --decays 1e-5 2e-5 4e-5 1e-4 3e-4 --counts 1 5 10 50          # solved at half the working size
    python experiments/tune_propagation.py ... --coarsen 1                # at the working size itself
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from hints import colour_photos, psnr, simulated_hints  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", default=None, help="the automatic model (default: the shipped default)")
    ap.add_argument("--photos", type=int, default=150)
    ap.add_argument("--decays", type=float, nargs="+", default=[1e-6, 1e-5, 1e-4, 1e-3, 1e-2])
    ap.add_argument("--counts", type=int, nargs="+", default=[1, 5, 20, 100])
    ap.add_argument("--coarsen", type=int, default=None, help="the solve's grid (default: propagate's own)")
    args = ap.parse_args()
    import torch

    from dlnet import Colorizer
    from dlnet.color.fullres import lightness, merge_rgb8, resize_l
    from dlnet.color.propagate import COARSEN, hint_map, propagate
    from dlnet.infer.pipeline import working_shape

    colorizer = Colorizer.from_pretrained(args.model, precision="fp32")
    scores = {(d, n): [] for d in args.decays for n in args.counts}
    auto = []
    for i, (_, rgb) in enumerate(colour_photos(args.data, args.photos)):
        l = lightness(rgb)
        shape = working_shape(*l.shape, 128)
        small = resize_l(l, shape)  # the working size's L* and the model's a*b* at its own gain, as colorize
        x = torch.from_numpy(small)[None, None]

        def predict(hints):  # at the model's own gain, as colorize; a hint model sees the hints
            extra = {"hints": torch.from_numpy(hints)[None]} if colorizer.takes_hints and hints is not None else {}
            return colorizer.predict_ab(x, **extra)[0].numpy() * colorizer.model_saturation

        auto.append(psnr(merge_rgb8(l, predict(None)), rgb))
        for n in args.counts:
            hints = hint_map(simulated_hints(rgb, n, seed=i), l.shape, shape)
            ab = predict(hints)
            for d in args.decays:
                out = propagate(small, ab, hints, decay=d, coarsen=args.coarsen or COARSEN)
                scores[d, n].append(psnr(merge_rgb8(l, out), rgb))
    print(f"{len(auto)} photos, no hints {np.mean(auto):.2f} dB")
    print("| decay | " + " | ".join(f"{n} points" for n in args.counts) + " |")
    print("| --- |" + " --- |" * len(args.counts))
    for d in args.decays:
        print(f"| {d:g} | " + " | ".join(f"{np.mean(scores[d, n]):.2f}" for n in args.counts) + " |")


if __name__ == "__main__":
    main()
