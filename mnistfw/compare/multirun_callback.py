"""The Hydra callback that compares the runs of every ``mnistfw-train`` multirun when it ends.

Registered in ``configs/hydra/default.yaml`` as ``hydra.callbacks.compare``; it writes
``comparison.csv``, ``comparison.md`` and the ``compare_*.png`` figures into the sweep folder
(``hydra.sweep.dir``), for a plain multirun (``-m model=a,b``) and an Optuna sweep
(``-m hparams_search=...``, whose trials are the numbered folders) alike. It never fails the
multirun: a problem is logged as one WARNING. Multiruns of ``mnistfw-eval`` / ``mnistfw-predict``
(configs without an ``objective``) are left alone. Switch it off with ``~hydra.callbacks.compare``.

Hydra imports this module at every start, so it imports nothing heavy until a multirun ends.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

log = logging.getLogger("mnistfw.compare")


class CompareRuns(Callback):
    """``on_multirun_end``: :func:`~mnistfw.compare.comparison.compare` on the sweep folder, into it."""

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        if config.get("objective") is None:  # not a training multirun (mnistfw-eval, mnistfw-predict)
            return
        sweep_dir: Path | str = "the sweep folder"
        with _not_in_job_logs():
            try:
                sweep_dir = Path(str(config.hydra.sweep.dir))
                from mnistfw.compare.comparison import compare

                result = compare([sweep_dir], sweep_dir)
            except Exception as exc:  # noqa: BLE001 - the runs are finished; never fail the multirun here
                message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                log.warning("runs not compared in %s: %s", sweep_dir, message)
                return
            log.info("comparison of %d run(s) written to %s (comparison.md, comparison.csv, %d figure(s)):\n%s",
                     len(result.runs), sweep_dir, len(result.figures), result.markdown)


@contextlib.contextmanager
def _not_in_job_logs() -> Iterator[None]:
    """Keep this callback's lines out of the last job's log file, which Hydra leaves attached."""
    drop = _DropComparison()
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    for handler in handlers:
        handler.addFilter(drop)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(drop)


class _DropComparison(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith("mnistfw.compare")
