"""Hold out a tenth of the people photos (../shared/data/people) as a people check of their own.

Writes ``OUT/train.txt`` (nine tenths, for ``dlnet pack --extra-train``) and ``OUT/check.txt``
(one tenth, for ``dlnet evaluate --data``). The split is fixed by the file names alone: every
tenth photo of each folder in sorted order, so the same photos are held out on every machine.

    python experiments/people_split.py ../shared/data/people ../runs/people.split
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dlnet.io.photolist import find_photos


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("people", help="the people folder (faces/, full-body/)")
    p.add_argument("out", help="folder for train.txt and check.txt")
    p.add_argument("--every", type=int, default=10, help="hold out every Nth photo of each folder (default 10)")
    args = p.parse_args()
    train, check = [], []
    for folder in sorted(d for d in Path(args.people).iterdir() if d.is_dir()):
        for i, f in enumerate(find_photos(folder)):
            (check if i % args.every == 0 else train).append(f.resolve())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, files in (("train", train), ("check", check)):
        (out / f"{name}.txt").write_text("".join(f"{f}\n" for f in files))
    print(f"{out}: {len(train)} training and {len(check)} check photos")


if __name__ == "__main__":
    main()
