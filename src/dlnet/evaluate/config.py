"""What an evaluation is asked to do, typed: :class:`EvaluationConfig`, each option declared once.

:func:`dlnet.evaluate.protocol.evaluate` takes it; ``dlnet evaluate``'s flags are made from its
fields' metadata (help, range, choices: :mod:`dlnet.config`). It is checked when built, so a bad
value is one :class:`~dlnet.errors.OptionError` before any photo is read. This module imports
neither torch nor the protocol: ``dlnet evaluate --help`` stays quick.

Example:
    >>> cfg = EvaluationConfig("RUN/split/test.txt", "reports/run1", checkpoints={"ours": "RUN/best.ckpt"})
    >>> cfg.size, cfg.working_size, cfg.rebalance
    (256, 128, None)
    >>> EvaluationConfig("photos/", "r", batch_size=0)
    Traceback (most recent call last):
    ...
    dlnet.errors.OptionError: batch_size must be at least 1, got 0
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dlnet.color.rebalance_config import RebalanceConfig
from dlnet.config import check_fields, option
from dlnet.errors import OptionError
from dlnet.infer.options import DEFAULT_SIZE as DEFAULT_WORKING_SIZE
from dlnet.infer.options import MIN_SIZE
from dlnet.model.device import check_device

__all__ = ["EvaluationConfig", "DEFAULT_SIZE", "GREY_TRUTH_BELOW", "PRECISIONS"]

DEFAULT_SIZE = 256  # the truth photos' crop, px (the paper's protocol)
MIN_CROP = 11  # SSIM's window (dlnet.color.metrics.SSIM_WINDOW): a smaller crop has no SSIM
PRECISIONS = ("fp32", "bf16")
# A truth photo less colourful than this (Hasler & Suesstrunk M; a colour photo scores 15 or more)
# is a black-and-white photo: the grey baseline matches it almost exactly (PSNR capped at 100 dB),
# so it measures nothing about colour and inflates grey's means.
GREY_TRUTH_BELOW = 1.0


def _names(text: str) -> list[str]:
    """``--grid-images a.jpg, b`` -> ``["a.jpg", "b"]``."""
    return [s.strip() for s in text.split(",") if s.strip()]


@dataclass(frozen=True)
class EvaluationConfig:
    """An evaluation: the photos, the methods, how they are scored and where the report goes.

    ``checkpoints`` maps a method's name to a ``.ckpt``/``.safetensors`` path, a shipped model's
    name or a :class:`~dlnet.model.net.DLNet`; ``preds`` a name to a folder of images colorized
    by another method (matched by file name); ``rebalance`` True stands for the default
    :class:`~dlnet.color.rebalance_config.RebalanceConfig` (stored as one; False as None);
    ``device`` may be a ``torch.device``; ``progress`` draws a bar on stderr.
    """

    data: str | Path = option(help="ground-truth colour photos: a folder (recursive), a file list "
                                   "(e.g. RUN/split/test.txt) or one image")
    out: str | Path = option(help="report folder (created)")
    checkpoints: Mapping[str, object] = option(
        default_factory=dict, flag=("--model", "--checkpoint"), kind=list[str], cli={"metavar": "NAME=PATH"},
        help="model to score (.ckpt, .safetensors or a shipped name); repeatable")
    preds: Mapping[str, str | Path] = option(
        default_factory=dict, flag="--pred", kind=list[str], cli={"metavar": "NAME=DIR"},
        help="folder of images colorized by another method, matched by file name; repeatable")
    size: int | None = option(DEFAULT_SIZE, low=MIN_CROP, unit="px", none="the full photos",
                              help="shorter side resized to this, then centre-cropped square")
    limit: int | None = option(None, low=1, none="all", cli={"metavar": "N"}, help="score only the first N photos")
    grid: int = option(6, low=0, cli={"metavar": "N"}, help="random photos in grid.png (0: none)")
    grid_images: list[str] | None = option(None, cli={"type": _names, "action": "store", "metavar": "A,B,..."},
                                           help="these photos in grid.png (names or paths)")
    table_rows: int = option(10, low=0, cli={"metavar": "N"}, help="photos in report.md's per-photo tables")
    seed: int = option(0, help="grid choice and bootstrap resampling")
    device: str | None = option(None, none="CUDA if available", help="cpu, cuda, cuda:1, ...")
    batch_size: int = option(8, low=1, help="photos per model call")
    precision: str = option("fp32", choices=PRECISIONS, help="model precision (fp32: the same numbers on any machine)")
    rebalance: RebalanceConfig | None = option(None, kind=bool,
                                               help="also score each checkpoint with colour rebalancing, as "
                                                    "NAME+rebalance")
    n_resamples: int = option(1000, low=1, flag="--resamples", help="bootstrap resamples for the 95% intervals")
    workers: int | None = option(None, low=0, none="0 on CPU, where the model needs the cores",
                                 help="image-decoding processes")
    overwrite: bool = option(False, help="replace an earlier report in --out")
    keep_grey_truth: bool = option(False, help=f"keep photos whose ground truth is grey (colourfulness < "
                                               f"{GREY_TRUTH_BELOW:g}) in the averages; by default they are left "
                                               f"out, counted and marked in per_image.csv")
    working_size: int | None = option(DEFAULT_WORKING_SIZE, low=MIN_SIZE, unit="px", zero_is_none=True,
                                      none="the scored photo's own size",
                                      help="predict colour at this longer side, as dlnet colorize --size does")
    progress: bool = False  # a progress bar on stderr (the command line draws one on a terminal)

    def __post_init__(self) -> None:
        if isinstance(self.rebalance, bool):
            object.__setattr__(self, "rebalance", RebalanceConfig() if self.rebalance else None)
        elif self.rebalance is not None and not isinstance(self.rebalance, RebalanceConfig):
            raise OptionError("rebalance", f"must be a RebalanceConfig, True, False or None, got {self.rebalance!r}")
        object.__setattr__(self, "checkpoints", dict(self.checkpoints or {}))
        object.__setattr__(self, "preds", dict(self.preds or {}))
        check_device(self.device)
        check_fields(self)
