"""``dlnet train``: the paper's training protocol on your own photos, one CPU to many GPUs.

Every flag is a field of :class:`dlnet.train.training.TrainConfig`; ``--config run.yaml`` supplies
them from a file (a run's own ``config.yaml`` works), and flags given on the command line win.
"""

from __future__ import annotations

import argparse
import math
import types
import typing
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


# Ranges of the numbers a run takes, checked for flags and config files alike before anything
# starts (a negative learning rate trained "fine" in the wrong direction): field -> (lowest,
# whether the lowest is allowed). TrainConfig.validate checks the rest.
_RANGES = {"lr": (0, False), "encoder_lr_scale": (0, False), "batch_size": (1, True), "epochs": (1, True),
           "size": (32, True), "clusters": (1, True), "global_weight": (0, True), "warmup_steps": (0, True),
           "workers": (0, True), "num_nodes": (1, True), "prior_photos": (1, True), "test_fraction": (0, True),
           "val_fraction": (0, True), "val_every_steps": (1, True), "limit_val_batches": (1, True)}


def _read_config(path: Path) -> dict:
    """A config file's fields, or a one-line :class:`UsageError` naming the file and what is wrong."""
    if not path.is_file():
        raise UsageError(f"{path}: no such config file")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise UsageError(f"{path}: not UTF-8 text (byte {e.start}); save it as UTF-8") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise UsageError(f"{path}: not valid YAML{where}: {getattr(e, 'problem', None) or e}") from None
    except OSError as e:
        raise UsageError(f"{path}: cannot read ({e.strerror or e})") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise UsageError(f"{path}: must be a mapping of TrainConfig fields (name: value), not a {type(values).__name__}")
    return values


def _typed(value, hint):
    """``value`` as the type ``hint`` declares (numbers written as strings, such as YAML's
    ``1e-3``, converted), or raise ValueError."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        for option in typing.get_args(hint):
            try:
                return _typed(value, option)
            except ValueError:
                pass
        raise ValueError
    if typing.get_origin(hint) is list:
        if not isinstance(value, list):
            raise ValueError
        return [_typed(v, typing.get_args(hint)[0]) for v in value]
    if hint is type(None) and value is None:
        return None
    if hint in (int, float) and not isinstance(value, bool) and isinstance(value, (int, float, str)):
        number = float(value) if hint is float else int(value)  # "big" raises ValueError
        if hint is int and isinstance(value, float) and value != number:
            raise ValueError
        return number
    if hint in (str, bool) and isinstance(value, hint):
        return value
    raise ValueError


def _describe(hint) -> str:
    return str(hint).replace("typing.", "").replace("<class '", "").replace("'>", "")


def config_from_args(args: argparse.Namespace):
    from dlnet.train.training import TrainConfig

    values: dict = _read_config(Path(args.config)) if args.config else {}
    hints = typing.get_type_hints(TrainConfig)
    unknown = set(values) - set(hints)
    if unknown:
        raise UsageError(f"{args.config}: unknown fields {sorted(map(str, unknown))}")
    for name, value in values.items():
        try:
            values[name] = _typed(value, hints[name])
        except (ValueError, TypeError):
            raise UsageError(f"{args.config}: {name} must be {_describe(hints[name])}, got {value!r}") from None
    for name in hints:
        value = getattr(args, name, None)
        if value is not None:
            values[name] = value
    for name, (low, inclusive) in _RANGES.items():
        value = values.get(name)
        if value is not None and not (math.isfinite(value) and (value >= low if inclusive else value > low)):
            what = "a positive number" if (low, inclusive) == (0, False) else f"at least {low:g}"
            raise UsageError(f"--{name.replace('_', '-')} must be {what}, got {value:g}")
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
