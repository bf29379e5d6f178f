"""What one colorization is asked to do, typed: :class:`InferenceOptions`, every default in one place.

``dlnet colorize`` builds it from its flags, the server from its settings and each request's
form, the Python API takes it as is (``Colorizer(model, options=...)``, or per call
``colorizer.colorize(photo, options)``). It is checked when built, so a bad value is one clear
:class:`OptionError` before any photo is read, whoever asked. Each field's range, choices and help
are declared once, in its metadata (:mod:`dlnet.config`): ``dlnet colorize``'s flags and the
server's form fields are made from them.

Example:
    >>> options = InferenceOptions(size=512, rebalance=True, format="jpg")
    >>> options.format, options.rebalance == RebalanceConfig(), options.max_pixels
    ('jpeg', True, 120000000)
    >>> options.replace(size=None).size is None                     # full size
    True
    >>> InferenceOptions(saturation=1.3).saturation                  # more colour than the model's own
    1.3
    >>> InferenceOptions(size=16)
    Traceback (most recent call last):
    ...
    dlnet.errors.OptionError: size must be at least 32 px (or full size), got 16
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass

from dlnet.config import check_fields, option
from dlnet.errors import OptionError
from dlnet.io.hints import Hint, HintError, parse_hints
from dlnet.io.imageio import DEFAULT_MAX_PIXELS
from dlnet.color.rebalance_config import REBALANCE_BY_DEFAULT, RebalanceConfig

__all__ = ["InferenceOptions", "OptionError", "working_shape", "DEFAULT_SIZE", "MIN_SIZE", "OUTPUT_FORMATS",
           "MAX_SATURATION", "MIN_TEMPERATURE", "MAX_TEMPERATURE", "HINT_METHODS", "DEFAULT_HINT_METHOD", "DEFAULT_CRF", "MAX_CRF", "X264_PRESETS",
           "DEFAULT_PRESET"]

DEFAULT_SIZE = 128  # the working size's longer side, px: chosen on the validation photos (docs/RESULTS.md)
MIN_SIZE = 32  # the model works on multiples of 32 px
DEFAULT_QUALITY = 95  # JPEG and WebP
DEFAULT_MAX_MEGAPIXELS = DEFAULT_MAX_PIXELS / 1e6  # 120: the largest camera sensors, with room
OUTPUT_FORMATS = ("png", "jpeg", "webp", "tiff")
MAX_SATURATION = 4.0  # a*b* gain; beyond this colours clip to the sRGB gamut
MIN_TEMPERATURE = 0.01  # annealed mean; below this it is the mode, with float32 overflow risk
MAX_TEMPERATURE = 1.0  # the plain mean of the colour distribution
_FORMAT_ALIASES = {"jpg": "jpeg", "tif": "tiff"}
# Films' H.264 encoder (dlnet.infer.video.colorize_video; dlnet colorize's --crf and --preset):
# quality 0 (lossless) to 51, and x264's presets, fastest first (a faster one takes less CPU and
# writes larger files at one CRF). The default, ultrafast at CRF 16 (with deblocking, which
# dlnet.infer.video keeps on for every preset), is as faithful to the colorized frames as
# superfast at 18 (luma PSNR 45.3 dB at 720p, 45.7 at 1080p) for about half of its CPU, so films
# colorize in real time on 2 cores; its files are about 1.5x as large (benchmarks/x264.py;
# `--preset superfast --crf 18` was the default before).
DEFAULT_CRF, MAX_CRF = 16, 51
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
DEFAULT_PRESET = "ultrafast"
HINT_METHODS = ("learned", "propagate")  # a hint model's own inputs; Levin et al.'s propagation (any model)
# Propagation is the default on every model: on held-out photos it gains far more than a hint
# model's inputs alone (benchmarks/hints.py, docs/RESULTS.md), and on a hint model it starts from
# the prediction that has already seen the hints, so it keeps what they taught the network.
DEFAULT_HINT_METHOD = "propagate"


@dataclass(frozen=True)
class InferenceOptions:
    """How to colorize a photo and write the result.

    Attributes:
        size: working size, the longer side (px) at which colour is predicted; None = the
            photo's own size. At least 32.
        rebalance: the colour rebalancing (:mod:`dlnet.color.rebalance`) applied at working size, or
            None for none. ``True`` and ``False`` are accepted and stored as the default
            :class:`~dlnet.color.rebalance.RebalanceConfig` and None.
        format: output format, ``"png"``, ``"jpeg"``, ``"webp"`` or ``"tiff"`` (``"jpg"``,
            ``"tif"`` and any case accepted); None = the input's where writable, else PNG.
        quality: JPEG and WebP quality, 1..100.
        max_megapixels: larger photos are refused before they are decoded (decompression bombs).
        saturation: the a*b* gain, 0..4 (0 = grey, 1 = the colour as the network predicts it);
            None = the model's own, the gain it was shipped with (``ModelConfig.saturation``).
        temperature: annealed-mean temperature of a classification model, 0.01..1 (1 = the mean
            of its colour distribution, towards 0 its most likely colour); None = the model's own
            (``ModelConfig.temperature``, 0.38). A regression model has no temperature and
            ignores it; an ONNX model has its temperature fixed when exported.
        hints: colour points, :class:`~dlnet.io.hints.Hint` objects or dicts ``{"x", "y",
            "color"[, "radius"]}`` (stored as Hints): pixels of the photo as displayed, only
            their a*b* count. At most 1,000; a hint outside a photo fails that photo.
        hint_method: ``"propagate"`` (Levin et al.'s optimisation on the model's prediction,
            any model; on a hint model that prediction has seen the hints) or ``"learned"`` (a
            hint model's own inputs alone); None = :data:`DEFAULT_HINT_METHOD` (propagate).
    """

    size: int | None = option(DEFAULT_SIZE, help="working size: the longer side (px) at which colour is predicted",
                              low=MIN_SIZE, unit="px", none="full size", zero_is_none=True)
    rebalance: RebalanceConfig | None = option(
        RebalanceConfig() if REBALANCE_BY_DEFAULT else None, kind=bool,
        help="colour rebalancing after prediction: region smoothing + saturation",
        cli={"action": argparse.BooleanOptionalAction})
    format: str | None = option(None, help="output format", choices=OUTPUT_FORMATS,
                                none="the input's where writable, else PNG")
    quality: int = option(DEFAULT_QUALITY, help="JPEG and WebP quality", low=1, high=100)
    max_megapixels: float = option(DEFAULT_MAX_MEGAPIXELS, positive=True, form=False,  # (the server's: its setting)
                                   help="refuse larger images before decoding them (decompression bombs)")
    saturation: float | None = option(None, low=0, high=MAX_SATURATION, none="the model's own", cli={"metavar": "S"},
                                      help="colour gain: 0 grey, 1 the network's own prediction, above 1 more colour")
    temperature: float | None = option(None, low=MIN_TEMPERATURE, high=MAX_TEMPERATURE, none="the model's own",
                                       help="classification models: annealed-mean temperature; lower gives more "
                                            "vivid, riskier colour")
    hints: tuple[Hint, ...] = option((), help="colour points (the command line reads them from --hints FILE "
                                              "and --hint; the server from a JSON form field)")
    hint_method: str | None = option(None, choices=HINT_METHODS, none=DEFAULT_HINT_METHOD,
                                     help="propagate: spread the hints along similar grey levels (any model); "
                                          "learned: a hint model's own hint inputs alone")

    def __post_init__(self) -> None:
        if isinstance(self.rebalance, bool):
            object.__setattr__(self, "rebalance", RebalanceConfig() if self.rebalance else None)
        elif self.rebalance is not None and not isinstance(self.rebalance, RebalanceConfig):
            raise OptionError("rebalance", f"must be a RebalanceConfig, True, False or None, got {self.rebalance!r}")
        if isinstance(self.format, str):  # "JPG", "tif": the format's one name
            name = _FORMAT_ALIASES.get(self.format.lower(), self.format.lower())
            if name in OUTPUT_FORMATS:
                object.__setattr__(self, "format", name)
        try:
            object.__setattr__(self, "hints", parse_hints(self.hints or ()))
        except HintError as e:
            raise OptionError("hints", f"are not usable: {e}") from None
        check_fields(self)  # the numbers and choices, against their fields' ranges above

    @property
    def max_pixels(self) -> int:
        """The pixel limit as a count (width x height)."""
        return max(1, int(self.max_megapixels * 1e6))

    def replace(self, **changes) -> InferenceOptions:
        """A copy with ``changes``, checked like a new one."""
        return dataclasses.replace(self, **changes)


def working_shape(h: int, w: int, size: int | None) -> tuple[int, int]:
    """The model's input shape for an ``h x w`` photo: longer side ``size``, aspect kept,
    each side a multiple of 32 (at least 32). ``size=None`` keeps the photo's own size.

    Example:
        >>> working_shape(3000, 4000, 256)     # a 12-MP photo's a*b* are predicted at 192x256
        (192, 256)
        >>> working_shape(720, 1280, 128)      # a 720p film frame's at the default size
        (64, 128)
    """
    if size is None:
        return h, w
    scale = size / max(h, w)
    return (max(32, round(h * scale / 32) * 32), max(32, round(w * scale / 32) * 32))
