"""``dlnet train``: the paper's training protocol on your own photos, one CPU to many GPUs.

Every flag is a field of :class:`dlnet.train.config.TrainConfig`, made from its metadata (help,
range, choices: :mod:`dlnet.config`); ``--config run.yaml`` supplies them from a file (a run's own
``config.yaml`` works), and flags given on the command line win. The config checks the values.
"""

from __future__ import annotations

import argparse
import types
import typing
from pathlib import Path

import yaml

from dlnet.apps.commands import UsageError, option_error


def configure(p: argparse.ArgumentParser) -> None:
    from dlnet.config import add_flags
    from dlnet.train.config import TrainConfig

    p.add_argument("--config", help="YAML file of TrainConfig fields (flags override it)")
    # One flag per TrainConfig field, left None unless given, so that a --config file fills the rest.
    add_flags(p, TrainConfig, defaults=False)


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
    """The run's :class:`~dlnet.train.config.TrainConfig`: the ``--config`` file's fields with the
    flags given over them, checked once (by the config). A bad value is a one-line UsageError
    naming its flag, or the file when the value came from there."""
    from dlnet.config import from_args
    from dlnet.errors import OptionError
    from dlnet.train.config import TrainConfig

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
    flags = from_args(args, TrainConfig)
    try:
        cfg = TrainConfig(**{**values, **flags})
        cfg.validate()
    except OptionError as e:
        if e.field in values and e.field not in flags:  # the file's value
            raise UsageError(f"{args.config}: {e}") from None
        raise option_error(e, TrainConfig) from None
    return cfg


def run(args: argparse.Namespace) -> int:
    from dlnet.train.training import fit

    cfg = config_from_args(args)
    try:
        out = fit(cfg)
    except (ValueError, FileNotFoundError) as e:  # (a DataError, a WeightsError: one line, exit 2, as any DLNetError)
        raise UsageError(str(e)) from e
    print(f"run folder: {out}")
    return 0
