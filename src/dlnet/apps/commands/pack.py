"""``dlnet pack``: a run's split made once, its train and val photos packed into one file.

The pack is what ``dlnet train --packed`` reads (see :mod:`dlnet.train.packed`): photos decoded once
instead of every step, and small enough to travel to a rented GPU. The test photos are never
packed; their list is written beside the pack (``NAME.split/test.txt``) for ``dlnet evaluate``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dlnet.apps.commands import UsageError


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", action="append", required=True, help="photo folder split 80/20 inside each category (repeatable)")
    p.add_argument("--extra-train", action="append", default=[], help="photo folder or file list (.txt) used for training only (repeatable)")
    p.add_argument("-o", "--out", required=True, help="the .pack file to write")
    p.add_argument("--size", type=int, default=128, help="square side of the packed photos, px (default 128)")
    p.add_argument("--format", choices=["jpeg", "webp"], default="jpeg", help="photo encoding (webp: ~40%% smaller)")
    p.add_argument("--quality", type=int, default=75, help="JPEG/WebP quality 1..95 (default 75)")
    p.add_argument("--limit", type=int, help="pack only the first N training photos (every category keeps a share)")
    p.add_argument("--max-mib", type=float, help="stop adding training photos before the pack passes this size")
    p.add_argument("--seed", type=int, default=0, help="split seed (the same as dlnet train's)")
    p.add_argument("--test-fraction", type=float, default=0.2)
    p.add_argument("--val-fraction", type=float, default=0.05)
    p.add_argument("--overwrite", action="store_true", help="replace an existing pack")


def run(args: argparse.Namespace) -> int:
    from dlnet.train.data import DataError, make_split, write_split
    from dlnet.train.packed import pack_photos

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise UsageError(f"{out}: exists (use --overwrite to replace it)")
    if not 1 <= args.quality <= 95:
        raise UsageError(f"--quality must be 1..95, got {args.quality}")
    if args.size < 32:
        raise UsageError(f"--size must be at least 32, got {args.size}")
    try:
        split = make_split(args.data, args.test_fraction, args.val_fraction, args.seed, args.extra_train)
        summary = pack_photos(split, out, args.size, args.quality, args.limit, args.format,
                              None if args.max_mib is None else int(args.max_mib * 2**20))
    except DataError as e:
        raise UsageError(str(e)) from e
    write_split(split, out.with_name(out.name + ".split"))
    print(f"{out}: {summary['train']} train + {summary['val']} val photos "
          f"({summary['train_skipped'] + summary['val_skipped']} grey or unreadable left out, "
          f"{summary['over_budget']} over the size budget), "
          f"{summary['bytes'] / 2**20:.1f} MiB; test list: {out}.split/test.txt")
    return 0
