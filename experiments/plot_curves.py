"""Training curves of several runs from their CSV logs, as one PNG.

Plots what is comparable across losses: validation MSE on a*b* (the global loss's quantity,
logged for every run) and validation PSNR, against images seen.

    python experiments/plot_curves.py runs/densenet-global runs/densenet-local runs/effnet-local \
        -o docs/figures/training_curves.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import yaml


def read_log(run: Path) -> pd.DataFrame:
    """The run's metrics from all its (re)starts: ``logs/version_N/metrics.csv`` in order (and the
    older layout ``logs-phase1/`` + ``logs/metrics.csv``). Rows of an earlier part past the step
    the next part resumed from are dropped: that work was lost and redone."""
    parts = [run / "logs-phase1" / "metrics.csv", run / "logs" / "metrics.csv",
             *sorted((run / "logs").glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name[8:]))]
    log = None
    for part in filter(Path.exists, parts):
        new = pd.read_csv(part)
        log = new if log is None else pd.concat([log[log["step"] < new["step"].min()], new], ignore_index=True)
    return log


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("-o", "--out", type=Path, required=True)
    args = p.parse_args()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for run in args.runs:
        log = read_log(run)
        if log is None:  # too short to have logged a step
            print(f"{run}: no metrics logged yet, left out")
            continue
        batch = yaml.safe_load((run / "config.yaml").read_text())["batch_size"]
        train = log.dropna(subset=["train/loss"])
        val = log.dropna(subset=["val/mse_ab"])
        axes[0].plot(train["step"] * batch / 1000, train["train/loss"].rolling(5, min_periods=1).mean(), label=run.name)
        axes[1].plot(val["step"] * batch / 1000, val["val/mse_ab"], marker="o", label=run.name)
        axes[2].plot(val["step"] * batch / 1000, val["val/psnr"], marker="o", label=run.name)
    for ax, title in zip(axes, ["training loss (own loss, smoothed)", "validation MSE on a*b*", "validation PSNR (dB)"]):
        ax.set_title(title)
        ax.set_xlabel("thousand images seen")
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0].set_yscale("log")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
