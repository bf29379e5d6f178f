"""Evaluation outputs: bootstrap intervals, the summary, the CSV, the Markdown report and the grid.

Everything here works on the per-image rows :func:`dlnet.evaluate.protocol.evaluate` produces, dicts with
the keys of :data:`CSV_FIELDS`. The report follows the DL-Net paper's Tables 3 and 4 (per-image
scores, then averages) and adds what the paper lacks: 95% bootstrap confidence intervals,
paired-bootstrap intervals for the % differences, and measures of colour itself: how often a
method beats the grey baseline, how its hues spread, and its mean colour cast.

Example:
    >>> bootstrap_mean([30.0, 31.0, 29.5, 30.5])["mean"]
    30.25
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from dlnet.io.atomic import atomic_open, atomic_path

__all__ = ["PSNR_CAP_DB", "METRICS", "OUTPUT_FILES", "bootstrap_mean", "bootstrap_change", "summarize",
           "render_markdown", "save_grid", "write_all", "averages_table", "progress"]

# PSNR of identical images is infinite. The CSV keeps inf; averages and intervals count any PSNR
# above this as this. 100 dB is just below the smallest possible error of 8-bit 256x256 images
# (one channel of one pixel off by 1: 101.1 dB), so it means "identical", and one perfect image
# cannot make a mean infinite.
PSNR_CAP_DB = 100.0
METRICS = ("psnr", "ssim", "mse_rgb", "colourfulness", "hue_spread")
TRUTH_METRICS = ("colourfulness", "hue_spread")  # also measured on the truth, as METRIC_truth
BIAS = ("bias_a", "bias_b")  # mean a* and b* of the output minus the truth's
COMPARED = ("psnr", "ssim", "mse_rgb")  # the % differences the paper quotes
LABELS = {"psnr": "PSNR (dB)", "ssim": "SSIM", "mse_rgb": "MSE (RGB)", "colourfulness": "Colourfulness",
          "hue_spread": "Hue spread", "beats_grey": "Beats grey", "bias_a": "a* bias", "bias_b": "b* bias"}
DIGITS = {"psnr": 2, "ssim": 4, "mse_rgb": 1, "colourfulness": 1, "hue_spread": 3, "bias_a": 2, "bias_b": 2}
OUTPUT_FILES = ("per_image.csv", "report.md", "summary.json", "grid.png")
GREY, TRUTH = "grey", "truth"
CSV_FIELDS = ("image", "method", "psnr", "ssim", "mse_rgb", "colourfulness", "colourfulness_truth",
              "hue_spread", "hue_spread_truth", *BIAS, "left_out")


def _bootstrap(samples: tuple[np.ndarray, ...], statistic, n_resamples: int, seed: int, paired: bool = False):
    """Percentile 95% interval of ``statistic`` over ``n_resamples`` seeded resamples; None for n < 2."""
    from scipy.stats import bootstrap

    if len(samples[0]) < 2:
        return None
    res = bootstrap(samples, statistic, n_resamples=n_resamples, method="percentile", paired=paired,
                    vectorized=True, rng=np.random.default_rng(seed))
    ci = [float(res.confidence_interval.low), float(res.confidence_interval.high)]
    return ci if all(map(math.isfinite, ci)) else None


def bootstrap_mean(values: Sequence[float], n_resamples: int = 1000, seed: int = 0) -> dict:
    """``{"mean", "ci95": [low, high] or None, "n"}`` of per-image values (mean None for none)."""
    x = np.asarray(values, dtype=np.float64)
    if not len(x):  # e.g. a --pred folder that matches no photo
        return {"mean": None, "ci95": None, "n": 0}
    return {"mean": float(x.mean()), "ci95": _bootstrap((x,), np.mean, n_resamples, seed), "n": len(x)}


def _pct(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    ref = b.mean(axis=axis)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 100.0 * (a.mean(axis=axis) - ref) / ref


def _diff(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    return a.mean(axis=axis) - b.mean(axis=axis)


def bootstrap_change(values: Sequence[float], reference: Sequence[float], n_resamples: int = 1000,
                     seed: int = 0) -> dict:
    """Paired change of ``values`` vs ``reference`` (same images, same order): the difference of
    the means and the % change ``100 (mean - mean_ref) / mean_ref``, each with a paired-bootstrap
    95% interval (resampling images, so per-image difficulty cancels)."""
    a, b = np.asarray(values, np.float64), np.asarray(reference, np.float64)
    out = {"n": len(a)}
    for key, stat in (("diff", _diff), ("pct", _pct)):
        mean = float(stat(a, b))
        ci = _bootstrap((a, b), stat, n_resamples, seed, paired=True) if math.isfinite(mean) else None
        out[key] = {"mean": mean if math.isfinite(mean) else None, "ci95": ci}
    return out


def _values(rows: Iterable[dict], method: str, metric: str, cap: bool = True) -> dict[str, float]:
    """image -> value for one method; PSNR capped at :data:`PSNR_CAP_DB` unless not ``cap``."""
    vals = {r["image"]: r[metric] for r in rows if r["method"] == method}
    return {k: min(v, PSNR_CAP_DB) for k, v in vals.items()} if metric == "psnr" and cap else vals


def _beats_grey(rows: list[dict], method: str) -> list[float]:
    """Per photo both have: 1.0 where ``method``'s PSNR is strictly above the grey baseline's, else
    0.0. Uncapped, so an output identical to the truth (inf) beats any grey; ties do not count."""
    mine, grey = _values(rows, method, "psnr", cap=False), _values(rows, GREY, "psnr", cap=False)
    return [float(v > grey[k]) for k, v in mine.items() if k in grey]


def _changes(rows: list[dict], methods: Sequence[str], reference: str, n_resamples: int, seed: int) -> dict:
    out = {}
    for m in methods:
        if m == reference:
            continue
        out[m] = {}
        for metric in COMPARED:
            mine, ref = _values(rows, m, metric), _values(rows, reference, metric)
            common = [k for k in mine if k in ref]  # only images both methods have
            out[m][metric] = bootstrap_change([mine[k] for k in common], [ref[k] for k in common],
                                              n_resamples, seed)
    return out


def summarize(rows: list[dict], methods: Sequence[str], kinds: Mapping[str, str], sources: Mapping[str, str],
              missing: Mapping[str, int], meta: Mapping, n_resamples: int = 1000, seed: int = 0) -> dict:
    """The machine-readable summary written as ``summary.json``: per method the mean and 95%
    interval of each metric, of the colour bias and of the share of photos that beat grey (None
    for grey itself), the truth's colourfulness and hue spread, and the paired % changes vs the
    grey baseline and vs the first checkpoint. ``rows``: the photos to average (none left out)."""
    summary: dict = {"meta": dict(meta), "psnr_cap_db": PSNR_CAP_DB,
                     "bootstrap": {"n_resamples": n_resamples, "seed": seed, "level": 0.95, "method": "percentile"},
                     "methods": {}}
    for m in methods:
        entry = {"kind": kinds.get(m, "?"), "source": sources.get(m), "missing": missing.get(m, 0),
                 "psnr_inf": sum(1 for r in rows if r["method"] == m and math.isinf(r["psnr"]))}
        for metric in (*METRICS, *BIAS):
            entry[metric] = bootstrap_mean(list(_values(rows, m, metric).values()), n_resamples, seed)
        entry["beats_grey"] = None if m == GREY else bootstrap_mean(_beats_grey(rows, m), n_resamples, seed)
        entry["n"] = entry["psnr"]["n"]
        summary["methods"][m] = entry
    summary["truth"] = {k: bootstrap_mean(list(_values(rows, GREY, f"{k}_truth").values()), n_resamples, seed)
                        for k in TRUTH_METRICS}
    summary["vs_grey"] = _changes(rows, methods, GREY, n_resamples, seed)
    first = next((m for m in methods if kinds.get(m) == "checkpoint"), None)
    summary["vs_first_checkpoint"] = None if first is None else {
        "reference": first, "methods": _changes(rows, methods, first, n_resamples, seed)}
    return summary


def _fmt(value: float | None, metric: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    sign = "+" if metric in BIAS else ""  # a cast has a direction
    return "inf" if math.isinf(value) else f"{value:{sign}.{DIGITS[metric]}f}"


def _fmt_est(est: dict, metric: str) -> str:
    ci = est["ci95"]
    interval = f" [{_fmt(ci[0], metric)}, {_fmt(ci[1], metric)}]" if ci else ""
    return f"{_fmt(est['mean'], metric)}{interval}"


def _fmt_share(est: dict | None) -> str:
    """A share of photos (0..1) as a percentage with its interval; "–" where it does not apply."""
    if est is None or est["mean"] is None:
        return "–"
    ci = f" [{100 * est['ci95'][0]:.1f}, {100 * est['ci95'][1]:.1f}]" if est["ci95"] else ""
    return f"{100 * est['mean']:.1f}%{ci}"


def _fmt_pct(est: dict) -> str:
    if est["mean"] is None:
        return "–"
    ci = f" [{est['ci95'][0]:+.2f}, {est['ci95'][1]:+.2f}]" if est["ci95"] else ""
    return f"{est['mean']:+.2f}%{ci}"


def _table(header: Sequence[str], body: Iterable[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(row) + " |" for row in body)]


def _fmt_diff(est: dict) -> str:
    """A paired difference in the metric's own unit, signed, with its interval."""
    if est["mean"] is None:
        return "–"
    ci = f" [{est['ci95'][0]:+.2f}, {est['ci95'][1]:+.2f}]" if est["ci95"] else ""
    return f"{est['mean']:+.2f}{ci}"


def _change_table(changes: Mapping[str, dict]) -> list[str]:
    """% changes of the paper's metrics, led by the PSNR difference in dB (what a reader compares)."""
    return _table(["Method", "PSNR diff (dB)", *(f"{LABELS[m].split(' (')[0]} %" for m in COMPARED)],
                  ([name, _fmt_diff(c["psnr"]["diff"]), *(_fmt_pct(c[m]["pct"]) for m in COMPARED)]
                   for name, c in changes.items()))


def _fmt_vs_truth(est: dict, truth: dict | None) -> str:
    """A colour measure with its ratio to the truth's: ``22.1 [21.6, 22.5] (0.58x)``."""
    if not truth or not truth["mean"] or est["mean"] is None:
        return ""
    return f" ({est['mean'] / truth['mean']:.2f}x)"


def _average_rows(summary: dict, methods: Sequence[str]) -> list[list[str]]:
    """The averages table's cells: one row per method, then the truth's colour measures."""
    ms, truth = summary["methods"], summary["truth"]
    body = [[m, str(ms[m]["n"]), *(_fmt_est(ms[m][k], k) + (_fmt_vs_truth(ms[m][k], truth.get(k)) if m != GREY else "")
                                    for k in METRICS), _fmt_share(ms[m]["beats_grey"])]
            for m in methods]
    body.append([TRUTH, str(truth["colourfulness"]["n"]),
                 *(_fmt_est(truth[k], k) if k in truth else "" for k in METRICS), ""])
    return body


AVERAGE_COLUMNS = ("Method", "n", *(LABELS[k] for k in METRICS), LABELS["beats_grey"])


def grey_truth_note(meta: Mapping) -> str:
    """One sentence on the photos whose ground truth is grey: how many, and left out or kept."""
    gt = meta.get("grey_truth")
    if gt is None:
        return ""
    rule = f"ground truth is grey (colourfulness < {gt['below']:g})"
    if gt["kept"]:
        return f"{gt['count']} photos whose {rule} are kept in the averages (--keep-grey-truth)."
    if not gt["count"]:
        return f"No photo left out: none has a grey ground truth (colourfulness < {gt['below']:g})."
    return (f"{gt['count']} photos left out because their {rule}: any grey output matches them; "
            "per_image.csv marks them left_out = grey_truth, --keep-grey-truth keeps them.")


def render_markdown(summary: dict, rows: list[dict], methods: Sequence[str], table_rows: int = 10) -> str:
    """``report.md``: setup, averages with 95% intervals (Table 4), % changes, colour bias,
    per-image scores (Table 3) of the photos in the averages."""
    meta, ms = summary["meta"], summary["methods"]
    crop = "full photos" if meta.get("size") is None else f"{meta['size']}x{meta['size']} centre crops"
    lines = ["# Colorization evaluation", "",
             f"Ground truth: `{meta['data']}`: {meta['images_scored']} of {meta['images']} photos in the averages, "
             f"{crop}. Device {meta['device']}, precision {meta['precision']}, seed {meta['seed']}.", ""]
    gt = meta.get("grey_truth")
    if gt:
        shown = ", ".join(f"`{n}`" for n in gt["images"][:table_rows])
        more = f" and {len(gt['images']) - table_rows} more" if len(gt["images"]) > table_rows else ""
        lines += [grey_truth_note(meta) + (f" They are: {shown}{more}." if shown else ""), ""]
    lines += ["Methods:", ""]
    for m in methods:
        e = ms[m]
        src = "the truth's L with a* = b* = 0" if m == GREY else f"`{e['source']}`"
        gaps = f"; **{e['missing']} photos missing**" if e["missing"] else ""
        lines.append(f"- **{m}** ({e['kind']}): {src}; {e['n']} photos scored{gaps}")
    boot = summary["bootstrap"]
    lines += ["", "## Averages", "",
              f"Mean over photos [95% percentile-bootstrap interval, {boot['n_resamples']} resamples, "
              f"seed {boot['seed']}]. PSNR above {summary['psnr_cap_db']:g} dB (identical images: inf) "
              "counts as that in averages. Higher is better for PSNR and SSIM, lower for MSE. "
              "Hue spread: normalised entropy of the chroma-weighted hue histogram (12 bins, pixels of "
              "chroma >= 5), 0 = grey or one colour cast, 1 = all hues alike; compare with the truth's. "
              "Beats grey: share of photos on which the method's PSNR is above the grey baseline's.", ""]
    lines += _table(AVERAGE_COLUMNS, _average_rows(summary, methods))
    if len(methods) > 1:
        lines += ["", "## Change vs the grey baseline", "",
                  "Paired over the photos both methods have; [95% paired-bootstrap interval].", ""]
        lines += _change_table(summary["vs_grey"])
    ref = summary["vs_first_checkpoint"]
    if ref and ref["methods"]:
        lines += ["", f"## Change vs {ref['reference']}", ""] + _change_table(ref["methods"])
    lines += ["", "## Mean colour bias", "",
              "Mean a* and mean b* of the output minus the truth's, per photo, averaged [95% interval]: "
              "a colour cast. + a* is redder, - greener; + b* yellower, - bluer (Lab units).", ""]
    lines += _table(["Method", *(LABELS[k] for k in BIAS)], ([m, *(_fmt_est(ms[m][k], k) for k in BIAS)]
                                                            for m in methods))
    rows = [r for r in rows if not r.get("left_out")]
    images = list(dict.fromkeys(r["image"] for r in rows))[:table_rows]
    by_key = {(r["image"], r["method"]): r for r in rows}
    if images:
        lines += ["", f"## Per photo (first {len(images)})"]
    for metric in METRICS:
        cols = [*methods, TRUTH] if metric in TRUTH_METRICS else list(methods)
        body = []
        for img in images:
            cells = []
            for m in cols:
                r = by_key.get((img, GREY if m == TRUTH else m))
                v = None if r is None else r[f"{metric}_truth" if m == TRUTH else metric]
                cells.append(_fmt(v, metric))
            body.append([f"`{img}`", *cells])
        lines += ["", f"### {LABELS[metric]}", ""] + _table(["Photo", *cols], body)
    return "\n".join(lines) + "\n"


def save_grid(path: str | Path, names: Sequence[str], cells: Sequence[Mapping[str, np.ndarray]],
              methods: Sequence[str]) -> None:
    """Figure: one row per photo; columns grey input | each method | ground truth (HWC uint8)."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no display needed

    keys = [GREY, *(m for m in methods if m != GREY), TRUTH]
    titles = ["grey input", *keys[1:-1], "ground truth"]
    fig = Figure(figsize=(2.0 * len(keys), 2.0 * len(names) + 0.3), dpi=150, layout="constrained")
    axes = fig.subplots(len(names), len(keys), squeeze=False)
    for r, (name, cell) in enumerate(zip(names, cells)):
        for c, key in enumerate(keys):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if key in cell:
                ax.imshow(cell[key], interpolation="nearest")
            else:
                h, w = cell[TRUTH].shape[:2]
                ax.set_box_aspect(h / w)  # same shape as its neighbours
                ax.text(0.5, 0.5, "missing", ha="center", va="center", transform=ax.transAxes)
            if r == 0:
                ax.set_title(titles[c], fontsize=9)
            if c == 0:
                ax.set_ylabel(name, fontsize=7)
    fig.savefig(path)


def _write_text(path: Path, text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8") as f:  # never a half-written report under the real name
        f.write(text)


def _csv_text(rows: list[dict]) -> str:
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (r[k] if isinstance(r[k], str) else repr(float(r[k]))) for k in CSV_FIELDS})
    return buf.getvalue()


def write_all(out: str | Path, rows: list[dict], summary: dict, methods: Sequence[str], table_rows: int,
              grid_names: Sequence[str], grid_cells: Sequence[Mapping[str, np.ndarray]]) -> dict[str, Path]:
    """Write the report files into ``out`` (created if needed); returns name -> path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {name: out / name for name in OUTPUT_FILES}
    _write_text(files["per_image.csv"], _csv_text(rows))
    _write_text(files["summary.json"], json.dumps(summary, indent=2, allow_nan=False) + "\n")
    _write_text(files["report.md"], render_markdown(summary, rows, methods, table_rows))
    if grid_names:
        with atomic_path(files["grid.png"], suffix=".png") as tmp:  # matplotlib reads the format off it
            save_grid(tmp, grid_names, grid_cells, methods)
    else:
        del files["grid.png"]
    return files


def averages_table(summary: dict):
    """The averages as a :class:`rich.table.Table` for the terminal."""
    from rich.table import Table

    ms = summary["methods"]
    table = Table(title="Averages [95% bootstrap interval]")
    for col in (*AVERAGE_COLUMNS, "a*, b* bias"):
        table.add_column(col, justify="left" if col == "Method" else "right")
    bias = [", ".join("–" if ms[m][k]["mean"] is None else f"{ms[m][k]['mean']:+.2f}" for k in BIAS) for m in ms]
    for cells, b in zip(_average_rows(summary, list(ms)), [*bias, ""]):
        table.add_row(*cells, b)
    return table


def progress(iterable, enabled: bool = True):
    """Iterate with a progress bar on stderr when ``enabled``."""
    if not enabled:
        return iterable
    from rich.console import Console
    from rich.progress import track

    return track(iterable, description="evaluating", console=Console(stderr=True), transient=True)
