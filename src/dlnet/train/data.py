"""Training data: image folders split 80/20 inside each category, read by the one photo reader.

The paper's protocol: the Places365 validation set (100 photos per category) split 80/20 inside
every category. :func:`make_split` does that for any folder whose sub-folders are categories, and
a random split for a plain folder of photos; the split is deterministic for a seed and written
into the run folder as file lists (``split/train.txt``, ``val.txt``, ``test.txt``) so that a
run's test photos can always be found again (``dlnet evaluate --data RUN/split/test.txt``).

Photos are read by the one photo reader, :func:`dlnet.io.imageio.read_rgb8` (EXIF orientation,
every mode, as ``dlnet colorize`` reads them). Workers only decode, resize/crop and flip,
returning uint8 ``(3, S, S)`` tensors; the Lab
conversion happens on the training device (cheaper to move bytes than floats, and the GPU does
it for free).
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from dlnet.io.imageio import IMAGE_SUFFIXES, ImageError, read_rgb8, resize_crop
from dlnet.io.photolist import DataError, find_photos, read_list  # the one scanner and list reader

__all__ = ["IMAGE_EXTENSIONS", "find_images", "make_split", "write_split", "read_list", "PhotoDataset",
           "ColorDataModule", "Split", "DataError"]

# Older names of dlnet.io's, kept for code that imports them from here (dlnet itself does not).
IMAGE_EXTENSIONS = IMAGE_SUFFIXES
find_images = find_photos
GREY_TOLERANCE = 3  # a photo whose channels never differ by more than this (0..255) is grey


@dataclass
class Split:
    train: list[Path] = field(default_factory=list)
    val: list[Path] = field(default_factory=list)
    test: list[Path] = field(default_factory=list)


def _categories(root: Path, files: list[Path]) -> dict[str, list[Path]]:
    """Group files by their first-level sub-folder; files directly in ``root`` form one group."""
    groups: dict[str, list[Path]] = {}
    for f in files:
        rel = f.relative_to(root).parts
        groups.setdefault(rel[0] if len(rel) > 1 else "", []).append(f)
    return groups


def make_split(roots: list[str | Path], test_fraction: float = 0.2, val_fraction: float = 0.05,
               seed: int = 0, extra_train: list[str | Path] = ()) -> Split:
    """Split every root 80/20 (``test_fraction``) inside each category, then hold out
    ``val_fraction`` of each category's training part for validation (model selection never
    looks at the test photos). ``extra_train`` folders, or file lists (``.txt``, one path per
    line, as :func:`write_split` writes them), are used for training only.

    A root without category sub-folders is split at random the same way.
    """
    rng = random.Random(seed)
    split = Split()
    for root in map(Path, roots):
        files = find_photos(root)
        if not files:
            raise DataError(f"{root}: no images found")
        for _, group in sorted(_categories(root, files).items()):
            group = group[:]
            rng.shuffle(group)
            n_test = round(len(group) * test_fraction)
            n_train = len(group) - n_test
            # at least one validation photo per category that can spare one: tiny folders still validate
            n_val = max(1, round(n_train * val_fraction)) if val_fraction > 0 and n_train >= 2 else 0
            split.test += group[:n_test]
            split.val += group[n_test:n_test + n_val]
            split.train += group[n_test + n_val:]
    for root in map(Path, extra_train):
        files = read_list(root) if root.suffix == ".txt" and root.is_file() else find_photos(root)
        if not files:
            raise DataError(f"{root}: no images found")
        split.train += files
    for name in ("train", "val"):
        if not getattr(split, name):
            raise DataError(f"the {name} split is empty: add photos or change the split fractions")
    return split


def write_split(split: Split, folder: str | Path) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("train", "val", "test"):
        (folder / f"{name}.txt").write_text("".join(f"{p.resolve()}\n" for p in getattr(split, name)))


class PhotoDataset(Dataset):
    """Photos as uint8 ``(3, size, size)`` tensors; unreadable or grey photos yield None.

    None items are dropped by :func:`collate`, which counts them, so a corrupt file costs one
    warning (per worker) instead of a crash mid-epoch, and grey photos never teach "no colour".
    """

    def __init__(self, files: list[Path], size: int, train: bool, skip_grey: bool = True) -> None:
        self.files, self.size, self.train, self.skip_grey = files, size, train, skip_grey
        self._reported: set[Path] = set()

    def __len__(self) -> int:
        return len(self.files)

    def _skip(self, path: Path, cause: str) -> None:
        if path not in self._reported:
            self._reported.add(path)
            print(f"warning: skipping {path}: {cause}", file=sys.stderr)

    def __getitem__(self, i: int):
        path = self.files[i]
        try:
            arr = read_rgb8(path)
        except ImageError as e:  # corrupt, truncated, not an image: skip, never crash the epoch
            self._skip(path, f"cannot read image: {e.cause}")
            return "bad"
        rng = random if self.train else None  # seeded per worker by Lightning's seed_everything
        arr = resize_crop(arr, self.size, rng)
        if self.train and rng.random() < 0.5:
            arr = arr[:, ::-1]
        if self.skip_grey and (arr.max(axis=2).astype(np.int16) - arr.min(axis=2)).max() <= GREY_TOLERANCE:
            return "grey"
        return torch.from_numpy(arr.copy()).permute(2, 0, 1)


def collate(items: list) -> dict:
    """Stack the photos of a batch; count the skipped ones."""
    photos = [x for x in items if isinstance(x, torch.Tensor)]
    return {
        "rgb": torch.stack(photos) if photos else torch.empty(0, 3, 1, 1, dtype=torch.uint8),
        "skipped_bad": sum(x == "bad" for x in items if isinstance(x, str)),
        "skipped_grey": sum(x == "grey" for x in items if isinstance(x, str)),
    }


def any_usable(files: list[Path], size: int) -> bool:
    """Whether any of ``files`` gives a validation sample (readable, not grey) as
    :class:`PhotoDataset` reads them; reads in order and stops at the first that does."""
    dataset = PhotoDataset(files, size, train=False)
    dataset._reported.update(files)  # silent: the run warns about each bad photo when it reads it
    return any(isinstance(dataset[i], torch.Tensor) for i in range(len(dataset)))


class ColorDataModule(L.LightningDataModule):
    """The train/val/test photos of a run; see :func:`make_split`. Raises :class:`DataError`
    when no validation photo can be used: a run could neither be scored nor save its best model."""

    def __init__(self, split: Split, size: int = 224, batch_size: int = 32, workers: int = 2) -> None:
        super().__init__()
        self.split, self.size, self.batch_size, self.workers = split, size, batch_size, workers
        if split.val and not any_usable(split.val, size):
            raise DataError(f"none of the {len(split.val)} validation photos can be used (each is unreadable or "
                            f"grey, e.g. {split.val[0]}): add colour photos to the data")

    def _loader(self, files: list[Path], train: bool) -> DataLoader:
        return DataLoader(PhotoDataset(files, self.size, train), batch_size=self.batch_size, shuffle=train,
                          num_workers=self.workers, collate_fn=collate, drop_last=train and len(files) > self.batch_size,
                          persistent_workers=self.workers > 0, pin_memory=torch.cuda.is_available())

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.split.train, True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.split.val, False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.split.test, False)
