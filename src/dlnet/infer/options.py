"""What one colorization is asked to do, typed: :class:`InferenceOptions`, every default in one place.

``dlnet colorize`` builds it from its flags, the server from its settings and each request's
form, the Python API takes it as is (``Colorizer(model, options=...)``, or per call
``colorizer.colorize(photo, options)``). It is checked when built, so a bad value is one clear
:class:`OptionError` before any photo is read, whoever asked.

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
    dlnet.infer.options.OptionError: size must be at least 32 px (or full size), got 16
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from dlnet.io.hints import Hint, HintError, parse_hints
from dlnet.io.imageio import DEFAULT_MAX_PIXELS
from dlnet.color.rebalance_config import REBALANCE_BY_DEFAULT, RebalanceConfig

__all__ = ["InferenceOptions", "OptionError", "DEFAULT_SIZE", "MIN_SIZE", "OUTPUT_FORMATS", "MAX_SATURATION", "MIN_TEMPERATURE",
           "MAX_TEMPERATURE", "HINT_METHODS"]

DEFAULT_SIZE = 128  # the working size's longer side, px: chosen on the validation photos (docs/RESULTS.md)
MIN_SIZE = 32  # the model works on multiples of 32 px
DEFAULT_QUALITY = 95  # JPEG and WebP
DEFAULT_MAX_MEGAPIXELS = DEFAULT_MAX_PIXELS / 1e6  # 120: the largest camera sensors, with room
OUTPUT_FORMATS = ("png", "jpeg", "webp", "tiff")
MAX_SATURATION = 4.0  # a*b* gain; beyond this colours clip to the sRGB gamut
MIN_TEMPERATURE = 0.01  # annealed mean; below this it is the mode, with float32 overflow risk
MAX_TEMPERATURE = 1.0  # the plain mean of the colour distribution
_FORMAT_ALIASES = {"jpg": "jpeg", "tif": "tiff"}
HINT_METHODS = ("learned", "propagate")  # a hint model's own inputs; Levin et al.'s propagation (any model)


class OptionError(ValueError):
    """An option out of range: ``str()`` is one line naming it, ``field`` is its name."""

    def __init__(self, field: str, reason: str) -> None:
        self.field, self.reason = field, reason
        super().__init__(f"{field} {reason}")


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
        hint_method: ``"learned"`` (the model's own hint inputs) or ``"propagate"`` (Levin et
            al.'s optimisation on the model's prediction, any model); None = learned where the
            model has hint inputs, else propagate.
    """

    size: int | None = DEFAULT_SIZE
    rebalance: RebalanceConfig | None = RebalanceConfig() if REBALANCE_BY_DEFAULT else None
    format: str | None = None
    quality: int = DEFAULT_QUALITY
    max_megapixels: float = DEFAULT_MAX_MEGAPIXELS
    saturation: float | None = None
    temperature: float | None = None
    hints: tuple[Hint, ...] = ()
    hint_method: str | None = None

    def __post_init__(self) -> None:
        size, rebalance, fmt = self.size, self.rebalance, self.format
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < MIN_SIZE):
            raise OptionError("size", f"must be at least {MIN_SIZE} px (or full size), got {size!r}")
        if isinstance(rebalance, bool):
            object.__setattr__(self, "rebalance", RebalanceConfig() if rebalance else None)
        elif rebalance is not None and not isinstance(rebalance, RebalanceConfig):
            raise OptionError("rebalance", f"must be a RebalanceConfig, True, False or None, got {rebalance!r}")
        if fmt is not None:
            name = _FORMAT_ALIASES.get(str(fmt).lower(), str(fmt).lower())
            if name not in OUTPUT_FORMATS:
                raise OptionError("format", f"must be one of {', '.join(OUTPUT_FORMATS)}, got {fmt!r}")
            object.__setattr__(self, "format", name)
        if isinstance(self.quality, bool) or not isinstance(self.quality, int) or not 1 <= self.quality <= 100:
            raise OptionError("quality", f"must be a whole number in 1..100, got {self.quality!r}")
        mp = self.max_megapixels
        if isinstance(mp, bool) or not isinstance(mp, (int, float)) or not (math.isfinite(mp) and mp > 0):
            raise OptionError("max_megapixels", f"must be a positive number, got {mp!r}")
        sat = self.saturation
        if sat is not None and (isinstance(sat, bool) or not isinstance(sat, (int, float))
                                or not 0 <= sat <= MAX_SATURATION):
            raise OptionError("saturation", f"must be a number in 0..{MAX_SATURATION:g} (or None: the model's own), got {sat!r}")
        t = self.temperature
        if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float))
                              or not MIN_TEMPERATURE <= t <= MAX_TEMPERATURE):
            raise OptionError("temperature", f"must be a number in {MIN_TEMPERATURE:g}..{MAX_TEMPERATURE:g} "
                                             f"(or None: the model's own), got {t!r}")
        try:
            object.__setattr__(self, "hints", parse_hints(self.hints or ()))
        except HintError as e:
            raise OptionError("hints", f"are not usable: {e}") from None
        if self.hint_method is not None and self.hint_method not in HINT_METHODS:
            raise OptionError("hint_method", f"must be one of {', '.join(HINT_METHODS)} (or None), got {self.hint_method!r}")

    @property
    def max_pixels(self) -> int:
        """The pixel limit as a count (width x height)."""
        return max(1, int(self.max_megapixels * 1e6))

    def replace(self, **changes) -> InferenceOptions:
        """A copy with ``changes``, checked like a new one."""
        return dataclasses.replace(self, **changes)
