"""What the local loss costs per training step compared with the global loss.

One training step of the paper's model (DenseNet-121 encoder; forward, backward, Adam) at 128
and 224 px, batch 16, bf16 + channels_last on the CPU; global and local steps interleaved so
that both see the same machine state; medians; the ratio local/global. Target: <= 1.05.

    python benchmarks/loss_overhead.py [--steps 8]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from dlnet.train.losses import local_loss
from train_throughput import step_times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", nargs="+", type=int, default=[128, 224])
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--rounds", type=int, default=2, help="alternate global/local this many times")
    args = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, densenet121, batch {args.batch_size}")
    print("| size | global s/step | local s/step | local/global | k-means + loss alone, s |")
    print("| --- | --- | --- | --- | --- |")
    for size in args.sizes:
        runs = {"global": [], "local": []}
        for _ in range(args.rounds):
            for loss in runs:
                runs[loss] += step_times("densenet121", loss, size, args.batch_size, args.steps)
        g, loc = statistics.median(runs["global"]), statistics.median(runs["local"])
        target = torch.randn(args.batch_size, 2, size, size) * 30
        pred = torch.randn_like(target)
        t0 = time.perf_counter()
        for s in range(5):
            local_loss(pred, target, k=5, seed=s)
        alone = (time.perf_counter() - t0) / 5
        print(f"| {size} | {g:.3f} | {loc:.3f} | {loc / g:.3f} | {alone:.4f} |", flush=True)


if __name__ == "__main__":
    main()
