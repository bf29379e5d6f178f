"""Photos in bulk from the file system: find them, plan where each result goes, colorize and write them.

This is ``dlnet colorize``'s photo path, for any program that colorizes files (a cluster job, a
script): the same inputs found, the same outputs written, the same one-line failures.

1. :func:`plan_jobs` expands what a user names (files, folders searched recursively, globs) into
   :class:`Job` s: each input once, its output ``OUT/<relative path>`` (relative to the current
   folder when the input lies inside it, else to the folder named), in the input's format (PNG for
   formats that cannot be written back) or ``options.format``. Hidden files and folders, and
   earlier outputs inside a scanned folder, are left out. Nothing is overwritten that should not
   be: an output that would replace an input, or another job's output, is refused; existing
   outputs are skipped unless ``overwrite``. Videos are planned too (``Job.fmt == VIDEO``, output
   ``.mp4``) and left to :func:`dlnet.infer.video.colorize_video`. A photo's hints sidecar
   (``NAME.hints.json`` beside ``NAME.jpg``, :mod:`dlnet.io.hints`) is read into its job; a
   sidecar that cannot be used, or one beside no photo, is a failure of kind ``"hints"``, and
   its photo gets no output.
2. :func:`colorize_jobs` reads, colorizes and writes the photo jobs with any colorizer
   (:func:`dlnet.infer.runtime.load_colorizer` loads the fastest for the work), batching photos
   of one working shape, each output written atomically. It yields one :class:`Outcome` per job
   as it finishes: a photo that cannot be read, colorized or written costs only itself. Jobs are
   independent: split ``plan.photo_jobs`` across workers as you like.

Example:
    >>> from dlnet.infer.runtime import Work, load_colorizer
    >>> options = InferenceOptions()
    >>> plan = plan_jobs(["scans/", "album/*.tif"], "colour", options)          # doctest: +SKIP
    >>> for failure in plan.failures:                                           # doctest: +SKIP
    ...     print(f"{failure.path}: {failure.cause}")
    >>> colorizer = load_colorizer(work=Work(photos=len(plan.photo_jobs)), options=options)  # doctest: +SKIP
    >>> for outcome in colorize_jobs(colorizer, plan.photo_jobs):               # doctest: +SKIP
    ...     print(outcome.job.dst if outcome.ok else f"{outcome.job.src}: {outcome.cause}")
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePath

from dlnet.infer.options import InferenceOptions, OptionError
from dlnet.io.hints import SIDECAR_SUFFIX, Hint, HintError, load_hints, sidecar_path
from dlnet.io.imageio import IMAGE_SUFFIXES, ImageError, output_format, read_image, save_image, suffix_format
from dlnet.io.photolist import VIDEO_SUFFIXES, find_photos, is_hidden

__all__ = ["Job", "Failure", "Plan", "Outcome", "plan_jobs", "colorize_jobs", "is_video", "planned_output", "VIDEO"]

VIDEO = "video"  # the Job.fmt of a video
# Hints are points of one picture; a film's frames move. Refused in one line, never ignored.
FILM_HINTS = "colour hints apply to photos, and a film takes none: colorize it without --hint, --hints or its sidecar"


@dataclass(frozen=True)
class Job:
    """One input file, where its output goes, the output's PIL format name (or :data:`VIDEO`),
    and the photo's own hints from its sidecar (None: the run's ``options.hints``)."""

    src: Path
    dst: Path
    fmt: str
    hints: tuple[Hint, ...] | None = None


@dataclass(frozen=True)
class Failure:
    """An input (a file, or an argument as given) that gets no output, and why, in a few words;
    ``kind`` is ``"hints"`` where the user's hints are at fault (a usage error), else ``"input"``."""

    path: str | Path
    cause: str
    kind: str = "input"


@dataclass
class Plan:
    """What :func:`plan_jobs` decided: the jobs to run (photos and videos, in order), the jobs
    skipped because their output exists, and the inputs refused."""

    jobs: list[Job] = field(default_factory=list)
    skipped: list[Job] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)

    @property
    def photo_jobs(self) -> list[Job]:
        return [job for job in self.jobs if job.fmt != VIDEO]

    @property
    def video_jobs(self) -> list[Job]:
        return [job for job in self.jobs if job.fmt == VIDEO]


@dataclass(frozen=True)
class Outcome:
    """One finished photo job: ``cause`` is None when its output was written; ``kind`` as
    :class:`Failure`'s (``"hints"``: a hint outside the photo, say)."""

    job: Job
    cause: str | None = None
    kind: str = "input"

    @property
    def ok(self) -> bool:
        return self.cause is None


def is_video(path: PurePath) -> bool:
    """Whether ``path`` is planned as a video (by its suffix)."""
    return path.suffix.lower() in VIDEO_SUFFIXES


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
        return sorted(m for m in root.glob(str(Path(*parts[first:]))) if hidden or not is_hidden(m, root))
    except (OSError, ValueError):  # an unreadable folder, or a pattern pathlib refuses
        return []


def _relative(path: Path, root: Path | None) -> Path:
    """``path`` relative to the current folder if inside it, else to the folder argument ``root``.
    Where it is, not where it leads: a symbolic link to a file elsewhere keeps its own name and place."""
    here = Path(os.path.abspath(path))
    try:
        return here.relative_to(Path.cwd())
    except ValueError:
        if root is None:
            return Path(path.name)
        base = Path(os.path.abspath(root))
        return Path(base.name) / here.relative_to(base)


def _scan(folder: Path, out_dir: Path, failures: list[Failure] | None = None) -> list[tuple[Path, Path]]:
    """A folder's photos and videos as ``(file, relative path)``, earlier outputs left out; a
    hints sidecar beside no photo is a failure."""
    files = find_photos(folder, IMAGE_SUFFIXES | VIDEO_SUFFIXES, exclude=out_dir)
    if failures is not None:
        stems = {(f.parent, f.stem) for f in files}
        for side in find_photos(folder, {".json"}, exclude=out_dir):
            if side.name.endswith(SIDECAR_SUFFIX) and (side.parent, side.name[:-len(SIDECAR_SUFFIX)]) not in stems:
                failures.append(Failure(side, "a hints sidecar beside no photo of that name", "hints"))
    return [(f, _relative(f, folder)) for f in files]


def _expand(arg: str, out_dir: Path, failures: list[Failure]) -> list[tuple[Path, Path]]:
    """One argument's ``(file, relative path)`` pairs; a missing one is a failure."""
    p = Path(arg)
    if p.is_dir():
        items = _scan(p, out_dir, failures)
        if not items:
            failures.append(Failure(arg, "no image or video files in this folder"))
        return items
    if p.exists():
        return [(p, _relative(p, None))]
    if not _has_magic(arg):
        failures.append(Failure(arg, "no such file or folder"))
        return []
    matches = _glob(arg)
    items = [(m, _relative(m, None)) for m in matches if m.is_file()]
    for d in (m for m in matches if m.is_dir()):
        items += _scan(d, out_dir, failures)
    if not items:
        failures.append(Failure(arg, "no files match"))
    return items


def _collect(paths: Iterable[str | Path], out_dir: Path, failures: list[Failure]) -> list[tuple[Path, Path]]:
    """Arguments as ``(file, relative path)`` pairs, each file once (a file named twice, by two
    arguments, say; two links to one file are two files, each with its own output)."""
    found: dict[Path, tuple[Path, Path]] = {}
    for arg in map(str, paths):
        try:
            items = _expand(arg, out_dir, failures)
        except OSError as e:  # a name too long for the file system, say
            failures.append(Failure(arg, e.strerror or str(e)))
            continue
        for f, rel in items:
            found.setdefault(Path(os.path.abspath(f)), (f, rel))
    return list(found.values())


def planned_output(src: PurePath, out_path: PurePath, fmt: str | None) -> tuple[PurePath, str]:
    """An input's output path and format before any collision is resolved: a film's is MP4
    (:data:`VIDEO`), a photo's its own format or ``fmt``."""
    if is_video(src):
        return out_path.with_suffix(".mp4"), VIDEO
    # The source format is only known once decoded; the suffix gives the planned one.
    return output_format(out_path, suffix_format(src.suffix), fmt)


def plan_jobs(paths: Iterable[str | Path], output_dir: str | Path, options: InferenceOptions | None = None,
              overwrite: bool = False) -> Plan:
    """Expand ``paths`` (files, folders searched recursively, globs) into jobs writing under
    ``output_dir`` in ``options.format`` (None: each input's own); see the module docstring.

    An input whose output keeps its name is served first; one whose suffix changes (``a.gif``
    -> ``a.png``) and collides with it gets ``a.gif.png`` instead. Nothing is read or written.
    """
    out_dir = Path(output_dir)
    options = options or InferenceOptions()
    fmt = options.format
    plan = Plan()
    inputs = _collect(paths, out_dir, plan.failures)
    sources = {f.resolve() for f, _ in inputs}
    planned = [(src, *planned_output(src, out_dir / rel, fmt)) for src, rel in inputs]
    taken: dict[Path, Path] = {}
    for src, dst, out_fmt in sorted(planned, key=lambda p: p[1].suffix != p[0].suffix):
        if dst.resolve() in taken and dst.suffix != src.suffix:
            dst = dst.with_name(src.name + dst.suffix)
        key = dst.resolve()
        if key in sources:
            plan.failures.append(Failure(src, f"output {dst} would overwrite an input; choose another -o"))
            continue
        if key in taken:
            plan.failures.append(Failure(src, f"output {dst} is already the output of {taken[key]}"))
            continue
        try:
            is_dir, exists = dst.is_dir(), dst.exists()
        except OSError as e:  # a name too long for the file system, say
            plan.failures.append(Failure(src, f"output {dst}: {e.strerror or e}"))
            continue
        if is_dir:
            plan.failures.append(Failure(src, f"output {dst} is a folder"))
            continue
        taken[key] = src
        if out_fmt == VIDEO and (options.hints or _has_sidecar(src)):
            plan.failures.append(Failure(src, FILM_HINTS, "hints"))
            continue
        try:
            hints = _sidecar_hints(src)
        except HintError as e:
            plan.failures.append(Failure(src, str(e), "hints"))
            continue
        (plan.skipped if exists and not overwrite else plan.jobs).append(Job(src, dst, out_fmt, hints))
    return plan


def _has_sidecar(src: Path) -> bool:
    """Whether ``src`` has a hints sidecar beside it."""
    try:
        return sidecar_path(src).is_file()
    except OSError:  # a name the sidecar's suffix makes too long: there is none
        return False


def _sidecar_hints(src: Path) -> tuple[Hint, ...] | None:
    """The hints of ``src``'s sidecar, None without one (:class:`HintError` for a bad one)."""
    return load_hints(sidecar_path(src)) if _has_sidecar(src) else None


def _ahead(fn, items: Iterable, pool: ThreadPoolExecutor, depth: int) -> Iterator[tuple]:
    """``(item, future of fn(item))`` in order, at most ``depth`` submitted ahead of the consumer."""
    waiting: deque = deque()
    for item in items:
        waiting.append((item, pool.submit(fn, item)))
        if len(waiting) > depth:
            yield waiting.popleft()
    yield from waiting


def colorize_jobs(colorizer, jobs: Iterable[Job], options: InferenceOptions | None = None,
                  side_by_side: bool = False) -> Iterator[Outcome]:
    """Read, colorize and write each photo job; yield its :class:`Outcome` as it finishes.

    ``colorizer``: a :class:`~dlnet.infer.pipeline.PhotoPipeline` (the PyTorch or the ONNX one);
    ``options``: default the colorizer's. Photos stream through its
    :meth:`~dlnet.infer.pipeline.PhotoPipeline.colorize_stream`, which batches those of one
    working shape with at most ``batch_size`` decoded photos waiting, so memory stays bounded for
    big folders of mixed sizes. Outputs are written atomically (never half a file). Video jobs
    are refused (their outcome says so): they go to :func:`dlnet.infer.video.colorize_video`.

    Photos are decoded and results encoded and written on a helper thread, while the model runs
    (Pillow and NumPy release the GIL): a few photos more than ``batch_size`` are in memory.
    """
    options = options or colorizer.options
    outcomes: list[Outcome] = []  # failures found while reading, handed out between batches
    depth = max(2, colorizer.batch_size)

    def read(job: Job):
        return read_image(job.src, max_pixels=options.max_pixels)

    def save(item: tuple[Job, object]) -> Outcome:
        job, result = item
        if isinstance(result, OptionError):  # the photo's hints: outside it, say
            return Outcome(job, str(result), "hints")
        if isinstance(result, Exception):
            return Outcome(job, f"colorization failed ({type(result).__name__}: {result})")
        try:
            save_image(result, job.dst, job.fmt, quality=options.quality)
        except ImageError as e:
            return Outcome(job, f"output {e}")
        return Outcome(job)

    def photos(reading):
        for job, future in reading:
            try:
                yield job, future.result()
            except ImageError as e:
                outcomes.append(Outcome(job, e.cause))

    photo_jobs, hinted = [], []
    for job in jobs:
        if job.fmt == VIDEO:
            outcomes.append(Outcome(job, "a video: colorize it with colorize_video"))
        else:
            (photo_jobs if job.hints is None else hinted).append(job)
    with ThreadPoolExecutor(1, thread_name_prefix="dlnet-io") as pool:
        results = colorizer.colorize_stream(photos(_ahead(read, photo_jobs, pool, depth)), options, side_by_side)
        for _, future in _ahead(save, results, pool, depth):
            yield from outcomes
            outcomes.clear()
            yield future.result()
        for job, photo in photos(_ahead(read, hinted, pool, depth)):  # each with its own hints
            yield from outcomes
            outcomes.clear()
            ((_, result),) = colorizer.colorize_stream([(job, photo)], options.replace(hints=job.hints), side_by_side)
            yield save((job, result))
    yield from outcomes
