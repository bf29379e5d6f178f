"""Load benchmark for ``dlnet serve``: many concurrent uploads over loopback, bounded, self-stopping.

Starts ``dlnet serve`` in a subprocess on 127.0.0.1 (a free port), sends ``--requests`` uploads from
``--clients`` concurrent httpx clients, and reports successes, 5xx errors (target 0), the 503s the
server answered for back-pressure (counted apart: clients wait ``Retry-After`` and retry), latency
percentiles and the server's peak resident memory (Linux ``VmHWM``). Traffic goes to 127.0.0.1 only;
the run stops after ``--time-limit`` seconds whatever happens.

Usage:
    python benchmarks/serve_load.py                       # 100 uploads, 16 clients
    python benchmarks/serve_load.py --requests 20 --clients 4 --weights my.safetensors
    python benchmarks/serve_load.py --queue 8               # smaller queue: back-pressure (503s)
    python benchmarks/serve_load.py --requests 50 --clients 50 --photo-size 1024 --no-retry   # 50 at once, 1 MP
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from dlnet.apps.serve import ServeSettings

MAX_RETRIES = 30  # per upload, on 503
REQUEST_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def model_file(workdir: Path) -> tuple[str, str]:
    """The shipped default model if there is one, else a random-init densenet121 (same architecture)."""
    from dlnet import DLNet, ModelConfig, available_models, save_model
    from dlnet.model.weights import DEFAULT_MODEL

    if DEFAULT_MODEL in available_models():
        return DEFAULT_MODEL, f"shipped {DEFAULT_MODEL}"
    path = save_model(DLNet(ModelConfig(encoder="densenet121", pretrained=False)), workdir / "densenet121.safetensors")
    return str(path), "random-init densenet121 (no shipped model yet)"


def test_photo(size: int) -> bytes:
    """A grey JPEG of scikit-image's astronaut, ``size`` px square: a typical old-photo upload."""
    from skimage import data
    from skimage.color import rgb2gray

    grey = Image.fromarray((rgb2gray(data.astronaut()) * 255).round().astype(np.uint8))
    buf = io.BytesIO()
    grey.resize((size, size), Image.Resampling.LANCZOS).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def wait_ready(base: str, server: subprocess.Popen, deadline: float) -> dict:
    async with httpx.AsyncClient(base_url=base, timeout=5) as client:
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise SystemExit(f"the server exited early with code {server.returncode}")
            try:
                return (await client.get("/healthz")).json()
            except httpx.TransportError:
                await asyncio.sleep(0.2)
    raise SystemExit("the server did not start in time")


async def load(base: str, photo: bytes, n: int, clients: int, size: int, deadline: float, retries: int) -> dict:
    """Send ``n`` uploads from ``clients`` concurrent clients, each retrying a 503 up to ``retries``
    times; none is started after ``deadline``."""
    todo = iter(range(n))
    stats = {"ok": 0, "server_errors": 0, "client_errors": 0, "busy_503": 0, "gave_up": 0, "not_sent": 0,
             "latency": [], "end_to_end": []}

    async def one_upload(client: httpx.AsyncClient) -> None:
        first = time.perf_counter()
        for _ in range(retries + 1):
            start = time.perf_counter()
            resp = await client.post("/v1/colorize", files={"file": ("photo.jpg", photo, "image/jpeg")},
                                     data={"size": str(size)})
            if resp.status_code == 503 and "retry-after" in resp.headers:
                stats["busy_503"] += 1  # back-pressure, not a failure: wait as asked, then retry
                if retries:
                    await asyncio.sleep(float(resp.headers["retry-after"]))
                continue
            now = time.perf_counter()
            if resp.status_code == 200:
                stats["ok"] += 1
                stats["latency"].append(now - start)
                stats["end_to_end"].append(now - first)
            elif resp.status_code >= 500:
                stats["server_errors"] += 1
                print(f"  {resp.status_code}: {resp.text[:200]}", file=sys.stderr)
            else:
                stats["client_errors"] += 1
                print(f"  {resp.status_code}: {resp.text[:200]}", file=sys.stderr)
            return
        stats["gave_up"] += 1

    async def client_loop() -> None:
        async with httpx.AsyncClient(base_url=base, timeout=REQUEST_TIMEOUT_S) as client:
            for _ in todo:
                if time.monotonic() > deadline:
                    stats["not_sent"] += 1
                    continue
                await one_upload(client)

    started = time.perf_counter()
    await asyncio.gather(*(client_loop() for _ in range(clients)))
    stats["wall_s"] = time.perf_counter() - started
    return stats


def percentile(xs: list[float], q: float) -> float:
    return float(np.percentile(xs, q)) if xs else float("nan")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=100)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--photo-size", type=int, default=512, help="uploaded photo side, px")
    p.add_argument("--size", type=int, default=256, help="working size asked for")
    p.add_argument("--weights", default=None, help="model (default: shipped, else random-init densenet121)")
    defaults = ServeSettings()
    p.add_argument("--workers", type=int, default=defaults.workers)
    p.add_argument("--queue", type=int, default=defaults.queue_size)
    p.add_argument("--time-limit", type=float, default=600, help="stop after this many seconds")
    p.add_argument("--no-retry", action="store_true", help="clients give up on a 503 (count it) instead of retrying")
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        weights, model_desc = (args.weights, args.weights) if args.weights else model_file(Path(tmp))
        photo = test_photo(args.photo_size)
        port = free_port()
        cmd = [sys.executable, "-m", "dlnet.apps.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
               "--weights", weights, "--workers", str(args.workers), "--queue", str(args.queue),
               "--log-level", "warning"]
        server = subprocess.Popen(cmd, start_new_session=True)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + args.time_limit
            info = asyncio.run(wait_ready(base, server, deadline))
            # The deadline stops new uploads; the hard limit also cuts those in flight.
            hard_limit = deadline - time.monotonic() + REQUEST_TIMEOUT_S
            stats = asyncio.run(asyncio.wait_for(
                load(base, photo, args.requests, args.clients, args.size, deadline,
                     0 if args.no_retry else MAX_RETRIES), hard_limit))
            rss = peak_rss_mb(server.pid)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)

    lat, e2e = stats["latency"], stats["end_to_end"]
    result = {
        "model": model_desc, "device": info["device"], "precision": info["precision"],
        "cpus": os.cpu_count(), "requests": args.requests, "clients": args.clients,
        "photo": f"{args.photo_size}x{args.photo_size} JPEG ({len(photo) // 1024} KiB)", "working_size": args.size,
        "workers": args.workers, "queue": args.queue,
        "ok": stats["ok"], "5xx": stats["server_errors"], "4xx": stats["client_errors"],
        "503_backpressure": stats["busy_503"], "gave_up": stats["gave_up"], "not_sent": stats["not_sent"],
        "p50_s": round(percentile(lat, 50), 3), "p95_s": round(percentile(lat, 95), 3),
        "p50_end_to_end_s": round(percentile(e2e, 50), 3), "p95_end_to_end_s": round(percentile(e2e, 95), 3),
        "throughput_per_s": round(stats["ok"] / stats["wall_s"], 2), "wall_s": round(stats["wall_s"], 1),
        "server_peak_rss_mb": round(rss),
        "mean_s": round(statistics.fmean(lat), 3) if lat else None,
    }
    print(json.dumps(result, indent=2))
    return 0 if stats["server_errors"] == 0 and stats["ok"] == args.requests else 1


if __name__ == "__main__":
    sys.exit(main())
