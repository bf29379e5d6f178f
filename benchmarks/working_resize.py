"""Which filter shrinks a photo's L* to the working size: accuracy of each, paired.

The model predicts a*b* at a working size (128 px); a larger photo's L* is shrunk to it first.
The filter of that shrink decides how sharp the model's input is: the training photos were
downscaled sharply (MiniPlaces, 128 px), the triangle (bilinear) filter blurs. For each photo
set and filter this prints the mean PSNR of the colorized 8-bit photo against the truth and its
difference from the first filter, paired photo by photo, mean [95% bootstrap interval], beside
the grey baseline. Photos as ``dlnet evaluate`` scores them: shorter side to ``--size`` and
centre-cropped (``--size 0``: the full photo, the case of a real scan), colourless truths left out.

The filter is swapped in ``Colorizer._to_working`` for the measurement; dlnet itself shrinks with
the antialiased bicubic filter (``dlnet.color.fullres.resize_l``).

    python benchmarks/working_resize.py --data DATA/bsds500/train DATA/bsds500/val --size 0
    python benchmarks/working_resize.py --data PACK.split/val.txt PEOPLE/check.txt --size 256 --limit 400
    python benchmarks/working_resize.py --time      # what each shrink costs: Pillow, 1 MP and 12 MP
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from dlnet.color import metrics
from dlnet.color.fullres import lightness, merge_rgb8, resize_plane
from dlnet.evaluate.protocol import GREY_TRUTH_BELOW, find_truth
from dlnet.evaluate.report import bootstrap_change
from dlnet.infer.colorizer import Colorizer
from dlnet.infer.options import InferenceOptions, working_shape
from dlnet.io.imageio import Photo, read_rgb8, resize_crop

PIL_FILTERS = {"lanczos": Image.Resampling.LANCZOS, "box": Image.Resampling.BOX}
FILTERS = ("bilinear", "bicubic", *PIL_FILTERS)


def shrink(l: torch.Tensor, shape: tuple[int, int], name: str) -> torch.Tensor:
    """L* ``(B, 1, H, W)`` -> ``shape`` with the filter ``name`` (antialiased), clamped to 0..100."""
    if name in PIL_FILTERS:  # PyTorch has no Lanczos, and its "area" is not Pillow's box
        small = [resize_plane(x[0].cpu().numpy(), shape, PIL_FILTERS[name]) for x in l]
        return torch.from_numpy(np.stack(small))[:, None].to(l.device).clamp(0, 100)
    return F.interpolate(l, size=shape, mode=name, align_corners=False, antialias=True).clamp(0, 100)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """:func:`dlnet.color.metrics.psnr` of two uint8 RGB photos."""
    return float(metrics.psnr(*(torch.tensor(x).permute(2, 0, 1)[None].float() / 255 for x in (a, b)))[0])


def timings(repeats: int = 9) -> None:
    """Median ms of Pillow's antialiased shrink of a float L* to the working size, per filter."""
    filters = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC, **PIL_FILTERS}
    print("| L* | " + " | ".join(filters) + " |\n|---|" + "---|" * len(filters))
    for h, w in ((864, 1152), (3000, 4000)):
        image = Image.fromarray(np.random.default_rng(0).uniform(0, 100, (h, w)).astype(np.float32), mode="F")
        shape = working_shape(h, w, 128)
        cells = []
        for f in filters.values():
            runs = []
            for _ in range(repeats):
                t = time.perf_counter()
                image.resize(shape[::-1], f)
                runs.append(time.perf_counter() - t)
            cells.append(f"{1000 * float(np.median(runs)):.1f}")
        print(f"| {w} x {h} | " + " | ".join(cells) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", nargs="+", help="folders or text files listing photos")
    ap.add_argument("--time", action="store_true", help="only time each filter's shrink (ms)")
    ap.add_argument("--model", default=None, help="model name or file (default: the shipped default)")
    ap.add_argument("--size", type=int, default=256, help="centre-crop side as dlnet evaluate; 0: full photos")
    ap.add_argument("--working-size", type=int, default=128)
    ap.add_argument("--filters", nargs="+", default=list(FILTERS), choices=FILTERS)
    ap.add_argument("--limit", type=int, default=0, help="first N photos of each set (0: all)")
    args = ap.parse_args()
    if args.time:
        return timings()
    if not args.data:
        ap.error("--data is needed (or --time)")

    colorizer = Colorizer.from_pretrained(args.model, device="cpu", precision="fp32")
    chosen = [args.filters[0]]

    def to_working(self, l, size):
        shape = working_shape(*l.shape[-2:], size)
        return l if shape == tuple(l.shape[-2:]) else shrink(l, shape, chosen[0])

    Colorizer._to_working = to_working
    options = InferenceOptions(size=args.working_size)
    print(f"model {args.model or 'shipped default'}, working size {args.working_size}, "
          f"photos {'full size' if not args.size else f'{args.size} px crops'}")
    print("| photos | n | grey | filter | PSNR (dB) | vs " + args.filters[0] + " [95%] |")
    print("|---|---|---|---|---|---|")
    for source in args.data:
        truths = []
        for truth in find_truth(source)[: args.limit or None]:
            rgb = read_rgb8(truth.path)
            rgb = rgb if not args.size else resize_crop(rgb, args.size)
            if float(metrics.colourfulness(torch.tensor(rgb).permute(2, 0, 1)[None])[0]) >= GREY_TRUTH_BELOW:
                truths.append(Photo(rgb))  # as dlnet evaluate: a grey truth says nothing
        grey = np.mean([psnr(merge_rgb8(lightness(t.rgb), None), t.rgb) for t in truths])
        first = None
        for name in args.filters:
            chosen[0] = name
            scores = np.array([psnr(out.rgb, t.rgb) for t in truths for out in colorizer.colorize_photos([t], options)])
            first = scores if first is None else first
            change = bootstrap_change(scores, first)["diff"]  # paired, as dlnet evaluate's
            lo, hi = change["ci95"] or (0.0, 0.0)
            print(f"| {source} | {len(scores)} | {grey:.2f} | {name} | {scores.mean():.3f} | "
                  f"{change['mean']:+.3f} [{lo:+.3f}, {hi:+.3f}] |", flush=True)


if __name__ == "__main__":
    main()
