"""x264's settings for colorized films: CPU a frame, file size and fidelity, timed alone.

The frames are a colorized film: the 720p (or 1080p) speed film of ``benchmarks/video.py``
colorized by the shipped default model and written losslessly (x264 CRF 0), then decoded back
to 8-bit 4:2:0 planes and held in memory. Each setting encodes all of them as ``dlnet colorize``
does (libx264 in MP4, the pipeline's frame threads), and is reported as CPU ms a frame (all
threads of this process during the encode), Mbit/s at 24 frames/s, and the PSNR of the decoded
result against the frames given (luma; chroma planes together), medians of ``--repeats``.

    python benchmarks/x264.py                                   # the presets at CRF 18, and ultrafast at lower CRFs
    python benchmarks/x264.py --height 1080 --frames 120
    python benchmarks/x264.py --setting superfast:18 --setting ultrafast:15 --setting ultrafast:16:deblock=0,0
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from video import cpu_s, speed_film  # noqa: E402

DEFAULT_SETTINGS = ("superfast:18", "ultrafast:18", "ultrafast:16", "ultrafast:15", "ultrafast:16:deblock=0,0",
                    "ultrafast:15:deblock=0,0", "veryfast:18")


def colorized_frames(height: int, frames: int, folder: Path) -> list[np.ndarray]:
    """The speed film colorized losslessly, as I420 arrays ``(H * 3/2, W)`` uint8."""
    from dlnet.infer.runtime import load_colorizer

    out = folder / "colour.mp4"
    load_colorizer().colorize_video(speed_film(folder, frames, height), out, crf=0)
    with av.open(str(out)) as c:
        return [f.to_ndarray(format="yuv420p") for f in c.decode(video=0)]


def encode(frames: list[np.ndarray], preset: str, crf: int, params: str = "") -> tuple[bytes, float]:
    """``frames`` as H.264 in MP4 at ``preset``, ``crf`` and x264 ``params`` (``key=value:...``),
    as the pipeline writes them -> (file, CPU s)."""
    h, w = frames[0].shape[0] * 2 // 3, frames[0].shape[1]
    buf = io.BytesIO()
    cpu = cpu_s()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=Fraction(24))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": str(crf), "preset": preset, **({"x264-params": params} if params else {})}
        for i, planes in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return buf.getvalue(), cpu_s() - cpu


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255 ** 2 / mse)


def fidelity(data: bytes, given: list[np.ndarray]) -> tuple[float, float]:
    """PSNR of the decoded file against the frames given: (luma, chroma), dB, over all frames."""
    rows = given[0].shape[0] * 2 // 3
    with av.open(io.BytesIO(data)) as c:
        got = [f.to_ndarray(format="yuv420p") for f in c.decode(video=0)]
    assert len(got) == len(given), (len(got), len(given))
    y = np.stack([g[:rows] for g in got]), np.stack([g[:rows] for g in given])
    c = np.stack([g[rows:] for g in got]), np.stack([g[rows:] for g in given])
    return psnr(*y), psnr(*c)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, choices=(720, 1080), default=720)
    parser.add_argument("--frames", type=int, default=240)
    parser.add_argument("--setting", action="append", metavar="PRESET:CRF[:X264-PARAMS]", help=f"default: {' '.join(DEFAULT_SETTINGS)}")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        frames = colorized_frames(args.height, args.frames, Path(tmp))
    print(f"{len(frames)} colorized {args.height}p frames; x264 in MP4, its own threads; medians of {args.repeats}")
    print("| preset:crf | CPU ms/frame | wall ms/frame | Mbit/s | PSNR Y / CbCr, dB |\n| --- | --- | --- | --- | --- |")
    for setting in args.setting or DEFAULT_SETTINGS:
        preset, crf, params = (setting + ":").split(":", 2)
        cpu, wall = [], []
        for _ in range(args.repeats):
            t = time.perf_counter()
            data, c = encode(frames, preset, int(crf), params.rstrip(":"))
            wall.append(time.perf_counter() - t)
            cpu.append(c)
        y, cbcr = fidelity(data, frames)
        mbit = len(data) * 8 / 1e6 / (len(frames) / 24)
        print(f"| {setting} | {1000 * statistics.median(cpu) / len(frames):.1f} | "
              f"{1000 * statistics.median(wall) / len(frames):.1f} | {mbit:.2f} | {y:.2f} / {cbcr:.2f} |", flush=True)


if __name__ == "__main__":
    main()
