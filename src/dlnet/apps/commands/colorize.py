"""``dlnet colorize PATH... [-o OUT_DIR]``: colorize photos (files, folders recursively, globs).

Each input ``x`` is written to ``OUT_DIR/<relative path of x>``: relative to the current folder
when ``x`` lies inside it, else to the folder argument it was found under (a lone file outside
the current folder keeps just its name). The output keeps the input's size, format (PNG, JPEG,
WebP, TIFF; other formats become PNG, or ``--format``), RGB ICC profile, EXIF and alpha.

Nothing is ever overwritten that should not be: an output path equal to an input is refused,
existing outputs are skipped unless ``--overwrite``, and files are written atomically. A file
that cannot be read or written gives one line ``<file>: <cause>`` on stderr and the batch goes
on; the exit code is then 1 (2 where a photo's hints were at fault: a bad sidecar, a hint
outside the photo). A summary line ends the run: ``N colorized, N skipped, N failed``.

Colour hints (:mod:`dlnet.io.hints`): ``--hints FILE`` (a JSON list of ``{"x", "y", "color"}``)
and ``--hint X,Y,COLOUR`` apply to every photo named; a sidecar ``NAME.hints.json`` beside a photo
gives that photo its own instead.
The finding, planning and per-photo work are :mod:`dlnet.infer.batch`'s; this module parses the
flags, checks them and reports.

Example:
    $ dlnet colorize old-photos/ scans/*.tif -o colour --side-by-side
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dlnet.apps.commands import UsageError, add_model_flag, colorize_ray, colorize_video, one_line, option_error


def _print_err(line: str) -> None:
    print(line, file=sys.stderr)


@dataclass
class Tally:
    done: int = 0
    skipped: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)
    report: Callable[[str], None] = _print_err  # where the one-line errors go
    bad_hints: bool = False  # a failure was the user's hints' fault: exit 2

    def fail(self, path, cause: str, kind: str = "input") -> None:
        line = one_line(f"{path}: {cause}")
        self.report(line)
        self.failures.append(line)
        self.failed += 1
        self.bad_hints |= kind == "hints"

    @property
    def exit_code(self) -> int:
        return 2 if self.bad_hints else 1 if self.failed else 0


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders (searched recursively) or globs")
    parser.add_argument("-o", "--output-dir", type=Path, default=Path("colorized"), metavar="OUT_DIR",
                        help="where outputs go, mirroring the inputs' relative paths (default: %(default)s)")
    from dlnet.config import add_flags
    from dlnet.infer.options import InferenceOptions
    from dlnet.infer.runtime import RUNTIMES

    add_model_flag(parser, ".safetensors/.ckpt file, or .onnx file")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: CUDA if available)")
    parser.add_argument("--batch-size", type=int, default=8, help="photos of the same working shape per model call (default: %(default)s)")
    add_flags(parser, InferenceOptions, skip=("hints",))  # --size, --rebalance, --saturation, ... from its fields
    parser.add_argument("--hints", type=Path, default=None, metavar="FILE",
                        help='colour hints for every photo named: a JSON list of {"x": 120.5, "y": 45, '
                             '"color": "#a03020"} (pixels of the photo as displayed; "radius" optional). '
                             "A sidecar NAME.hints.json beside a photo gives it its own")
    parser.add_argument("--hint", action="append", default=[], metavar="X,Y,COLOUR",
                        help="one colour hint, e.g. 120,45,#a03020 (repeatable; added to --hints)")
    parser.add_argument("--side-by-side", action="store_true", help="write grey | colour side by side")
    parser.add_argument("--runtime", choices=RUNTIMES, default=None,
                        help="inference runtime (default: the faster for the work: onnx, without torch, on a CPU "
                             "unless torch's bf16 repays its start-up over the photos and films' frames; torch for "
                             "GPUs; onnx for an .onnx --model)")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the model: up to 1.5x faster batches, but a compile of about a minute "
                             "per new working shape; for many photos of one shape (torch runtime only)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs (never inputs)")
    colorize_video.configure(parser)
    colorize_ray.configure(parser)


def _options(args: argparse.Namespace):
    """The run's :class:`~dlnet.infer.options.InferenceOptions`, from the flags (checked there)."""
    from dlnet.config import from_args
    from dlnet.infer.options import InferenceOptions
    from dlnet.io.hints import Hint, HintError, load_hints

    try:
        hints = load_hints(args.hints) if args.hints else ()
        for value in args.hint:
            try:
                hints += (Hint.parse(value),)
            except HintError as e:
                raise HintError(f"--hint {value}: {e}") from None
    except HintError as e:
        raise UsageError(str(e)) from None
    try:
        return InferenceOptions(**from_args(args, InferenceOptions, skip=("hints",)), hints=hints)
    except ValueError as e:
        raise option_error(e) from None


def _load_colorizer(args: argparse.Namespace, options, jobs: list):
    """The colorizer for these jobs, on the runtime :mod:`dlnet.infer.runtime` chooses (or
    ``--runtime``); what cannot be loaded is a usage error, in one line."""
    from dlnet.infer.batch import VIDEO
    from dlnet.infer.onnxrun import OnnxUnavailable
    from dlnet.infer.runtime import RuntimeChoiceError, Work, load_colorizer, weigh_films
    from dlnet.model.device import check_device
    from dlnet.model.weights import DEFAULT_MODEL, WeightsError

    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {args.batch_size}")
    try:
        check_device(args.device)
    except ValueError as e:
        raise option_error(e) from None
    films = [job.src for job in jobs if job.fmt == VIDEO]
    work = weigh_films(Work(photos=len(jobs) - len(films), size=options.size), films, args.model, args.runtime,
                       args.device, args.compile, options.temperature)
    try:
        return load_colorizer(args.model, work, runtime=args.runtime, device=args.device,
                              batch_size=args.batch_size, options=options, compile=args.compile)
    except (WeightsError, OnnxUnavailable, RuntimeChoiceError) as e:
        raise UsageError(str(e)) from None
    except ModuleNotFoundError:  # an extra that is not installed: the CLI names it
        raise
    except Exception as e:  # an .onnx file onnxruntime refuses in a way of its own, say
        raise UsageError(f"{args.model or DEFAULT_MODEL}: cannot load model ({type(e).__name__}: {e})") from None


def process(jobs: list, colorizer, args: argparse.Namespace, tally: Tally, advance, bar=None) -> None:
    """Colorize and write each job (:func:`dlnet.infer.batch.colorize_jobs` for photos,
    :func:`colorize_video.process` for videos), counting and reporting each one."""
    from dlnet.infer.batch import VIDEO, colorize_jobs

    photos = [job for job in jobs if job.fmt != VIDEO]
    for outcome in colorize_jobs(colorizer, photos, colorizer.options, args.side_by_side):
        if outcome.ok:
            tally.done += 1
        else:
            tally.fail(outcome.job.src, outcome.cause, outcome.kind)
        advance()
    colorize_video.process([job for job in jobs if job.fmt == VIDEO], colorizer, args, tally, advance, bar)


def _process_with_progress(jobs: list, colorizer, args: argparse.Namespace, tally: Tally) -> None:
    """:func:`process` under a progress bar on a terminal (errors printed above it); elsewhere
    without one, and without importing rich (a tenth of a second of a short run)."""
    if not sys.stderr.isatty():
        return process(jobs, colorizer, args, tally, lambda: None)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    columns = (TextColumn("colorizing"), BarColumn(), MofNCompleteColumn(), *colorize_video.columns(),
               TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as bar:
        if console.is_terminal:  # print above the bar, each error still on one (soft-wrapped) line
            tally.report = lambda line: console.print(line, soft_wrap=True, markup=False, highlight=False)
        task = bar.add_task("colorize", total=len(jobs))
        process(jobs, colorizer, args, tally, lambda: bar.advance(task), bar)


def run(args: argparse.Namespace) -> int:
    from dlnet.infer.batch import plan_jobs

    options = _options(args)
    colorize_video.check(args)
    out_dir: Path = args.output_dir
    try:
        if out_dir.exists() and not out_dir.is_dir():
            raise UsageError(f"{out_dir}: output folder exists and is not a folder")
    except OSError as e:  # a name too long for the file system, say
        raise UsageError(f"{out_dir}: {e.strerror or e}") from None
    if args.ray is not None:  # the photos as a Ray Data job (dlnet.infer.cluster)
        return colorize_ray.run(args, options)
    tally = Tally()
    plan = plan_jobs(args.paths, out_dir, options, args.overwrite)
    for failure in plan.failures:
        tally.fail(failure.path, failure.cause, failure.kind)
    tally.skipped, jobs = len(plan.skipped), plan.jobs
    if jobs:
        colorizer = _load_colorizer(args, options, jobs)
        try:
            colorizer.check_options(options)
        except ValueError as e:
            raise option_error(e) from None
        _process_with_progress(jobs, colorizer, args, tally)
    print(f"{tally.done} colorized, {tally.skipped} skipped, {tally.failed} failed")
    return tally.exit_code
