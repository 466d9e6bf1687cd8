"""``logger=csv``: the metrics of every epoch in a CSV file, readable without extra packages."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mnistfw.io import write_text
from mnistfw.trackers.tracker import TrackedRun, Tracker


class CSVTracker(Tracker):
    """Writes ``<save_dir>/metrics.csv``: one row per epoch, and a last row ``step=final``."""

    def __init__(self, save_dir: str) -> None:
        super().__init__()
        self.path = Path(save_dir) / "metrics.csv"
        self.rows: list[dict[str, Any]] = []

    def start(self, run: TrackedRun) -> None:
        self.rows = []

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self.rows.append({"step": step, **metrics})
        self._write()

    def finish(self, metrics: Mapping[str, float], files: Sequence[Path], status: str) -> None:
        self.rows.append({"step": "final", "status": status, **metrics})
        self._write()

    def _write(self) -> None:
        columns = list(dict.fromkeys(key for row in self.rows for key in row))
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(self.rows)
        write_text(self.path, buf.getvalue())
