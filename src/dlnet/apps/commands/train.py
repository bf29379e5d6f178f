"""``dlnet train``: the paper's training protocol on your own photos, one CPU to many GPUs.

Every flag is a field of :class:`dlnet.train.training.TrainConfig`; ``--config run.yaml`` supplies
them from a file (a run's own ``config.yaml`` works), and flags given on the command line win.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import yaml

from dlnet.apps.commands import UsageError


def _pretrained(value: str):
    return {"true": True, "false": False}.get(value.lower(), value)


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML file of TrainConfig fields (flags override it)")
    p.add_argument("--data", action="append", help="photo folder split 80/20 inside each category (repeatable)")
    p.add_argument("--extra-train", action="append", help="photo folder or file list (.txt) used for training only (repeatable)")
    p.add_argument("--packed", help="a .pack file from `dlnet pack` (photos decoded once, augmented on the device)")
    p.add_argument("--init", help="start from these weights: a shipped model's name or a .safetensors/.ckpt "
                   "(fresh optimiser; tensors are matched by name and shape)")
    p.add_argument("--out", help="run folder (default runs/dlnet)")
    p.add_argument("--encoder", help="densenet121 (the paper) or efficientnet_lite0")
    p.add_argument("--decoder", help="plain (the paper's Table 2, default) or unet (skip connections)")
    p.add_argument("--pretrained", type=_pretrained, nargs="?", const=True,
                   help="ImageNet weights for the encoder: bare flag = the standard ones, or a local file")
    p.add_argument("--loss", choices=["global", "local", "local-sqrt", "rebalanced", "classification"],
                   help="global (Eq. 1), local (Eq. 2/21, default), local-sqrt (clusters weighted by the square root "
                   "of their pixel share), rebalanced (MSE x inverse colour prior), classification (Zhang et al.'s "
                   "rebalanced a*b* bins); see docs/LOSSES.md")
    p.add_argument("--hints", action="store_true", default=None,
                   help="a hint model: colour points as input, trained with hints simulated from the truth")
    p.add_argument("--clusters", type=int, help="k of the local loss (default 5)")
    p.add_argument("--cluster-weights", type=float, nargs="+", help="one weight per cluster, least to most saturated")
    p.add_argument("--global-weight", type=float, help="add this x the global loss to the local or rebalanced loss (default 0)")
    p.add_argument("--prior-photos", type=int,
                   help="training photos the a*b* prior of rebalanced/classification is computed from (default 2000)")
    p.add_argument("--size", type=int, help="training crop, px (default 224)")
    p.add_argument("--batch-size", type=int, help="per device (default 32)")
    p.add_argument("--epochs", type=int, help="default 40")
    p.add_argument("--max-steps", type=int, help="stop after this many optimizer steps (overrides --epochs)")
    p.add_argument("--lr", type=float, help="Adam learning rate (default 1e-3)")
    p.add_argument("--encoder-lr-scale", type=float, help="encoder learning rate = lr x this (default 1)")
    p.add_argument("--schedule", choices=["constant", "cosine"])
    p.add_argument("--warmup-steps", type=int, help="linear learning-rate warm-up (default 0)")
    p.add_argument("--max-time", help="wall-clock limit DD:HH:MM:SS; the final state is saved")
    p.add_argument("--precision", help="auto (default: bf16-mixed where the device runs bf16 natively, else 32-true), bf16-mixed, 32-true, 16-mixed")
    p.add_argument("--accelerator", help="auto, cpu, gpu")
    p.add_argument("--devices", help="auto, a count, or a list")
    p.add_argument("--num-nodes", type=int)
    p.add_argument("--strategy", help="auto, ddp, ddp_spawn, ...")
    p.add_argument("--workers", type=int, help="data-loader processes per device")
    p.add_argument("--seed", type=int)
    p.add_argument("--val-every-steps", type=int, help="validate every N steps instead of every epoch")
    p.add_argument("--limit-val-batches", type=int)
    p.add_argument("--resume", nargs="?", const="last",
                   help="continue a run: a checkpoint path, or bare flag for OUT/checkpoints/last.ckpt")


def config_from_args(args: argparse.Namespace):
    from dlnet.train.training import TrainConfig

    values: dict = {}
    if args.config:
        path = Path(args.config)
        if not path.is_file():
            raise UsageError(f"{path}: no such config file")
        values = yaml.safe_load(path.read_text()) or {}
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = set(values) - names
    if unknown:
        raise UsageError(f"{args.config}: unknown fields {sorted(unknown)}")
    for name in names:
        value = getattr(args, name, None)
        if value is not None:
            values[name] = value
    cfg = TrainConfig(**values)
    try:
        cfg.validate()
    except ValueError as e:
        raise UsageError(str(e)) from e
    return cfg


def run(args: argparse.Namespace) -> int:
    from dlnet.train.data import DataError
    from dlnet.train.training import fit
    from dlnet.model.weights import WeightsError

    cfg = config_from_args(args)
    try:
        out = fit(cfg)
    except (DataError, ValueError, FileNotFoundError, WeightsError) as e:
        raise UsageError(str(e)) from e
    print(f"run folder: {out}")
    return 0
