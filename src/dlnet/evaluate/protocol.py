"""Score checkpoints and other colorization methods against ground-truth colour photos.

The protocol (see docs/EVALUATION.md):

* Ground truth: a folder (recursive), a text file listing image paths (a training run's
  ``RUN/split/test.txt``), or one image. Each photo is EXIF-transposed, converted to RGB, its
  shorter side resized to ``size`` and centre-cropped to ``size x size`` (``size=None`` keeps the
  full photo).
* Methods: the grey baseline (the 8-bit grey photo a user sees: the truth's L* with a* = b* = 0,
  as ``dlnet colorize --side-by-side`` shows it) is always scored; checkpoints colorize the
  truth through the inference core ``dlnet colorize`` uses
  (:meth:`~dlnet.infer.colorizer.Colorizer.colorize_photos`: working size, full-resolution L*, the
  final 8-bit sRGB), so the score is that of the photo a user gets; folders of images colorized
  by any other method are matched by file name and brought to the same crop.
* Every output scored is 8-bit, as a saved image is, so checkpoints and image folders are scored
  alike. Metrics: :mod:`dlnet.color.metrics`. Report: :mod:`dlnet.evaluate.report`.
* Photos whose ground truth is itself grey (colourfulness below :data:`GREY_TRUTH_BELOW`) are
  scored but left out of the averages, since any grey output matches them (``keep_grey_truth``
  keeps them); their rows say so in ``left_out``.

Example:
    >>> result = evaluate(EvaluationConfig("RUN/split/test.txt", "reports/run1", checkpoints={"ours": "RUN/best.ckpt"}))
    >>> result.summary["methods"]["ours"]["psnr"]["mean"]
"""

from __future__ import annotations

import os
import random
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

import dlnet
from dlnet.color import metrics
from dlnet.errors import DLNetError
from dlnet.evaluate import report
from dlnet.color.lab import rgb_to_lab
from dlnet.color.fullres import lightness, merge_rgb8
from dlnet.evaluate.config import DEFAULT_SIZE, GREY_TRUTH_BELOW, EvaluationConfig
from dlnet.io.photolist import DataError, find_photos, read_list
from dlnet.io.imageio import IMAGE_SUFFIXES, ImageError, Photo, read_rgb8, resize_crop
from dlnet.model.device import resolve_device
from dlnet.model.net import DLNet
from dlnet.evaluate.report import GREY, TRUTH  # method names: the grey baseline (L, a* = b* = 0); the truth

__all__ = ["evaluate", "find_truth", "match_files", "Evaluation", "EvaluationConfig", "EvaluationError", "Truth",
           "GREY", "TRUTH", "GREY_TRUTH_BELOW", "DEFAULT_SIZE"]


class EvaluationError(DLNetError, ValueError):
    """Bad data, method or output folder: raised with a one-line reason before any work."""


@dataclass(frozen=True)
class Truth:
    """One ground-truth photo; ``name`` (its path relative to the data root, POSIX style) names
    its rows and is the key for matching other methods' files."""

    name: str
    path: Path


@dataclass
class Evaluation:
    """What :func:`evaluate` found: per-image rows (those of photos left out of the averages too,
    marked in ``left_out``), the summary (as in ``summary.json``), the files written and one line
    per input that could not be read."""

    rows: list[dict]
    summary: dict
    files: dict[str, Path]
    failures: list[str] = field(default_factory=list)


def find_truth(data: str | Path) -> list[Truth]:
    """Ground-truth photos from a folder (recursive, sorted), a file list or one image file."""
    data = Path(data)
    if data.is_dir():
        files, root = find_photos(data), data
    elif data.is_file() and data.suffix.lower() in IMAGE_SUFFIXES:
        files, root = [data], data.parent
    elif data.is_file():
        try:
            files = [Path(os.path.abspath(p)) for p in read_list(data)]
        except DataError as e:
            raise EvaluationError(str(e)) from None
        # Names relative to the listed files' common folder: "category/photo.jpg" for a split list.
        root = Path(os.path.commonpath([p.parent for p in files])) if files else data.parent
    else:
        raise EvaluationError(f"{data}: no such folder or file list")
    if not files:
        raise EvaluationError(f"{data}: no images found")
    return [Truth(p.relative_to(root).as_posix(), p) for p in files]


def match_files(truths: Sequence[Truth], folder: str | Path) -> list[Path | None]:
    """For each truth photo, the image in ``folder`` with the same relative path, else with the
    same base name when that name is unique on both sides; the extension never matters (methods
    often save PNG for a JPEG input). None where nothing matches."""
    folder = Path(folder)
    files = find_photos(folder)
    by_rel = {p.relative_to(folder).with_suffix("").as_posix(): p for p in files}
    by_stem: dict[str, list[Path]] = {}
    for p in files:
        by_stem.setdefault(p.stem, []).append(p)
    truth_stems = Counter(PurePosixPath(t.name).stem for t in truths)
    matched = []
    for t in truths:
        name = PurePosixPath(t.name)
        hit = by_rel.get(name.with_suffix("").as_posix())
        if hit is None and truth_stems[name.stem] == 1 and len(by_stem.get(name.stem, [])) == 1:
            hit = by_stem[name.stem][0]
        matched.append(hit)
    return matched


def _read(path: Path, size: int | None) -> np.ndarray:
    """A photo as ``dlnet colorize`` reads it (:func:`read_rgb8`), resized and cropped to ``size``."""
    rgb = read_rgb8(path)
    return rgb if size is None else resize_crop(rgb, size)


class _Photos(Dataset):
    """Item i: the truth photo and every ``--pred`` image for it, uint8 ``(H, W, 3)``, with one
    message per file that could not be read (workers only decode; the main process reports)."""

    def __init__(self, truths: Sequence[Truth], preds: Mapping[str, list[Path | None]], size: int | None):
        self.truths, self.preds, self.size = truths, preds, size

    def __len__(self) -> int:
        return len(self.truths)

    def __getitem__(self, i: int) -> dict:
        item = {"index": i, "truth": None, "preds": {}, "errors": [], "resized": []}
        path = self.truths[i].path
        try:
            truth = _read(path, self.size)
        except ImageError as e:  # corrupt, missing or not an image: skip this photo, keep going
            item["errors"].append(f"{path}: cannot read image: {e.cause}")
            return item
        item["truth"] = truth
        for name, paths in self.preds.items():
            if paths[i] is None:
                continue
            try:
                im = _read(paths[i], self.size)
            except ImageError as e:
                item["errors"].append(f"{paths[i]}: cannot read image: {e.cause}")
                continue
            if im.shape != truth.shape:  # e.g. a method that returns a different resolution
                im = np.asarray(Image.fromarray(im).resize(truth.shape[1::-1], Image.BICUBIC))
                item["resized"].append(name)
            item["preds"][name] = im
        return item


def _as_tensor(rgbs: Sequence[np.ndarray], device: torch.device) -> torch.Tensor:
    """uint8 ``(H, W, 3)`` arrays of one shape -> uint8 ``(B, 3, H, W)`` on ``device``."""
    return torch.from_numpy(np.stack(rgbs)).permute(0, 3, 1, 2).to(device)


def _same_shape_runs(items: list[dict]) -> list[list[dict]]:
    """Consecutive items grouped by image shape, so full-resolution photos batch where they can."""
    runs: list[list[dict]] = []
    for it in items:
        if runs and runs[-1][0]["truth"].shape == it["truth"].shape:
            runs[-1].append(it)
        else:
            runs.append([it])
    return runs


def _score(out8: torch.Tensor, truth: torch.Tensor, truth_ab: torch.Tensor,
           truth_values: Mapping[str, torch.Tensor]) -> list[dict]:
    out = out8.float() / 255
    ab = rgb_to_lab(out)[:, 1:]
    bias = metrics.mean_colour_bias(ab, truth_ab)
    values = {
        "psnr": metrics.psnr(out, truth), "ssim": metrics.ssim(out, truth),
        "mse_rgb": metrics.mse_rgb(out, truth), "colourfulness": metrics.colourfulness(out),
        "hue_spread": metrics.hue_spread(ab), "bias_a": bias[:, 0], "bias_b": bias[:, 1], **truth_values,
    }
    cols = {k: v.tolist() for k, v in values.items()}
    return [{k: cols[k][i] for k in cols} for i in range(out.shape[0])]


def _score_run(run: list[dict], colorizers: Mapping, pred_names: list[str], device: torch.device,
               grid_rows: set[int]) -> tuple[list[dict], dict[int, dict[str, np.ndarray]]]:
    """Score every method on a run of same-shape photos; also return the grid's images (HWC uint8)."""
    idx = [it["index"] for it in run]
    truth8 = _as_tensor([it["truth"] for it in run], device)
    truth = truth8.float() / 255
    truth_ab = rgb_to_lab(truth)[:, 1:]
    truth_values = {"colourfulness_truth": metrics.colourfulness(truth),
                    "hue_spread_truth": metrics.hue_spread(truth_ab)}
    # What a user gets: the grey photo of the truth's L*, and each model's 8-bit colour photo,
    # made by the inference core from the truth photo (only its L* is used).
    photos = [Photo(it["truth"]) for it in run]
    outputs = {GREY: _as_tensor([merge_rgb8(lightness(p.rgb), None) for p in photos], device)}
    for name, colorizer in colorizers.items():
        outputs[name] = _as_tensor([p.rgb for p in colorizer.colorize_photos(photos)], device)
    have = {n: list(range(len(run))) for n in outputs}
    for name in pred_names:  # a folder may lack some photos: score those it has
        have[name] = [k for k, it in enumerate(run) if name in it["preds"]]
        if have[name]:
            outputs[name] = _as_tensor([run[k]["preds"][name] for k in have[name]], device)
    rows = []
    cells = {k: {TRUTH: truth8[k]} for k, i in enumerate(idx) if i in grid_rows}
    for name, out8 in outputs.items():
        ks = have[name]
        scores = _score(out8, truth[ks], truth_ab[ks], {c: v[ks] for c, v in truth_values.items()})
        for j, (k, r) in enumerate(zip(ks, scores)):
            rows.append({"index": idx[k], "method": name, **r})
            if k in cells:
                cells[k][name] = out8[j]
    return rows, {idx[k]: {n: t.permute(1, 2, 0).cpu().numpy() for n, t in cell.items()} for k, cell in cells.items()}


def _grid_indices(truths: Sequence[Truth], grid: int, grid_images: Sequence[str] | None, seed: int) -> list[int]:
    if grid_images:
        indices = []
        for want in grid_images:
            hits = [i for i, t in enumerate(truths)
                    if want in (t.name, PurePosixPath(t.name).name, PurePosixPath(t.name).stem)]
            if len(hits) != 1:
                raise EvaluationError(f"grid image {want!r}: {'not among' if not hits else 'ambiguous in'} "
                                      f"the evaluated images")
            indices.append(hits[0])
        return indices
    return sorted(random.Random(seed).sample(range(len(truths)), min(grid, len(truths))))


def _check_names(checkpoints: Mapping, preds: Mapping, rebalance) -> list[str]:
    names = [GREY, *checkpoints, *(f"{n}+rebalance" for n in checkpoints if rebalance), *preds]
    for n in names[1:]:
        if not n or n in (GREY, TRUTH) or "," in n:
            raise EvaluationError(f"method name {n!r} is reserved or empty (or has a comma)")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise EvaluationError(f"method names must be unique, repeated: {', '.join(dupes)}")
    return names


def check_out(out: str | Path, overwrite: bool) -> Path:
    """``out`` as a Path; raises :class:`EvaluationError` if it holds report files and not ``overwrite``."""
    out = Path(out)
    existing = [n for n in report.OUTPUT_FILES if (out / n).exists()]
    if existing and not overwrite:
        raise EvaluationError(f"{out} already holds {', '.join(existing)}; choose a new --out or --overwrite")
    return out


def evaluate(config: EvaluationConfig | str | Path, out: str | Path | None = None, **options) -> Evaluation:
    """Score the grey baseline, the config's ``checkpoints`` and ``preds`` folders on the photos
    of its ``data`` and write ``per_image.csv``, ``report.md``, ``summary.json`` and ``grid.png``
    into its ``out``. ``evaluate(data, out, **options)`` is short for
    ``evaluate(EvaluationConfig(data, out, **options))``.

    The config (:class:`~dlnet.evaluate.config.EvaluationConfig`):
        data: folder, file list or image; see :func:`find_truth`.
        out: report folder; existing report files there are kept unless ``overwrite``.
        checkpoints: name -> ``.ckpt``/``.safetensors`` path, shipped model name or a DLNet.
        preds: name -> folder of images colorized by another method (see :func:`match_files`).
        size: centre-crop side, px; None = full photos.
        limit: score only the first ``limit`` photos (sorted order).
        grid / grid_images: rows of the figure: ``grid`` random photos (seeded), or these names.
        table_rows: photos in the report's per-image tables.
        precision: "fp32" (default: reproducible numbers on any machine) or "bf16".
        rebalance: colour rebalancing (True: its defaults, or a :class:`RebalanceConfig`); each
            checkpoint is then also scored with it, as method ``NAME+rebalance``.
        n_resamples: bootstrap resamples for the 95% intervals (seeded by ``seed``).
        workers: image-decoding processes (default: 0 on CPU, where the model needs the cores).
        keep_grey_truth: average photos whose truth is grey (colourfulness below
            :data:`GREY_TRUTH_BELOW`) too; by default they are scored, marked ``left_out`` and
            counted, but left out of the summary.
        working_size: the longer side colour is predicted at, by default ``dlnet colorize``'s
            (``--size``: so the score is that of the photo a user gets); None: the scored photo's
            own size.

    A value out of range is an :class:`~dlnet.errors.OptionError` when the config is built;
    unusable data, methods or ``out`` an :class:`EvaluationError` (one line), before any work.
    Unreadable images are listed in ``Evaluation.failures`` and on stderr, and skipped.
    """
    from dlnet.infer.colorizer import Colorizer
    from dlnet.model.weights import WeightsError, load_model

    cfg = config if isinstance(config, EvaluationConfig) else EvaluationConfig(config, out, **options)
    data, checkpoints, preds, rebalance = cfg.data, cfg.checkpoints, cfg.preds, cfg.rebalance
    methods = _check_names(checkpoints, preds, rebalance)
    out = check_out(cfg.out, cfg.overwrite)
    truths = find_truth(data)[:cfg.limit]
    pred_paths = {}
    for name, folder in preds.items():
        if not Path(folder).is_dir():
            raise EvaluationError(f"--pred {name}: {folder}: no such folder")
        pred_paths[name] = match_files(truths, folder)
    grid_order = _grid_indices(truths, cfg.grid, cfg.grid_images, cfg.seed)
    device = resolve_device(cfg.device)
    colorizers: dict[str, Colorizer] = {}
    for name, source in checkpoints.items():
        try:
            model = source if isinstance(source, DLNet) else load_model(source)
        except WeightsError as e:
            raise EvaluationError(str(e)) from e
        work = cfg.working_size or cfg.size  # the size colour is predicted at; default: the photo's
        kw = {"device": device, "size": work, "precision": cfg.precision, "batch_size": cfg.batch_size}
        colorizers[name] = Colorizer(model, **kw)
        if rebalance is not None:
            colorizers[f"{name}+rebalance"] = Colorizer(model, rebalance=rebalance, **kw)

    workers = (0 if device.type == "cpu" else min(8, os.cpu_count() or 1)) if cfg.workers is None else cfg.workers
    loader = DataLoader(_Photos(truths, pred_paths, cfg.size), batch_size=cfg.batch_size, num_workers=workers,
                        collate_fn=list)
    rows: list[dict] = []
    failures: list[str] = []
    resized = dict.fromkeys(preds, 0)
    grid_cells: dict[int, dict[str, np.ndarray]] = {}
    for items in report.progress(loader, enabled=cfg.progress):
        for it in items:
            for msg in it["errors"]:
                print(f"warning: skipping {msg}", file=sys.stderr)
                failures.append(msg)
            for name in it["resized"]:
                resized[name] += 1
        for run in _same_shape_runs([it for it in items if it["truth"] is not None]):
            run_rows, cells = _score_run(run, colorizers, list(preds), device, set(grid_order))
            rows += run_rows
            grid_cells.update(cells)
    for name, n in resized.items():
        if n:
            print(f"warning: --pred {name}: {n} images had another size than the truth and were resized",
                  file=sys.stderr)
    if not rows:
        raise EvaluationError(f"{data}: none of the {len(truths)} images could be read")

    order = {m: k for k, m in enumerate(methods)}
    rows.sort(key=lambda r: (r["index"], order[r["method"]]))
    for r in rows:
        r["image"] = truths[r.pop("index")].name
    grey_truth = list(dict.fromkeys(r["image"] for r in rows if r["colourfulness_truth"] < GREY_TRUTH_BELOW))
    left_out = set() if cfg.keep_grey_truth else set(grey_truth)
    for r in rows:
        r["left_out"] = "grey_truth" if r["image"] in left_out else ""
    kept = [r for r in rows if not r["left_out"]]
    if not kept:
        raise EvaluationError(f"{data}: all {len(grey_truth)} readable photos have a grey ground truth "
                              f"(colourfulness < {GREY_TRUTH_BELOW:g}); --keep-grey-truth scores them")
    scored = {r["image"] for r in kept}  # photos whose truth could be read and is in colour
    missing = {}
    for name, paths in pred_paths.items():
        lacking = [t.name for t, p in zip(truths, paths) if p is None and t.name in scored]
        missing[name] = len(lacking)
        if lacking:
            print(f"warning: --pred {name}: {len(lacking)} of {len(scored)} photos have no match in "
                  f"{preds[name]} (first: {lacking[0]})", file=sys.stderr)
    kinds = {GREY: "grey", **{n: "checkpoint" for n in colorizers}, **{n: "pred" for n in preds}}
    sources = {n: "in-memory model" if isinstance(s, DLNet) else str(s) for n, s in checkpoints.items()}
    sources.update({f"{n}+rebalance": f"{s} + rebalance" for n, s in sources.items() if rebalance is not None})
    sources.update({n: str(p) for n, p in preds.items()})
    meta = {"data": str(data), "images": len(truths), "images_scored": len(scored),
            "grey_truth": {"below": GREY_TRUTH_BELOW, "count": len(grey_truth), "kept": cfg.keep_grey_truth,
                           "images": grey_truth},
            "size": cfg.size, "working_size": cfg.working_size, "seed": cfg.seed, "precision": cfg.precision,
            "device": str(device),
            "dlnet_version": dlnet.__version__}
    summary = report.summarize(kept, methods, kinds=kinds, sources=sources, missing=missing, meta=meta,
                               n_resamples=cfg.n_resamples, seed=cfg.seed)
    grid_order = [i for i in grid_order if i in grid_cells]  # unreadable photos drop out
    files = report.write_all(out, rows, summary, methods=methods, table_rows=cfg.table_rows,
                             grid_names=[truths[i].name for i in grid_order],
                             grid_cells=[grid_cells[i] for i in grid_order])
    return Evaluation(rows, summary, files, failures)
