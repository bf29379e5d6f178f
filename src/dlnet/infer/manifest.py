"""The record and the progress lines of a Ray job (:mod:`dlnet.infer.cluster`): the CSV
manifest written as results come in, and one progress line every few seconds."""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from pathlib import Path

from dlnet.infer.batch import Job
from dlnet.infer.remote import is_uri

__all__ = ["COLUMNS", "Manifest", "Progress", "where"]

COLUMNS = ("input", "output", "status", "error", "seconds")  # a result row, and the manifest's header


def where(path) -> str:
    """A URI as it is, a local path made absolute (an actor's working folder is not ours)."""
    return str(path) if is_uri(path) else str(Path(path).absolute())


class Manifest:
    """The CSV manifest: a header, then rows appended (and flushed) as results come in."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "w", newline="", encoding="utf-8")
        self._csv = csv.writer(self._file)
        self._csv.writerow(COLUMNS)

    def add(self, job_or_path, status: str, error: str = "", seconds: float | None = None, output=None) -> None:
        src, dst = (job_or_path.src, output or job_or_path.dst) if isinstance(job_or_path, Job) else (job_or_path, "")
        self._csv.writerow((where(src), where(dst) if dst else "", status, error,
                            "" if seconds is None else f"{seconds:.3f}"))

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class Progress:
    """One line every ``every`` seconds (and a last one): files finished, failures, rate, time left."""

    def __init__(self, total: int, report: Callable[[str], None], every: float) -> None:
        self.total, self.report, self.every = total, report, every
        self.start = self.last = time.monotonic()
        self.shown = -1  # files finished at the last line

    def update(self, finished: int, failed: int, final: bool = False) -> None:
        now = time.monotonic()
        if (now - self.last < self.every and not final) or (final and self.shown == finished):
            return
        self.last, self.shown = now, finished
        rate = finished / max(now - self.start, 1e-9)
        left = f", about {clock((self.total - finished) / rate)} left" if rate > 0 and finished < self.total else ""
        self.report(f"{finished:,} of {self.total:,} files ({failed:,} failed), {rate:.1f} files/s{left}")


def clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
