"""Each option declared once: a typed config's field metadata makes its checks, flags and form fields.

A config is a dataclass whose fields are declared with :func:`option`: the default, a help
phrase, and the range or the choices a value must fall in (:class:`Option`). From that one
declaration, as LightningCLI makes a command line from a class's typed signature:

* :func:`check_fields` checks a config's values once, when it is built (its ``__post_init__``
  calls it), raising :class:`~dlnet.errors.OptionError`: one line naming the field and its range;
* :func:`add_flags` makes a command's argparse flags (help, type, choices, default) and
  :func:`from_args` reads them back as the config's keyword arguments;
* the server makes its form fields from :func:`options` (:mod:`dlnet.apps.forms`).

Configs: :class:`dlnet.infer.options.InferenceOptions` (``dlnet colorize``, the server's form),
:class:`dlnet.train.config.TrainConfig` (``dlnet train``, ``config.yaml``),
:class:`dlnet.evaluate.config.EvaluationConfig` (``dlnet evaluate``). This module imports
nothing of dlnet but its errors, so every layer can use it.

Example:
    >>> import argparse
    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Job:
    ...     size: int | None = option(128, help="working size", low=32, unit="px", none="full size",
    ...                               zero_is_none=True)
    ...     mode: str = option("fast", help="how to run", choices=("fast", "slow"))
    ...     def __post_init__(self):
    ...         check_fields(self)
    >>> Job(size=16)
    Traceback (most recent call last):
    ...
    dlnet.errors.OptionError: size must be at least 32 px (or full size), got 16
    >>> parser = argparse.ArgumentParser()
    >>> add_flags(parser, Job)
    >>> Job(**from_args(parser.parse_args(["--mode", "slow", "--size", "0"]), Job))
    Job(size=None, mode='slow')
    >>> flag_of(Job, "size"), options(Job)["mode"].choices
    ('--size', ('fast', 'slow'))
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import sys
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field

from dlnet.errors import OptionError

__all__ = ["Option", "option", "options", "check_fields", "check_value", "add_flags", "from_args", "flag_of",
           "value_type"]

_KEY = "dlnet.option"  # where a field's Option sits in its metadata


@dataclass(frozen=True)
class Option:
    """What a config field is, for people and checks: the one place its help and range live.

    Attributes:
        help: a phrase for ``--help`` and the server's form ("working size: the longer side ...").
        low, high: the smallest and the largest value allowed (numbers); None: no bound.
        positive: the value must be above 0 (0 itself refused: a learning rate).
        choices: the values allowed (strings), in the order help lists them.
        unit: said after the range in messages ("px").
        none: what None means where the field takes it ("full size", "the model's own").
        zero_is_none: a flag value 0 stands for None (``--size 0``: full size).
        flag: the command-line names, where they are not ``--field-name``.
        form: whether the server takes it as a form field of a request.
        kind: the type a flag or form value has, where the field's own is another
            (``rebalance``: a bool that becomes a RebalanceConfig).
        cli: further argparse keywords for its flag (``nargs``, ``const``, ``type``, ``action``, ``metavar``).
    """

    help: str
    low: float | None = None
    high: float | None = None
    positive: bool = False
    choices: tuple | None = None
    unit: str = ""
    none: str | None = None
    zero_is_none: bool = False
    flag: tuple[str, ...] = ()
    form: bool = True
    kind: type | None = None
    cli: Mapping = field(default_factory=dict)

    def allowed(self, number: type | None = None) -> str:
        """What a value must be, after "must be": ``"a whole number in 1..100"``, ``"at least 32 px"``."""
        if self.choices is not None:
            return "one of " + ", ".join(map(str, self.choices))
        word = "a whole number" if number is int else "a number"
        unit = f" {self.unit}" if self.unit else ""
        if self.positive and self.high is None:
            return "a positive number"
        if self.low is not None and self.high is not None:
            return f"{word} in {self.low:g}..{self.high:g}"
        if self.low is not None:
            return f"at least {self.low:g}{unit}"
        if self.high is not None:
            return f"at most {self.high:g}{unit}"
        return word

    def fits(self, value, number: type | None = None) -> bool:
        """Whether ``value`` is allowed (a number of the ``number`` type, in range; or one of the choices)."""
        if self.choices is not None:
            return isinstance(value, (str, int, float)) and value in self.choices
        if number is None:
            return True
        if isinstance(value, bool) or not isinstance(value, int if number is int else (int, float)):
            return False
        return math.isfinite(value) and (self.low is None or value >= self.low) and \
            (self.high is None or value <= self.high) and (not self.positive or value > 0)

    def check(self, name: str, value, number: type | None = None) -> None:
        """Raise :class:`OptionError` unless ``value`` fits: ``"size must be at least 32 px (or full size), got 16"``."""
        if not self.fits(value, number):
            none = "" if self.none is None else f" (or {self.none})" if self.zero_is_none else f" (or None: {self.none})"
            raise OptionError(name, f"must be {self.allowed(number)}{none}, got {value!r}")


def option(default=dataclasses.MISSING, *, help: str, default_factory=dataclasses.MISSING, **spec) -> dataclasses.Field:
    """A dataclass field with its :class:`Option` (``spec``: ``low``, ``high``, ``choices``, ...).

    ``flag`` may be one name or a tuple of names; ``choices`` any iterable (kept as a tuple)."""
    if isinstance(spec.get("flag"), str):
        spec["flag"] = (spec["flag"],)
    if spec.get("choices") is not None:
        spec["choices"] = tuple(spec["choices"])
    return field(default=default, default_factory=default_factory, metadata={_KEY: Option(help=help, **spec)})


@functools.cache
def _hints(cls: type) -> dict:
    """The config's resolved field types, once per class (annotations are strings here)."""
    return typing.get_type_hints(cls, vars(sys.modules[cls.__module__]))


def _strip_none(hint):
    """``int | None`` -> (int, True); ``int`` -> (int, False); ``A | B | None`` -> (A | B, True)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        rest = args[0] if len(args) == 1 else typing.Union[tuple(args)]
        return rest, len(args) < len(typing.get_args(hint))
    return hint, False


def value_type(cls: type, name: str):
    """The type of a flag's or form field's value: the field's without None (or the Option's ``kind``)."""
    spec = options(cls)[name]
    return spec.kind or _strip_none(_hints(cls)[name])[0]


def _number(hint) -> type | None:
    hint = _strip_none(hint)[0]
    return hint if hint in (int, float) else None


@functools.cache
def _options(cls: type) -> dict[str, Option]:
    return {f.name: f.metadata[_KEY] for f in dataclasses.fields(cls) if _KEY in f.metadata}


def options(cls) -> dict[str, Option]:
    """The config's (a class or an instance) fields that are options, by name, in declaration
    order (one dict per class: read it, do not change it)."""
    return _options(cls if isinstance(cls, type) else type(cls))


def check_value(cls, name: str, value) -> None:
    """Check one value against field ``name`` of config ``cls`` (None passes where the field takes it)."""
    hint = _hints(cls if isinstance(cls, type) else type(cls))[name]
    if value is None and _strip_none(hint)[1]:
        return
    options(cls)[name].check(name, value, _number(hint))


def check_fields(config) -> None:
    """Check every option of ``config`` against its field's metadata: numbers of the field's type
    (an int field refuses 64.0 and True), finite, in range; choices among the choices. Raises
    :class:`OptionError` for the first that does not fit."""
    for name in options(config):
        check_value(config, name, getattr(config, name))


def flag_of(cls, name: str) -> str:
    """The command-line flag of field ``name``: ``--max-megapixels``, or its Option's first ``flag``."""
    spec = options(cls).get(name)
    return spec.flag[0] if spec is not None and spec.flag else "--" + name.replace("_", "-")


def _default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING


def _help(spec: Option, default, number: type | None) -> str:
    text = spec.help
    if number is not None and spec.choices is None and (spec.low, spec.high, spec.positive) != (None, None, False):
        text += f"; {spec.allowed(number)}"  # "; a number in 0..4": the range, from the one declaration
    if spec.zero_is_none and spec.none:
        text += f"; 0 = {spec.none}"
    shown = not (default is None or default is False or default is dataclasses.MISSING
                 or (isinstance(default, (list, tuple, dict)) and not default))
    if shown:
        text += f" (default: {default})"
    elif default is None and spec.none and not spec.zero_is_none:
        text += f" (default: {spec.none})"
    return text.replace("%", "%%")  # argparse formats help with %


def add_flags(parser: argparse.ArgumentParser, cls, *, skip: tuple[str, ...] = (), defaults: bool = True,
              groups: Mapping[str, argparse._ActionsContainer] | None = None) -> None:
    """One flag per option of config ``cls`` (but ``skip``), made from its metadata: ``--field-name``
    (or the Option's ``flag``), the help with the default, the type (bool: a switch; list: a
    repeatable flag), the choices. ``defaults=False`` leaves every flag's default None, so that
    :func:`from_args` returns only what was given (a config file fills the rest). ``groups`` puts
    a field's flag in that group of the parser (a mutually exclusive one, say); a field without
    a default is a required flag elsewhere."""
    groups = groups or {}
    by_name = {f.name: f for f in dataclasses.fields(cls)}
    for name, spec in options(cls).items():
        if name in skip:
            continue
        default = _default(by_name[name])
        kind = value_type(cls, name)
        kw: dict = {"dest": name, "help": _help(spec, default, _number(_hints(cls)[name]))}
        if kind is bool:
            kw["action"] = "store_true"
        elif typing.get_origin(kind) is list:
            kw["type"] = typing.get_args(kind)[0]
            if "nargs" not in spec.cli:
                kw["action"] = "append"
        elif kind in (int, float):
            kw["type"] = kind
        if spec.choices is not None:
            kw["choices"] = spec.choices
        if spec.flag and kind is not bool:  # (argparse would name the value after the field)
            kw["metavar"] = spec.flag[0].lstrip("-").replace("-", "_").upper()
        kw.update(spec.cli)
        if default is dataclasses.MISSING:
            kw["required"] = name not in groups
        elif defaults and kw.get("action") != "append":  # (append would add to the default list)
            kw["default"] = bool(default) if kind is bool else default
        else:
            kw["default"] = None
        groups.get(name, parser).add_argument(*(spec.flag or (flag_of(cls, name),)), **kw)


def from_args(args: argparse.Namespace, cls, *, skip: tuple[str, ...] = ()) -> dict:
    """The values of ``cls``'s flags in ``args`` as keyword arguments of ``cls``: flags left at
    None are left out (the field's default, or a config file's value, stands); 0 is None where
    the Option says so (``--size 0``: full size)."""
    values = {}
    for name, spec in options(cls).items():
        value = getattr(args, name, None)
        if name in skip or value is None:
            continue
        values[name] = None if spec.zero_is_none and value == 0 and not isinstance(value, bool) else value
    return values

