"""``dlnet evaluate``: score checkpoints and other methods' images against ground-truth photos.

Writes ``per_image.csv``, ``report.md``, ``summary.json`` and ``grid.png`` into ``--out`` and
prints the averages. The protocol is :func:`dlnet.evaluate.protocol.evaluate`'s (docs/EVALUATION.md).

``--merge A B ...`` instead joins finished reports of the same photos (scored in separate runs or
sessions) into one, with paired intervals across all their methods (:mod:`dlnet.evaluate.merge`).

Example:
    dlnet evaluate --data runs/dlnet/split/test.txt --checkpoint ours=runs/dlnet/checkpoints/best.ckpt \\
        --pred zhang=out/zhang --out reports/test
    dlnet evaluate --merge reports/global reports/local --out reports/losses
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dlnet.apps.commands import UsageError, option_error


def _named(value: str) -> tuple[str | None, str]:
    """``NAME=PATH`` -> (NAME, PATH); a bare ``PATH`` -> (None, PATH)."""
    name, sep, path = value.partition("=")
    return (name, path) if sep and name and path else (None, value)


def configure(p: argparse.ArgumentParser) -> None:
    from dlnet.config import add_flags
    from dlnet.evaluate.config import EvaluationConfig

    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--merge", nargs="+", metavar="REPORT",
                        help="join these finished reports (folders written by dlnet evaluate, same photos and "
                             "setup) into one in --out; no scoring")
    crop, grid = p.add_mutually_exclusive_group(), p.add_mutually_exclusive_group()
    crop.add_argument("--full-res", action="store_true", help="score the full photos, no resize or crop")
    # The rest: one flag per EvaluationConfig field, made from its metadata (help, range, choices).
    add_flags(p, EvaluationConfig, skip=("progress",),
              groups={"data": source, "size": crop, "grid": grid, "grid_images": grid})


def _methods(values: list[str], flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        name, path = _named(value)
        name = name or Path(path).stem or path
        if name in out:
            raise UsageError(f"{flag}: method name {name!r} given twice; use NAME=PATH to tell them apart")
        out[name] = path
    return out


def run(args: argparse.Namespace) -> int:
    import sys

    from dlnet.config import check_value, from_args
    from dlnet.errors import OptionError
    from dlnet.evaluate.config import EvaluationConfig
    from dlnet.evaluate.protocol import EvaluationError, evaluate

    values = from_args(args, EvaluationConfig)
    values["checkpoints"] = _methods(values.get("checkpoints", []), "--checkpoint")
    values["preds"] = _methods(values.get("preds", []), "--pred")
    if args.full_res:
        values["size"] = None
    try:
        if args.merge:  # no photos to score: only the options a merge uses are checked
            for name in ("table_rows", "n_resamples"):
                check_value(EvaluationConfig, name, values[name])
            return _merge(args)
        config = EvaluationConfig(**values, progress=sys.stderr.isatty())
    except OptionError as e:
        raise option_error(e, EvaluationConfig) from None
    try:
        result = evaluate(config)
    except EvaluationError as e:
        raise UsageError(str(e)) from e
    _print(result)
    if result.failures:
        print(f"{len(result.failures)} files could not be read (listed above)", file=sys.stderr)
        return 1
    return 0


def _merge(args: argparse.Namespace) -> int:
    from dlnet.evaluate.merge import merge_reports
    from dlnet.evaluate.protocol import EvaluationError

    scoring = [flag for flag, given in (("--model", args.checkpoints), ("--pred", args.preds),
                                        ("--rebalance", args.rebalance), ("--limit", args.limit)) if given]
    if scoring:
        raise UsageError(f"--merge joins finished reports; {', '.join(scoring)} cannot be used with it")
    try:
        result = merge_reports(args.merge, args.out, table_rows=args.table_rows, n_resamples=args.n_resamples,
                               seed=args.seed, overwrite=args.overwrite)
    except EvaluationError as e:
        raise UsageError(str(e)) from e
    _print(result)
    return 0


def _print(result) -> None:
    """The averages, the grey-truth count and the files written, on stdout."""
    import sys

    from rich.console import Console

    from dlnet.evaluate.report import averages_table, grey_truth_note

    # A log file or pipe gets the whole table on one line per method, not wrapped at 80 columns.
    Console(width=None if sys.stdout.isatty() else 220).print(averages_table(result.summary))
    print(grey_truth_note(result.summary["meta"]))
    print(f"wrote {', '.join(str(p) for p in result.files.values())}")
