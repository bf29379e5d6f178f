"""Join evaluation reports of the same photos into one report: ``dlnet evaluate --merge A B ...``.

Methods scored in separate runs (a model trained and scored in one session, another in the next,
on a machine whose checkpoints are gone by then) are compared in one table, with paired intervals,
as if they had been scored together. The per-photo rows of each report's ``per_image.csv`` (or a
gzipped ``per_image.csv.gz``, for keeping reports in a repository) are joined, after checking that
every report scored the same photos with the same crop and working size: the grey baseline is
computed from the truth alone, so its rows must agree photo by photo, to the last digit a CSV
keeps. The merged ``summary.json`` is what :func:`dlnet.evaluate.protocol.evaluate` would have
written for all methods at once (only the grid is left out: the reports hold no images).

Example:
    >>> merged = merge_reports(["reports/global", "reports/local"], "reports/all")  # doctest: +SKIP
    >>> merged.summary["vs_first_checkpoint"]["reference"]  # doctest: +SKIP
    'global'
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path

from dlnet.evaluate import report
from dlnet.evaluate.protocol import Evaluation, EvaluationError, check_out
from dlnet.evaluate.report import GREY

__all__ = ["merge_reports", "read_report"]

# What must agree between reports for their numbers to be comparable.
SAME_SETUP = ("size", "working_size", "precision")
_FLOATS = tuple(f for f in report.CSV_FIELDS if f not in ("image", "method", "left_out"))


def _csv_file(folder: Path) -> Path:
    for name in ("per_image.csv", "per_image.csv.gz"):
        if (folder / name).is_file():
            return folder / name
    raise EvaluationError(f"{folder}: no per_image.csv (or per_image.csv.gz): not an evaluation report")


def read_report(folder: str | Path) -> tuple[list[dict], dict]:
    """The rows of ``folder``'s ``per_image.csv[.gz]`` (numbers as floats) and its ``summary.json``."""
    folder = Path(folder)
    path = _csv_file(folder)
    try:
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        rows = []
        for r in csv.DictReader(io.StringIO(raw.decode("utf-8"))):
            rows.append({**r, **{k: float(r[k]) for k in _FLOATS}, "left_out": r["left_out"] or ""})
    except FileNotFoundError:
        raise EvaluationError(f"{folder}: no summary.json: not an evaluation report") from None
    except (OSError, ValueError, KeyError, TypeError) as e:  # json, gzip, csv and float errors
        raise EvaluationError(f"{path}: unreadable report ({type(e).__name__}: {e})") from None
    if not rows or "methods" not in summary:
        raise EvaluationError(f"{folder}: an empty or incomplete report")
    return rows, summary


def _grey_rows(rows: list[dict]) -> dict[str, dict]:
    return {r["image"]: r for r in rows if r["method"] == GREY}


def _same_photos(a_dir: Path, a: dict[str, dict], b_dir: Path, b_rows: list[dict]) -> None:
    """Raise unless ``b_rows`` have the grey-baseline rows ``a`` (image -> row, from ``a_dir``)."""
    b = _grey_rows(b_rows)
    if a.keys() != b.keys():
        only = sorted(a.keys() ^ b.keys())
        raise EvaluationError(f"{b_dir} scored other photos than {a_dir} ({len(only)} differ, e.g. {only[0]})")
    for name, ra in a.items():
        rb = b[name]
        for k in ("psnr", "colourfulness_truth", "hue_spread_truth"):
            if not (ra[k] == rb[k] or math.isclose(ra[k], rb[k], rel_tol=1e-9, abs_tol=1e-9)):
                raise EvaluationError(f"{b_dir}: photo {name} has another grey baseline or truth than in {a_dir} "
                                      f"({k} {rb[k]!r} vs {ra[k]!r}): another crop or another photo")
        if ra["left_out"] != rb["left_out"]:
            raise EvaluationError(f"{b_dir}: photo {name} is left out in one report and not in the other "
                                  "(--keep-grey-truth given to only one of them)")


def merge_reports(folders: Sequence[str | Path], out: str | Path, table_rows: int = 10,
                  n_resamples: int = 1000, seed: int = 0, overwrite: bool = False) -> Evaluation:
    """Join the reports in ``folders`` (each written by ``dlnet evaluate``) into one report in
    ``out``: ``per_image.csv``, ``summary.json`` and ``report.md`` of the grey baseline and every
    report's methods, in the order given (the first checkpoint is the reference of the paired
    changes). Raises :class:`EvaluationError` (one line) when a folder is not a report, when two
    reports scored other photos or another setup, or when a method name is in two reports."""
    folders = [Path(f) for f in folders]
    if len(folders) < 2:
        raise EvaluationError("--merge needs at least two reports")
    out = check_out(out, overwrite)
    reports = [(f, *read_report(f)) for f in folders]
    first_dir, first_rows, first_summary = reports[0]
    first_grey = _grey_rows(first_rows)
    methods, owner, kinds, sources, missing = [GREY], {}, {GREY: "grey"}, {}, {}
    for folder, rows, summary in reports:
        for k in SAME_SETUP:
            if summary["meta"].get(k) != first_summary["meta"].get(k):
                raise EvaluationError(f"{folder}: {k} {summary['meta'].get(k)!r} differs from {first_dir}'s "
                                      f"{first_summary['meta'].get(k)!r}: the scores are not comparable")
        _same_photos(first_dir, first_grey, folder, rows)
        for m, entry in summary["methods"].items():
            if m == GREY:
                continue
            if m in owner:
                raise EvaluationError(f"method {m!r} is in both {owner[m]} and {folder}; rename one "
                                      "(dlnet evaluate --model NAME=PATH)")
            owner[m] = folder
            methods.append(m)
            kinds[m], sources[m], missing[m] = entry.get("kind", "?"), entry.get("source"), entry.get("missing", 0)
    order = {name: i for i, name in enumerate(first_grey)}
    rank = {m: i for i, m in enumerate(methods)}
    rows = list(first_grey.values())
    rows += [r for folder, rs, _ in reports for r in rs if r["method"] != GREY and owner.get(r["method"]) == folder]
    rows = [r for r in rows if r["image"] in order]  # a method's photo must have the truth's row
    rows.sort(key=lambda r: (order[r["image"]], rank[r["method"]]))
    data = dict.fromkeys(str(s["meta"].get("data")) for _, _, s in reports)  # one path, unless moved
    meta = {**first_summary["meta"], "data": " + ".join(data),
            "merged_from": [str(f) for f in folders], "seed": seed}
    kept = [r for r in rows if not r["left_out"]]
    summary = report.summarize(kept, methods, kinds=kinds, sources=sources, missing=missing, meta=meta,
                               n_resamples=n_resamples, seed=seed)
    files = report.write_all(out, rows, summary, methods=methods, table_rows=table_rows,
                             grid_names=[], grid_cells=[])
    return Evaluation(rows, summary, files)
