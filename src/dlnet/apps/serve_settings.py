"""What ``dlnet serve`` loads and how much it accepts: :class:`ServeSettings`, declared once.

Each field's help and range live in its :func:`~dlnet.config.option` metadata, from which
``dlnet serve`` makes its flags (:func:`~dlnet.config.add_flags`) and the settings check their
values when built (:func:`~dlnet.config.check_fields`), as :class:`~dlnet.infer.options.InferenceOptions`
does for a request. This module needs no server library, so the settings can be built (and
checked) without the ``serve`` extra.

Example:
    >>> settings = ServeSettings(workers=2, max_upload_mb=5)
    >>> settings.max_upload_bytes, settings.options.size == settings.default_size
    (5000000, True)
    >>> ServeSettings(queue_timeout_s=0)
    Traceback (most recent call last):
    ...
    dlnet.errors.OptionError: queue_timeout_s must be a positive number, got 0
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from dlnet.color.rebalance_config import REBALANCE_BY_DEFAULT
from dlnet.config import check_fields, option
from dlnet.errors import OptionError
from dlnet.infer.options import DEFAULT_SIZE, InferenceOptions
from dlnet.infer.runtime import RUNTIMES
from dlnet.model.device import check_device

__all__ = ["ServeSettings"]

SECONDS = {"metavar": "SECONDS"}


@dataclass(frozen=True)
class ServeSettings:
    """What the server loads and how much it accepts (each field's ``option`` says what it is).

    Sizes are given in millions (MB, megapixels), as the flags take them; :attr:`max_upload_bytes`,
    :attr:`max_pixels` and :attr:`photo_cache_bytes` are the whole counts the server checks.
    """

    weights: str | None = None  # shipped model name or model file (None: the default); --model, as in every command
    device: str | None = option(None, help="cpu, cuda, cuda:1, ...", none="CUDA if available")
    precision: str | None = option(None, choices=("bf16", "fp32"), help="inference precision",
                                   none="what the device runs fast")
    runtime: str | None = option(None, choices=RUNTIMES, help="inference runtime",
                                 none="onnxruntime at once on a CPU, handing over to PyTorch once loaded where "
                                      "that is faster per photo: native bf16, a GPU")
    default_size: int = option(DEFAULT_SIZE, flag="--size",
                               help="working size, longer side in px, of a request that does not give one")
    max_size: int = option(1024, help="the largest working size a request may ask for, px (raised to --size "
                                      "where that is larger)")
    rebalance: bool = option(REBALANCE_BY_DEFAULT, help="rebalance colours when a request does not say",
                             cli={"action": argparse.BooleanOptionalAction})
    max_upload_mb: float = option(20.0, positive=True, help="largest upload in MB (413 above)")
    max_megapixels: float = option(50.0, positive=True, help="largest image in megapixels (413 above)")
    workers: int = option(1, low=1, help="photos colorized at the same time (threads)")
    queue_size: int = option(64, low=0, flag="--queue",
                             help="photos that may wait for a worker, answered in turn (their uploads held in "
                                  "memory); beyond that the server answers 503 at once")
    queue_timeout_s: float = option(60.0, positive=True, flag="--queue-timeout", cli=SECONDS,
                                    help="longest wait for a worker, seconds; longer waits get 503")
    retry_after_s: int = option(2, low=0, flag="--retry-after", cli=SECONDS, help="the Retry-After sent with a 503")
    upload_timeout_s: float = option(60.0, positive=True, flag="--upload-timeout", cli=SECONDS,
                                     help="time from a request's headers to the end of its upload, seconds; "
                                          "slower ones get 408")
    max_video_seconds: float = option(30.0, low=0, cli=SECONDS,
                                      help="longest video accepted, seconds (413 above); 0 = photos only")
    photo_cache_mb: float = option(256.0, low=0,
                                   help="decoded pixels (and their L*) of recent uploads kept, in MB, for requests "
                                        "that name a photo by id (the page's colour hints); the least recently "
                                        "used go first; 0 keeps none")

    def __post_init__(self) -> None:
        check_fields(self)
        check_device(self.device)
        _ = self.options  # building the default options checks default_size as a request's size
        if self.default_size > self.max_size:
            raise OptionError("default_size", f"must be at most max_size ({self.max_size}), got {self.default_size}")

    @property
    def options(self) -> InferenceOptions:
        """What a request that gives no options gets."""
        return InferenceOptions(size=self.default_size, rebalance=self.rebalance, format="png",
                                max_megapixels=self.max_megapixels)

    @property
    def max_upload_bytes(self) -> int:
        """The largest request body accepted, bytes."""
        return max(1, round(self.max_upload_mb * 1e6))

    @property
    def max_pixels(self) -> int:
        """The largest image accepted, width x height."""
        return self.options.max_pixels

    @property
    def photo_cache_bytes(self) -> int:
        """Decoded pixels of recent uploads kept, bytes."""
        return round(self.photo_cache_mb * 1e6)
