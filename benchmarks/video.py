"""Video: frames/s of a 720p film end to end and where the time goes; flicker with and without smoothing.

``speed``: a synthetic grey 720p film (a slow pan over a photo, with grain and exposure flicker,
H.264, 24 fps) is made first, then colorized by ``Colorizer.colorize_video`` with the shipped
default model: frames/s end to end (decode, colour, encode, streamed; timed from the call to the
closed output file), each stage's seconds per frame (stages run on three threads, so they overlap
and add up to more than the wall time) and peak RSS; ``--rss-check`` repeats the run in
subprocesses with the film 1x and 4x as long: memory flat in the film's length means the same peak.

``flicker``: clips made from photos at 320x192 -- a still scene with exposure off by 5 % (s.d.)
each frame and grain, a slow pan (3 px/frame) and a fast one (16 px/frame) without noise, a scene
cut. End to end with the shipped model: flicker (:func:`dlnet.infer.temporal.flicker`: mean absolute
change of a*b* between consecutive frames of the decoded output, over 8x8-pixel blocks) on the
still clip, against its floor (the same clip colorized with its own time-averaged colour, which
cannot flicker: what is left is the clip's exposure flicker and grain passing through the kept L*
into 8-bit RGB and H.264), and cuts found. Then a sweep of the smoother's strength and motion
scale at the working size (the model run once per clip): flicker on the still clips, lag on the
pans (mean absolute difference from the unsmoothed a*b*: colour trailing motion).

Usage:
    python benchmarks/video.py speed --frames 96
    python benchmarks/video.py flicker
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image
from skimage import data

sys.path.insert(0, str(Path(__file__).parent))
from inference import peak_rss_gb  # noqa: E402

from dlnet.infer.colorizer import Colorizer  # noqa: E402
from dlnet.color.fullres import lightness  # noqa: E402
from dlnet.infer.temporal import DEFAULT_TEMPORAL, TemporalSmoother, flicker  # noqa: E402
from dlnet.infer.video import read_frames  # noqa: E402


def grey(photo: np.ndarray, w: int, h: int) -> np.ndarray:
    return np.asarray(Image.fromarray(photo).convert("L").resize((w, h), Image.Resampling.LANCZOS), np.float32)


def film(path: Path, frames: int, w: int, h: int, step: float, grain: float, exposure: float,
         cut_at: int | None = None) -> Path:
    """A grey H.264 film: a pan of ``step`` px/frame over a photo, with grain (s.d., 8-bit
    levels), exposure off by ``exposure`` (s.d., relative) each frame, and a cut to another photo."""
    scenes = [grey(data.astronaut(), w + int(step * frames) + 1, h), grey(data.coffee(), w, h)]
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(24))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "16"}
        for i in range(frames):
            if cut_at is not None and i >= cut_at:
                img = scenes[1]
            else:
                x = int(round(step * i))
                img = scenes[0][:, x:x + w]
            img = img * (1 + exposure * rng.standard_normal()) + rng.normal(0, grain, img.shape) if grain or exposure else img
            frame = av.VideoFrame.from_ndarray(np.clip(img, 0, 255).astype(np.uint8), format="gray")
            out.mux(stream.encode(frame.reformat(format="yuv420p")))
        out.mux(stream.encode())
    return path


def cpu_s() -> float:
    """CPU seconds this process has used, all threads (FFmpeg's included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def speed_once(frames: int, threads: int, batch: int, preset: str, folder: Path) -> dict:
    src = film(folder / "in.mp4", frames, 1280, 720, step=2, grain=6, exposure=0.03)
    colorizer = Colorizer.from_pretrained(device="cpu", batch_size=batch)
    colorizer.colorize_video(film(folder / "warm.mp4", batch, 1280, 720, 2, 6, 0.03), folder / "warm-out.mp4",
                             threads=threads)
    t, cpu = time.perf_counter(), cpu_s()
    result = colorizer.colorize_video(src, folder / "out.mp4", preset=preset, threads=threads)
    wall, cpu = time.perf_counter() - t, cpu_s() - cpu
    return {"frames": result.frames, "fps": result.frames / wall, "wall_s": wall, "cores_used": cpu / wall,
            "cpu_ms_per_frame": 1000 * cpu / result.frames, "mb": (folder / "out.mp4").stat().st_size / 1e6,
            "ms_per_frame": {k: 1000 * v / result.frames for k, v in result.stage_s.items()},
            "peak_rss_gb": peak_rss_gb(), "precision": colorizer.precision}


def speed(args) -> None:
    print(f"torch {torch.__version__}, av {av.__version__}, {args.threads} torch thread(s), batch {args.batch_size}, "
          f"x264 preset {args.preset}, 720p, {args.frames} frames", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        r = speed_once(args.frames, args.threads, args.batch_size, args.preset, Path(folder))
    stages = " | ".join(f"{k} {v:.1f}" for k, v in r["ms_per_frame"].items())
    print(f"{r['fps']:.2f} frames/s end to end ({r['wall_s']:.1f} s, {r['precision']}, output {r['mb']:.1f} MB); "
          f"ms/frame per stage: {stages}; CPU {r['cpu_ms_per_frame']:.0f} ms/frame on {r['cores_used']:.2f} cores; "
          f"peak RSS {r['peak_rss_gb']:.2f} GB")
    if args.rss_check:
        for n in (args.frames, 4 * args.frames):
            cmd = [sys.executable, __file__, "child", "--frames", str(n), "--threads", str(args.threads),
                   "--batch-size", str(args.batch_size), "--preset", args.preset]
            child = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
            print(f"  {n} frames in a fresh process: {child['fps']:.2f} frames/s, peak RSS {child['peak_rss_gb']:.2f} GB")


class FixedAb(torch.nn.Module):
    """A flicker-free 'model': the same a*b* map for every frame."""

    def __init__(self, ab: np.ndarray) -> None:
        super().__init__()
        self.ab = torch.from_numpy(ab)[None]

    def forward(self, l):
        return self.ab.expand(l.shape[0], -1, -1, -1).clone()


def flicker_table(args) -> None:
    torch.set_num_threads(args.threads)
    colorizer = Colorizer.from_pretrained(device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clips = {"still": film(folder / "still.mp4", 48, 320, 192, 0, grain=6, exposure=0.05),
                 "slow pan": film(folder / "slow.mp4", 48, 320, 192, 3, 0, 0),
                 "fast pan": film(folder / "fast.mp4", 48, 320, 192, 16, 0, 0),
                 "cut": film(folder / "cut.mp4", 48, 320, 192, 3, 0, 0, cut_at=24)}
        if not args.sweep_only:
            end_to_end(colorizer, clips, folder)
        sweep(colorizer, clips, folder)


def end_to_end(colorizer: Colorizer, clips: dict, folder: Path) -> None:
    # The floor: the still clip colorized with its own time-averaged colour, which cannot flicker;
    # what the output still measures then is the clip's exposure flicker and grain passing
    # through the kept L* into 8-bit RGB and H.264 chroma, which colour smoothing cannot remove.
    mean_ab = np.mean(working_ab(colorizer, clips["still"])[0], axis=0)
    fixed = Colorizer(FixedAb(mean_ab), device="cpu", precision="fp32")
    floor = flicker(read_frames(fixed.colorize_video(clips["still"], folder / "floor.mp4", temporal=0).path))
    print(f"end to end (shipped model, working size 256, decoded output, a*b* averaged over 8x8 px; "
          f"floor {floor:.3f}, per pixel shown too):")
    print("| --temporal | flicker, still + grain + exposure | above the floor | per pixel | cuts found (1 true) |")
    print("| --- | --- | --- | --- | --- |")
    for s in sorted({0.0, 0.5, 0.8, DEFAULT_TEMPORAL, 0.95}):
        still = colorizer.colorize_video(clips["still"], folder / f"still-{s}.mp4", temporal=s).path
        cut = colorizer.colorize_video(clips["cut"], folder / f"cut-{s}.mp4", temporal=s)
        f = flicker(read_frames(still))
        print(f"| {s:g} | {f:.3f} | {f - floor:.3f} | {flicker(read_frames(still), block=1):.3f} | "
              f"{cut.cuts if s else '-'} |", flush=True)


def working_ab(colorizer: Colorizer, path: Path) -> tuple[list, list]:
    """a*b* predicted frame by frame at the working size, and the working-size L*."""
    ls = [colorizer._to_working(torch.from_numpy(lightness(f))[None, None], colorizer.size) for f in read_frames(path)]
    return [colorizer._predict(l, colorizer.options)[0].numpy() for l in ls], [l[0].numpy() for l in ls]


def sweep(colorizer: Colorizer, clips: dict, folder: Path) -> None:
    clips = {**clips, "grainy": film(folder / "grainy.mp4", 48, 320, 192, 0, grain=12, exposure=0.05)}
    preds = {name: working_ab(colorizer, clip) for name, clip in clips.items() if name != "cut"}
    print("\nsmoother sweep at the working size (a*b* as predicted, before recombination; grainy: grain s.d. 12):")
    print("| strength | motion | flicker, still | flicker, grainy | lag, slow pan | lag, fast pan |")
    print("| --- | --- | --- | --- | --- | --- |")
    for strength in (0.0, 0.5, 0.7, 0.8, 0.9):
        for motion in ((float("inf"),) if strength == 0 else (2.0, 3.0, 4.0, 6.0, 12.0, float("inf"))):
            row = {}
            for name, (abs_, ls) in preds.items():
                smoother = TemporalSmoother(strength, motion=motion)
                out = [smoother(a, l) for a, l in zip(abs_, ls)]
                row[name] = (np.mean([np.abs(b - a).mean() for a, b in zip(out, out[1:])]),
                             np.mean([np.abs(o - a).mean() for o, a in zip(out, abs_)]))
            print(f"| {strength:g} | {motion:g} | {row['still'][0]:.3f} | {row['grainy'][0]:.3f} | "
                  f"{row['slow pan'][1]:.3f} | {row['fast pan'][1]:.3f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["speed", "flicker", "child"])
    parser.add_argument("--frames", type=int, default=96)
    parser.add_argument("--threads", type=int, default=1, help="torch threads during a video (default: 1)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--preset", default="superfast", help="libx264 preset (default: superfast, as colorize_video)")
    parser.add_argument("--rss-check", action="store_true", help="speed: also 1x and 4x frames in subprocesses")
    parser.add_argument("--sweep-only", action="store_true", help="flicker: only the sweep at the working size")
    args = parser.parse_args()
    if args.what == "child":
        with tempfile.TemporaryDirectory() as folder:
            print(json.dumps(speed_once(args.frames, args.threads, args.batch_size, args.preset, Path(folder))))
    elif args.what == "speed":
        speed(args)
    else:
        flicker_table(args)


if __name__ == "__main__":
    main()
