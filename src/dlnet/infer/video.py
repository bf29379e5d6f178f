"""Video colorization: the photo path frame by frame, streamed, with colour smoothed over time.

Each frame goes through the same steps as a photo (:class:`~dlnet.infer.colorizer.Colorizer`): its L*
at full resolution, a*b* predicted at the working size (frames batched through the model), the
a*b* upsampled and recombined with the frame's own L* by :func:`dlnet.color.fullres.merge_rgb8`. In
between, :class:`~dlnet.infer.temporal.TemporalSmoother` averages a*b* over time, so colour guessed
afresh for every frame does not flicker (docs/VIDEO.md).

Decoding and encoding use PyAV (FFmpeg), imported only when a video is processed. Three threads
form a pipeline joined by small bounded queues, so memory does not grow with the film's length:
demux + decode + L* | model + smoothing + recombination | encode + mux. Audio packets are copied
unchanged (no re-encode); every frame keeps its timestamp, so frame count, rate and duration are
those of the input. The output is H.264 (4:2:0, or 4:4:4 for odd sizes) in MP4, or in Matroska
when MP4 cannot hold the audio codec (PCM, say). A path output is written to a temporary file
next to it and renamed at the end: a failed or interrupted run leaves nothing under the name.

Example:
    >>> from dlnet import Colorizer
    >>> Colorizer.from_pretrained().colorize_video("film.avi", "film-colour.mp4")   # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dlnet.io.atomic import atomic_path
from dlnet.color.fullres import lightness, merge_rgb8
from dlnet.io.imageio import ImageError
from dlnet.infer.options import InferenceOptions
from dlnet.infer.stages import Pipe, Stage, Stopped
from dlnet.infer.temporal import DEFAULT_TEMPORAL, TemporalSmoother

__all__ = ["VIDEO_SUFFIXES", "VideoError", "VideoResult", "colorize_video", "colorize_video_bytes", "output_path",
           "read_frames"]

VIDEO_SUFFIXES = {".mp4", ".m4v", ".mkv", ".webm", ".avi", ".mov", ".mpeg", ".mpg", ".m2v", ".ts", ".mts",
                  ".m2ts", ".wmv", ".flv", ".ogv", ".3gp", ".vob", ".dv"}
_CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
_PLANAR_YUV8 = {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p"}
_MP4_AUDIO = {"aac", "mp3", "mp2", "mp1", "ac3", "eac3", "opus", "flac", "alac"}
# The demuxers FFmpeg may pick for an input (of the suffixes above): never playlists or
# concatenation lists, which would make FFmpeg open other files or URLs they name.
_DEMUXERS = "mov,matroska,avi,mpeg,mpegts,mpegvideo,flv,asf,ogg,dv"
_MEDIA_TYPES = {"mp4": "video/mp4", "mov": "video/quicktime", "matroska": "video/x-matroska"}
_QUEUE = 8  # items per pipeline queue: a few full-resolution frames per stage


class VideoError(ImageError):
    """A video that cannot be read or written; ``str()`` is one line ``"<path>: <cause>"``.
    ``kind`` as for :class:`~dlnet.io.imageio.ImageError` (``"not_image"``: not a video)."""


@dataclass
class VideoResult:
    """What :func:`colorize_video` did: the output (None for a file object), its container, frames,
    seconds of video, scene cuts found, wall time, seconds per stage (stages overlap on threads)."""

    path: Path | None
    container: str
    frames: int
    duration_s: float
    cuts: int
    wall_s: float
    stage_s: dict[str, float] = field(default_factory=dict)


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def _av():
    import av  # FFmpeg's libraries: loaded only when a video is processed

    return av


def _why(e: Exception) -> str:
    """FFmpeg's words for an error, on one line, without its number and file name."""
    return " ".join(str(getattr(e, "strerror", None) or e).split())


def _open_input(src, name):
    av = _av()
    try:
        container = av.open(src if hasattr(src, "read") else os.fspath(src), "r",
                            container_options={"format_whitelist": _DEMUXERS})
    except FileNotFoundError:
        raise VideoError(name, "no such file", kind="io") from None
    except PermissionError:
        raise VideoError(name, "permission denied", kind="io") from None
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as e:
        raise VideoError(name, f"not a video, or a damaged one: FFmpeg cannot read it ({_why(e)})", kind="not_image") from None
    if not container.streams.video:
        container.close()
        raise VideoError(name, "no video stream in this file", kind="not_image")
    return container


class _Luma:
    """Frame -> L* ``(H, W)`` float32 as :func:`~dlnet.color.fullres.lightness` gives for its RGB: grey
    8-bit YUV frames (old films) through a table on the Y plane, others through RGB."""

    def __init__(self) -> None:
        codes = np.arange(256, dtype=np.float32)
        grey = {full: np.clip((codes if full else (codes - 16) * (255 / 219)) / 255, 0, 1) for full in (False, True)}
        self.tables = {full: lightness(np.repeat(v[:, None, None], 3, axis=2))[:, 0] for full, v in grey.items()}

    def __call__(self, frame) -> np.ndarray:
        fmt = frame.format.name
        if fmt in _PLANAR_YUV8:
            y, u, v = (np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, :p.width] for p in frame.planes)
            if u.min() >= 126 and u.max() <= 130 and v.min() >= 126 and v.max() <= 130:  # no chroma
                return self.tables[fmt.startswith("yuvj") or frame.color_range == 2][y]
        return lightness(frame.to_ndarray(format="rgb24"))


def _target(dst, fmt: str | None, inp) -> tuple[Path | None, str]:
    """The final path (None when ``dst`` is a file object) and the container format: from the
    suffix, but Matroska where MP4 cannot hold an audio stream (PCM, Vorbis: copied, not re-encoded)."""
    final = None
    if not hasattr(dst, "write"):
        final = Path(dst)
        fmt = _CONTAINERS.get(final.suffix.lower())
        if fmt is None:
            raise VideoError(final, f"cannot write {final.suffix or 'files without a suffix'}: "
                                    f"choose {', '.join(_CONTAINERS)}", kind="invalid")
    fmt = fmt or "mp4"
    if fmt in ("mp4", "mov") and any(a.codec_context.codec.canonical_name not in _MP4_AUDIO for a in inp.streams.audio):
        fmt, final = "matroska", final and final.with_suffix(".mkv")
    return final, fmt


def output_path(src, dst) -> Path:
    """Where :func:`colorize_video` will write ``src`` when asked for the path ``dst``: ``dst``,
    or ``dst`` with ``.mkv`` when MP4 cannot hold the audio. Raises :class:`VideoError`."""
    with _open_input(src, str(src)) as inp:
        return _target(dst, None, inp)[0]


def _add_streams(out, inp, crf: int, preset: str):
    """An H.264 stream shaped and timed like the input's video; its audio streams as they are."""
    vin = inp.streams.video[0]
    video = out.add_stream("libx264", rate=vin.average_rate or vin.guessed_rate or 25)
    video.width, video.height = w, h = vin.codec_context.width, vin.codec_context.height
    video.pix_fmt = "yuv420p" if w % 2 == 0 and h % 2 == 0 else "yuv444p"  # 4:2:0 needs even sizes
    video.time_base = video.codec_context.time_base = vin.time_base  # every frame keeps its time
    cc = video.codec_context
    cc.colorspace = cc.color_primaries = cc.color_trc = cc.color_range = 1  # BT.709, limited range
    video.options = {"crf": str(crf), "preset": preset}
    audio = {a.index: out.add_stream_from_template(a) for a in inp.streams.audio}
    out.start_encoding()
    return video, audio


class _Run:
    """One video through the pipeline: :meth:`read` and :meth:`write` on their own threads, the
    model, smoothing and recombination on the caller's (:meth:`run`)."""

    def __init__(self, colorizer, inp, out, streams, smoother, options, progress, max_seconds, name):
        self.colorizer, self.inp, self.out, (self.vout, self.aout) = colorizer, inp, out, streams
        self.smoother, self.options, self.progress = smoother, options, progress
        self.max_seconds, self.name = max_seconds, name
        self.stop = threading.Event()
        self.decoded, self.done = Pipe(self.stop, _QUEUE), Pipe(self.stop, _QUEUE)
        self.stage_s = {"decode": 0.0, "model": 0.0, "recombine": 0.0, "encode": 0.0}
        self.frames, self.expected = 0, 0
        self.batch = min(colorizer.batch_size, _QUEUE)  # frames per model call

    def read(self) -> None:
        vin, luma, t, start = self.inp.streams.video[0], _Luma(), time.perf_counter(), None
        for packet in self.inp.demux(vin, *self.inp.streams.audio):
            if packet.stream.type == "audio":
                if packet.dts is not None:  # (not the empty packet that ends a stream)
                    self.decoded.put(("audio", packet))
                continue
            for frame in packet.decode():
                start = (frame.time or 0) if start is None else start  # (MPEG-TS starts at 1.4 s, say)
                if self.max_seconds is not None and (frame.time or 0) - start > self.max_seconds:
                    raise VideoError(self.name, f"longer than the limit of {self.max_seconds:g} s", kind="too_large")
                l = luma(frame)
                self.stage_s["decode"] += time.perf_counter() - t
                self.decoded.put(("video", ((frame.pts, frame.duration, frame.time_base), l)))
                t = time.perf_counter()
        self.decoded.put(("end", None))

    def write(self) -> None:
        av, last = _av(), None
        while True:
            kind, item = self.done.get()
            t = time.perf_counter()
            if kind == "audio":
                item.stream = self.aout[item.stream.index]
                self.out.mux(item)
                continue
            if kind == "end":
                return self.out.mux(self.vout.encode())
            (pts, duration, tb), rgb = item
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
                format=self.vout.pix_fmt, dst_colorspace="ITU709", dst_color_range="MPEG")
            pts = self.frames if pts is None else pts  # (then the time base is the codec's)
            frame.pts = pts if last is None or pts > last else last + 1  # x264 needs them increasing
            frame.time_base, frame.duration, last = tb, duration or 0, frame.pts
            self.out.mux(self.vout.encode(frame))
            self.frames += 1
            self.stage_s["encode"] += time.perf_counter() - t
            if self.progress is not None:
                self.progress(self.frames, self.expected)

    def _colour(self, batch: list) -> None:
        import torch

        t, c = time.perf_counter(), self.colorizer
        small = torch.cat([c._to_working(torch.from_numpy(l)[None, None].to(c.device), self.options.size)
                           for _, l in batch])
        # The last batch is padded with its last frame: one batch shape per film, so neither
        # oneDNN nor torch.compile (--compile) prepares kernels for a new one at the end.
        full = torch.cat([small, small[-1:].expand(self.batch - len(batch), -1, -1, -1)])
        ab = c._predict(full, self.options)[:len(batch)].float().cpu().numpy()
        small = small.cpu().numpy()
        ab = [self.smoother(ab[i], small[i]) for i in range(len(batch))]
        self.stage_s["model"] += time.perf_counter() - t
        for (timing, l), ab_i in zip(batch, ab):
            t = time.perf_counter()
            rgb = merge_rgb8(l, ab_i)  # the photos' recombination: a*b* upsampled, the frame's own L*
            self.stage_s["recombine"] += time.perf_counter() - t
            self.done.put(("video", (timing, rgb)))
        batch.clear()

    def run(self, threads: int) -> int:
        """Colorize every frame with ``threads`` torch threads here; returns the number written.
        Raises what a stage raised."""
        import torch

        stages = [Stage(self.read, self.stop), Stage(self.write, self.stop)]
        for s in stages:
            s.start()
        torch_threads = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            batch: list = []
            while True:
                kind, item = self.decoded.get()
                if kind == "video":
                    batch.append(item)
                    if len(batch) >= self.batch:
                        self._colour(batch)
                elif kind == "audio":
                    self.done.put((kind, item))
                else:
                    if batch:
                        self._colour(batch)
                    self.done.put(("end", None))
                    break
            for s in stages:
                s.join()
        except Stopped:  # a stage failed: its error is raised below
            pass
        finally:
            torch.set_num_threads(torch_threads)
            self.stop.set()  # on Ctrl-C or an error here: the stages leave within 0.1 s
            for s in stages:
                s.join()
        for s in stages:
            if s.error is not None:
                raise s.error
        return self.frames


def colorize_video(colorizer, src, dst, options: InferenceOptions | None = None, temporal: float = DEFAULT_TEMPORAL,
                   progress=None, max_seconds: float | None = None, crf: int = 18, preset: str = "superfast",
                   container: str | None = None, threads: int | None = None) -> VideoResult:
    """Colorize the video ``src`` (path or binary file object) into ``dst`` (path: .mp4, .m4v,
    .mov, .mkv; or a writable, seekable file object, written as ``container``, default MP4).

    ``options``: working size, rebalancing and pixel limit (per frame) as for photos (default:
    the Colorizer's; the output format and quality apply to photos only). ``temporal``:
    strength of :class:`~dlnet.infer.temporal.TemporalSmoother` (0: every frame on its own).
    ``progress(frames_done, frames_total)`` is called as frames are written (total 0 when
    unknown). ``max_seconds``: longer videos raise :class:`VideoError` of kind ``"too_large"``,
    as do frames over the pixel limit. ``crf``,
    ``preset``: libx264's quality (lower crf is better and larger) and speed. MP4 output whose
    audio MP4 cannot hold becomes Matroska (``.mkv``); :attr:`VideoResult.path` says where.

    ``threads``: torch's intra-op threads for the model and recombination during the call
    (process-wide, restored after; default: two fewer than set, at least 1). The pipeline's
    stages already keep two cores busy, and OpenMP regions whose threads wait for busy cores
    stall: on 2 shared cores, 2 threads made the model 5-8x slower than 1 (benchmarks/README.md).

    Raises:
        VideoError: one line naming the file: not a video, corrupt or truncated, too large, or
            an unwritable output. Nothing is left under a ``dst`` path then.
    """
    av, started = _av(), time.perf_counter()
    name = None if hasattr(src, "read") else str(src)
    options, smoother, final = options or colorizer.options, TemporalSmoother(temporal), None
    inp = _open_input(src, name)
    try:
        vin = inp.streams.video[0]
        vin.thread_type = "AUTO"
        fps = float(vin.average_rate or vin.guessed_rate or 25)
        seconds = float(vin.duration * vin.time_base) if vin.duration else (inp.duration or 0) / 1e6
        w, h = vin.codec_context.width, vin.codec_context.height
        if w * h > options.max_pixels:
            raise VideoError(name, f"{w}x{h} frames are over the limit of {options.max_megapixels:g} MP", kind="too_large")
        if max_seconds is not None and seconds > max_seconds:
            raise VideoError(name, f"{seconds:.1f} s long, over the limit of {max_seconds:g} s", kind="too_large")
        final, fmt = _target(dst, container, inp)
        if final is not None:
            final.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(final) if final is not None else contextlib.nullcontext(None) as tmp:
            out = av.open(str(tmp) if tmp else dst, "w", format=fmt)
            try:
                run = _Run(colorizer, inp, out, _add_streams(out, inp, crf, preset), smoother, options,
                           progress, max_seconds, name)
                run.expected = vin.frames or round(seconds * fps)
                frames = run.run(threads or max(1, _torch_threads() - 2))
                if frames == 0:
                    raise VideoError(name, "no frames could be decoded", kind="corrupt")
                if vin.frames and frames < vin.frames - max(2, 0.02 * vin.frames):
                    raise VideoError(name, f"truncated or corrupt: {frames} of {vin.frames} frames decoded",
                                     kind="corrupt")
            except BaseException:
                with contextlib.suppress(Exception):  # a half-written output being abandoned
                    out.close()
                raise
            out.close()
        return VideoResult(final, fmt, frames, frames / fps, smoother.cuts, time.perf_counter() - started,
                           run.stage_s)
    except av.FFmpegError as e:
        raise VideoError(name, f"corrupt or unsupported video data ({_why(e)})", kind="corrupt") from None
    except OSError as e:
        raise VideoError(final if final is not None else name, f"cannot write: {e.strerror or e}", kind="io") from None
    finally:
        inp.close()


def colorize_video_bytes(colorizer, data: bytes, options: InferenceOptions | None = None,
                         max_seconds: float | None = None) -> tuple[bytes, str]:
    """A video upload held in memory -> ``(colorized video, its media type)``; for the web
    server, which never writes uploads to disk. Raises :class:`VideoError`; its kind
    ``"not_image"`` means that ``data`` is neither a photo nor a video."""
    out = io.BytesIO()
    try:
        result = colorize_video(colorizer, io.BytesIO(data), out, options, max_seconds=max_seconds)
    except VideoError as e:
        if e.kind == "not_image":
            raise VideoError(None, "not an image or a video dlnet can read", kind="not_image") from None
        raise
    return out.getvalue(), _MEDIA_TYPES[result.container]


def read_frames(src):
    """The frames of a video file or file object as sRGB ``(H, W, 3)`` uint8 arrays, in order."""
    with _open_input(src, None if hasattr(src, "read") else str(src)) as c:
        for frame in c.decode(video=0):
            yield frame.to_ndarray(format="rgb24")
