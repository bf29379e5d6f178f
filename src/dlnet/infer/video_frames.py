"""A film's frames through a colorizer: decode | model + recombination | encode, on three threads.

:func:`dlnet.infer.video.colorize_video` opens the files and runs :class:`FramePipeline`. Its
threads are joined by small bounded queues (:mod:`dlnet.infer.stages`), so memory does not
grow with the film's length. Each frame's a*b* are predicted at the working size from its L*
(frames batched through the model, on either runtime), smoothed over time
(:class:`~dlnet.infer.temporal.TemporalSmoother`), then recombined with the frame's own
lightness in one of two ways:

- **4:2:0** (8-bit 4:2:0 frames of even width and height: H.264, VP9, MPEG films): the frame
  stays Y'CbCr. Its luma plane is kept and only the chroma planes are computed, at their quarter
  resolution (:class:`dlnet.color.yuv420.Frame420`); the working-size L* is resized from the
  blocks' L* where it is at most a quarter of their size. No full-resolution RGB exists: about a
  quarter of the photo path's recombination and no colour conversion for the encoder
  (benchmarks/README.md, video).
- **exact** (other frames, a working size above the chroma planes', or ``exact=True``): the photo
  path, full-resolution L* and :func:`dlnet.color.fullres.merge_rgb8`, then the encoder's
  Y'CbCr conversion (4:4:4 for odd sizes).

Audio packets pass through the pipeline in order: copied, or decoded here and re-encoded by
the writer when the output container cannot hold them.
"""

from __future__ import annotations

import sys
import threading
import time

import numpy as np

from dlnet.color.fullres import lightness, merge_rgb8, resize_l
from dlnet.color.yuv420 import Frame420, grey_lightness, side_by_side
from dlnet.infer.options import working_shape
from dlnet.infer.stages import Pipe, Stage, Stopped

__all__ = ["FramePipeline", "QUEUE", "TooLong"]

QUEUE = 16  # items per pipeline queue: a model batch of frames per stage
# Frames per model call at working shapes up to 256 x 256 px (the default sizes): a batch of 16
# takes 16 % less time per frame than one of 8 (64 x 128 px, 1 thread), and holds a few MB.
_SMALL_BATCH, _SMALL_SHAPE = 16, 256 * 256
_YUV420 = {"yuv420p": False, "yuvj420p": True}  # 8-bit 4:2:0 formats -> full range
_PLANAR_YUV8 = {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p"}


class TooLong(Exception):
    """A film found longer than ``max_seconds`` while decoding (its container did not say)."""


def _planes(frame) -> list[np.ndarray]:
    """The planes of a planar 8-bit frame as ``(rows, width)`` uint8 views (no copy)."""
    return [np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, :p.width] for p in frame.planes]


def _neutral(*chroma: np.ndarray) -> bool:
    """Chroma planes with no colour (a grey film; within 2 codes of 128: compression noise)."""
    return all(c.min() >= 126 and c.max() <= 130 for c in chroma)


def _lightness(frame) -> np.ndarray:
    """Frame -> full-resolution L* ``(H, W)`` float32 as :func:`~dlnet.color.fullres.lightness`
    gives for its RGB: grey 8-bit Y'CbCr frames through a table on the Y plane, others through RGB."""
    fmt = frame.format.name
    if fmt in _PLANAR_YUV8:
        y, u, v = _planes(frame)
        if _neutral(u, v):
            return grey_lightness(y, fmt.startswith("yuvj") or frame.color_range == 2)
    return lightness(frame.to_ndarray(format="rgb24"))


class FramePipeline:
    """One film through the colorizer: :meth:`read` and :meth:`write` on threads of their own,
    the model, smoothing and recombination on the caller's (:meth:`run`).

    ``inp``, ``out``: open PyAV containers; ``vout``: the output's video stream; ``audio``: input
    stream index -> ``(output stream, copy)``, ``copy`` False to re-encode. ``side_by_side``:
    grey | colour frames, twice as wide. ``exact``: every frame by the photo path."""

    def __init__(self, colorizer, inp, out, vout, audio: dict, smoother, options, progress=None,
                 max_seconds: float | None = None, side_by_side: bool = False, exact: bool = False):
        self.colorizer, self.inp, self.out, self.vout, self.audio = colorizer, inp, out, vout, audio
        self.smoother, self.options, self.progress = smoother, options, progress
        self.max_seconds, self.side_by_side, self.exact = max_seconds, side_by_side, exact
        self.stop = threading.Event()
        self.decoded, self.done = Pipe(self.stop, QUEUE), Pipe(self.stop, QUEUE)
        self.stage_s = {"decode": 0.0, "model": 0.0, "recombine": 0.0, "encode": 0.0}  # wall, per stage
        self.stage_cpu_s = dict.fromkeys(self.stage_s, 0.0)  # CPU of the stage's Python thread
        self.frames, self.expected, self.fast_frames = 0, 0, 0
        cc = inp.streams.video[0].codec_context
        small = np.prod(working_shape(cc.height, cc.width, options.size)) <= _SMALL_SHAPE
        self.batch = min(max(colorizer.batch_size, _SMALL_BATCH if small else 1), QUEUE)  # frames per model call

    def _clock(self, stage: str, since: tuple[float, float]) -> tuple[float, float]:
        now = time.perf_counter(), time.thread_time()
        self.stage_s[stage] += now[0] - since[0]
        self.stage_cpu_s[stage] += now[1] - since[1]
        return now

    def _prepare(self, frame) -> tuple:
        """A decoded frame -> ``(Frame420 (4:2:0 path) or full-resolution L* (exact), working-size L*)``."""
        fmt, w, h = frame.format.name, frame.width, frame.height
        shape = working_shape(h, w, self.options.size)
        even = w % 2 == 0 and h % 2 == 0
        if not self.exact and fmt in _YUV420 and even and shape[0] <= h // 2 and shape[1] <= w // 2:
            y, u, v = _planes(frame)
            full = _YUV420[fmt] or frame.color_range == 2
            if _neutral(u, v):
                item = Frame420(y.copy(), full=full)
            else:
                item = Frame420(y.copy(), u.copy(), v.copy(), full, matrix=709 if frame.colorspace == 1 else 601)
            # The working-size L*: from the blocks' L* where the working size is at most a quarter
            # of theirs (the 2 x 2 blocks are then small against the resize's filter: the film's
            # flicker is the same, measured at 720p), else from the pixels' (at 320 x 192 the
            # blocks' smoother L* made the smoothed colour flicker 5 % more).
            blocks = 4 * shape[0] <= h // 2 and 4 * shape[1] <= w // 2
            small = resize_l(item.lightness() if blocks else _lightness(frame), shape)
        else:
            item = _lightness(frame)
            small = resize_l(item, shape)
        return item, np.require(small, requirements="W")  # (torch.from_numpy wants it writable)

    def read(self) -> None:
        vin, start = self.inp.streams.video[0], None
        t = time.perf_counter(), time.thread_time()
        for packet in self.inp.demux(vin, *self.inp.streams.audio):
            if packet.stream.type == "audio":
                if self.audio[packet.stream.index][1]:
                    if packet.dts is not None:  # (not the empty packet that ends a stream)
                        self.decoded.put(("audio", packet))
                else:  # decoded here, re-encoded by the writer
                    for frame in packet.decode():
                        self.decoded.put(("audio", (packet.stream.index, frame)))
                continue
            for frame in packet.decode():
                start = (frame.time or 0) if start is None else start  # (MPEG-TS starts at 1.4 s, say)
                if self.max_seconds is not None and (frame.time or 0) - start > self.max_seconds:
                    raise TooLong(self.max_seconds)
                item, small = self._prepare(frame)
                t = self._clock("decode", t)
                self.decoded.put(("video", ((frame.pts, frame.duration, frame.time_base), item, small)))
                t = time.perf_counter(), time.thread_time()
        self.decoded.put(("end", None))

    def write(self) -> None:
        import av

        last = None
        aout = {i: s for i, (s, copy) in self.audio.items() if not copy}
        while True:
            kind, item = self.done.get()
            t = time.perf_counter(), time.thread_time()
            if kind == "audio":
                if isinstance(item, tuple):  # (input stream, decoded frame): re-encoded
                    self.out.mux(aout[item[0]].encode(item[1]))
                else:
                    item.stream = self.audio[item.stream.index][0]
                    self.out.mux(item)
                continue
            if kind == "end":
                self.out.mux(self.vout.encode())
                for stream in aout.values():
                    self.out.mux(stream.encode())
                return
            (pts, duration, tb), (fmt, pixels) = item
            if fmt == "yuv420p":
                frame = av.VideoFrame.from_ndarray(pixels, format="yuv420p")
                frame.colorspace, frame.color_range = 1, 1  # BT.709, limited range (as computed)
            else:
                frame = av.VideoFrame.from_ndarray(pixels, format="rgb24").reformat(
                    format=self.vout.pix_fmt, dst_colorspace="ITU709", dst_color_range="MPEG")
            pts = self.frames if pts is None else pts  # (then the time base is the codec's)
            frame.pts = pts if last is None or pts > last else last + 1  # x264 needs them increasing
            frame.time_base, frame.duration, last = tb, duration or 0, frame.pts
            self.out.mux(self.vout.encode(frame))
            self.frames += 1
            self._clock("encode", t)
            if self.progress is not None:
                self.progress(self.frames, self.expected)

    def _colour(self, batch: list) -> None:
        t = time.perf_counter(), time.thread_time()
        small = [s for _, _, s in batch]
        shape = small[0].shape
        # The last batch is padded with its last frame: one batch shape per film, so neither
        # oneDNN nor torch.compile (--compile) prepares kernels for a new one at the end.
        ab = self.colorizer._predict_batch(small + small[-1:] * (self.batch - len(small)), shape, self.options)
        ab = ab if isinstance(ab, np.ndarray) else ab.float().cpu().numpy()
        ab = [self.smoother(ab[i], small[i][None]) for i in range(len(batch))]
        t = self._clock("model", t)
        for (timing, item, _), ab_i in zip(batch, ab):
            pixels = self._recombine(item, ab_i)
            t = self._clock("recombine", t)
            self.done.put(("video", (timing, pixels)))
            t = time.perf_counter(), time.thread_time()
        batch.clear()

    def _recombine(self, item, ab: np.ndarray) -> tuple[str, np.ndarray]:
        """``("yuv420p", I420 array (H * 3/2, W))`` or ``("rgb24", (H, W, 3))``, grey | colour
        side by side if asked."""
        if not isinstance(item, Frame420):
            rgb = merge_rgb8(item, ab)  # the photos' recombination: a*b* upsampled, the frame's own L*
            return "rgb24", np.concatenate([merge_rgb8(item, None), rgb], axis=1) if self.side_by_side else rgb
        self.fast_frames += 1
        colour = item.merge(ab)
        return "yuv420p", side_by_side(item.grey(), colour) if self.side_by_side else colour

    def run(self, threads: int) -> int:
        """Colorize every frame with ``threads`` torch threads here (when torch runs the model);
        returns the number written. Raises what a stage raised."""
        torch = sys.modules.get("torch")
        stages = [Stage(self.read, self.stop), Stage(self.write, self.stop)]
        for s in stages:
            s.start()
        torch_threads = torch.get_num_threads() if torch is not None else None
        if torch is not None:
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
            if torch is not None:
                torch.set_num_threads(torch_threads)
            self.stop.set()  # on Ctrl-C or an error here: the stages leave within 0.1 s
            for s in stages:
                s.join()
        for s in stages:
            if s.error is not None:
                raise s.error
        return self.frames
