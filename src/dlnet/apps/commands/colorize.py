"""``dlnet colorize PATH... [-o OUT_DIR]``: colorize photos (files, folders recursively, globs).

Each input ``x`` is written to ``OUT_DIR/<relative path of x>``: relative to the current folder
when ``x`` lies inside it, else to the folder argument it was found under (a lone file outside
the current folder keeps just its name). The output keeps the input's size, format (PNG, JPEG,
WebP, TIFF; other formats become PNG, or ``--format``), RGB ICC profile, EXIF and alpha.

Nothing is ever overwritten that should not be: an output path equal to an input is refused,
existing outputs are skipped unless ``--overwrite``, and files are written atomically. A file
that cannot be read or written gives one line ``<file>: <cause>`` on stderr and the batch goes
on; the exit code is then 1. A summary line ends the run: ``N colorized, N skipped, N failed``.

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


@dataclass
class Job:
    """One input file and where its output goes."""

    src: Path
    dst: Path
    fmt: str


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


def _has_magic(s: str) -> bool:
    return any(c in s for c in "*?[")


def _glob(pattern: str) -> list[Path]:
    """The matches of ``pattern``, sorted; ``**`` never descends into symbolic links to folders
    (``glob.glob`` does, so a link back to a parent would recurse for ever). Hidden names match
    only a pattern part that starts with a dot, as in the shell."""
    parts = Path(pattern).parts
    first = next(i for i, part in enumerate(parts) if _has_magic(part))
    root = Path(*parts[:first]) if first else Path()
    hidden = any(part.startswith(".") for part in parts[first:])
    try:
        matches = root.glob(str(Path(*parts[first:])))
        return sorted(m for m in matches if hidden or not any(p.startswith(".") for p in m.relative_to(root).parts))
    except (OSError, ValueError):  # an unreadable folder, or a pattern pathlib refuses
        return []


def _relative(path: Path, root: Path | None) -> Path:
    """``path`` relative to the current folder if inside it, else to the folder argument ``root``."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return Path(root.resolve().name) / path.resolve().relative_to(root.resolve()) if root else Path(path.name)


def _scan(folder: Path, out_dir: Path):
    from dlnet.io.imageio import IMAGE_SUFFIXES

    out_dir = out_dir.resolve()
    for f in sorted(folder.rglob("*")):
        parts = f.relative_to(folder).parts
        wanted = f.suffix.lower() in IMAGE_SUFFIXES or colorize_video.is_video(f)
        if any(p.startswith(".") for p in parts) or not wanted or not f.is_file():
            continue
        if f.resolve().is_relative_to(out_dir):  # earlier outputs are not inputs
            continue
        yield f


def _expand(arg: str, out_dir: Path, tally: Tally) -> list[tuple[Path, Path]]:
    """One argument's ``(file, relative path)`` pairs; a missing one is reported."""
    p = Path(arg)
    if p.is_dir():
        items = [(f, _relative(f, p)) for f in _scan(p, out_dir)]
        if not items:
            tally.fail(arg, "no image or video files in this folder")
        return items
    if p.exists():
        return [(p, _relative(p, None))]
    if not _has_magic(arg):
        tally.fail(arg, "no such file or folder")
        return []
    matches = _glob(arg)
    items = [(m, _relative(m, None)) for m in matches if m.is_file()]
    for d in (m for m in matches if m.is_dir()):
        items += [(f, _relative(f, d)) for f in _scan(d, out_dir)]
    if not items:
        tally.fail(arg, "no files match")
    return items


def collect(paths: list[str], out_dir: Path, tally: Tally) -> list[tuple[Path, Path]]:
    """Expand arguments into ``(file, relative path)`` pairs, each file once; report missing ones."""
    found: dict[Path, tuple[Path, Path]] = {}
    for arg in paths:
        try:
            items = _expand(arg, out_dir, tally)
        except OSError as e:  # a name too long for the file system, say
            tally.fail(arg, e.strerror or str(e))
            continue
        for f, rel in items:
            found.setdefault(f.resolve(), (f, rel))
    return list(found.values())


def plan(inputs: list[tuple[Path, Path]], out_dir: Path, fmt: str | None, overwrite: bool, tally: Tally) -> list[Job]:
    """Decide each output path; refuse outputs that are inputs or collide, skip existing ones.

    An input whose output keeps its name is served first; one whose suffix changes (``a.gif``
    -> ``a.png``) and collides with it gets ``a.gif.png`` instead.
    """
    from PIL import Image

    from dlnet.io.imageio import output_format

    sources = {f.resolve() for f, _ in inputs}
    planned = []
    for src, rel in inputs:
        if colorize_video.is_video(src):
            planned.append((src, *colorize_video.planned_output(out_dir / rel)))
            continue
        # The source format is only known once decoded; the suffix gives the planned one.
        guess = Image.registered_extensions().get(src.suffix.lower())
        planned.append((src, *output_format(out_dir / rel, guess, fmt)))
    taken: dict[Path, Path] = {}
    jobs = []
    for src, dst, out_fmt in sorted(planned, key=lambda p: p[1].suffix != p[0].suffix):
        if dst.resolve() in taken and dst.suffix != src.suffix:
            dst = dst.with_name(src.name + dst.suffix)
        key = dst.resolve()
        if key in sources:
            tally.fail(src, f"output {dst} would overwrite an input; choose another -o")
        elif key in taken:
            tally.fail(src, f"output {dst} is already the output of {taken[key]}")
        else:
            try:
                is_dir, exists = dst.is_dir(), dst.exists()
            except OSError as e:  # a name too long for the file system, say
                tally.fail(src, f"output {dst}: {e.strerror or e}")
                continue
            if is_dir:
                tally.fail(src, f"output {dst} is a folder")
                continue
            taken[key] = src
            if exists and not overwrite:
                tally.skipped += 1
            else:
                jobs.append(Job(src, dst, out_fmt))
    return jobs


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


def _auto_onnx(args: argparse.Namespace, options, jobs: list[Job]):
    """The torch-free :class:`~dlnet.infer.onnxrun.OnnxColorizer` on the CPU, without videos or
    --compile, when it is asked for (``--runtime onnx`` or an .onnx model) or no runtime is and it
    is the faster one (a few photos), else None; also None when it cannot be had (onnxruntime
    missing, a bad model file, a failed export): the torch path then runs, or reports the error."""
    import importlib.util

    wanted = args.runtime == "onnx" or str(args.model).endswith(".onnx") or (
        args.runtime is None and len(jobs) <= AUTO_ONNX_MAX_PHOTOS and args.temperature is None)
    if (not wanted or args.runtime == "torch" or args.compile or args.device not in (None, "cpu")
            or args.batch_size < 1 or any(job.fmt == colorize_video.VIDEO for job in jobs)
            or importlib.util.find_spec("onnxruntime") is None):
        return None
    from dlnet.infer.onnxrun import OnnxColorizer

    try:
        return OnnxColorizer.from_pretrained(args.model, batch_size=args.batch_size, options=options)
    except Exception:  # a bad model file, say: the torch path reports it as usual
        return None


def _build_colorizer(args: argparse.Namespace, options, jobs: list[Job] = ()):
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


def process(jobs: list[Job], colorizer, args: argparse.Namespace, tally: Tally, advance, bar=None) -> None:
    """Read each job's photo, colorize and write it, with the colorizer's options.

    Photos stream through :meth:`~dlnet.infer.colorizer.Colorizer.colorize_stream`, which batches those
    of one working shape with at most ``batch_size`` decoded photos waiting, so memory stays
    bounded for big folders of mixed sizes, and one photo that fails costs only itself.
    """
    from dlnet.io.imageio import ImageError, read_image, save_image

    videos = [job for job in jobs if job.fmt == colorize_video.VIDEO]
    jobs = [job for job in jobs if job.fmt != colorize_video.VIDEO]
    options = colorizer.options

    def photos():
        for job in jobs:
            try:
                yield job, read_image(job.src, max_pixels=options.max_pixels)
            except ImageError as e:
                tally.fail(job.src, e.cause)
                advance()

    for job, result in colorizer.colorize_stream(photos(), options, args.side_by_side):
        if isinstance(result, Exception):
            tally.fail(job.src, f"colorization failed ({type(result).__name__}: {result})")
        else:
            try:
                save_image(result, job.dst, job.fmt, quality=options.quality)
                tally.done += 1
            except ImageError as e:
                tally.fail(job.src, f"output {e}")
        advance()
    colorize_video.process(videos, colorizer, args, tally, advance, bar)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    options = _options(args)
    colorize_video.check(args)
    out_dir: Path = args.output_dir
    try:
        if out_dir.exists() and not out_dir.is_dir():
            raise UsageError(f"{out_dir}: output folder exists and is not a folder")
    except OSError as e:  # a name too long for the file system, say
        raise UsageError(f"{out_dir}: {e.strerror or e}") from None
    tally = Tally()
    jobs = plan(collect(args.paths, out_dir, tally), out_dir, options.format, args.overwrite, tally)
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
