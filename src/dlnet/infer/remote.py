"""Photos and films in buckets for the cluster job: any file system pyarrow opens from a URI
(``s3://``, ``gs://``, ``abfs://``, ``hdfs://``; ``file://`` too, which is how it is tested).

:func:`plan_uris` plans like :func:`dlnet.infer.batch.plan_jobs` where some input or the output
folder is a URI: a folder's photos and films found recursively (hidden names left out, by
suffix), each output at ``OUT/<folder name>/<relative path>`` in the input's format (PNG for
formats that cannot be written back) or ``options.format``, a film's as MP4, existing outputs
skipped (one listing of the output folder; a film's ``.mkv`` too), two inputs with one output refused. Globs are for local paths only. The jobs'
``src`` and ``dst`` are then strings (URIs, or absolute local paths).

:func:`staged` lets :func:`dlnet.infer.batch.colorize_jobs` run such jobs unchanged: it copies
each remote photo or film to a local temporary folder and gives the local jobs; :meth:`Staging.upload`
copies a finished output to its URI in one stream (an object store makes the object appear
whole when the stream closes; a local ``file://`` output is written atomically). Credentials are
pyarrow's: the environment, the instance's role, ``~/.aws``, ``gcloud`` (docs/CLUSTER.md).

Example:
    >>> is_uri("s3://archive/scans"), is_uri("scans/1921")
    (True, False)
    >>> plan = plan_uris(["s3://archive/scans"], "s3://archive/colour")   # doctest: +SKIP
    >>> plan.jobs[0]                                                      # doctest: +SKIP
    Job(src='s3://archive/scans/1921/a.jpg', dst='s3://archive/colour/scans/1921/a.jpg', fmt='JPEG')
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from dlnet.infer.batch import FILM_HINTS, VIDEO, Failure, Job, Plan, planned_output
from dlnet.infer.options import InferenceOptions
from dlnet.io.atomic import atomic_path
from dlnet.io.hints import SIDECAR_SUFFIX, Hint, HintError, hints_from_json, sidecar_path
from dlnet.io.imageio import IMAGE_SUFFIXES
from dlnet.io.photolist import VIDEO_SUFFIXES, is_hidden

__all__ = ["is_uri", "plan_uris", "staged", "Staging"]

_SUFFIXES = IMAGE_SUFFIXES | VIDEO_SUFFIXES  # what a folder's listing colorizes


def is_uri(path) -> bool:
    """Whether ``path`` names a file system by scheme (``s3://bucket/key``), not a local path."""
    return "://" in str(path)


def _open(location: str | Path):
    """``(pyarrow file system, path on it, URI prefix)`` of a URI or a local path."""
    from pyarrow import fs

    if is_uri(location):
        filesystem, path = fs.FileSystem.from_uri(str(location))
        scheme = str(location).split("://", 1)[0]
        # The prefix turns a path on the file system back into a URI: s3:// + bucket/key.
        return filesystem, path, "file://" if scheme == "file" else f"{scheme}://"
    return fs.LocalFileSystem(), str(Path(location).absolute()), ""


def _inputs(filesystem, root: str) -> tuple[list[tuple[str, PurePosixPath]], set[str]] | None:
    """``(path, relative output path)`` of the photos and films at ``root`` (a folder,
    recursively, or one file) and the paths of the hints sidecars there, or None when there is
    nothing there."""
    from pyarrow import fs

    info = filesystem.get_file_info(root)
    if info.type == fs.FileType.File:
        side = str(sidecar_path(root))
        return [(root, PurePosixPath(info.base_name))], {side} if filesystem.get_file_info(side).is_file else set()
    if info.type != fs.FileType.Directory:
        return None
    found, sidecars = [], set()
    for f in filesystem.get_file_info(fs.FileSelector(root, recursive=True)):
        rel = PurePosixPath(f.path).relative_to(root)
        if not f.is_file or is_hidden(Path(rel)):
            continue
        if rel.suffix.lower() in _SUFFIXES:
            found.append((f.path, PurePosixPath(info.base_name) / rel))
        elif rel.name.endswith(SIDECAR_SUFFIX):
            sidecars.add(f.path)
    return sorted(found), sidecars


def _hints(filesystem, side: str, name: str) -> tuple[Hint, ...]:
    """The hints of the sidecar at ``side`` (:class:`~dlnet.io.hints.HintError` naming ``name``)."""
    try:
        with filesystem.open_input_stream(side) as f:
            data = f.read()
    except OSError as e:
        raise HintError(f"{name}: cannot read ({' '.join(str(e).split())})") from None
    return hints_from_json(data, name)


def plan_uris(paths: Iterable[str | Path], output_dir: str | Path, options: InferenceOptions | None = None,
              overwrite: bool = False) -> Plan:
    """Jobs for ``paths`` (URIs or local folders and files) writing under ``output_dir`` (a URI or
    a local folder): see the module docstring. Nothing is read or written but the listings and
    the photos' hints sidecars (``NAME.hints.json``; one beside no photo is a failure, as in
    :func:`dlnet.infer.batch.plan_jobs`)."""
    from pyarrow import fs

    options = options or InferenceOptions()
    fmt = options.format
    out_fs, out_root, out_prefix = _open(output_dir)
    selector = fs.FileSelector(out_root, recursive=True, allow_not_found=True)
    existing = {f.path for f in out_fs.get_file_info(selector) if f.is_file}
    plan, taken = Plan(), {}
    for arg in map(str, paths):
        try:
            filesystem, root, prefix = _open(arg)
            listed = _inputs(filesystem, root)
        except (OSError, ValueError) as e:  # no such bucket, no credentials, a malformed URI
            plan.failures.append(Failure(arg, " ".join(str(e).split())))
            continue
        found, sidecars = listed or ([], set())
        if not found:
            plan.failures.append(Failure(arg, "no such file or folder" if listed is None else "no image or video files here"))
            continue
        beside = {str(sidecar_path(path)) for path, _ in found}
        plan.failures += [Failure(prefix + side, "a hints sidecar beside no photo of that name", "hints")
                          for side in sorted(sidecars - beside)]
        for path, rel in found:
            dst, out_fmt = planned_output(rel, PurePosixPath(out_root) / rel, fmt)
            src, key = prefix + path, dst.as_posix()
            if key in taken:
                plan.failures.append(Failure(src, f"output {out_prefix + key} is already the output of {taken[key]}"))
                continue
            taken[key] = src
            side = str(sidecar_path(path))
            if out_fmt == VIDEO and (options.hints or side in sidecars):
                plan.failures.append(Failure(src, FILM_HINTS, "hints"))
                continue
            try:
                hints = _hints(filesystem, side, prefix + side) if side in sidecars else None
            except HintError as e:
                plan.failures.append(Failure(src, str(e), "hints"))
                continue
            # a film an earlier run wrote as .mkv (MP4 could not hold its audio) is done too
            names = [key, dst.with_suffix(".mkv").as_posix()] if out_fmt == VIDEO else [key]
            done = None if overwrite else next((k for k in names if k in existing), None)
            (plan.skipped if done else plan.jobs).append(Job(src, out_prefix + (done or key), out_fmt, hints))
    return plan


@dataclass
class Staging:
    """Local jobs standing for remote ones (:func:`staged`): ``jobs`` maps each local job to its
    original; ``failures`` are the originals whose photo could not be fetched, with the cause."""

    folder: Path
    jobs: dict[Job, Job] = field(default_factory=dict)
    failures: dict[Job, str] = field(default_factory=dict)

    def upload(self, local: Job, written: str | Path | None = None) -> str:
        """Copy a finished local output to its job's ``dst`` and say where it went (raises
        ``OSError`` whose message is the cause, naming the destination). ``written``: the file
        the output went to when not ``local.dst`` (a film's ``.mkv``); the destination then takes
        its suffix."""
        original, written = self.jobs[local], Path(written or local.dst)
        dst = str(original.dst)
        if written.suffix != Path(local.dst).suffix:
            dst = dst[: len(dst) - len(Path(local.dst).suffix)] + written.suffix
        if not is_uri(dst) or dst == str(written):
            return str(written)
        from pyarrow import fs

        try:
            filesystem, path, _ = _open(dst)
            if isinstance(filesystem, fs.LocalFileSystem):
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                with atomic_path(path) as tmp:
                    shutil.copyfile(written, tmp)
                return dst
            with open(written, "rb") as f, filesystem.open_output_stream(path) as out:
                shutil.copyfileobj(f, out, 1 << 20)
            return dst
        except OSError as e:
            raise OSError(f"output {dst}: cannot write: {' '.join(str(e).split())}") from e


@contextmanager
def staged(jobs: list[Job]) -> Iterator[Staging]:
    """Local stand-ins for ``jobs`` whose ``src`` or ``dst`` is a URI (the others as they are),
    in a temporary folder removed afterwards (made only when some job is remote); upload each
    finished output with :meth:`Staging.upload`."""
    remote = any(is_uri(job.src) or is_uri(job.dst) for job in jobs)
    with tempfile.TemporaryDirectory(prefix="dlnet-stage-") if remote else nullcontext() as tmp:
        staging = Staging(Path(tmp) if tmp else None)
        for i, job in enumerate(jobs):
            src, dst = job.src, job.dst
            try:
                if is_uri(src):
                    filesystem, path, _ = _open(src)
                    src = staging.folder / f"{i}{PurePosixPath(path).suffix}"
                    with filesystem.open_input_stream(path) as f, open(src, "wb") as out:
                        shutil.copyfileobj(f, out, 1 << 20)
            except OSError as e:
                staging.failures[job] = f"cannot read: {' '.join(str(e).split())}"
                continue
            if is_uri(dst):
                dst = staging.folder / "out" / f"{i}{PurePosixPath(str(dst)).suffix}"
            staging.jobs[dataclasses.replace(job, src=Path(src), dst=Path(dst))] = job
        yield staging
