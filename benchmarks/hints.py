"""Colour hints, measured (issue 28): PSNR against the number of hint points for the learned
method (a hint model), propagation (Levin et al. 2004 on an automatic model's prediction) and
no hints, on held-out colour photos, with paired intervals; and the time per update of a 1-MP
photo. Everything goes through the public API a user calls:
``Colorizer.colorize(photo, InferenceOptions(hints=[Hint(x, y, colour, radius)], hint_method=...))``.

The protocol follows Zhang et al. 2017 (richzhang/colorization-pytorch): each photo at 256 x 256
(shorter side resized, centre-cropped, as ``dlnet evaluate --size 256``), working size 128;
hints are 6 x 6 patches of the truth at that scale (a Hint at the patch centre, radius 3, its
colour the patch's mean sRGB), at Gaussian positions around the centre (sigma 64 px), seeded per
photo; the first N points of the same sequence for every count, so counts are nested and the
comparisons paired. Photos whose truth is grey are left out, as in ``dlnet evaluate``.

    python benchmarks/hints.py --data ../runs/places128.pack.split/test.txt \\
        --learned ../runs/hints.safetensors --automatic dlnet-effnet-unet --json docs/hints/test.json
    python benchmarks/hints.py --data ... --photos 300          # a quick look on the first 300

Anchor (Zhang et al. 2017 on ImageNet, 1,000 photos, resources/psnrs_siggraph.npy of
richzhang/colorization-pytorch): 24.43, 25.37, 26.20, 27.39, 28.42, 29.34, 30.42, 31.13 dB at
0, 1, 2, 5, 10, 20, 50, 100 points.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

from inference import photo as synthetic_photo  # noqa: E402

COUNTS = (0, 1, 2, 5, 10, 20, 50, 100)
ANCHOR = dict(zip(COUNTS, (24.43, 25.37, 26.20, 27.39, 28.42, 29.34, 30.42, 31.13)))
SIDE, PATCH = 256, 6


def simulated_hints(rgb: np.ndarray, n: int, seed: int):
    """The first ``n`` of a photo's seeded hint sequence: 6 x 6 truth patches at Gaussian positions."""
    from dlnet import Hint

    h, w = rgb.shape[:2]
    rng = np.random.default_rng(seed)
    centres = rng.normal((h / 2, w / 2), (h / 4, w / 4), size=(max(COUNTS), 2))
    hints = []
    for cy, cx in centres[:n]:
        y0 = int(np.clip(round(cy - PATCH / 2), 0, h - PATCH))
        x0 = int(np.clip(round(cx - PATCH / 2), 0, w - PATCH))
        colour = rgb[y0:y0 + PATCH, x0:x0 + PATCH].reshape(-1, 3).mean(0)
        hints.append(Hint(x0 + PATCH / 2, y0 + PATCH / 2, tuple(float(c) for c in colour), radius=PATCH / 2))
    return hints


def psnr(out: np.ndarray, truth: np.ndarray) -> float:
    from dlnet.color.metrics import psnr as psnr_t

    def t(a):
        return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float() / 255

    return float(psnr_t(t(out), t(truth))[0])


def colour_photos(data: str, limit: int | None) -> list[tuple[str, np.ndarray]]:
    from dlnet.color.metrics import colourfulness
    from dlnet.evaluate.protocol import GREY_TRUTH_BELOW, find_truth
    from dlnet.io.imageio import read_rgb8, resize_crop

    out = []
    for truth in find_truth(data):
        rgb = resize_crop(read_rgb8(truth.path), SIDE)
        m = float(colourfulness(torch.from_numpy(np.array(rgb)).permute(2, 0, 1)[None].float() / 255)[0])
        if m >= GREY_TRUTH_BELOW:
            out.append((truth.name, rgb))
        if limit and len(out) >= limit:
            break
    return out


def update_times(colorizers: dict, repeats: int) -> dict[str, float]:
    """Median seconds to colorize a 1-MP photo (1000 x 1000) with 10 hints, per method."""
    from dlnet import InferenceOptions

    rgb = synthetic_photo(1000, 1000)
    hints = simulated_hints(rgb, 10, 0)
    calls = {name: (lambda c=c, o=InferenceOptions(size=128, hints=hints, hint_method=m): c.colorize(rgb, o))
             for name, (c, m) in colorizers.items()}
    calls["no hints"] = lambda c=next(iter(colorizers.values()))[0]: c.colorize(rgb, InferenceOptions(size=128))
    for fn in calls.values():
        fn()
    times = {name: [] for name in calls}
    for _ in range(repeats):
        for name, fn in calls.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) for name, ts in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="held-out photos: a folder or a file list (a split's test.txt)")
    ap.add_argument("--learned", help="a hint model (name or file); left out if not given")
    ap.add_argument("--automatic", default=None, help="the model propagation starts from (default: the shipped default)")
    ap.add_argument("--photos", type=int, default=None, help="only the first N colour photos")
    ap.add_argument("--counts", type=int, nargs="+", default=list(COUNTS))
    ap.add_argument("--repeats", type=int, default=7, help="timing rounds")
    ap.add_argument("--json", type=Path, help="write per-photo PSNRs and the summary here")
    args = ap.parse_args()
    from dlnet import Colorizer, InferenceOptions
    from dlnet.evaluate.report import bootstrap_change, bootstrap_mean

    methods = {"propagate": (Colorizer.from_pretrained(args.automatic), "propagate")}
    if args.learned:
        methods["learned"] = (Colorizer.from_pretrained(args.learned), "learned")
    photos = colour_photos(args.data, args.photos)
    print(f"{len(photos)} colour photos from {args.data}; methods: {', '.join(methods)}", file=sys.stderr)
    scores = {name: {n: [] for n in args.counts} for name in methods}
    start = time.perf_counter()
    for i, (_, rgb) in enumerate(photos):
        for name, (colorizer, method) in methods.items():
            for n in args.counts:
                hints = simulated_hints(rgb, n, seed=i)
                out = np.asarray(colorizer.colorize(rgb, InferenceOptions(size=128, hints=hints, hint_method=method)))
                scores[name][n].append(psnr(out, rgb))
        if (i + 1) % 100 == 0:
            print(f"{i + 1}/{len(photos)} photos, {time.perf_counter() - start:.0f} s", file=sys.stderr)
    summary = {"photos": len(photos), "data": args.data, "methods": {}}
    header = "| points | anchor (Zhang 2017) | " + " | ".join(
        f"{m} | {m} gain over its no-hint" for m in methods) + (" | learned - propagate |" if args.learned else " |")
    print(header)
    print("|" + " --- |" * (header.count("|") - 1))
    for n in args.counts:
        cells = [str(n), f"{ANCHOR.get(n, float('nan')):.2f}"]
        for name in methods:
            mean = bootstrap_mean(scores[name][n])
            gain = bootstrap_change(scores[name][n], scores[name][args.counts[0]])["diff"]
            summary["methods"].setdefault(name, {})[n] = {"psnr": mean, "gain": gain}
            cells += [f"{mean['mean']:.2f}", _fmt(gain)]
        if args.learned:
            vs = bootstrap_change(scores["learned"][n], scores["propagate"][n])["diff"]
            summary.setdefault("learned_vs_propagate", {})[n] = vs
            cells.append(_fmt(vs))
        print("| " + " | ".join(cells) + " |", flush=True)
    times = update_times(methods, args.repeats)
    summary["update_s_1mp"] = times
    print("time per update, 1-MP photo, 10 hints: " + ", ".join(f"{k} {1000 * v:.0f} ms" for k, v in times.items()))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"summary": summary, "per_photo": scores}, indent=1) + "\n")


def _fmt(est: dict) -> str:
    lo, hi = est["ci95"] or (float("nan"), float("nan"))
    return f"{est['mean']:+.2f} [{lo:+.2f}, {hi:+.2f}]"


if __name__ == "__main__":
    main()
