"""Choose propagation's ``decay`` (dlnet.color.propagate.DECAY) on validation photos, never the test.

For each decay, PSNR of propagated hints (benchmarks/hints.py's simulated 6 x 6 truth patches)
on the automatic model's prediction, at a few point counts; the model runs once per photo, the
propagation once per decay and count.

    python experiments/tune_propagation.py --data ../runs/places128.pack.split/val.txt --photos 150
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
    args = ap.parse_args()
    import torch

    from dlnet import Colorizer
    from dlnet.color.fullres import lightness, merge_rgb8, resize_l
    from dlnet.color.propagate import hint_map, propagate
    from dlnet.infer.pipeline import working_shape

    colorizer = Colorizer.from_pretrained(args.model, precision="fp32")
    scores = {(d, n): [] for d in args.decays for n in args.counts}
    auto = []
    for i, (_, rgb) in enumerate(colour_photos(args.data, args.photos)):
        l = lightness(rgb)
        shape = working_shape(*l.shape, 128)
        small = resize_l(l, shape)  # the working size's L* and the model's a*b* at its own gain, as colorize
        ab = colorizer.predict_ab(torch.from_numpy(small)[None, None])[0].numpy() * colorizer.model_saturation
        auto.append(psnr(merge_rgb8(l, ab), rgb))
        for n in args.counts:
            hints = hint_map(simulated_hints(rgb, n, seed=i), l.shape, shape)
            for d in args.decays:
                scores[d, n].append(psnr(merge_rgb8(l, propagate(small, ab, hints, decay=d)), rgb))
    print(f"{len(auto)} photos, no hints {np.mean(auto):.2f} dB")
    print("| decay | " + " | ".join(f"{n} points" for n in args.counts) + " |")
    print("| --- |" + " --- |" * len(args.counts))
    for d in args.decays:
        print(f"| {d:g} | " + " | ".join(f"{np.mean(scores[d, n]):.2f}" for n in args.counts) + " |")


if __name__ == "__main__":
    main()
