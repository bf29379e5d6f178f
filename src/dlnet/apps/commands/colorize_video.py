"""The video half of ``dlnet colorize``: its flag, output names and the per-video job.

``dlnet colorize`` finds videos next to photos (by suffix, :data:`dlnet.io.photolist.VIDEO_SUFFIXES`);
each ``x.avi`` is written to ``OUT_DIR/<relative path>/x.mp4`` (``x.mkv`` when MP4 cannot hold its
audio) by :func:`dlnet.infer.video.colorize_video`, one at a time, with a progress line of its own
(frames, frames/s, time left); ``--side-by-side`` makes grey | colour films as it makes photos.
A bad video is one line on stderr and the batch goes on, as is audio that had to be re-encoded.

Example:
    $ dlnet colorize film.avi scans/ -o colour --temporal 0.9
    $ dlnet colorize film.mp4 -o colour --preset ultrafast    # 1080p in real time on 2 cores, larger files
"""

from __future__ import annotations

import argparse

from dlnet.apps.commands import UsageError, one_line


def configure(parser: argparse.ArgumentParser) -> None:
    from dlnet.infer.options import DEFAULT_CRF, DEFAULT_PRESET, MAX_CRF, X264_PRESETS
    from dlnet.infer.temporal import DEFAULT_TEMPORAL

    parser.add_argument("--temporal", type=float, default=DEFAULT_TEMPORAL, metavar="S",
                        help="videos: how strongly colour is smoothed over time, 0 (off) to below 1 "
                             "(default: %(default)s, see docs/VIDEO.md)")
    parser.add_argument("--crf", type=int, default=DEFAULT_CRF, metavar="N",
                        help=f"videos: H.264 quality, 0 (lossless) to {MAX_CRF}, lower is better and larger "
                             "(default: %(default)s)")
    parser.add_argument("--preset", choices=X264_PRESETS, default=DEFAULT_PRESET,
                        help="videos: x264's speed for size; the default takes under half of superfast's "
                             "encoder CPU for files about 1.5x as large at the same fidelity (default: %(default)s "
                             "with --crf 16; superfast with --crf 18 for smaller files; see docs/VIDEO.md)")


def check(args: argparse.Namespace) -> None:
    from dlnet.infer.options import MAX_CRF

    if not 0.0 <= args.temporal < 1.0:
        raise UsageError(f"--temporal must lie in 0..1 (1 excluded), got {args.temporal:g}")
    if not 0 <= args.crf <= MAX_CRF:
        raise UsageError(f"--crf must lie in 0..{MAX_CRF}, got {args.crf}")


def _rate_column():
    from rich.progress import ProgressColumn
    from rich.text import Text

    class FrameRate(ProgressColumn):
        """``12.3 frames/s`` on a video's line, nothing on the files line."""

        def render(self, task) -> Text:
            speed = task.finished_speed or task.speed
            if not task.fields.get("frames") or speed is None:
                return Text("")
            return Text(f"{speed:.1f} frames/s", style="progress.data.speed")

    return FrameRate()


def columns() -> tuple:
    """Extra progress columns for ``dlnet colorize``'s bar."""
    return (_rate_column(),)


def process(jobs: list, colorizer, args: argparse.Namespace, tally, advance, bar=None) -> None:
    """Colorize each video job in turn (``Job(src, dst, VIDEO)``, :mod:`dlnet.infer.batch` planned
    them) and write it."""
    if not jobs:  # a run of photos never loads the film pipeline (PyAV and its planes)
        return
    from dlnet.infer.video import colorize_video, film_destination, film_failure

    for job in jobs:
        task = None
        try:
            final, earlier = film_destination(job.src, job.dst, args.overwrite)
            if earlier:
                tally.skipped += 1  # an earlier run wrote it as .mkv
                continue
            if bar is not None:
                task = bar.add_task(job.src.name, total=None, frames=True)

            def progress(done: int, total: int, task=task) -> None:
                if task is not None:
                    bar.update(task, completed=done, total=max(total, done) or None)

            result = colorize_video(colorizer, job.src, final, temporal=args.temporal, progress=progress,
                                    side_by_side=args.side_by_side, crf=args.crf,
                                    preset=args.preset)  # (either runtime's colorizer)
            for note in result.notes:  # (audio re-encoded: done, but not kept as it was)
                tally.report(one_line(f"{job.src}: {note}"))
            tally.done += 1
        except Exception as e:  # a bad film, or the model failing, say: this video only
            tally.fail(job.src, film_failure(e, job.src))
        finally:
            if task is not None:
                bar.remove_task(task)
            advance()
