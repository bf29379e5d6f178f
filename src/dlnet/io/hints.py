"""Colour hints from users: "this spot is this colour", parsed and checked once, torch-free.

A :class:`Hint` is a point of the photo *as displayed* (EXIF orientation applied, origin at the
top left, x to the right, y down, in pixels), a colour and an optional radius in pixels. Only the
colour's a*b* count: the photo keeps its own L* everywhere. Hints arrive as:

- Python: ``Hint(x, y, color)`` objects or dicts with those keys (``radius`` optional);
- a JSON file: a list of such dicts (``dlnet colorize --hints hints.json``), or a sidecar
  ``NAME.hints.json`` beside a photo ``NAME.jpg`` in a folder;
- the command line: ``--hint 120,45,#a03020`` (``x,y,colour[,radius]``, repeatable).

Colours are any CSS colour Pillow's ``ImageColor`` reads (``"#a03020"``, ``"#a32"``, ``"red"``,
``"rgb(160, 48, 32)"``) or three numbers 0..255. Anything else, NaN or infinite coordinates, a
radius that is not positive, or more than :data:`MAX_HINTS` hints is a :class:`HintError`: one
line naming the hint (and the file, for files).

Example:
    >>> Hint(120.5, 45, "#a03020")
    Hint(x=120.5, y=45.0, color=(160, 48, 32), radius=None)
    >>> parse_hints([{"x": 3, "y": 4, "color": "red", "radius": 2}, "10,20,#00ff00"])[1].color
    (0, 255, 0)
    >>> parse_hints([{"x": 3, "y": "four", "color": "red"}])
    Traceback (most recent call last):
    ...
    dlnet.io.hints.HintError: hint 1: y must be a finite number, got 'four'
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from dlnet.errors import DLNetError

__all__ = ["Hint", "HintError", "MAX_HINTS", "parse_hints", "load_hints", "hints_from_json", "sidecar_path", "SIDECAR_SUFFIX"]

MAX_HINTS = 1000  # per photo: more is not a user's hints but a colour map
SIDECAR_SUFFIX = ".hints.json"
_KEYS = {"x", "y", "color", "radius"}


class HintError(DLNetError, ValueError):
    """A hint that cannot be used; ``str()`` is one line naming it."""


def _number(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise HintError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _color(value) -> tuple[int, int, int]:
    if isinstance(value, str):
        from PIL import ImageColor

        try:
            rgb = ImageColor.getrgb(value.strip())
        except ValueError:
            raise HintError(f"color {value!r} is not a colour (use #rrggbb, a CSS name or rgb(r, g, b))") from None
        return tuple(rgb[:3])
    if isinstance(value, (list, tuple)) and len(value) == 3:
        if all(not isinstance(v, bool) and isinstance(v, (int, float)) and 0 <= v <= 255 for v in value):
            return tuple(int(round(v)) for v in value)
    raise HintError(f"color must be a colour string or three numbers 0..255, got {value!r}")


@dataclass(frozen=True)
class Hint:
    """A colour point: pixel ``(x, y)`` of the displayed photo, an sRGB ``color`` and a
    ``radius`` in pixels (None: a small default, about one pixel of the working size)."""

    x: float
    y: float
    color: tuple[int, int, int]
    radius: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "x", _number("x", self.x))
        object.__setattr__(self, "y", _number("y", self.y))
        object.__setattr__(self, "color", _color(self.color))
        if self.radius is not None:
            r = _number("radius", self.radius)
            if r <= 0:
                raise HintError(f"radius must be > 0, got {self.radius!r}")
            object.__setattr__(self, "radius", r)

    @classmethod
    def parse(cls, value) -> Hint:
        """A Hint from a Hint, a dict (``x``, ``y``, ``color``, optional ``radius``) or a string
        ``"x,y,colour[,radius]"``."""
        if isinstance(value, Hint):
            return value
        if isinstance(value, dict):
            unknown, missing = set(value) - _KEYS, {"x", "y", "color"} - set(value)
            if unknown or missing:
                raise HintError(f"needs keys x, y, color (radius optional); "
                                + (f"unknown {sorted(unknown)}" if unknown else f"missing {sorted(missing)}"))
            return cls(value["x"], value["y"], value["color"], value.get("radius"))
        if isinstance(value, str):
            parts = [p.strip() for p in value.split(",")]
            if len(parts) >= 4 and parts[2].lower().startswith("rgb("):  # "x,y,rgb(r, g, b)[,radius]"
                end = next((i for i, p in enumerate(parts) if p.endswith(")")), None)
                if end is not None:
                    parts = parts[:2] + [",".join(parts[2:end + 1])] + parts[end + 1:]
            if len(parts) not in (3, 4):
                raise HintError(f"{value!r} is not x,y,colour[,radius]")
            try:
                nums = [float(p) for p in parts[:2] + parts[3:]]
            except ValueError:
                raise HintError(f"{value!r} is not x,y,colour[,radius] (x, y and radius are numbers)") from None
            return cls(nums[0], nums[1], parts[2], nums[2] if len(nums) == 3 else None)
        raise HintError(f"must be a Hint, a dict or an 'x,y,colour' string, got {type(value).__name__}")


def parse_hints(values) -> tuple[Hint, ...]:
    """Hints from a list of Hints, dicts or strings; :class:`HintError` names the first bad one
    (counted from 1)."""
    if isinstance(values, (str, bytes, dict)) or not hasattr(values, "__iter__"):
        raise HintError(f"hints must be a list, got {type(values).__name__}")
    values = list(values)
    if len(values) > MAX_HINTS:
        raise HintError(f"{len(values)} hints: at most {MAX_HINTS} per photo")
    out = []
    for i, v in enumerate(values, 1):
        try:
            out.append(Hint.parse(v))
        except HintError as e:
            raise HintError(f"hint {i}: {e}") from None
    return tuple(out)


def load_hints(path: str | Path) -> tuple[Hint, ...]:
    """The hints of a JSON file (a list of ``{"x", "y", "color"[, "radius"]}``); errors name the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise HintError(f"{path}: no such hints file") from None
    except OSError as e:
        raise HintError(f"{path}: not a JSON list of hints ({str(e).splitlines()[0]})") from None
    return hints_from_json(data, path)


def hints_from_json(data: bytes | str, name: str | Path) -> tuple[Hint, ...]:
    """The hints of a JSON file's contents (a sidecar read from a bucket, say); errors name
    ``name``, the file they came from."""
    try:
        values = json.loads(data)
    except (UnicodeDecodeError, ValueError) as e:
        cause = f"line {e.lineno}: {e.msg}" if isinstance(e, json.JSONDecodeError) else str(e).splitlines()[0]
        raise HintError(f"{name}: not a JSON list of hints ({cause})") from None
    try:
        return parse_hints(values)
    except HintError as e:
        raise HintError(f"{name}: {e}") from None


def sidecar_path(photo: str | Path) -> Path:
    """Where a photo's hints sidecar lives: ``album/grandma.jpg`` -> ``album/grandma.hints.json``."""
    photo = Path(photo)
    return photo.with_name(photo.stem + SIDECAR_SUFFIX)
