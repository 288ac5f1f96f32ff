"""A run's ``log.csv`` (step, loss, lr, seconds, validation) and its ``curve.png``."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import NamedTuple

from engine.atomic import write_atomic
from engine.training.plot import plot_curves

LOG_NAME = "log.csv"
CURVE_NAME = "curve.png"


class LogSeries(NamedTuple):
    """The numbers of a ``log.csv``: loss rows (step, loss) and validation rows (step, value)."""

    steps: list[float]
    losses: list[float]
    val_steps: list[float]
    vals: list[float]


def read_log(path: Path) -> LogSeries:
    """The series in the ``log.csv`` at ``path`` (empty when the file does not exist)."""
    out = LogSeries([], [], [], [])
    if not path.is_file():
        return out
    with path.open(newline="") as f:
        reader = csv.reader(f)
        next(reader, None)
        for row in reader:
            if row and row[1]:
                out.steps.append(float(row[0]))
                out.losses.append(float(row[1]))
            if len(row) > 4 and row[4]:
                out.val_steps.append(float(row[0]))
                out.vals.append(float(row[4]))
    return out


def last_logged(run_dir: Path) -> tuple[float | None, float | None]:
    """(last training loss, last validation number) in a run's ``log.csv`` (``None`` if absent)."""
    series = read_log(run_dir / LOG_NAME)
    return (series.losses[-1] if series.losses else None), (series.vals[-1] if series.vals else None)


class CsvLog:
    """``log.csv`` with one row per logging step; rows past a resumed checkpoint are dropped."""

    def __init__(self, path: Path, val_metric: str, keep_until: int | None) -> None:
        """Start the file at ``path`` (kept rows: steps <= ``keep_until``; ``None``: a new run)."""
        self.path = path
        self.header = ["step", "loss", "lr", "seconds", f"val_{val_metric}"]
        rows: list[list[str]] = []
        if keep_until is not None and path.is_file():
            with path.open(newline="") as f:
                reader = csv.reader(f)
                next(reader, None)
                rows = [r for r in reader if r and int(r[0]) <= keep_until]
        text = io.StringIO()
        w = csv.writer(text, lineterminator="\n")
        w.writerow(self.header)
        w.writerows(rows)
        write_atomic(path, text.getvalue().encode("utf-8"), overwrite=True)

    def append(self, step: int, loss: float | None, lr: float, seconds: float, val: float | None) -> None:
        """One row: step, mean loss, learning rate, run seconds, validation (``None``: empty cell)."""
        with self.path.open("a", newline="") as f:
            csv.writer(f, lineterminator="\n").writerow([
                step,
                "" if loss is None else f"{loss:.6g}",
                f"{lr:.3g}",
                f"{seconds:.1f}",
                "" if val is None else f"{val:.6g}",
            ])

    def write_curve(self, path: Path, title: str, val_name: str) -> None:
        """Draw this log's loss and validation curves into the PNG at ``path``."""
        s = read_log(self.path)
        plot_curves(path, s.steps, s.losses, s.val_steps, s.vals, title=title, val_name=val_name)
