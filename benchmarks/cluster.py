"""Photos/s of ``dlnet colorize --ray`` against the plain command, on one machine, in one run.

Makes ``--photos`` grey JPEG photos (``--height`` x ``--width``, seeded), then times, in turn:

- ``plain``: ``dlnet colorize SRC -o OUT`` in a fresh process (the runtime it chooses, its threads);
- ``--ray``: ``dlnet colorize SRC -o OUT --ray`` in a fresh process: a local Ray instance on this
  machine's cores, the default pool (one actor per CPU), the manifest: what a user sees, Ray's
  start included;
- the pool's scaling, through :func:`dlnet.infer.cluster.colorize_files` on one Ray instance
  started once (``--cpus`` CPUs): for each ``--pools`` entry ``ACTORSxCPUS`` (or
  ``ACTORSxCPUSxGPUS`` on a GPU node), the job's wall time (the actors' start, loading the
  model, included) and an actor's own rate, photos per second of its busy time (the manifest's
  ``seconds``): the number to multiply by the actors of a bigger cluster (docs/CLUSTER.md);
- ``cpu side``: one process on one core running :func:`dlnet.infer.batch.colorize_jobs` with a
  model call that costs nothing (decode, L*, a*b* upsampling and recombination, encode, write):
  the most photos/s one actor can give per core, however fast its accelerator.

Every run writes to a fresh output folder; the ONNX cache (a folder of this run) is filled first.
Run it with the machine otherwise idle (``bash /work/runs/quiet.sh python benchmarks/cluster.py``).

Usage:
    python benchmarks/cluster.py --photos 2000 --pools 1x2 2x1
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

CLI = "import sys; from dlnet.apps.cli import main; sys.exit(main())"


def photo(h: int, w: int, seed: int) -> np.ndarray:
    """A grey photo-like image: smooth waves and fine noise."""
    rng = np.random.default_rng(seed)
    y, x = np.ogrid[0:h, 0:w]
    grey = 128 + 60 * np.sin(x / (w / (20 + seed % 9))) + 50 * np.cos(y / (h / 28)) + rng.normal(0, 8, (h, w))
    return grey.clip(0, 255).astype(np.uint8)


def cli(args: list[str], cwd: Path) -> float:
    """Wall seconds of one ``dlnet`` command in a fresh process (it must succeed)."""
    t = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CLI, "colorize", *args], cwd=cwd, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    if done.returncode:
        sys.exit(f"dlnet colorize {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return time.perf_counter() - t


def busy_seconds(manifest: Path) -> float:
    with open(manifest, newline="") as f:
        return sum(float(row["seconds"] or 0) for row in csv.DictReader(f) if row["status"] == "done")


def cpu_side(src: Path, out: Path, photos: int) -> float:
    """Photos/s of the photo path around a free model call, on one core (this process)."""
    from dlnet.infer.batch import plan_jobs, colorize_jobs
    from dlnet.infer.options import InferenceOptions
    from dlnet.infer.pipeline import PhotoPipeline

    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    class FreeModel(PhotoPipeline):
        options, batch_size = InferenceOptions(), 8

        def _predict_batch(self, ls, shape, *_):
            return np.zeros((len(ls), 2, *shape), np.float32)

    jobs = plan_jobs([src], out).photo_jobs[:photos]
    t = time.perf_counter()
    assert all(outcome.ok for outcome in colorize_jobs(FreeModel(), jobs))
    return len(jobs) / (time.perf_counter() - t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=2000)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--cpus", type=int, default=os.cpu_count())
    parser.add_argument("--pools", nargs="+", default=["1x2", "2x1"], help="ACTORSxCPUS[xGPUS] each")
    parser.add_argument("--pool-photos", type=int, default=1000, help="photos per pool run (the first ones)")
    parser.add_argument("--cpu-side", type=Path, default=None, help=argparse.SUPPRESS)  # the one-core child run
    args = parser.parse_args()
    if args.cpu_side:
        print(f"{cpu_side(args.cpu_side, Path(tempfile.mkdtemp()), 400):.2f}")
        return

    work = Path(tempfile.mkdtemp(prefix="dlnet-cluster-bench-"))
    os.environ["DLNET_CACHE"] = str(work / "cache")
    src = work / "photos"
    for i in range(args.photos):
        (src / f"box{i % 20:02d}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(photo(args.height, args.width, i)).save(src / f"box{i % 20:02d}" / f"{i:05d}.jpg", quality=90)
    cli([str(src / "box00" / "00000.jpg"), "-o", str(work / "warm")], work)  # fills the ONNX cache

    import onnxruntime
    import ray

    n = args.photos
    print(f"{n} photos {args.width}x{args.height} JPEG, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}, ray {ray.__version__}, "
          f"onnxruntime {onnxruntime.__version__}")
    print("| run | wall s | photos/s | vs plain |")
    print("| --- | --- | --- | --- |")
    plain = cli([str(src), "-o", str(work / "plain")], work)
    print(f"| plain `dlnet colorize` | {plain:.1f} | {n / plain:.1f} | 1.00x |")
    wall = cli([str(src), "-o", str(work / "ray-cli"), "--ray"], work)
    print(f"| `dlnet colorize --ray` (local Ray started, default pool) | {wall:.1f} | {n / wall:.1f} | "
          f"{plain / wall:.2f}x |")

    from dlnet.infer.cluster import colorize_files

    t = time.perf_counter()
    ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, logging_level="ERROR")
    boxes = [src / f"box{i:02d}" for i in range(20)][:max(1, args.pool_photos * 20 // n)]
    m = sum(len(list(box.iterdir())) for box in boxes)
    print(f"\nRay start (ray.init, local, {args.cpus} CPUs): {time.perf_counter() - t:.1f} s; "
          f"then {m} photos per run (the first {len(boxes)} folders):\n")
    print("| actors x CPUs (x GPUs) | wall s | photos/s | vs plain | per actor, photos/s busy |")
    print("| --- | --- | --- | --- | --- |")
    for pool in args.pools:
        actors, cpus, gpus = (*(float(v) for v in pool.split("x")), 0.0)[:3]
        t = time.perf_counter()
        summary = colorize_files(boxes, work / f"ray-{pool}", actors=int(actors), num_cpus=cpus, num_gpus=gpus,
                                 report=lambda line: None)
        wall = time.perf_counter() - t
        assert (summary.done, summary.failed) == (m, 0), summary
        per_actor = m / busy_seconds(summary.manifest)  # photos per second of an actor's busy time
        print(f"| {pool} | {wall:.1f} | {m / wall:.1f} | {m / wall / (n / plain):.2f}x | {per_actor:.1f} |")
    ray.shutdown()
    side = subprocess.run([sys.executable, __file__, "--cpu-side", str(src)], check=True, capture_output=True,
                          text=True, env=os.environ).stdout.split()[-1]
    print(f"\ncpu side (the photo path around a free model call, one core, 400 photos): {side} photos/s")


if __name__ == "__main__":
    main()
