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

from dlnet.apps.commands import UsageError
from dlnet.infer.options import DEFAULT_SIZE, MIN_SIZE


def _named(value: str) -> tuple[str | None, str]:
    """``NAME=PATH`` -> (NAME, PATH); a bare ``PATH`` -> (None, PATH)."""
    name, sep, path = value.partition("=")
    return (name, path) if sep and name and path else (None, value)


def configure(p: argparse.ArgumentParser) -> None:
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--data",
                        help="ground-truth colour photos: a folder (recursive), a file list (e.g. RUN/split/test.txt) "
                             "or one image")
    source.add_argument("--merge", nargs="+", metavar="REPORT",
                        help="join these finished reports (folders written by dlnet evaluate, same photos and "
                             "setup) into one in --out; no scoring")
    p.add_argument("--model", "--checkpoint", dest="checkpoint", action="append", default=[], metavar="NAME=PATH",
                   help="model to score (.ckpt, .safetensors or a shipped name); repeatable")
    p.add_argument("--pred", action="append", default=[], metavar="NAME=DIR",
                   help="folder of images colorized by another method, matched by file name; repeatable")
    p.add_argument("--out", required=True, help="report folder (created)")
    crop = p.add_mutually_exclusive_group()
    crop.add_argument("--size", type=int, default=256,
                      help="shorter side resized to this, then centre-cropped square (default 256)")
    crop.add_argument("--full-res", action="store_true", help="score the full photos, no resize or crop")
    p.add_argument("--limit", type=int, help="score only the first N photos")
    grid = p.add_mutually_exclusive_group()
    grid.add_argument("--grid", type=int, default=6, metavar="N", help="random photos in grid.png (default 6; 0: none)")
    grid.add_argument("--grid-images", metavar="A,B,...", help="these photos in grid.png (names or paths)")
    p.add_argument("--table-rows", type=int, default=10, metavar="N", help="photos in report.md's per-photo tables")
    p.add_argument("--seed", type=int, default=0, help="grid choice and bootstrap resampling (default 0)")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: CUDA if available)")
    p.add_argument("--working-size", type=int, default=DEFAULT_SIZE,
                   help="predict colour at this longer side, as colorize --size does, 0 = the scored photo's "
                        "own size (default: colorize's, %(default)s)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--workers", type=int, help="image-decoding processes (default: 0 on CPU)")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="model precision (default fp32: the same numbers on any machine)")
    p.add_argument("--rebalance", action="store_true",
                   help="also score each checkpoint with colour rebalancing, as NAME+rebalance")
    p.add_argument("--keep-grey-truth", action="store_true",
                   help="keep photos whose ground truth is grey (colourfulness < 1) in the averages; by default "
                        "they are left out, counted and marked in per_image.csv")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier report in --out")


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

    from dlnet.evaluate.protocol import EvaluationError, evaluate

    if args.working_size and args.working_size < MIN_SIZE:
        raise UsageError(f"--working-size must be at least {MIN_SIZE} (or 0: the photo's own size), got {args.working_size}")
    for flag, value, low in (("--size", args.size, 11), ("--batch-size", args.batch_size, 1),
                             ("--resamples", args.resamples, 1), ("--grid", args.grid, 0),
                             ("--table-rows", args.table_rows, 0)):
        if value < low:
            raise UsageError(f"{flag} must be at least {low}, got {value}")
    if args.merge:
        return _merge(args)
    try:
        result = evaluate(
            args.data, args.out, checkpoints=_methods(args.checkpoint, "--checkpoint"),
            preds=_methods(args.pred, "--pred"), size=None if args.full_res else args.size, limit=args.limit,
            grid=args.grid, grid_images=[s.strip() for s in args.grid_images.split(",") if s.strip()]
            if args.grid_images else None, table_rows=args.table_rows, seed=args.seed, device=args.device,
            batch_size=args.batch_size, precision=args.precision,
            rebalance=args.rebalance, n_resamples=args.resamples,
            workers=args.workers, overwrite=args.overwrite, keep_grey_truth=args.keep_grey_truth,
            progress=sys.stderr.isatty(), working_size=args.working_size or None)
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

    scoring = [flag for flag, given in (("--model", args.checkpoint), ("--pred", args.pred),
                                        ("--rebalance", args.rebalance), ("--limit", args.limit)) if given]
    if scoring:
        raise UsageError(f"--merge joins finished reports; {', '.join(scoring)} cannot be used with it")
    try:
        result = merge_reports(args.merge, args.out, table_rows=args.table_rows, n_resamples=args.resamples,
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
