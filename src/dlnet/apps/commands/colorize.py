"""``dlnet colorize PATH... [-o OUT_DIR]``: colorize photos (files, folders recursively, globs).

Each input ``x`` is written to ``OUT_DIR/<relative path of x>``: relative to the current folder
when ``x`` lies inside it, else to the folder argument it was found under (a lone file outside
the current folder keeps just its name). The output keeps the input's size, format (PNG, JPEG,
WebP, TIFF; other formats become PNG, or ``--format``), RGB ICC profile, EXIF and alpha.

Nothing is ever overwritten that should not be: an output path equal to an input is refused,
existing outputs are skipped unless ``--overwrite``, and files are written atomically. A file
that cannot be read or written gives one line ``<file>: <cause>`` on stderr and the batch goes
on; the exit code is then 1. A summary line ends the run: ``N colorized, N skipped, N failed``.
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

from dlnet.apps.commands import UsageError, add_model_flag, colorize_video, one_line, option_error


def _print_err(line: str) -> None:
    print(line, file=sys.stderr)


@dataclass
class Tally:
    done: int = 0
    skipped: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)
    report: Callable[[str], None] = _print_err  # where the one-line errors go

    def fail(self, path, cause: str) -> None:
        line = one_line(f"{path}: {cause}")
        self.report(line)
        self.failures.append(line)
        self.failed += 1


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders (searched recursively) or globs")
    parser.add_argument("-o", "--output-dir", type=Path, default=Path("colorized"), metavar="OUT_DIR",
                        help="where outputs go, mirroring the inputs' relative paths (default: %(default)s)")
    from dlnet.infer.options import OUTPUT_FORMATS, InferenceOptions

    d = InferenceOptions()
    add_model_flag(parser, ".safetensors/.ckpt file, or .onnx file")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: CUDA if available)")
    parser.add_argument("--size", type=int, default=d.size,
                        help="working size: longer side at which colour is predicted, 0 = full size (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=8, help="photos of the same working shape per model call (default: %(default)s)")
    parser.add_argument("--rebalance", action=argparse.BooleanOptionalAction, default=d.rebalance is not None,
                        help=f"region smoothing + saturation after prediction (default: {'on' if d.rebalance else 'off'})")
    parser.add_argument("--saturation", type=float, default=None, metavar="S",
                        help="colour gain, 0..4: 0 grey, 1 the network's own prediction, above 1 more colour "
                             "(default: the model's own, chosen for it on validation photos)")
    parser.add_argument("--temperature", type=float, default=None, metavar="T",
                        help="classification models only: annealed-mean temperature, 0.01..1; lower gives "
                             "more vivid, riskier colour (default: the model's own, 0.38)")
    parser.add_argument("--side-by-side", action="store_true", help="write grey | colour side by side")
    parser.add_argument("--runtime", choices=["torch", "onnx"], default=None,
                        help="inference runtime (default: onnx, without torch, for a few photos on the CPU; "
                             "else torch; onnx for an .onnx --model)")
    parser.add_argument("--format", choices=OUTPUT_FORMATS, default=None,
                        help="output format (default: the input's, PNG for other input formats)")
    parser.add_argument("--quality", type=int, default=d.quality, help="JPEG and WebP quality, 1..100 (default: %(default)s)")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the model: up to 1.5x faster batches, but a compile of about a minute "
                             "per new working shape; for many photos of one shape (torch runtime only)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs (never inputs)")
    parser.add_argument("--max-megapixels", type=float, default=d.max_megapixels,
                        help="refuse larger images, e.g. decompression bombs (default: %(default)g)")
    colorize_video.configure(parser)


def _options(args: argparse.Namespace):
    """The run's :class:`~dlnet.infer.options.InferenceOptions`, from the flags (checked there)."""
    from dlnet.infer.options import InferenceOptions

    try:
        return InferenceOptions(size=args.size or None, rebalance=args.rebalance, format=args.format,
                                quality=args.quality, max_megapixels=args.max_megapixels,
                                saturation=args.saturation, temperature=args.temperature)
    except ValueError as e:
        raise option_error(e) from None


# Up to this many photos, start-up dominates: the cached ONNX export with onnxruntime starts in
# 0.3 s, torch and the model in 3-5 s (benchmarks/README.md, start-up).
AUTO_ONNX_MAX_PHOTOS = 32


def _auto_onnx(args: argparse.Namespace, options, jobs: list):
    """The torch-free :class:`~dlnet.infer.onnxrun.OnnxColorizer` on the CPU, without videos or
    --compile, when it is asked for (``--runtime onnx`` or an .onnx model) or no runtime is and it
    is the faster one (a few photos), else None; also None when it cannot be had (onnxruntime
    missing, a bad model file, a failed export): the torch path then runs, or reports the error."""
    import importlib.util

    from dlnet.infer.batch import VIDEO

    wanted = args.runtime == "onnx" or str(args.model).endswith(".onnx") or (
        args.runtime is None and len(jobs) <= AUTO_ONNX_MAX_PHOTOS and args.temperature is None)
    if (not wanted or args.runtime == "torch" or args.compile or args.device not in (None, "cpu")
            or args.batch_size < 1 or any(job.fmt == VIDEO for job in jobs)
            or importlib.util.find_spec("onnxruntime") is None):
        return None
    from dlnet.infer.onnxrun import OnnxColorizer

    try:
        return OnnxColorizer.from_pretrained(args.model, batch_size=args.batch_size, options=options)
    except Exception:  # a bad model file, say: the torch path reports it as usual
        return None


def _build_colorizer(args: argparse.Namespace, options, jobs: list = ()):
    colorizer = _auto_onnx(args, options, list(jobs))
    if colorizer is not None:
        return colorizer
    import torch

    from dlnet.infer.colorizer import Colorizer
    from dlnet.model.weights import WeightsError, load_model

    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {args.batch_size}")
    try:
        device = torch.device(args.device) if args.device else None
    except RuntimeError as e:
        raise UsageError(f"--device {args.device!r}: {e}") from None
    if device is not None and device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {args.device}: CUDA is not available on this machine")
    onnx_file = args.model is not None and str(args.model).endswith(".onnx")
    runtime = args.runtime or ("onnx" if onnx_file else "torch")
    if onnx_file and runtime == "torch":
        raise UsageError(f"{args.model}: an .onnx file needs --runtime onnx")
    if args.compile and runtime == "onnx":
        raise UsageError("--compile applies to the torch runtime only")
    try:
        if runtime == "onnx":
            from dlnet.infer.export import onnx_model_for

            model, precision = onnx_model_for(args.model, device), "fp32"
        else:
            model, precision = load_model(args.model), None
    except WeightsError as e:
        raise UsageError(str(e)) from None
    except Exception as e:  # an unreadable .onnx file, say
        raise UsageError(f"{args.model}: cannot load model ({type(e).__name__}: {e})") from None
    return Colorizer(model, device=device, precision=precision, batch_size=args.batch_size, compile=args.compile,
                     options=options)


def process(jobs: list, colorizer, args: argparse.Namespace, tally: Tally, advance, bar=None) -> None:
    """Colorize and write each job (:func:`dlnet.infer.batch.colorize_jobs` for photos,
    :func:`colorize_video.process` for videos), counting and reporting each one."""
    from dlnet.infer.batch import VIDEO, colorize_jobs

    photos = [job for job in jobs if job.fmt != VIDEO]
    for outcome in colorize_jobs(colorizer, photos, colorizer.options, args.side_by_side):
        if outcome.ok:
            tally.done += 1
        else:
            tally.fail(outcome.job.src, outcome.cause)
        advance()
    colorize_video.process([job for job in jobs if job.fmt == VIDEO], colorizer, args, tally, advance, bar)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from dlnet.infer.batch import plan_jobs

    options = _options(args)
    colorize_video.check(args)
    out_dir: Path = args.output_dir
    try:
        if out_dir.exists() and not out_dir.is_dir():
            raise UsageError(f"{out_dir}: output folder exists and is not a folder")
    except OSError as e:  # a name too long for the file system, say
        raise UsageError(f"{out_dir}: {e.strerror or e}") from None
    tally = Tally()
    plan = plan_jobs(args.paths, out_dir, options, args.overwrite)
    for failure in plan.failures:
        tally.fail(failure.path, failure.cause)
    tally.skipped, jobs = len(plan.skipped), plan.jobs
    if jobs:
        colorizer = _build_colorizer(args, options, jobs)
        try:
            colorizer.check_options(options)
        except ValueError as e:
            raise option_error(e) from None
        console = Console(stderr=True)
        columns = (TextColumn("colorizing"), BarColumn(), MofNCompleteColumn(), *colorize_video.columns(),
                   TimeRemainingColumn())
        with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as bar:
            if console.is_terminal:  # print above the bar, each error still on one (soft-wrapped) line
                tally.report = lambda line: console.print(line, soft_wrap=True, markup=False, highlight=False)
            task = bar.add_task("colorize", total=len(jobs))
            process(jobs, colorizer, args, tally, lambda: bar.advance(task), bar)
    print(f"{tally.done} colorized, {tally.skipped} skipped, {tally.failed} failed")
    return 1 if tally.failed else 0
