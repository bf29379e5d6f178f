"""Colorize an archive on a Ray cluster: ``dlnet colorize``'s photos and films as a Ray Data job.

One ``dlnet colorize`` process does not serve a million scans; Ray Data spreads the work (a pool
of model actors on CPUs or GPUs, retries, back-pressure) from this machine's cores (a local Ray
instance) to a cluster (``ray up``, KubeRay: docs/CLUSTER.md). Nothing of the photo path is new:

- the driver plans the jobs as the plain command does (:func:`dlnet.infer.batch.plan_jobs`: the
  same inputs, the same output paths, existing outputs skipped, collisions refused);
- Ray Data hands batches of jobs to a pool of actors; each loads the model once, on the runtime
  the plain command would choose for the same photos, and runs
  :func:`dlnet.infer.batch.colorize_jobs` on its batches: read, colorize, write each output
  atomically, on the node that runs it (so paths must be the same on every node: a shared file
  system; buckets: docs/CLUSTER.md);
- a result row per photo streams back to the driver, which appends it to the manifest as the job
  goes (:data:`COLUMNS`: input, output, status ``done``/``skipped``/``failed``, error, seconds),
  ``OUT/dlnet-manifest.csv`` by default.

A photo that cannot be read, colorized or written is a ``failed`` row with its one-line cause and
the job goes on. A rerun skips the photos whose output exists (outputs are written whole or not
at all, so an existing one is finished) and retries the failed ones. An actor that dies (a killed
process, a lost node) is restarted by Ray and its unfinished batch runs again: no photo is lost
or half-written; a photo already written by the dead actor is written again, whole. Films
(local paths: a shared file system) are rows of their own, each colorized whole by one actor
with :func:`dlnet.infer.video.colorize_video` (written as the plain command writes them, ``.mkv``
where MP4 cannot hold their audio; the manifest names the file written).

For a Ray pipeline of your own, :func:`colorize_dataset` is one stage: rows with ``src`` and
``dst`` (and optionally ``format``) in, result rows out.

Example:
    >>> summary = colorize_files(["scans/"], "colour", address="auto")   # doctest: +SKIP
    >>> summary.done, summary.failed, summary.manifest                    # doctest: +SKIP
    (1000000, 3, PosixPath('colour/dlnet-manifest.csv'))
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from dlnet.errors import DLNetError
from dlnet.infer.batch import VIDEO, Job, colorize_jobs, plan_jobs
from dlnet.infer.manifest import COLUMNS, Manifest, Progress, where
from dlnet.infer.options import InferenceOptions
from dlnet.infer.remote import is_uri, plan_uris, staged
from dlnet.infer.runtime import Work, load_colorizer, weigh_films
from dlnet.io.hints import parse_hints

__all__ = ["colorize_files", "colorize_dataset", "jobs_dataset", "connect", "Summary", "ClusterError", "COLUMNS",
           "MANIFEST"]

MANIFEST = "dlnet-manifest.csv"  # the manifest's name in the output folder
CALLS_PER_MODEL_BATCH = 4  # rows per actor call, in model batches: photos of one shape can meet


def _report(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class ClusterError(DLNetError, RuntimeError):
    """The job cannot go on (the model actors cannot start, the cluster is gone): one line."""


@dataclass
class Summary:
    """What :func:`colorize_files` did: photos and films colorized, skipped (output already
    there) and failed, and where the manifest is."""

    done: int = 0
    skipped: int = 0
    failed: int = 0
    manifest: Path | None = None
    bad_hints: bool = False  # some failure was the user's hints' fault (the CLI exits 2, as without Ray)

    @property
    def exit_code(self) -> int:
        """``dlnet colorize``'s: 2 for bad hints, 1 for any other failure, else 0."""
        return 2 if self.bad_hints else 1 if self.failed else 0


class _Colorize:
    """The Ray actor: loads the model once, then colorizes batches of rows with
    :func:`~dlnet.infer.batch.colorize_jobs` (photos) and :func:`~dlnet.infer.video.colorize_video`
    (films, with the keywords ``film``), one result row per input row.

    ``seconds`` is the actor's time from its previous result to this one: reading the photo,
    the model call of its batch (carried by the batch's first photo), writing it. Their sum is
    the actor's busy time, so per-actor rates come from the manifest.
    """

    def __init__(self, model, options: InferenceOptions, side_by_side: bool, runtime: str | None, device: str | None,
                 batch_size: int, compile: bool, photos: int | None, frames: int = 0, film: dict | None = None,
                 overwrite: bool = False) -> None:
        self.options, self.side_by_side, self.film, self.overwrite = options, side_by_side, film or {}, overwrite
        self.error = None
        try:
            # The runtime the plain command would choose for all the job's photos and frames, not an actor's share.
            self.colorizer = load_colorizer(model, Work(photos=photos, frames=frames, size=options.size), runtime,
                                            device, batch_size=batch_size, options=options, compile=compile)
            self.colorizer.check_options(options)
        except Exception as e:  # a bad model file or option, no CUDA here: said once, by the first batch
            # (raised here, Ray would restart the actor again and again, each time with a traceback)
            self.error = " ".join(f"{type(e).__name__}: {e}".split())

    def __call__(self, batch: dict) -> dict:
        if self.error is not None:
            raise ClusterError(f"the model actors could not start: {self.error}")
        if "src" not in batch or "dst" not in batch:
            raise ValueError(f"colorize_dataset needs rows with 'src' and 'dst' columns, got {sorted(batch)}")
        n = len(batch["src"])
        fmts, hints = (batch[k] if k in batch else [None] * n for k in ("format", "hints"))
        rows: dict[Job, list[int]] = {}  # src and dst as given: local paths or URIs (dlnet.infer.remote)
        for i, (src, dst, fmt, own) in enumerate(zip(batch["src"], batch["dst"], fmts, hints)):
            own = parse_hints(json.loads(own)) if isinstance(own, str) and own else None  # else the options'
            rows.setdefault(Job(str(src), str(dst), fmt or None, own), []).append(i)
        out = {"input": [str(s) for s in batch["src"]], "output": [str(d) for d in batch["dst"]],
               "status": ["failed"] * n, "error": [""] * n, "seconds": [0.0] * n, "kind": [""] * n}
        clock = time.perf_counter()

        def finish(job: Job, cause: str | None, kind: str = "input", status: str = "done") -> None:
            nonlocal clock
            now = time.perf_counter()
            for i in rows[job]:
                out["status"][i], out["error"][i] = (status, "") if cause is None else ("failed", cause)
                out["seconds"][i], out["kind"][i] = round(now - clock, 4), "" if cause is None else kind
            clock = now

        films = [job for job in rows if job.fmt == VIDEO]
        for job in films:
            status, cause, written = self._film(job)
            finish(job, cause, status=status)
            for i in rows.pop(job):
                out["output"][i] = written
        with staged(list(rows)) as staging:  # remote photos fetched to local files, the rest as they are
            for job, cause in staging.failures.items():
                finish(job, cause)
            for outcome in colorize_jobs(self.colorizer, list(staging.jobs), self.options, self.side_by_side):
                cause = outcome.cause
                if outcome.ok:
                    try:
                        staging.upload(outcome.job)
                    except OSError as e:
                        cause = str(e)
                finish(staging.jobs[outcome.job], cause, outcome.kind)
        extra = {k: v for k, v in batch.items() if k not in ("src", "dst", "format", "hints", *COLUMNS)}
        return {**extra, **out}  # the caller's own columns (an id, say) ride along

    def _film(self, job: Job) -> tuple[str, str | None, str]:
        """Colorize one film as ``dlnet colorize`` does -> (its status, the cause of its failure or
        None, the file written: ``job.dst``, or ``.mkv`` where MP4 cannot hold its audio)."""
        from dlnet.infer.video import colorize_video, film_destination, film_failure

        written = str(job.dst)
        with staged([job]) as staging:  # a film in a bucket fetched to a local file, a local one as it is
            for cause in staging.failures.values():
                return "failed", cause, written
            (local,) = staging.jobs
            try:
                final, earlier = film_destination(local.src, local.dst, self.overwrite)
                if earlier:  # an earlier run wrote it as .mkv
                    return "skipped", None, str(final)
                colorize_video(self.colorizer, local.src, final, self.options, side_by_side=self.side_by_side,
                               **self.film)
            except Exception as e:  # a bad film, or the model failing, say: this film only
                return "failed", " ".join(film_failure(e, local.src).split()), written
            try:
                return "done", None, staging.upload(local, final)
            except OSError as e:
                return "failed", str(e), written


def connect(address: str | None = None, **init_kwargs) -> None:
    """Join Ray unless this process already has: ``None`` or ``"local"`` starts a local instance
    on this machine's cores, ``"auto"`` joins the cluster this machine belongs to (``ray start``,
    ``ray up``, a KubeRay pod), anything else is a Ray address (``HOST:6379``, ``ray://HOST:10001``).
    ``init_kwargs`` go to :func:`ray.init` (``num_cpus=2``, ``runtime_env=...``)."""
    import ray

    if ray.is_initialized():
        return
    ray.init(address="local" if address in (None, "local") else address, logging_level=logging.ERROR,
             **init_kwargs)


def _check_fits(num_cpus: float, num_gpus: float, local: bool, report: Callable[[str], None]) -> None:
    """An actor no node can hold would wait for ever: on this machine that is an error, on a
    cluster a line (an autoscaler may yet add such a node)."""
    import ray

    nodes = [node["Resources"] for node in ray.nodes() if node["Alive"]]
    if any(n.get("CPU", 0) >= num_cpus and n.get("GPU", 0) >= num_gpus for n in nodes):
        return
    need = f"{num_cpus:g} CPUs" + (f" and {num_gpus:g} GPUs" if num_gpus else "")
    largest = max(nodes, key=lambda n: (n.get("GPU", 0), n.get("CPU", 0)), default={})
    what = f"an actor needs {need}, and no node has that (the largest: {largest.get('CPU', 0):g} CPUs, " \
           f"{largest.get('GPU', 0):g} GPUs)"
    if local:
        raise ClusterError(what)
    report(f"{what}: the actors wait until the cluster adds such a node")


def _default_actors(num_cpus: float, num_gpus: float) -> int:
    """As many actors as the cluster's CPUs (or GPUs, for GPU actors) hold now, at least one."""
    import ray

    resources = ray.cluster_resources()
    fit = resources.get("GPU", 0) / num_gpus if num_gpus else resources.get("CPU", 1) / num_cpus
    return max(1, int(fit))


def colorize_dataset(ds, model=None, options: InferenceOptions | None = None, *, side_by_side: bool = False,
                     runtime: str | None = None, device: str | None = None, batch_size: int = 8, compile: bool = False,
                     actors: int | None = None, num_cpus: float = 1, num_gpus: float = 0, photos: int | None = None,
                     frames: int = 0, film: dict | None = None, overwrite: bool = False, per_block: bool = False):
    """Add colorization to a Ray Dataset as one stage: a pool of ``actors`` actors (default: as
    many as the cluster's CPUs, or GPUs when ``num_gpus``, hold), each with ``num_cpus`` CPUs
    and ``num_gpus`` GPUs (fractions share one), loading ``model`` once (a shipped name, a
    ``.safetensors``/``.ckpt``/``.onnx`` file readable on every node; None: the default model).

    Rows need ``src`` (a photo's path) and ``dst`` (its output's path; its suffix picks the format
    unless a ``format`` column gives a PIL name such as ``"JPEG"``, or ``"video"`` for a film); a
    ``hints`` column may give a photo its own hints (a sidecar's JSON text; None:
    ``options.hints``). Outputs are written by the actors, atomically. Result rows:
    :data:`COLUMNS` (``output``: the file written) and ``kind`` (``"hints"`` where a photo's
    hints failed it), plus the input's other columns. ``runtime`` (``"torch"``, ``"onnx"``, None:
    the plain command's choice for ``photos`` photos and ``frames`` frames of film), ``device``,
    ``batch_size`` (photos per model call) and ``compile`` are ``dlnet colorize``'s flags;
    ``film``: :func:`~dlnet.infer.video.colorize_video`'s keywords for films (``temporal``,
    ``crf``, ``preset``); ``overwrite``: replace a film's ``.mkv`` output of an earlier run.
    ``per_block``: each of ``ds``'s blocks is one actor call (as :func:`jobs_dataset` makes them:
    a film alone, so that films spread over the actors), else calls of a few model batches.

    Example:
        >>> ds = ray.data.from_items([{"src": "/archive/a.jpg", "dst": "/colour/a.jpg"}])  # doctest: +SKIP
        >>> colorize_dataset(ds, num_gpus=1).write_parquet("/colour/results")               # doctest: +SKIP
    """
    import ray.data

    options = options or InferenceOptions()
    if actors is None:
        actors = _default_actors(num_cpus, num_gpus)
    if model is not None and not is_uri(model) and Path(model).exists():
        model = Path(model).absolute()  # a file, found by actors whatever their working folder
    device = device or ("cuda" if num_gpus else None)
    return ds.map_batches(
        _Colorize, batch_size=None if per_block else CALLS_PER_MODEL_BATCH * max(1, batch_size), batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=num_cpus, num_gpus=num_gpus or None,
        fn_constructor_kwargs=dict(model=None if model is None else str(model), options=options,
                                   side_by_side=side_by_side, runtime=runtime, device=device, batch_size=batch_size,
                                   compile=compile, photos=photos, frames=frames, film=film, overwrite=overwrite))


def _hints_json(hints) -> str | None:
    """A job's own hints (its sidecar's) as the JSON a sidecar holds, None for none."""
    if hints is None:
        return None
    return json.dumps([{"x": h.x, "y": h.y, "color": list(h.color), "radius": h.radius} for h in hints])


def jobs_dataset(jobs: list[Job], rows_per_block: int = 32):
    """Jobs as a Ray Dataset of ``id``, ``src``, ``dst``, ``format``, ``hints`` rows (absolute
    paths, so an actor finds them whatever its working folder), in blocks of ``rows_per_block`` so that the
    actors share them and a retried block is small; a film is a block of its own."""
    import pyarrow as pa
    import ray.data

    tables, start = [], 0
    while start < len(jobs):
        n = 1 if jobs[start].fmt == VIDEO else rows_per_block
        chunk = jobs[start:start + n]
        chunk = chunk[:next((i for i, job in enumerate(chunk) if job.fmt == VIDEO), len(chunk))] or chunk
        strings = {"src": [where(job.src) for job in chunk], "dst": [where(job.dst) for job in chunk],
                   "format": [job.fmt for job in chunk], "hints": [_hints_json(job.hints) for job in chunk]}
        # Typed: a block whose hints are all None must not become a column of NaN floats.
        tables.append(pa.table({"id": pa.array(range(start, start + len(chunk)), pa.int64()),
                                **{k: pa.array(v, pa.string()) for k, v in strings.items()}}))
        start += len(chunk)
    return ray.data.from_arrow(tables)


def colorize_files(paths: Iterable[str | Path], output_dir: str | Path, options: InferenceOptions | None = None, *,
                   model=None, overwrite: bool = False, side_by_side: bool = False, address: str | None = None,
                   manifest: str | Path | None = None, report: Callable[[str], None] = _report,
                   progress_every: float = 10.0, film: dict | None = None, **stage) -> Summary:
    """Colorize ``paths`` (files, folders, globs: ``dlnet colorize``'s inputs, photos and films)
    into ``output_dir`` on Ray (``address``: see :func:`connect`), writing the manifest (default
    ``output_dir/dlnet-manifest.csv``) as the job goes. ``film``: the films' keywords for
    :func:`~dlnet.infer.video.colorize_video` (``temporal``, ``crf``, ``preset``).

    ``report`` gets one line per failed input (``<file>: <cause>``, as the plain command prints
    it) and a progress line every ``progress_every`` seconds. ``stage``: :func:`colorize_dataset`'s
    keywords (``actors``, ``num_cpus``, ``num_gpus``, ``batch_size``, ``runtime``, ``device``,
    ``compile``). Raises ``ModuleNotFoundError`` without Ray (``pip install "dlnet[cluster]"``).
    """
    import ray  # noqa: F401  (before any work: without the extra, fail at once)

    options = options or InferenceOptions()
    paths = [str(p) if is_uri(p) else p for p in paths]
    remote = is_uri(output_dir) or any(map(is_uri, paths))
    plan = (plan_uris if remote else plan_jobs)(paths, output_dir, options, overwrite)
    # Beside the outputs; an object store cannot be appended to, so then in the current folder.
    default = Path(MANIFEST) if is_uri(output_dir) else Path(output_dir) / MANIFEST
    summary = Summary(manifest=Path(manifest) if manifest is not None else default)
    log = Manifest(summary.manifest)
    try:
        for failure in plan.failures:
            report(f"{failure.path}: {failure.cause}")
            log.add(failure.path, "failed", failure.cause)
            summary.bad_hints |= failure.kind == "hints"
        for job in plan.skipped:
            log.add(job, "skipped")
        log.flush()
        summary.failed, summary.skipped = len(plan.failures), len(plan.skipped)
        jobs = plan.photo_jobs + plan.video_jobs  # (the films last: each is a long task of its own)
        if jobs:
            connect(address)
            _check_fits(stage.get("num_cpus", 1), stage.get("num_gpus", 0), address in (None, "local"), report)
            films = f" and {len(plan.video_jobs):,} films" if plan.video_jobs else ""
            report(f"colorizing {len(plan.photo_jobs):,} photos{films} on Ray; manifest: {summary.manifest}")
            _run(jobs, options, model, side_by_side, {**stage, "film": film, "overwrite": overwrite}, log, summary,
                 report, progress_every)
    finally:
        log.close()
    return summary


def _batches(ds):
    """``ds``'s result batches; a failure of the job itself (not of a photo) as a :class:`ClusterError`."""
    import ray.exceptions

    try:
        yield from ds.iter_batches(batch_size=None, batch_format="numpy")
    except ray.exceptions.RayError as e:
        # Ray Data hands the actor's exception back as text (a traceback): find ours in it.
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        ours = [line.partition("ClusterError: ")[2] for line in lines if "ClusterError: " in line]
        if ours:
            raise ClusterError(ours[-1]) from None
        causes = [line for line in lines
                  if re.match(r"[\w.]+(Error|Exception): ", line) and not line.startswith("ray.")]
        raise ClusterError(f"the Ray job failed: {causes[-1] if causes else lines[-1] if lines else repr(e)}") from None


def _run(jobs: list[Job], options: InferenceOptions, model, side_by_side: bool, stage: dict, log: Manifest,
         summary: Summary, report: Callable[[str], None], progress_every: float) -> None:
    """Run the jobs through :func:`colorize_dataset`, logging each result row as it arrives."""
    import ray.data

    stage = {"batch_size": 8, "num_cpus": 1, "num_gpus": 0, **stage}
    if stage.get("actors") is None:
        stage["actors"] = _default_actors(stage["num_cpus"], stage["num_gpus"])
    # Blocks of a few model batches, fewer photos when there are too few to keep every actor busy.
    block = max(1, min(CALLS_PER_MODEL_BATCH * stage["batch_size"], -(-len(jobs) // stage["actors"])))
    films = [job.src for job in jobs if job.fmt == VIDEO]
    work = weigh_films(Work(photos=len(jobs) - len(films), size=options.size), films, model, stage.get("runtime"),
                       stage.get("device"), stage.get("compile", False), options.temperature)
    ds = colorize_dataset(jobs_dataset(jobs, block), model, options, side_by_side=side_by_side, photos=work.photos,
                          frames=work.frames, per_block=True, **stage)
    progress = Progress(len(jobs), report, progress_every)
    finished = failed = skipped = 0
    # Our progress lines stand for Ray Data's (in a log: a block of lines every few seconds).
    context, logger = ray.data.DataContext.get_current(), logging.getLogger("ray.data")
    bars, level = context.enable_progress_bars, logger.level
    context.enable_progress_bars = False
    logger.setLevel(logging.CRITICAL)  # a failed job is one line (ClusterError), not Ray Data's traceback
    try:
        for batch in _batches(ds):
            for i, status, error, seconds, kind, output in zip(batch["id"], batch["status"], batch["error"],
                                                               batch["seconds"], batch["kind"], batch["output"]):
                job = jobs[int(i)]
                log.add(job, str(status), str(error), float(seconds), str(output))
                skipped += status == "skipped"  # (a film an earlier run wrote as .mkv)
                if status == "failed":
                    failed += 1
                    summary.bad_hints |= kind == "hints"
                    report(f"{job.src}: {error}")
            log.flush()
            finished += len(batch["id"])
            progress.update(finished, failed)
    finally:
        context.enable_progress_bars = bars
        logger.setLevel(level)
        summary.done += finished - failed - skipped
        summary.failed += failed
        summary.skipped += skipped
    progress.update(finished, failed, final=True)
