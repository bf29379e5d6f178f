"""Training throughput (img/s): the optimizer step per encoder, decoder, loss and size, and the
input path (photos decoded per step from files vs decoded once into a pack).

A step is what ``dlnet train`` does per batch: uint8 RGB -> Lab on the device, forward in bf16
autocast with channels_last, the loss in float32, backward, Adam. Random photos: speed only.
The input path is timed on one core (a loader worker's share on this 2-core machine): a batch of
photos read, resized/cropped and flipped from JPEG files (``dlnet train --data``), or gathered
from the decoded pack and augmented (``dlnet train --packed``). On the same cores the two add
up: images/s of the whole step = 1 / (1/step + 1/input).

    python benchmarks/train_throughput.py                     # every encoder x loss at 128 and 224
    python benchmarks/train_throughput.py --encoders efficientnet_lite0 --decoders plain unet \
        --sizes 128 --losses local --input ../shared/data/miniplaces-train ../runs/places128.pack
    python benchmarks/train_throughput.py --device cuda --batch-size 32
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch

from dlnet import DLNet, ModelConfig, list_encoders
from dlnet.color.lab import rgb_to_lab
from dlnet.train.losses import global_loss, local_loss
from dlnet.train.precision import depthwise_in_float32


def step_times(encoder: str, loss: str, size: int, batch: int, steps: int = 6, warmup: int = 2,
               device: str = "cpu", bf16: bool = True, decoder: str = "plain", compile: bool = False,
               fp32_depthwise: bool = True) -> list[float]:
    """Seconds per training step (after ``warmup`` steps, which include any compilation), one
    value per measured step; with ``compile`` the model runs through ``torch.compile`` (Inductor);
    ``fp32_depthwise`` runs depthwise convolutions in float32 as ``dlnet train`` does
    (:mod:`dlnet.train.precision`)."""
    torch.manual_seed(0)
    model = DLNet(ModelConfig(encoder=encoder, decoder=decoder))
    if fp32_depthwise:
        depthwise_in_float32(model)
    model = model.to(device, memory_format=torch.channels_last).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    forward = torch.compile(model) if compile else model
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
            pred = forward(l)
        fn(pred, ab).backward()
        opt.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return times


def input_times(source: str, size: int, batch: int, batches: int = 8) -> list[float]:
    """Seconds per batch of the input path on one thread: a photo folder or a ``.pack``."""
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    if source.endswith(".pack"):
        from dlnet.train.packed import augment, load_packed

        photos = load_packed(source)["train"]

        def one_batch():
            idx = torch.randint(0, len(photos), (batch,), generator=gen)
            return augment(photos[idx], size, gen)
    else:
        from dlnet.io.photolist import find_photos
        from dlnet.train.data import PhotoDataset, collate

        files = find_photos(source)
        data = PhotoDataset(files, size, train=True)

        def one_batch():
            idx = torch.randint(0, len(files), (batch,), generator=gen)
            return collate([data[int(i)] for i in idx])["rgb"]

    times = []
    for i in range(batches + 1):
        t0 = time.perf_counter()
        one_batch()
        if i:  # the first pays for opening the memory map / the file cache
            times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--encoders", nargs="+", default=list_encoders())
    p.add_argument("--decoders", nargs="+", default=["plain"])
    p.add_argument("--losses", nargs="+", default=["global", "local"])
    p.add_argument("--input", nargs="*", default=[], help="photo folders and/or .pack files to time the input path of")
    p.add_argument("--sizes", nargs="+", type=int, default=[128, 224])
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--device", default="cpu")
    p.add_argument("--compile", action="store_true",
                   help="also time each setting with the model through torch.compile (minutes of compilation each)")
    p.add_argument("--bf16-depthwise", action="store_true",
                   help="also time each setting with depthwise convolutions in bf16 (dlnet train before they ran in float32)")
    args = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}, batch {args.batch_size}")
    threads = torch.get_num_threads()
    inputs = {}
    if args.input:
        print("| input path (1 thread) | size | median s/batch | img/s |")
        print("| --- | --- | --- | --- |")
        for src in args.input:
            for size in args.sizes:
                inputs[src, size] = statistics.median(input_times(src, size, args.batch_size))
                print(f"| {src} | {size} | {inputs[src, size]:.3f} | {args.batch_size / inputs[src, size]:.1f} |", flush=True)
        torch.set_num_threads(threads)
    print("| encoder | decoder | loss | size | median s/step | img/s |" + "".join(f" with {s} |" for s in args.input))
    print("| --- | --- | --- | --- | --- | --- |" + " --- |" * len(args.input))
    for enc in args.encoders:
        for dec in args.decoders:
            for size in args.sizes:
                for loss in args.losses:
                    variants = [("", {})] + [(" (torch.compile)", {"compile": True})] * args.compile \
                        + [(" (bf16 depthwise)", {"fp32_depthwise": False})] * args.bf16_depthwise
                    for label, kw in variants:
                        med = statistics.median(step_times(enc, loss, size, args.batch_size, args.steps, device=args.device,
                                                           decoder=dec, **kw))
                        both = "".join(f" {args.batch_size / (med + inputs[s, size]):.1f} |" for s in args.input)
                        name = dec + label
                        print(f"| {enc} | {name} | {loss} | {size} | {med:.3f} | {args.batch_size / med:.1f} |{both}", flush=True)


if __name__ == "__main__":
    main()
