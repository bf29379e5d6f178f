"""Training photos packed into one file, decoded once, augmented on the training device.

Decoding a JPEG per photo per step costs more CPU than a small model's training step on two
cores, and a GPU starves on it. ``dlnet pack`` therefore makes the run's split once and writes its
*train* and *val* photos (never the test photos) into one ``.pack`` file: each photo resized
(shorter side to ``size``), centre-cropped square and encoded as JPEG or WebP, all in one
``.npz`` with the split's file lists. A 128 px MiniPlaces photo is 4.2 KB as JPEG at quality
75 and 2.4 KB as WebP at quality 60, so 19,000 photos travel in 45 MB.

Training decodes the pack once (torchvision, on the CPU) into a uint8 ``(N, 3, S, S)`` tensor
and moves it to the training device: a GPU keeps all photos in its memory. On the CPU they are
decoded into a memory-mapped cache file beside the pack (``NAME.pack.u8``, rebuilt when the
pack changes), so later runs start at once. :class:`PackedDataModule` then samples batch *indices*; the photos are gathered and
augmented on the device (random resized crop, horizontal flip) in ``on_after_batch_transfer``.
On one device the order (:class:`EpochSampler`) and the augmentation generator are saved in every
checkpoint, so ``--resume`` continues mid-epoch with the batches an uninterrupted run would have had.

Example:
    >>> pack_photos(Split(train=files, val=files[:2]), "photos.pack", size=128)   # doctest: +SKIP
    >>> photos = load_packed("photos.pack")["train"]                               # doctest: +SKIP
    >>> photos.shape, photos.dtype                                                 # doctest: +SKIP
    (torch.Size([28000, 3, 128, 128]), torch.uint8)
"""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader

from dlnet.io.atomic import atomic_path
from dlnet.train.data import GREY_TOLERANCE, DataError, Split
from dlnet.io.imageio import ImageError, read_rgb8, resize_crop

__all__ = ["pack_photos", "pack_names", "load_packed", "sample_packed", "augment", "PackedDataModule"]

_PARTS = ("train", "val")


def _encode(path: Path, size: int, quality: int, fmt: str) -> bytes | None:
    """One photo as square JPEG bytes; None for an unreadable or grey photo."""
    try:
        arr = resize_crop(read_rgb8(path), size)  # the one photo reader, as training and colorize
    except ImageError as e:  # a corrupt file costs a warning, not the pack
        print(f"warning: skipping {path}: cannot read image: {e.cause}", file=sys.stderr)
        return None
    if (arr.max(axis=2).astype(np.int16) - arr.min(axis=2)).max() <= GREY_TOLERANCE:
        return None  # grey photos never teach "no colour"
    buf, im = io.BytesIO(), Image.fromarray(arr)
    if fmt == "webp":
        im.save(buf, "WEBP", quality=quality, method=6)
    else:
        im.save(buf, "JPEG", quality=quality, subsampling=0 if quality >= 90 else 2)
    return buf.getvalue()


def pack_photos(split: Split, out: str | Path, size: int = 128, quality: int = 75,
                limit: int | None = None, fmt: str = "jpeg", max_bytes: int | None = None) -> dict:
    """Write the train and val photos of ``split`` into one ``.pack`` (npz) file, atomically.

    ``limit`` keeps only the first N training photos, and ``max_bytes`` stops adding training
    photos before the file would pass that size (a pack that must travel); the split is
    shuffled per category, so a prefix still covers every category. Returns a summary: counts
    per part, photos left out (grey or unreadable), photos over the budget, bytes.
    """
    out = Path(out)
    arrays: dict[str, np.ndarray] = {}
    if fmt not in ("jpeg", "webp"):
        raise DataError(f"pack format must be jpeg or webp, got {fmt!r}")
    summary: dict = {"size": size, "quality": quality, "format": fmt, "over_budget": 0}
    used = 4096 + sum(len(str(p)) for p in split.test) // 4  # npz headers and the compressed test list
    for part in ("val", "train"):  # val first: a budget only ever shortens the training photos
        files = list(getattr(split, part))[: limit if part == "train" else None]
        blobs, names = [], []
        for i, f in enumerate(files):
            data = _encode(Path(f), size, quality, fmt)
            if data is None:
                continue
            cost = len(data) + 8 + len(str(f)) // 4  # photo, offset, compressed name
            if max_bytes is not None and used + cost > max_bytes:
                summary["over_budget"] = len(files) - i
                files = files[:i]
                break
            used += cost
            blobs.append(np.frombuffer(data, np.uint8))
            names.append(str(f))
        if not blobs:
            raise DataError(f"no usable {part} photos to pack")
        arrays[f"{part}_data"] = np.concatenate(blobs)
        arrays[f"{part}_offsets"] = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
        arrays[f"{part}_names"] = _text(names)
        summary[part] = len(blobs)
        summary[f"{part}_skipped"] = len(files) - len(blobs)
    arrays["test_names"] = _text([str(p) for p in split.test])
    arrays["meta"] = _text([json.dumps({"size": size, "quality": quality, "format": fmt})])
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out, suffix=".npz") as tmp:  # np.savez appends .npz to other names
        np.savez_compressed(tmp, **arrays)  # the photos are already compressed; the names are not
    summary["bytes"] = out.stat().st_size
    return summary


def _text(lines: list[str]) -> np.ndarray:
    return np.frombuffer("\n".join(lines).encode(), np.uint8)


def pack_names(path: str | Path, part: str) -> list[str]:
    """The source paths of a pack's ``train``, ``val`` or ``test`` photos (test: listed, not packed)."""
    with np.load(path) as z:
        return z[f"{part}_names"].tobytes().decode().split("\n")


def _decode_one(blob: np.ndarray) -> np.ndarray:
    with Image.open(io.BytesIO(blob.tobytes())) as im:
        return np.asarray(im.convert("RGB"))


def _decode_all(data: np.ndarray, offsets: np.ndarray) -> torch.Tensor:
    """uint8 ``(N, 3, S, S)``; Pillow decodes outside the GIL, so threads use every core."""
    from concurrent.futures import ThreadPoolExecutor

    blobs = [data[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]
    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        arrays = list(pool.map(_decode_one, blobs, chunksize=64))
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def load_packed(path: str | Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """The pack's ``train`` and ``val`` photos as uint8 ``(N, 3, S, S)`` tensors on ``device``.

    On the CPU the decoded photos are cached in ``PATH.u8`` (a memory map, written once, valid
    while the pack's size and modification time match), so only the first run decodes.
    """
    path, device = Path(path), torch.device(device)
    if not path.is_file():
        raise DataError(f"{path}: no such pack file (make one with dlnet pack)")
    with np.load(path) as z:
        meta = json.loads(z["meta"].tobytes().decode())
        counts = {p: len(z[f"{p}_offsets"]) - 1 for p in _PARTS}
        s = meta["size"]
        if device.type != "cpu":  # decoded once per run, then all photos live on the device
            return {p: _decode_all(z[f"{p}_data"], z[f"{p}_offsets"]).to(device) for p in _PARTS}
        cache = path.with_name(path.name + ".u8")
        stamp = f"{path.stat().st_size}:{path.stat().st_mtime_ns}"
        stamp_file = cache.with_name(cache.name + ".stamp")
        total = sum(counts.values())
        if not (cache.is_file() and stamp_file.is_file() and stamp_file.read_text() == stamp):
            with atomic_path(cache, suffix=".npy") as tmp:
                mm = np.lib.format.open_memmap(tmp, "w+", np.uint8, (total, 3, s, s))
                start = 0
                for p in _PARTS:
                    for i in range(0, counts[p], 2048):  # in chunks: bounded memory for any pack size
                        offs = z[f"{p}_offsets"][i:i + 2049]
                        chunk = _decode_all(z[f"{p}_data"][offs[0]:offs[-1]], offs - offs[0])
                        mm[start:start + len(chunk)] = chunk.numpy()
                        start += len(chunk)
                mm.flush()
                del mm
            stamp_file.write_text(stamp)
    photos = torch.from_numpy(np.load(cache, mmap_mode="r+"))
    return {"train": photos[:counts["train"]], "val": photos[counts["train"]:]}


def sample_packed(path: str | Path, part: str = "train", n: int = 2000, seed: int = 0) -> torch.Tensor:
    """``n`` photos of a pack's ``part`` drawn at random (all when it holds fewer), decoded on the
    CPU and only those: uint8 ``(n, 3, S, S)``, in pack order. For statistics of the training
    photos (the a*b* prior) before the run decodes them all, wherever it keeps them.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such pack file (make one with dlnet pack)")
    with np.load(path) as z:
        data, offsets = z[f"{part}_data"], z[f"{part}_offsets"]
    count = len(offsets) - 1
    pick = torch.randperm(count, generator=torch.Generator().manual_seed(seed))[:n].sort().values.tolist()
    blobs = [data[offsets[i]:offsets[i + 1]] for i in pick]
    return _decode_all(np.concatenate(blobs), np.cumsum([0] + [len(b) for b in blobs]))


def augment(photos: torch.Tensor, size: int, generator: torch.Generator | None = None,
            min_scale: float = 0.5) -> torch.Tensor:
    """Random resized crop (area ``min_scale``..1, square) to ``size`` and a random horizontal
    flip, per photo, on the photos' device. uint8 ``(B, 3, S, S)`` in and out.
    """
    b, _, s, _ = photos.shape
    dev = photos.device
    r = torch.rand(b, 4, device=dev, generator=generator)
    side = torch.sqrt(min_scale + (1 - min_scale) * r[:, 0])  # crop side, as a fraction of S
    cx = (1 - side) * (2 * r[:, 1] - 1)  # centre in -1..1 (grid_sample's units), crop inside
    cy = (1 - side) * (2 * r[:, 2] - 1)
    flip = torch.where(r[:, 3] < 0.5, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3, device=dev)
    theta[:, 0, 0], theta[:, 0, 2] = side * flip, cx
    theta[:, 1, 1], theta[:, 1, 2] = side, cy
    grid = F.affine_grid(theta, (b, 3, size, size), align_corners=False)
    out = F.grid_sample(photos.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.round_().clamp_(0, 255).to(torch.uint8)


class PackedDataModule(L.LightningDataModule):
    """Batches from a ``.pack``: loaders yield index tensors; the photos stay on the device.

    The batch the LightningModule sees is the same as :class:`dlnet.train.data.ColorDataModule`'s:
    ``{"rgb": uint8 (B, 3, size, size), "skipped_bad": 0, "skipped_grey": 0}``.
    """

    def __init__(self, path: str | Path, size: int = 128, batch_size: int = 32, seed: int = 0) -> None:
        super().__init__()
        self.path, self.size, self.batch_size, self.seed = Path(path), size, batch_size, seed
        self.photos: dict[str, torch.Tensor] | None = None
        self._gen: torch.Generator | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.photos is None:
            device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
            self.photos = load_packed(self.path, device)
            self._gen = torch.Generator(device=device)
            self._gen.manual_seed(self.seed + self.trainer.global_rank if self.trainer is not None else self.seed)

    def _loader(self, part: str, train: bool) -> DataLoader:
        n = len(self.photos[part])
        kwargs = dict(batch_size=self.batch_size, num_workers=0, drop_last=train and n > self.batch_size,
                      collate_fn=_collate_indices)
        if not train:
            return DataLoader(_Indices(n, part), **kwargs)
        if self.trainer is not None and self.trainer.world_size > 1:  # Lightning swaps in a DistributedSampler
            return _ResumableLoader(_Indices(n, part), shuffle=True, **kwargs)
        return _ResumableLoader(_Indices(n, part), sampler=EpochSampler(n, self.seed), **kwargs)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False)

    def state_dict(self) -> dict:
        """Saved in every checkpoint: the augmentation generator, so a resumed run crops as an uninterrupted one would."""
        return {"augment_rng": self._gen.get_state()} if self._gen is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if self._gen is not None and "augment_rng" in state:
            self._gen.set_state(state["augment_rng"])

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        part, idx = batch
        photos = self.photos[part]
        rgb = photos[idx.to(photos.device)].to(idx.device)
        if self.trainer is not None and self.trainer.training:
            rgb = augment(rgb, self.size, self._gen if self._gen.device == rgb.device else None)
        elif rgb.shape[-1] != self.size:
            rgb = F.interpolate(rgb.float(), size=(self.size, self.size), mode="bilinear",
                                antialias=True).round().clamp(0, 255).to(torch.uint8)
        return {"rgb": rgb, "skipped_bad": 0, "skipped_grey": 0}


class EpochSampler(torch.utils.data.Sampler[int]):
    """A fresh permutation of ``range(n)`` every epoch, drawn from ``(seed, epoch)`` alone, that can
    resume mid-epoch: its state is the epoch and how many indices it has handed out, and after
    :meth:`load_state_dict` it hands out the rest of that epoch's permutation. (PyTorch's
    ``RandomSampler`` draws from the global generator, so a resumed run would start the epoch over
    with photos it had just seen and never reach the rest.)

    >>> s = EpochSampler(6, seed=0); s.set_epoch(2); first = list(s)
    >>> s.load_state_dict({"epoch": 2, "served": 4}); s.set_epoch(2); list(s) == first[4:]
    True
    """

    def __init__(self, n: int, seed: int = 0) -> None:
        self.n, self.seed, self.epoch, self.served = n, seed, 0, 0

    def __len__(self) -> int:
        return self.n  # the whole epoch: Lightning counts a resumed epoch's batches from its start

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.epoch, self.served = epoch, 0

    def __iter__(self):
        order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch))
        for i in order[self.served:].tolist():
            self.served += 1
            yield i
        self.served = 0  # a second pass over the same epoch starts from the top

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "served": self.served}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.served = int(state["epoch"]), int(state["served"])


class _ResumableLoader(DataLoader):
    """The training loader. Lightning saves a loader's ``state_dict`` in every checkpoint and hands
    it back on ``--resume``; this one passes it to its sampler when the sampler keeps one."""

    def state_dict(self) -> dict:
        return self.sampler.state_dict() if hasattr(self.sampler, "state_dict") else {}

    def load_state_dict(self, state: dict) -> None:
        if state and hasattr(self.sampler, "load_state_dict"):
            self.sampler.load_state_dict(state)


class _Indices(torch.utils.data.Dataset):
    def __init__(self, n: int, part: str) -> None:
        self.n, self.part = n, part

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        return self.part, i


def _collate_indices(items):
    return items[0][0], torch.tensor([i for _, i in items])
