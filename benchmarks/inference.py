"""Inference speed and memory of the Colorizer path on the CPU, with Zhang ECCV16 side by side.

Measures, for a random-init densenet121 DL-Net (the paper's architecture), or with ``--model
default`` the shipped default model, on ``--threads`` CPU threads:

- throughput: img/s of the model call (``Colorizer.predict_ab``) on a (16, 1, 224, 224) batch,
  and ``photos_img_s``: 16 224x224 photos through ``Colorizer.colorize_batch`` at the default
  working size (what a user colorizing photos gets);
- latency: one 224x224 photo through ``Colorizer.colorize`` (L* in, model at 224, colour out),
  and ``latency_default_ms``: the same at the default working size;
- 12 MP: a synthetic 4000x3000 JPEG read, colorized (working size 256) and written as JPEG,
  each setting in a fresh subprocess: wall time (first call and warm call) and peak RSS;

for four settings: PyTorch fp32, PyTorch bf16 autocast + channels_last (the Colorizer's default
where the CPU has AVX-512/AMX; run as dlnet.model.fast's inference copy), the same without it
(``bf16_unoptimized``), onnxruntime fp32 (and with ``--compile`` bf16 + torch.compile,
its compile time counted in the 12-MP "first" time only); plus plain eager fp32 (NCHW, no Colorizer) and
Zhang et al.'s ECCV16 network (benchmarks/zhang_eccv16.py) at the same input size, timed in the
same run so the ratios are like for like. All figures are medians.

Usage:
    python benchmarks/inference.py                       # ~2-4 min on 2 idle cores
    python benchmarks/inference.py --threads 2 --json results.json
    python benchmarks/inference.py --model default         # the shipped default model
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

BATCH, SIDE = 16, 224
# (result key, target, True if higher is better)
TARGETS = [("img_s", 100.0, True), ("latency_ms", 20.0, False), ("latency_default_ms", 20.0, False),
           ("photos_img_s", 100.0, True), ("warm_s", 1.5, False),
           ("peak_rss_gb", 1.5, False), ("throughput_vs_zhang", 5.0, True)]


def interleaved(fns: dict, repeats: int, budget_s: float) -> dict[str, float]:
    """Median seconds of each ``fns[name]()``, after one warm-up call each. The functions run in
    turn, round after round (``repeats`` rounds, fewer if over ``budget_s`` in all), so a change
    of machine load hits all of them alike and their ratios stay fair."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    start = time.perf_counter()
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
        if time.perf_counter() - start > budget_s:
            break
    return {name: statistics.median(ts) for name, ts in times.items()}


def peak_rss_gb() -> float:
    """This process's peak resident memory (VmHWM; ru_maxrss would include the parent's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


MODEL = None  # --model: None = a random-init densenet121 DL-Net, else a shipped name or file ("default")


def dlnet_model():
    if MODEL is not None:
        from dlnet.model.weights import load_model

        return load_model(None if MODEL == "default" else MODEL)
    from dlnet.model.net import DLNet, ModelConfig

    torch.manual_seed(0)
    return DLNet(ModelConfig(encoder="densenet121")).eval()


def colorizer_for(setting: str, onnx_path: str | None, size: int | str = "default"):
    """The Colorizer for a setting; ``size`` is the working size (default: the Colorizer's)."""
    from dlnet.infer.colorizer import DEFAULT_SIZE, Colorizer

    size = DEFAULT_SIZE if size == "default" else size
    if setting == "onnx":
        from dlnet.infer.onnxrun import OnnxColorizer

        return Colorizer(OnnxColorizer(onnx_path), "cpu", size=size, precision="fp32")
    return Colorizer(dlnet_model(), "cpu", size=size, precision="fp32" if setting == "fp32" else "bf16",
                     compile=setting == "bf16_compiled", optimize=setting != "bf16_unoptimized")


def photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A synthetic photo-like uint8 RGB image: smooth colour waves plus fine noise."""
    rng = np.random.default_rng(seed)
    y, x = np.ogrid[0:h, 0:w]
    waves = [np.sin(x / (w / (3 + c)) + y / (h / (2 + c)) + c) for c in range(3)]
    rgb = 0.5 + 0.35 * np.stack(np.broadcast_arrays(*waves), -1)
    return np.clip(rgb * 255 + rng.normal(0, 6, (h, w, 3)), 0, 255).astype(np.uint8)


def child_12mp(setting: str, path: str, onnx_path: str | None) -> dict:
    """In a fresh process: read, colorize and write the 12-MP JPEG twice; wall times and peak RSS."""
    from dlnet.io.imageio import read_image, save_image

    colorizer = colorizer_for(setting, onnx_path)
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(2):
            t = time.perf_counter()
            p = read_image(path)
            out = colorizer.colorize(p.rgb)
            save_image(out, Path(tmp) / "out.jpg", "JPEG", p.icc_profile, p.exif)
            times.append(time.perf_counter() - t)
    return {"first_s": times[0], "warm_s": times[1], "peak_rss_gb": peak_rss_gb()}


def run_12mp(setting: str, path: str, onnx_path: str | None, threads: int) -> dict:
    cmd = [sys.executable, __file__, "--threads", str(threads), "--child-12mp", setting, "--photo", path]
    if MODEL is not None:
        cmd += ["--model", MODEL]
    if onnx_path:
        cmd += ["--onnx", onnx_path]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--budget", type=float, default=20.0, help="time scale of the measurements, s (default: %(default)s)")
    ap.add_argument("--compile", action="store_true",
                    help="also time bf16 + torch.compile (compiles each shape: minutes more)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--model", default=None, metavar="NAME|PATH",
                    help='"default" (the shipped default model), a shipped name or a model file '
                         "(default: a random-init densenet121 DL-Net, the paper's architecture)")
    ap.add_argument("--child-12mp", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--photo", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--onnx", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    global MODEL
    MODEL = args.model
    torch.set_num_threads(args.threads)
    if args.child_12mp:
        print(json.dumps(child_12mp(args.child_12mp, args.photo, args.onnx)))
        return

    from dlnet.infer.export import export_onnx
    from dlnet.infer.onnxrun import check_onnx
    from zhang_eccv16 import ZhangECCV16

    print(f"model {MODEL or 'random densenet121'}, torch {torch.__version__}, {args.threads} threads, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}, "
          f"load average at start {os.getloadavg()[0]:.1f}", flush=True)
    results: dict = {"threads": args.threads, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                     "load_start": os.getloadavg()[0], "settings": {}}
    batch = torch.rand(BATCH, 1, SIDE, SIDE, generator=torch.Generator().manual_seed(0)) * 100
    one = photo(SIDE, SIDE)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = str(Path(tmp) / "dlnet.onnx")
        export_onnx(dlnet_model(), onnx_path)
        results["onnx_max_abs_ab_diff"] = check_onnx(onnx_path, dlnet_model())
        big = str(Path(tmp) / "12mp.jpg")
        from PIL import Image

        Image.fromarray(photo(3000, 4000)).save(big, quality=90)

        settings = ("fp32", "bf16_unoptimized", "bf16", "onnx") + (("bf16_compiled",) if args.compile else ())
        # Working size 224, so that a 224 photo is predicted at 224 (the default 256 would upscale it).
        cols = {name: colorizer_for(name, onnx_path, size=SIDE) for name in settings}
        plain = dlnet_model()  # plain eager fp32, NCHW, no Colorizer: the untuned baseline
        zhang = {}
        for name in ("fp32", "bf16"):
            torch.manual_seed(0)
            net = ZhangECCV16().eval()
            zhang[name] = net.to(memory_format=torch.channels_last) if name == "bf16" else net
        batch_cl = batch.contiguous(memory_format=torch.channels_last)

        def zhang_call(name: str, x: torch.Tensor):
            def call():
                with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=name == "bf16"):
                    zhang[name](x if name == "fp32" else x.contiguous(memory_format=torch.channels_last))
            return call

        def plain_call(x: torch.Tensor):
            def call():
                with torch.inference_mode():
                    plain(x)
            return call

        print("throughput, batch 16 at 224 (interleaved rounds) ...", flush=True)
        from dlnet.infer.options import DEFAULT_SIZE, InferenceOptions

        default = InferenceOptions(size=DEFAULT_SIZE)  # what a user gets: 224 photos colorized at 128
        thr = interleaved({**{n: (lambda c=c: c.predict_ab(batch)) for n, c in cols.items()},
                           **{f"photos_{n}": (lambda c=c: c.colorize_batch([one] * BATCH, default)) for n, c in cols.items()},
                           "plain_fp32_nchw": plain_call(batch),
                           "zhang_fp32": zhang_call("fp32", batch), "zhang_bf16": zhang_call("bf16", batch_cl)},
                          args.repeats, args.budget * 6)
        print("latency, one 224 photo (interleaved rounds) ...", flush=True)
        lat = interleaved({**{n: (lambda c=c: c.colorize(one)) for n, c in cols.items()},
                           **{f"default_{n}": (lambda c=c: c.colorize(one, default)) for n, c in cols.items()},
                           **{f"model_{n}": (lambda c=c: c.predict_ab(batch[:1])) for n, c in cols.items()},
                           "zhang_fp32": zhang_call("fp32", batch[:1]), "zhang_bf16": zhang_call("bf16", batch_cl[:1])},
                          args.repeats * 2, args.budget * 3)
        for name in settings:
            r = {"img_s": BATCH / thr[name], "latency_ms": 1000 * lat[name], "model_latency_ms": 1000 * lat[f"model_{name}"],
                 "photos_img_s": BATCH / thr[f"photos_{name}"], "latency_default_ms": 1000 * lat[f"default_{name}"]}
            ref = {"fp32": "zhang_fp32", "bf16": "zhang_bf16", "bf16_unoptimized": "zhang_bf16",
                   "bf16_compiled": "zhang_bf16"}.get(name)
            if ref:  # Zhang's network in the same precision, eager
                r["throughput_vs_zhang"] = thr[ref] / thr[name]
                r["latency_vs_zhang"] = lat[ref] / lat[f"model_{name}"]
            results["settings"][name] = r
        results["plain_fp32_nchw_img_s"] = BATCH / thr["plain_fp32_nchw"]
        results["zhang_eccv16"] = {n: {"img_s": BATCH / thr[f"zhang_{n}"], "model_latency_ms": 1000 * lat[f"zhang_{n}"]}
                                   for n in zhang}
        del cols, plain, zhang
        print("12 MP photo, one subprocess per setting ...", flush=True)
        for name in settings:
            results["settings"][name].update(run_12mp(name, big, onnx_path, args.threads))
        for name, r in results["settings"].items():
            print(name, json.dumps({k: round(v, 3) for k, v in r.items()}), flush=True)

    for setting, r in results["settings"].items():
        checks = [f"{k} {r[k]:.3g} {'>=' if up else '<='} {goal:g}: {'met' if (r[k] >= goal if up else r[k] <= goal) else 'MISSED'}"
                  for k, goal, up in TARGETS if k in r]
        print(f"targets, {setting}: " + "; ".join(checks))
    results["load_end"] = os.getloadavg()[0]
    print(f"load average at end {results['load_end']:.1f}")
    print(json.dumps(results, indent=1))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
