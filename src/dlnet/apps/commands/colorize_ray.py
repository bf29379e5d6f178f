"""The cluster half of ``dlnet colorize``: ``--ray [ADDRESS]`` and the pool's flags.

With ``--ray`` the photos and films are colorized by a Ray Data job (:mod:`dlnet.infer.cluster`):
the same inputs, outputs and options as without it, a manifest beside the outputs (its path
printed), one line per failed file, a progress line every 10 s, exit code 1 if any file failed. Needs
the ``cluster`` extra (``pip install "dlnet[cluster]"``); docs/CLUSTER.md for a real cluster.

Example:
    $ dlnet colorize scans/ -o colour --ray                    # a local Ray instance, this machine's cores
    $ dlnet colorize /nfs/scans -o /nfs/colour --ray auto --ray-gpus 1   # the running cluster, GPU actors
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from dlnet.apps.commands import UsageError, one_line


def configure(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("cluster (Ray Data; extra: pip install \"dlnet[cluster]\")")
    group.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                       help="colorize photos and films on Ray: alone, a local Ray instance on this machine's cores; 'auto' "
                            "joins the running cluster; or a Ray address (HOST:6379, ray://HOST:10001). Put it "
                            "after the photos, or write --ray=ADDRESS")
    group.add_argument("--ray-actors", type=int, default=None, metavar="N",
                       help="model actors (default: as many as the cluster's CPUs, or GPUs, hold)")
    group.add_argument("--ray-cpus", type=float, default=1.0, metavar="C",
                       help="CPUs per actor, its threads (default: %(default)g)")
    group.add_argument("--ray-gpus", type=float, default=0.0, metavar="G",
                       help="GPUs per actor, fractions share one; > 0 runs the model on CUDA (default: %(default)g)")


def check(args: argparse.Namespace) -> None:
    """Refuse a value that cannot be a Ray address (a photo swallowed by ``--ray``) or a bad pool."""
    address = args.ray
    if address not in ("local", "auto") and ":" not in address:
        raise UsageError(f"--ray {address!r} is not a Ray address (auto, HOST:PORT, ray://HOST:PORT); "
                         "put --ray after the photos, or write --ray=ADDRESS")
    if args.ray_actors is not None and args.ray_actors < 1:
        raise UsageError(f"--ray-actors must be >= 1, got {args.ray_actors}")
    if not args.ray_cpus > 0 or not args.ray_gpus >= 0:
        raise UsageError("--ray-cpus must be > 0 and --ray-gpus >= 0")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {args.batch_size}")
    from dlnet.model.weights import resolve

    if not resolve(args.model).is_file():  # checked here, not by every actor as it starts
        raise UsageError(f"--model {args.model}: no such model file or shipped model")


def output_location(path: Path) -> str | Path:
    """``-o`` as the user wrote it: a URI (``s3://bucket/colour``) comes back from ``Path``, which
    folds its ``//`` (``s3:/bucket/colour``), as the URI; a local folder as it is."""
    m = re.fullmatch(r"([a-z][a-z0-9+.-]+):/(.*)", str(path))
    if m is None:
        return path
    scheme, rest = m.groups()
    return f"{scheme}:///{rest}" if scheme == "file" else f"{scheme}://{rest}"


def run(args: argparse.Namespace, options) -> int:
    """Colorize ``args.paths`` on Ray; the exit code: 0, 1 if any input failed, 2 if hints were at fault."""
    check(args)
    import ray  # noqa: F401  (without the extra: the one-line hint of dlnet.apps.cli)

    from dlnet.infer.cluster import ClusterError, colorize_files

    def report(line: str) -> None:
        print(one_line(line), file=sys.stderr, flush=True)

    try:
        summary = colorize_files(args.paths, output_location(args.output_dir), options, model=args.model,
                                 overwrite=args.overwrite, side_by_side=args.side_by_side, address=args.ray,
                                 report=report, actors=args.ray_actors, num_cpus=args.ray_cpus,
                                 num_gpus=args.ray_gpus, batch_size=args.batch_size, runtime=args.runtime,
                                 device=args.device, compile=args.compile,
                                 film=dict(temporal=args.temporal, crf=args.crf, preset=args.preset))
    except (ClusterError, ConnectionError) as e:  # ConnectionError: no cluster at the address
        raise UsageError(str(e)) from None
    print(f"{summary.done} colorized, {summary.skipped} skipped, {summary.failed} failed; manifest: {summary.manifest}")
    return summary.exit_code
