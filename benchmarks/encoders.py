"""Which encoders keep the inference targets (issue 30's encoder probe): batch 16 at 224 >= 100
img/s and one 224 photo <= 20 ms on the CPU, for the shipped architecture (U-Net decoder) with
EfficientNet-Lite0, Lite1 and Lite2, side by side in one run (interleaved rounds, medians).

Random weights (speed does not depend on them), through the Colorizer at the CPU's default
precision (float32 without AVX-512/AMX, bf16 with), as ``dlnet colorize`` runs them:

- ``img_s``: the model call (``Colorizer.predict_ab``) on a (16, 1, 224, 224) batch;
- ``latency_ms``: one 224x224 photo through ``Colorizer.colorize`` at working size 224;
- ``train_img_s``: a float32 training step (forward, global loss, backward, Adam) at batch 32,
  128 px: what the encoder costs a CPU training run.

    python benchmarks/encoders.py                   # ~2 min on 2 idle cores
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

from inference import BATCH, SIDE, interleaved, photo  # noqa: E402
from train_throughput import step_times  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--encoders", nargs="+", default=["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--train-steps", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from dlnet.infer.colorizer import Colorizer
    from dlnet.model.net import DLNet, ModelConfig

    colorizers = {}
    for name in args.encoders:
        torch.manual_seed(0)
        colorizers[name] = Colorizer(DLNet(ModelConfig(encoder=name, decoder="unet")).eval(), "cpu", size=SIDE)
    batch = torch.rand(BATCH, 1, SIDE, SIDE) * 100
    one = photo(SIDE, SIDE)
    calls = {}
    for name, c in colorizers.items():
        calls[name, "img_s"] = lambda c=c: c.predict_ab(batch)
        calls[name, "latency_ms"] = lambda c=c: c.colorize(one)
    times = interleaved(calls, args.repeats, budget_s=60.0)
    print(f"torch {torch.__version__}, {args.threads} threads, {torch.backends.cpu.get_cpu_capability()}, "
          f"precision {next(iter(colorizers.values())).precision}")
    print("| encoder | parameters | img/s (16 x 224) | one 224 photo, ms | train img/s (32 x 128) |")
    print("| --- | --- | --- | --- | --- |")
    for name, c in colorizers.items():
        params = sum(p.numel() for p in DLNet(ModelConfig(encoder=name, decoder="unet")).parameters())
        train = np.median(step_times(name, "global", 128, 32, steps=args.train_steps, warmup=1, bf16=False,
                                     decoder="unet"))
        print(f"| {name} | {params / 1e6:.2f} M | {BATCH / times[name, 'img_s']:.0f} | "
              f"{1000 * times[name, 'latency_ms']:.1f} | {32 / train:.1f} |", flush=True)


if __name__ == "__main__":
    main()
