"""A training run, typed: :class:`TrainConfig`, each field's default, help and range declared once.

``dlnet train``'s flags are made from these fields (:func:`dlnet.config.add_flags`), a run's
``config.yaml`` holds them (flat, one line per field), and every checkpoint holds the part the
:class:`~dlnet.train.training.ColorizationModule` uses (its hyper-parameters). The config is
checked when built, so a bad value (a negative learning rate, a size that is no multiple of 32)
is one :class:`~dlnet.errors.OptionError` before anything starts, from a flag, a file or Python
alike. This module imports neither torch nor Lightning: ``dlnet train --help`` stays instant.

Example:
    >>> TrainConfig(data=["photos/"], lr=1e-4, loss="global").lr
    0.0001
    >>> TrainConfig(lr=-1e-3)
    Traceback (most recent call last):
    ...
    dlnet.errors.OptionError: lr must be a positive number, got -0.001
"""

from __future__ import annotations

from dataclasses import dataclass

from dlnet.config import check_fields, option
from dlnet.errors import OptionError

__all__ = ["TrainConfig", "LOSSES", "SCHEDULES", "pretrained_value"]

# global: Eq. 1; local: Eq. 2/21; local-sqrt: local with clusters weighted by sqrt(pixel share);
# rebalanced: per-pixel MSE x the prior's weights; classification: Zhang et al.'s (see losses.py)
LOSSES = ("global", "local", "local-sqrt", "rebalanced", "classification")
SCHEDULES = ("constant", "cosine")
SIZE_STEP = 32  # the network halves a crop five times


def pretrained_value(text: str) -> bool | str:
    """``--pretrained``'s value: ``true``/``false`` (any case) as a bool, else a weights file."""
    return {"true": True, "false": False}.get(text.lower(), text)


@dataclass
class TrainConfig:
    """A training run. Defaults are the paper's: Adam 1e-3, batch 32, 224 px, 40 epochs."""

    data: list[str] = option(default_factory=list, help="photo folder split 80/20 inside each category (repeatable)")
    extra_train: list[str] = option(default_factory=list,
                                    help="photo folder or file list (.txt) used for training only (repeatable)")
    packed: str | None = option(None, help="a .pack file from `dlnet pack` instead of --data (photos decoded once, "
                                           "augmented on the device)")
    out: str = option("runs/dlnet", help="run folder")
    encoder: str = option("densenet121", help="densenet121 (the paper) or efficientnet_lite0")
    decoder: str = option("plain", help="plain (the paper's Table 2) or unet (skip connections)")
    pretrained: bool | str = option(False, help="ImageNet weights for the encoder: bare flag = the standard ones, "
                                                "or a local file", cli={"type": pretrained_value, "nargs": "?",
                                                                        "const": True})
    init: str | None = option(None, help="start from these weights: a shipped model's name or a .safetensors/.ckpt "
                                         "(fresh optimiser; tensors are matched by name and shape)")
    loss: str = option("local", choices=LOSSES,
                       help="global (Eq. 1), local (Eq. 2/21), local-sqrt (clusters weighted by the square root of "
                            "their pixel share), rebalanced (MSE x inverse colour prior), classification (Zhang et "
                            "al.'s rebalanced a*b* bins); see docs/LOSSES.md")
    hints: bool = option(False, help="a hint model: colour points as input, trained with hints simulated from the truth")
    hint_skips: bool = option(False, help="hint models (unet): the hints also join each skip connection, "
                                          "one layer from the colour")
    clusters: int = option(5, low=1, help="k of the local loss")
    cluster_weights: list[float] | None = option(None, cli={"nargs": "+"},
                                                 help="one weight per cluster, least to most saturated")
    global_weight: float = option(0.0, low=0, help="add this x the global loss to the local or rebalanced loss "
                                                   "(0: the paper's pure local loss)")
    prior_photos: int = option(2000, low=1, help="training photos the a*b* prior of rebalanced/classification is "
                                                 "computed from")
    size: int = option(224, low=SIZE_STEP, unit="px", help=f"training crop, px, a multiple of {SIZE_STEP}")
    batch_size: int = option(32, low=1, help="photos per step and device")
    epochs: int = option(40, low=1, help="passes over the training photos")
    max_steps: int = option(-1, low=-1, help="stop after this many optimizer steps (overrides --epochs; -1: no limit)")
    lr: float = option(1e-3, positive=True, help="Adam learning rate")
    encoder_lr_scale: float = option(1.0, positive=True, help="the encoder's learning rate = lr x this (below 1 "
                                                              "protects pretrained features)")
    schedule: str = option("constant", choices=SCHEDULES, help="constant (the paper) or cosine")
    warmup_steps: int = option(0, low=0, help="linear learning-rate warm-up, steps")
    max_time: str | None = option(None, help="wall-clock limit DD:HH:MM:SS; the final state is saved; a cosine "
                                             "follows it")
    precision: str = option("auto", help="auto: bf16-mixed where the device runs bf16 natively, else 32-true; or "
                                         "one of Lightning's: bf16-mixed, 32-true, 16-mixed")
    accelerator: str = option("auto", help="auto, cpu, gpu")
    devices: str = option("auto", help="auto, a count, or a list")
    num_nodes: int = option(1, low=1, help="machines")
    strategy: str = option("auto", help="auto, ddp, ddp_spawn, ...")
    workers: int = option(2, low=0, help="data-loader processes per device")
    seed: int = option(0, help="the split, the prior's photos and the initial weights")
    test_fraction: float = option(0.2, low=0, high=1, help="share of each category held out for testing")
    val_fraction: float = option(0.05, low=0, high=1, help="share of each category's training part held out for "
                                                           "validation")
    val_every_steps: int | None = option(None, low=1, none="once per epoch", help="validate every N steps")
    save_every_minutes: float = option(20.0, positive=True, help="also save last.ckpt every N minutes of training: "
                                                                 "a run killed without warning loses at most that")
    limit_val_batches: int | None = option(None, low=1, none="all", help="batches per validation")
    resume: str | None = option(None, cli={"nargs": "?", "const": "last"},
                                help="continue a run: a checkpoint path, or bare flag for OUT/checkpoints/last.ckpt")

    def __post_init__(self) -> None:
        check_fields(self)  # types, ranges and choices, from the fields' metadata above
        if self.size % SIZE_STEP:
            raise OptionError("size", f"must be a multiple of {SIZE_STEP}, got {self.size}")
        if self.cluster_weights is not None and len(self.cluster_weights) != self.clusters:
            raise OptionError("cluster_weights", f"needs {self.clusters} values (one per cluster)")
        if self.max_steps == 0:  # a run that trains nothing yet ends "finished" is never what was meant
            raise OptionError("max_steps", "must be at least 1, or -1 for no limit, got 0")
        if self.max_time is not None and not _is_duration(self.max_time):
            raise OptionError("max_time", f"must be DD:HH:MM:SS (days, hours, minutes, seconds; e.g. "
                                          f"00:01:30:00), got {self.max_time!r}")

    def validate(self) -> None:
        """Check the run as a whole before it starts: the fields again (they may have been set
        since the config was built), that it has data, and the decoder (a registry, so looked
        up only now: it imports the model)."""
        self.__post_init__()
        if not self.data and not self.packed:
            raise OptionError(None, "no training data: give at least one --data folder or a --packed file")
        if self.data and self.packed:
            raise OptionError(None, "give --data folders or a --packed file, not both")
        from dlnet.model.net import DECODERS

        if self.decoder not in DECODERS:
            raise OptionError("decoder", f"must be one of {', '.join(DECODERS)}, got {self.decoder!r}")
        if self.hint_skips and not (self.hints and DECODERS[self.decoder].uses_skips):
            raise OptionError("hint_skips", "needs --hints and a decoder with skip connections (unet)")


def _is_duration(text) -> bool:
    """Whether ``text`` is a positive DD:HH:MM:SS duration, as Lightning's ``Timer`` reads it."""
    parts = str(text).strip().split(":")
    return len(parts) == 4 and all(p.isdigit() for p in parts) and any(int(p) for p in parts)
