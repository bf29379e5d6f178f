"""Training throughput (img/s) of one optimizer step per encoder, loss and size.

A step is what ``dlnet train`` does per batch: uint8 RGB -> Lab on the device, forward in bf16
autocast with channels_last, the loss in float32, backward, Adam. Random photos: speed only.

    python benchmarks/train_throughput.py                     # every encoder x loss at 128 and 224
    python benchmarks/train_throughput.py --device cuda --batch-size 32
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch

from dlnet import DLNet, ModelConfig, list_encoders
from dlnet.color import rgb_to_lab
from dlnet.losses import global_loss, local_loss


def step_times(encoder: str, loss: str, size: int, batch: int, steps: int = 6, warmup: int = 2,
               device: str = "cpu", bf16: bool = True) -> list[float]:
    """Seconds per training step (after ``warmup`` steps), one value per measured step."""
    torch.manual_seed(0)
    model = DLNet(ModelConfig(encoder=encoder)).to(device, memory_format=torch.channels_last).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    rgb = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, device=device)
    fn = global_loss if loss == "global" else (lambda p, t: local_loss(p, t, k=5))
    autocast = torch.autocast(torch.device(device).type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    times = []
    for i in range(warmup + steps):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        lab = rgb_to_lab(rgb.float() / 255)
        l, ab = lab[:, :1].contiguous(memory_format=torch.channels_last), lab[:, 1:]
        opt.zero_grad(set_to_none=True)
        with autocast:
            pred = model(l)
        fn(pred, ab).backward()
        opt.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--encoders", nargs="+", default=list_encoders())
    p.add_argument("--losses", nargs="+", default=["global", "local"])
    p.add_argument("--sizes", nargs="+", type=int, default=[128, 224])
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}, batch {args.batch_size}")
    print("| encoder | loss | size | median s/step | img/s |")
    print("| --- | --- | --- | --- | --- |")
    for enc in args.encoders:
        for size in args.sizes:
            for loss in args.losses:
                med = statistics.median(step_times(enc, loss, size, args.batch_size, args.steps, device=args.device))
                print(f"| {enc} | {loss} | {size} | {med:.3f} | {args.batch_size / med:.1f} |", flush=True)


if __name__ == "__main__":
    main()
