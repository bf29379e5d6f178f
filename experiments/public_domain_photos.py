"""Write scikit-image's public-domain/CC0 colour photos to a folder, for the figure grid in
docs/RESULTS.md (the Places and BSDS500 photos may not be copied into the repository).

    python experiments/public_domain_photos.py ../runs/pd-photos
    dlnet evaluate --data ../runs/pd-photos --model new=... --size 256 --grid 4 --out ../runs/eval-pd
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image
from skimage import data

# astronaut and rocket: public domain (NASA); chelsea and coffee: CC0 (scikit-image's data set)
PHOTOS = ("astronaut", "rocket", "chelsea", "coffee")


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "pd-photos")
    out.mkdir(parents=True, exist_ok=True)
    for name in PHOTOS:
        Image.fromarray(getattr(data, name)()).save(out / f"{name}.png")
    print(f"wrote {len(PHOTOS)} photos to {out}")


if __name__ == "__main__":
    main()
