"""Whole-process start-up of dlnet: each run a fresh process, medians, two source trees side by side.

Times, for each tree given (``--tree NAME=SRC``, the ``src`` folder of a checkout; the current
one by default), runs taking turns so that a change of machine load hits all trees alike:

- ``help``: ``dlnet --help``; ``usage``: ``dlnet colorize`` with no path (a usage error);
- ``one_1mp``: ``dlnet colorize photo.jpg -o out`` of one 1-MP (1152 x 864) JPEG, default model;
- ``eight_256``: eight 256 x 256 JPEGs in one run; ``sixtyfour_256``: 64 of them (a folder in bulk,
  issue 32's 40 photos/s: 64 / its seconds), also its CPU time (all threads: on a shared machine
  the steadier figure, and on 2 cores half of it bounds the time from below);
- ``serve_first``: ``dlnet serve`` to its first answered request (one 1-MP photo);
  ``serve_request_early``: the median latency of the next five, sent at once;
  ``serve_torch_ready``: ``dlnet serve`` to serving with its steady runtime (a server that starts
  on onnxruntime hands over to PyTorch once loaded where PyTorch is faster per photo; /healthz's
  ``loading`` says while it does); ``serve_request``: the median latency of five requests after
  that, same photo.

The ONNX cache (dlnet.infer.onnxrun) is filled before timing and its first-run export timed apart
(``first_export``), in a cache folder of this run. Every tree runs with this Python (its
environment) and ``PYTHONPATH=SRC``; check out an older commit to compare with
``git worktree add /tmp/dlnet-base <commit>``.

Usage:
    python benchmarks/startup.py --tree before=/tmp/dlnet-base/src --tree after=src --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np
from PIL import Image

CLI = "import sys; from dlnet.apps.cli import main; sys.exit(main())"


def photo(h: int, w: int, seed: int) -> np.ndarray:
    """A grey photo-like image: smooth waves and fine noise."""
    rng = np.random.default_rng(seed)
    y, x = np.ogrid[0:h, 0:w]
    grey = 128 + 60 * np.sin(x / (w / 25)) + 50 * np.cos(y / (h / 28)) + rng.normal(0, 8, (h, w))
    return grey.clip(0, 255).astype(np.uint8)


CPU_S: dict[tuple[str, str], list[float]] = {}  # (src, first args) -> CPU seconds of each run, all threads


def run_cli(src: str, args: list[str], cwd: Path, env: dict) -> float:
    """Seconds of a fresh ``dlnet`` process; its CPU time goes to :data:`CPU_S`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", CLI, *args], cwd=cwd, env={**env, "PYTHONPATH": src},
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    CPU_S.setdefault((src, " ".join(args[:2])), []).append(cpu)
    return wall


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, data: bytes) -> bytes:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"p.jpg\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(url, body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return r.read()


def _handing_over(info: dict) -> bool:
    """Whether a server is still to hand over to PyTorch (/healthz's ``loading``; servers from
    before it existed always handed over on a CPU)."""
    return bool(info["loading"]) if "loading" in info else info.get("runtime", "torch") != "torch"


def run_serve(src: str, data: bytes, requests: int, env: dict) -> dict[str, float | list[float]]:
    """``dlnet serve`` timed: seconds to its first answered request (``first``), the latencies of
    ``requests`` more sent at once (``early``), seconds to when it serves with PyTorch (``ready``;
    a server that starts on onnxruntime hands over once PyTorch is loaded, /healthz says which),
    and the latencies of ``requests`` more after that (``late``)."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", CLI, "serve", "--port", str(port), "--log-level", "error"],
                            env={**env, "PYTHONPATH": src}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def timed_requests() -> list[float]:
        latencies = []
        for _ in range(requests):
            t = time.perf_counter()
            _post(base + "/v1/colorize", data)
            latencies.append(time.perf_counter() - t)
        return latencies

    try:
        while True:
            try:
                _post(base + "/v1/colorize", data)
                break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError("dlnet serve exited") from None
                time.sleep(0.02)
        result = {"first": time.perf_counter() - t0, "early": timed_requests()}
        while _handing_over(json.loads(urllib.request.urlopen(base + "/healthz").read())):
            if time.perf_counter() - t0 > 120:
                raise RuntimeError("dlnet serve did not hand over to PyTorch in 120 s")
            time.sleep(0.05)
        result["ready"] = time.perf_counter() - t0
        result["late"] = timed_requests()
        return result
    finally:
        proc.terminate()
        proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", action="append", default=None, metavar="NAME=SRC",
                    help="a source tree to time (repeatable; default: this checkout's src)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-serve", action="store_true", help="leave out the server timings")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    trees = dict(t.split("=", 1) for t in args.tree or [f"current={Path(__file__).parent.parent / 'src'}"])
    trees = {name: str(Path(src).resolve()) for name, src in trees.items()}
    tmp = Path(tempfile.mkdtemp(prefix="dlnet-startup-"))
    env = {**os.environ, "DLNET_CACHE": str(tmp / "cache")}
    Image.fromarray(photo(864, 1152, 0)).save(tmp / "photo.jpg", quality=90)
    for folder, n in (("eight", 8), ("sixtyfour", 64)):
        (tmp / folder).mkdir()
        for i in range(n):
            Image.fromarray(photo(256, 256, i + 1)).save(tmp / folder / f"{i}.jpg", quality=90)
    cases = {"help": ["--help"], "usage": ["colorize"], "one_1mp": ["colorize", "photo.jpg", "-o", "out"],
             "eight_256": ["colorize", "eight", "-o", "out"], "sixtyfour_256": ["colorize", "sixtyfour", "-o", "out"]}
    first_export = {name: run_cli(src, cases["one_1mp"] + ["--overwrite"], tmp, env) for name, src in trees.items()}
    times: dict[str, dict[str, list[float]]] = {name: {case: [] for case in cases} for name in trees}
    for _ in range(args.repeats):
        for case, argv in cases.items():
            for name, src in trees.items():
                overwrite = ["--overwrite"] if argv[0] == "colorize" and len(argv) > 1 else []
                times[name][case].append(run_cli(src, argv + overwrite, tmp, env))
    results = {name: {case: statistics.median(ts) for case, ts in by_case.items()} for name, by_case in times.items()}
    for name in trees:
        results[name]["first_export"] = first_export[name]
    if not args.no_serve:
        data = (tmp / "photo.jpg").read_bytes()
        for name, src in trees.items():
            runs = [run_serve(src, data, 5, env) for _ in range(max(1, args.repeats // 2))]
            results[name]["serve_first"] = statistics.median(r["first"] for r in runs)
            results[name]["serve_request_early"] = statistics.median(x for r in runs for x in r["early"])
            results[name]["serve_torch_ready"] = statistics.median(r["ready"] for r in runs)
            results[name]["serve_request"] = statistics.median(x for r in runs for x in r["late"])
    rows = list(next(iter(results.values())))
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, median of {args.repeats} fresh processes, s")
    print("| case | " + " | ".join(trees) + " |")
    print("| --- |" + " --- |" * len(trees))
    for row in rows:
        print(f"| {row} | " + " | ".join(f"{results[name][row]:.3f}" for name in trees) + " |")
    print("| sixtyfour_256, photos/s | " + " | ".join(f"{64 / results[name]['sixtyfour_256']:.1f}" for name in trees) + " |")
    print("| sixtyfour_256, CPU s (all threads) | " + " | ".join(
        f"{statistics.median(CPU_S[(src, 'colorize sixtyfour')]):.2f}" for src in trees.values()) + " |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
