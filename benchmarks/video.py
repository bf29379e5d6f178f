"""Video: frames/s end to end and where the time goes; the 4:2:0 path's colour against the photo path's; flicker.

The films are synthetic and grey, like an old film: a slow pan over a public-domain photo
(skimage's astronaut), with grain (s.d. 3 levels) and exposure flicker (3 % s.d.), H.264 at 24
fps (libx264 ``veryfast``, CRF 20: about 4.5 Mbit/s at 720p, 11 at 1080p).

``cli``: the whole process as a user runs it, start-up included: ``dlnet colorize clip.mp4 -o
out`` in a fresh process, at 720p and 1080p (``--seconds`` of film each). With ``--baseline SRC``
(a source tree, e.g. ``git archive COMMIT src | tar -x -C /tmp/base``) the same command runs on
that code too, interleaved with this code's runs, so both see the same machine. Medians of
``--repeats``: frames/s, CPU ms per frame (all threads), peak RSS. ``--torch-free`` adds a fresh
process that colorizes the film through the API on onnxruntime (``OnnxColorizer``, one thread),
which never loads torch: the start-up the command would have if it chose onnxruntime for films.

``speed``: in-process ``Colorizer.colorize_video`` on the shipped default model (loaded and
warmed first): frames/s, each stage's ms per frame, wall (stages overlap on three threads, and
wall includes waiting for a core) and CPU of the stage's own thread (FFmpeg's decoder threads
and onnxruntime's are not in it; the total CPU is), peak RSS. ``--exact`` runs every frame by
the photo path (full-resolution RGB), ``--baseline SRC`` runs SRC's code in a child process;
``--rss-check`` repeats the run in fresh processes with the film 1x and 4x as long: memory flat
in the film's length means the same peak.

``accuracy``: how far the 4:2:0 path's frames are from the photo path's (each frame colorized
by ``Colorizer.colorize`` as a photo), against the exact path's distance: the shipped model, no
smoothing, lossless H.264 (CRF 0), decoded to 8-bit RGB. Both video paths store colour at 4:2:0,
which alone moves pixels at colour edges by several levels; the 8 x 8-pixel block means show
the colour of regions.

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
    python benchmarks/video.py cli --baseline /tmp/base/src --seconds 30 --repeats 3 [--torch-free] [--films DIR]
        [--preset ultrafast] [--runtime torch|onnx]
    python benchmarks/video.py speed --frames 240 [--height 1080] [--exact | --baseline /tmp/base/src]
    python benchmarks/video.py accuracy
    python benchmarks/video.py flicker
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
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

SIZES = {720: (1280, 720, 2), 1080: (1920, 1080, 3)}  # width, height, pan in px/frame
TORCH_FREE = "torch-free"  # cli: the API on onnxruntime instead of the command


def grey(photo: np.ndarray, w: int, h: int) -> np.ndarray:
    return np.asarray(Image.fromarray(photo).convert("L").resize((w, h), Image.Resampling.LANCZOS), np.float32)


def film(path: Path, frames: int, w: int, h: int, step: float, grain: float, exposure: float,
         cut_at: int | None = None, crf: int = 16, preset: str = "ultrafast") -> Path:
    """A grey H.264 film: a pan of ``step`` px/frame over a photo, with grain (s.d., 8-bit
    levels), exposure off by ``exposure`` (s.d., relative) each frame, and a cut to another photo."""
    scenes = [grey(data.astronaut(), w + int(step * frames) + 1, h), grey(data.coffee(), w, h)]
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(24))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"preset": preset, "crf": str(crf)}
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


def speed_film(folder: Path, frames: int, height: int) -> Path:
    """The speed benchmarks' film (see the module docstring), made once per folder."""
    w, h, step = SIZES[height]
    path = folder / f"film-{height}p-{frames}.mp4"
    return path if path.exists() else film(path, frames, w, h, step, grain=3, exposure=0.03, crf=20, preset="veryfast")


def cpu_s() -> float:
    """CPU seconds this process has used, all threads (FFmpeg's included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_gb() -> float:
    """This process's peak resident memory (VmHWM; ru_maxrss would include the parent's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def speed_once(frames: int, height: int, exact: bool, folder: Path, runtime: str = "torch", threads: int = 1) -> dict:
    """One in-process run (this process's dlnet, whichever source tree it comes from), the model
    on ``runtime`` with ``threads`` threads."""
    src = speed_film(folder, frames, height)
    if runtime == "onnx":
        from dlnet.infer.onnxrun import OnnxColorizer

        colorizer = OnnxColorizer.from_pretrained(batch_size=8, threads=threads)
    else:
        from dlnet.infer.colorizer import Colorizer

        colorizer = Colorizer.from_pretrained(device="cpu", batch_size=8)
    extra = {"exact": True} if exact else {}
    colorizer.colorize_video(speed_film(folder, 8, height), folder / "warm.mp4", threads=threads, **extra)
    t, cpu = time.perf_counter(), cpu_s()
    result = colorizer.colorize_video(src, folder / "out.mp4", threads=threads, **extra)
    wall, cpu = time.perf_counter() - t, cpu_s() - cpu
    per_frame = lambda stages: {k: 1000 * v / result.frames for k, v in stages.items()}  # noqa: E731
    return {"frames": result.frames, "fps": result.frames / wall, "cpu_ms_per_frame": 1000 * cpu / result.frames,
            "wall_ms": per_frame(result.stage_s), "cpu_ms": per_frame(getattr(result, "stage_cpu_s", {})),
            "frames_420": getattr(result, "frames_420", 0),
            "mbit_s": (folder / "out.mp4").stat().st_size * 8 / 1e6 / (frames / 24),
            "peak_rss_gb": peak_rss_gb()}


def child(args, baseline: str | None, frames: int, exact: bool = False) -> dict:
    env = {**os.environ, **({"PYTHONPATH": baseline} if baseline else {})}
    cmd = [sys.executable, __file__, "child", "--frames", str(frames), "--height", str(args.height),
           "--threads", str(args.threads), *(["--runtime", args.runtime] if args.runtime else [])]
    cmd += ["--exact"] if exact else []
    return json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout)


def speed(args) -> None:
    what = f"baseline {args.baseline}" if args.baseline else ("exact (photo) path" if args.exact else "this code")
    print(f"{what}: {args.height}p, {args.frames} frames, shipped default model on {args.runtime or 'torch'}, "
          f"{args.threads} model thread(s)")
    r = child(args, args.baseline, args.frames, args.exact)
    stages = " | ".join(f"{k} {r['wall_ms'][k]:.1f}/{r['cpu_ms'].get(k, float('nan')):.1f}" for k in r["wall_ms"])
    print(f"{r['fps']:.2f} frames/s; ms/frame per stage, wall/CPU: {stages}; CPU {r['cpu_ms_per_frame']:.0f} ms/frame "
          f"(all threads); 4:2:0 frames {r['frames_420']}; {r['mbit_s']:.1f} Mbit/s; peak RSS {r['peak_rss_gb']:.2f} GB")
    if args.rss_check:
        for n in (args.frames, 4 * args.frames):
            c = child(args, args.baseline, n, args.exact)
            print(f"  {n} frames in a fresh process: {c['fps']:.2f} frames/s, peak RSS {c['peak_rss_gb']:.2f} GB")


def run_cli(tree: str | None, clip: Path, folder: Path, flags: list[str]) -> dict:
    """``dlnet colorize clip -o OUT FLAGS`` in a fresh process on source tree ``tree`` (None: this one)."""
    out = folder / "cli-out"
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, **({"PYTHONPATH": tree} if tree else {})}
    with open(folder / "cli-err.txt", "w") as err:
        t = time.perf_counter()
        command = [str(Path(sys.executable).with_name("dlnet")), "colorize", str(clip), "-o", str(out), *flags]
        if tree == TORCH_FREE:  # the same film through the API on onnxruntime, torch never imported
            out.mkdir()
            command = [sys.executable, "-c", "import sys; from dlnet.infer.onnxrun import OnnxColorizer; "
                       "from dlnet.infer.video import colorize_video; colorize_video(OnnxColorizer.from_pretrained("
                       "batch_size=16, threads=1), sys.argv[1], sys.argv[2])", str(clip), str(out / clip.name)]
            env = dict(os.environ)
        p = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t
    if status != 0 or not list(out.rglob("*.mp4")):
        raise SystemExit(f"{tree or 'this code'} failed on {clip}: {(folder / 'cli-err.txt').read_text()[-2000:]}")
    with av.open(str(clip)) as c:
        frames = c.streams.video[0].frames
    return {"fps": frames / wall, "wall_s": wall, "cpu_ms": 1000 * (usage.ru_utime + usage.ru_stime) / frames,
            "rss_gb": usage.ru_maxrss / 2**20}


def cli(args) -> None:
    trees = {"this code": None, **({"baseline": args.baseline} if args.baseline else {}),
             **({"this code, onnxruntime API": TORCH_FREE} if args.torch_free else {})}
    frames = int(round(args.seconds * 24))
    flags = [*(["--runtime", args.runtime] if args.runtime else []), *(["--preset", args.preset] if args.preset else [])]
    print(f"dlnet colorize FILM -o OUT {' '.join(flags)}, fresh process each run; {args.seconds:g} s films ({frames} frames), "
          f"{args.repeats} runs each, interleaved; medians")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clips = {h: speed_film(args.films or folder, frames, h) for h in args.heights}
        runs = {(name, h): [] for name in trees for h in clips}
        for _ in range(args.repeats):
            for h, clip in clips.items():
                for name, tree in reversed(trees.items()):
                    runs[name, h].append(run_cli(tree, clip, folder, flags))
                    r = runs[name, h][-1]
                    print(f"  {name} {h}p: {r['fps']:.2f} frames/s ({r['wall_s']:.1f} s)", flush=True)
    print("| code | film | frames/s | CPU ms/frame | peak RSS |\n| --- | --- | --- | --- | --- |")
    for (name, h), rs in runs.items():
        med = {k: float(np.median([r[k] for r in rs])) for k in rs[0]}
        print(f"| {name} | {h}p | {med['fps']:.1f} | {med['cpu_ms']:.0f} | {med['rss_gb']:.2f} GB |")


def accuracy(args) -> None:
    from dlnet.infer.colorizer import Colorizer
    from dlnet.infer.video import read_frames

    colorizer = Colorizer.from_pretrained(device="cpu", precision="fp32")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clip = speed_film(folder, args.frames, args.height)
        photo = [np.asarray(colorizer.colorize(rgb)) for rgb in read_frames(clip)]
        outs = {}
        for exact in (False, True):
            result = colorizer.colorize_video(clip, folder / f"out-{exact}.mp4", temporal=0, crf=0, exact=exact)
            outs["exact (RGB) path" if exact else "4:2:0 path"] = list(read_frames(result.path))
    print(f"{args.height}p, {args.frames} frames, shipped model fp32, no smoothing, lossless H.264; difference from the "
          "photo path in 8-bit RGB levels:")
    print("| path | mean | 99th percentile | pixels > 1 level | 8x8 blocks: mean | blocks > 1 level |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, frames in outs.items():
        d = np.concatenate([np.abs(a.astype(np.int16) - b).ravel() for a, b in zip(frames, photo)])
        h, w = photo[0].shape[:2]
        blocks = lambda x: x[:h // 8 * 8, :w // 8 * 8].reshape(h // 8, 8, w // 8, 8, 3).mean((1, 3))  # noqa: E731
        db = np.concatenate([np.abs(blocks(a.astype(np.float32)) - blocks(b.astype(np.float32))).ravel()
                             for a, b in zip(frames, photo)])
        print(f"| {name} | {d.mean():.2f} | {np.percentile(d, 99):.0f} | {100 * (d > 1).mean():.1f} % | "
              f"{db.mean():.2f} | {100 * (db > 1).mean():.1f} % |")


class FixedAb(torch.nn.Module):
    """A flicker-free 'model': the same a*b* map for every frame."""

    def __init__(self, ab: np.ndarray) -> None:
        super().__init__()
        self.ab = torch.from_numpy(ab)[None]

    def forward(self, l):
        return self.ab.expand(l.shape[0], -1, -1, -1).clone()


def flicker_table(args) -> None:
    from dlnet.infer.colorizer import Colorizer

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


def end_to_end(colorizer, clips: dict, folder: Path) -> None:
    from dlnet.infer.colorizer import Colorizer
    from dlnet.infer.temporal import DEFAULT_TEMPORAL, flicker
    from dlnet.infer.video import read_frames

    # The floor: the still clip colorized with its own time-averaged colour, which cannot flicker;
    # what the output still measures then is the clip's exposure flicker and grain passing
    # through the kept L* into 8-bit RGB and H.264 chroma, which colour smoothing cannot remove.
    mean_ab = np.mean(working_ab(colorizer, clips["still"])[0], axis=0)
    fixed = Colorizer(FixedAb(mean_ab), device="cpu", precision="fp32")
    floor = flicker(read_frames(fixed.colorize_video(clips["still"], folder / "floor.mp4", temporal=0).path))
    print(f"end to end (shipped model, decoded output, a*b* averaged over 8x8 px; floor {floor:.3f}, per pixel shown too):")
    print("| --temporal | flicker, still + grain + exposure | above the floor | per pixel | cuts found (1 true) |")
    print("| --- | --- | --- | --- | --- |")
    for s in sorted({0.0, 0.5, 0.8, DEFAULT_TEMPORAL, 0.95}):
        still = colorizer.colorize_video(clips["still"], folder / f"still-{s}.mp4", temporal=s).path
        cut = colorizer.colorize_video(clips["cut"], folder / f"cut-{s}.mp4", temporal=s)
        f = flicker(read_frames(still))
        print(f"| {s:g} | {f:.3f} | {f - floor:.3f} | {flicker(read_frames(still), block=1):.3f} | "
              f"{cut.cuts if s else '-'} |", flush=True)


def working_ab(colorizer, path: Path) -> tuple[list, list]:
    """a*b* predicted frame by frame at the working size, and the working-size L*."""
    from dlnet.color.fullres import lightness
    from dlnet.infer.video import read_frames

    ls = [colorizer._to_working(torch.from_numpy(lightness(f))[None, None], colorizer.size) for f in read_frames(path)]
    return [colorizer._predict(l, colorizer.options)[0].numpy() for l in ls], [l[0].numpy() for l in ls]


def sweep(colorizer, clips: dict, folder: Path) -> None:
    from dlnet.infer.temporal import TemporalSmoother

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
    parser.add_argument("what", choices=["cli", "speed", "accuracy", "flicker", "child"])
    parser.add_argument("--frames", type=int, default=240, help="speed, accuracy: frames of film (default: 240)")
    parser.add_argument("--height", type=int, choices=sorted(SIZES), default=720)
    parser.add_argument("--heights", type=int, nargs="+", choices=sorted(SIZES), default=sorted(SIZES), help="cli: films")
    parser.add_argument("--seconds", type=float, default=30, help="cli: seconds of film at 24 frames/s (default: 30)")
    parser.add_argument("--repeats", type=int, default=3, help="cli: runs of each (default: 3)")
    parser.add_argument("--films", type=Path, help="cli: keep the films in this folder (made once, outside the timed runs)")
    parser.add_argument("--baseline", metavar="SRC", help="cli, speed: also (speed: instead) the code in this source tree")
    parser.add_argument("--exact", action="store_true", help="speed: every frame by the photo path")
    parser.add_argument("--runtime", choices=["torch", "onnx"], help="cli: dlnet colorize's --runtime; speed: the model's runtime (default torch)")
    parser.add_argument("--preset", help="cli: dlnet colorize's --preset (x264's; default: the command's)")
    parser.add_argument("--torch-free", action="store_true",
                        help="cli: also a fresh process colorizing through the API on onnxruntime (torch never loaded)")
    parser.add_argument("--threads", type=int, default=1, help="flicker, speed: the model's threads (default: 1)")
    parser.add_argument("--rss-check", action="store_true", help="speed: also 1x and 4x frames in fresh processes")
    parser.add_argument("--sweep-only", action="store_true", help="flicker: only the sweep at the working size")
    args = parser.parse_args()
    if args.what == "child":
        with tempfile.TemporaryDirectory() as folder:
            print(json.dumps(speed_once(args.frames, args.height, args.exact, Path(folder), args.runtime or "torch",
                                        args.threads)))
    else:
        {"cli": cli, "speed": speed, "accuracy": accuracy, "flicker": flicker_table}[args.what](args)


if __name__ == "__main__":
    main()
