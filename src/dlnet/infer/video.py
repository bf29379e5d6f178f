"""Video colorization: the photo path frame by frame, streamed, with colour smoothed over time.

Each frame is colorized as a photo is (:class:`~dlnet.infer.colorizer.Colorizer`, or
:class:`~dlnet.infer.onnxrun.OnnxColorizer`): a*b* predicted at the working size from its L*
(frames batched through the model), smoothed over time by
:class:`~dlnet.infer.temporal.TemporalSmoother` so that colour guessed afresh for every frame
does not flicker (docs/VIDEO.md), and recombined with the frame's own lightness. 8-bit 4:2:0
films (H.264 and most others) stay Y'CbCr: their luma plane is kept and only the chroma planes
are computed, at their own quarter resolution (:mod:`dlnet.color.yuv420`); other frames go the
photo path through RGB (:mod:`dlnet.infer.video_frames` has both).

Decoding and encoding use PyAV (FFmpeg), imported only when a video is processed. Three threads
form a pipeline joined by small bounded queues, so memory does not grow with the film's length:
demux + decode + L* | model + smoothing + recombination | encode + mux. Every frame keeps its
timestamp, so frame count, rate and duration are those of the input. The output is H.264 (4:2:0,
or 4:4:4 for odd sizes) in MP4, or in Matroska when MP4 cannot hold the audio codec (PCM, say):
audio packets are copied unchanged, and re-encoded as AAC only when neither container can hold
them (IMA-ADPCM, mu-law), which :attr:`VideoResult.notes` says. A path output is written to a
hidden temporary file next to it and renamed at the end: a failed or interrupted run leaves
nothing under the name, and one killed outright (SIGKILL, a power cut) leaves a temporary file
that the next video written to that folder removes.

Example:
    >>> from dlnet import Colorizer
    >>> Colorizer.from_pretrained().colorize_video("film.avi", "film-colour.mp4")   # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from dlnet.infer.options import DEFAULT_CRF, DEFAULT_PRESET, InferenceOptions
from dlnet.infer.temporal import DEFAULT_TEMPORAL, TemporalSmoother
from dlnet.infer.video_frames import FramePipeline, TooLong
from dlnet.io.atomic import atomic_path
from dlnet.io.imageio import ImageError
from dlnet.io.photolist import VIDEO_SUFFIXES

__all__ = ["VIDEO_SUFFIXES", "VideoError", "VideoResult", "colorize_video", "colorize_video_bytes", "film_destination",
           "film_failure", "film_frames", "output_path", "read_frames"]

_CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
# The demuxers FFmpeg may pick for an input (of the suffixes above): never playlists or
# concatenation lists, which would make FFmpeg open other files or URLs they name.
_DEMUXERS = "mov,matroska,avi,mpeg,mpegts,mpegvideo,flv,asf,ogg,dv"
_MEDIA_TYPES = {"mp4": "video/mp4", "mov": "video/quicktime", "matroska": "video/x-matroska"}
# Audio that MP4 holds and players play (FFmpeg also writes PCM into MP4, which few players read).
_MP4_AUDIO = {"aac", "mp3", "mp2", "mp1", "ac3", "eac3", "opus", "flac", "alac"}
_PARTIAL = ".video.tmp"  # ends the hidden name of a film being written (.dlnet-XXXXXXXX.video.tmp)


class VideoError(ImageError):
    """A video that cannot be read or written; ``str()`` is one line ``"<path>: <cause>"``.
    ``kind`` as for :class:`~dlnet.io.imageio.ImageError` (``"not_image"``: not a video)."""


@dataclass
class VideoResult:
    """What :func:`colorize_video` did: the output (None for a file object), its container, frames,
    seconds of video, scene cuts found, wall time, seconds per stage (stages overlap on threads:
    wall time, and CPU time of each stage's own thread), frames recombined as 4:2:0, and notes
    (one line each) on what could not be kept as it was (audio re-encoded)."""

    path: Path | None
    container: str
    frames: int
    duration_s: float
    cuts: int
    wall_s: float
    stage_s: dict[str, float] = field(default_factory=dict)
    stage_cpu_s: dict[str, float] = field(default_factory=dict)
    frames_420: int = 0
    notes: list[str] = field(default_factory=list)


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


def _copyable(fmt: str, stream) -> bool:
    """Whether the container ``fmt`` can hold ``stream``'s packets as they are."""
    if fmt in ("mp4", "mov"):
        return stream.codec_context.codec.canonical_name in _MP4_AUDIO
    av = _av()
    try:
        with av.open(io.BytesIO(), "w", format=fmt) as out:
            out.add_stream_from_template(stream)
            out.start_encoding()
    except (av.FFmpegError, ValueError):
        return False
    return True


def _target(dst, fmt: str | None, inp) -> tuple[Path | None, str, dict[int, bool]]:
    """The final path (None when ``dst`` is a file object), the container format, and for each
    audio stream whether its packets are copied (else re-encoded as AAC). The format is the
    suffix's, but Matroska where MP4 cannot hold an audio stream that Matroska can (PCM, Vorbis)."""
    final = None
    if not hasattr(dst, "write"):
        final = Path(dst)
        fmt = _CONTAINERS.get(final.suffix.lower())
        if fmt is None:
            raise VideoError(final, f"cannot write {final.suffix or 'files without a suffix'}: "
                                    f"choose {', '.join(_CONTAINERS)}", kind="invalid")
    fmt = fmt or "mp4"
    audio = inp.streams.audio
    copy = {a.index: _copyable(fmt, a) for a in audio}
    if fmt in ("mp4", "mov") and not all(copy.values()):
        in_mkv = {a.index: _copyable("matroska", a) for a in audio}
        if sum(in_mkv.values()) > sum(copy.values()):  # more audio kept as it is
            fmt, final, copy = "matroska", final and final.with_suffix(".mkv"), in_mkv
    return final, fmt, copy


def output_path(src, dst) -> Path:
    """Where :func:`colorize_video` will write ``src`` when asked for the path ``dst``: ``dst``,
    or ``dst`` with ``.mkv`` when MP4 cannot hold the audio. Raises :class:`VideoError`."""
    with _open_input(src, str(src)) as inp:
        return _target(dst, None, inp)[0]


def _length(inp) -> tuple[int, float, float]:
    """An open film's length as its container says: (frames, or its duration times its rate;
    seconds; frames per second). Nothing is decoded."""
    vin = inp.streams.video[0]
    fps = float(vin.average_rate or vin.guessed_rate or 25)
    seconds = float(vin.duration * vin.time_base) if vin.duration else (inp.duration or 0) / 1e6
    return vin.frames or round(seconds * fps), seconds, fps


def film_frames(src) -> int:
    """How many frames the video file ``src`` holds (:func:`_length`); 0 for a file that cannot
    be read (its error comes when it is colorized). :mod:`dlnet.infer.runtime` weighs a run's films by it."""
    try:
        with _open_input(src, str(src)) as c:
            return _length(c)[0]
    except (VideoError, _av().FFmpegError, OSError):
        return 0


def film_destination(src, dst, overwrite: bool = False) -> tuple[Path, bool]:
    """Where a planned film ``src -> dst`` is written (:func:`output_path`), and whether an
    earlier run wrote it there as ``.mkv`` and ``overwrite`` is not asked for: then it is
    skipped (the plan, which knows only ``dst``, could not tell). Raises :class:`VideoError`."""
    final = output_path(src, dst)
    return final, final != Path(dst) and final.exists() and not overwrite


def film_failure(error: Exception, src) -> str:
    """A film's failure in a few words, for the line naming ``src``: the cause of a
    :class:`VideoError` about ``src`` (or ``output ...`` about the output), else what failed."""
    if isinstance(error, VideoError):
        return error.cause if error.path in (None, str(src)) else f"output {error}"
    return f"colorization failed ({type(error).__name__}: {error})"  # the model failing, say


def _add_streams(out, inp, copy: dict[int, bool], crf: int, preset: str, width: int):
    """An H.264 stream timed like the input's video, ``width`` wide; the audio streams, as they
    are or as AAC (``copy``). Returns ``(video, {input index: (output stream, copied)})``."""
    vin = inp.streams.video[0]
    video = out.add_stream("libx264", rate=vin.average_rate or vin.guessed_rate or 25)
    video.width, video.height = w, h = width, vin.codec_context.height
    video.pix_fmt = "yuv420p" if w % 2 == 0 and h % 2 == 0 else "yuv444p"  # 4:2:0 needs even sizes
    video.time_base = video.codec_context.time_base = vin.time_base  # every frame keeps its time
    cc = video.codec_context
    cc.colorspace = cc.color_primaries = cc.color_trc = cc.color_range = 1  # BT.709, limited range
    # Deblocking on whatever the preset (ultrafast turns it off): without it the film's own grain
    # and the model's frame-to-frame colour noise come through block edges, and a still film
    # flickered 8 % more than with superfast; on, as little as with superfast, for 1.4 ms a 720p
    # frame (benchmarks/x264.py, benchmarks/video.py flicker). (x264's own frame threads: as much
    # CPU as one thread, measured, and they let the encoder, the busiest stage, use a core the others leave idle.)
    video.options = {"crf": str(crf), "preset": preset, "x264-params": "deblock=0,0"}
    audio = {}
    for a in inp.streams.audio:
        if copy[a.index]:
            audio[a.index] = (out.add_stream_from_template(a), True)
        else:
            ca = a.codec_context
            # (an AVI's "1 channels" is no layout that AAC opens with: mono, then)
            layout = {1: "mono", 2: "stereo"}.get(ca.channels, ca.layout.name) if ca.layout.name.endswith("channels") \
                else ca.layout.name
            audio[a.index] = (out.add_stream("aac", rate=ca.sample_rate, layout=layout), False)
    out.start_encoding()
    return video, audio


def _remove_abandoned(folder: Path) -> None:
    """Remove the temporary films that runs killed outright (SIGKILL, a power cut) left in
    ``folder``. A running writer holds a lock on its file (:func:`_partial`) which the system
    releases when its process ends, however it ends: a file nobody holds is abandoned."""
    try:
        import fcntl
    except ImportError:  # (not on Windows)
        return
    for path in folder.glob(f".dlnet-*{_PARTIAL}"):
        with contextlib.suppress(OSError):
            fd = os.open(path, os.O_RDONLY)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError: being written
                st = os.fstat(fd)
                if st.st_size > 0 or time.time() - st.st_mtime > 10:  # (an empty one may be just made)
                    path.unlink()
            finally:
                os.close(fd)


@contextlib.contextmanager
def _partial(final: Path):
    """:func:`~dlnet.io.atomic.atomic_path` for a film, whose temporary file this process holds
    locked until it is done with it, so that a later run can tell an abandoned one (above)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(final.parent)
    with atomic_path(final, suffix=_PARTIAL) as tmp:
        fd = os.open(tmp, os.O_RDONLY)
        try:
            with contextlib.suppress(ImportError, OSError):
                import fcntl

                fcntl.flock(fd, fcntl.LOCK_EX)
            yield tmp
        finally:
            os.close(fd)


def _audio_notes(inp, audio: dict) -> list[str]:
    return [f"audio ({a.codec_context.name}) re-encoded as AAC: neither MP4 nor Matroska can hold it as it is"
            for a in inp.streams.audio if not audio[a.index][1]]


def colorize_video(colorizer, src, dst, options: InferenceOptions | None = None, temporal: float = DEFAULT_TEMPORAL,
                   progress=None, max_seconds: float | None = None, crf: int = DEFAULT_CRF, preset: str = DEFAULT_PRESET,
                   container: str | None = None, threads: int | None = None, side_by_side: bool = False,
                   exact: bool = False) -> VideoResult:
    """Colorize the video ``src`` (path or binary file object) into ``dst`` (path: .mp4, .m4v,
    .mov, .mkv; or a writable, seekable file object, written as ``container``, default MP4).

    ``colorizer``: a :class:`~dlnet.infer.colorizer.Colorizer` or an
    :class:`~dlnet.infer.onnxrun.OnnxColorizer`. ``options``: working size, rebalancing and pixel
    limit (per frame) as for photos (default: the colorizer's; the output format and quality
    apply to photos only). ``temporal``: strength of :class:`~dlnet.infer.temporal.TemporalSmoother`
    (0: every frame on its own). ``progress(frames_done, frames_total)`` is called as frames are
    written (total 0 when unknown). ``max_seconds``: longer videos raise :class:`VideoError` of
    kind ``"too_large"``, as do frames over the pixel limit. ``crf``, ``preset``: libx264's
    quality (lower crf is better and larger) and speed. MP4 output whose audio MP4 cannot hold
    becomes Matroska (``.mkv``); :attr:`VideoResult.path` says where. ``side_by_side``: grey |
    colour frames, twice as wide. ``exact``: every frame through full-resolution RGB as a photo
    (slower; the 4:2:0 path's difference from it is measured in benchmarks/README.md, video).

    ``threads``: torch's intra-op threads for the model during the call, when torch runs it
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
        expected, seconds, fps = _length(inp)
        w, h = vin.codec_context.width, vin.codec_context.height
        if w * h > options.max_pixels:
            raise VideoError(name, f"{w}x{h} frames are over the limit of {options.max_megapixels:g} MP", kind="too_large")
        if max_seconds is not None and seconds > max_seconds:
            raise VideoError(name, f"{seconds:.1f} s long, over the limit of {max_seconds:g} s", kind="too_large")
        final, fmt, copy = _target(dst, container, inp)
        with _partial(final) if final is not None else contextlib.nullcontext(None) as tmp:
            out = av.open(str(tmp) if tmp else dst, "w", format=fmt)
            try:
                vout, audio = _add_streams(out, inp, copy, crf, preset, 2 * w if side_by_side else w)
                run = FramePipeline(colorizer, inp, out, vout, audio, smoother, options, progress, max_seconds,
                                    side_by_side, exact)
                run.expected = expected
                try:
                    frames = run.run(threads or max(1, _torch_threads() - 2))
                except TooLong:
                    raise VideoError(name, f"longer than the limit of {max_seconds:g} s", kind="too_large") from None
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
                           run.stage_s, run.stage_cpu_s, run.fast_frames, _audio_notes(inp, audio))
    except av.FFmpegError as e:
        raise VideoError(name, f"corrupt or unsupported video data ({_why(e)})", kind="corrupt") from None
    except OSError as e:
        raise VideoError(final if final is not None else name, f"cannot write: {e.strerror or e}", kind="io") from None
    finally:
        inp.close()


def _torch_threads() -> int:
    """torch's intra-op threads when torch is loaded (it runs the model), else 1."""
    torch = sys.modules.get("torch")
    return torch.get_num_threads() if torch is not None else 1


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
