"""Write scikit-image's public-domain/CC0 colour photos to a folder, for the figure grid in
docs/RESULTS.md (the Places and BSDS500 photos may not be copied into the repository).

    python experiments/public_domain_photos.py ../runs/pd-photos
    dlnet evaluate --data ../runs/pd-photos --model new=... --size 256 --grid 4 --out ../runs/eval-pd

``--size N`` writes N x N centre crops instead (the crop ``dlnet evaluate --size N`` scores), so
that colorizations of them kept in the repository stay small (experiments/loss_remedies.sh).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image
from skimage import data

from dlnet.io.imageio import resize_crop

# astronaut and rocket: public domain (NASA); chelsea and coffee: CC0 (scikit-image's data set)
PHOTOS = ("astronaut", "rocket", "chelsea", "coffee")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", nargs="?", type=Path, default=Path("pd-photos"))
    p.add_argument("--size", type=int, help="write size x size centre crops (default: the full photos)")
    args = p.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    for name in PHOTOS:
        rgb = getattr(data, name)()
        Image.fromarray(rgb if args.size is None else resize_crop(rgb, args.size)).save(out / f"{name}.png")
    print(f"wrote {len(PHOTOS)} photos to {out}")


if __name__ == "__main__":
    main()
