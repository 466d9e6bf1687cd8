"""``mnistfw-eval``: re-evaluate a saved model of any backend and draw its plots, into a new folder
(see :mod:`mnistfw.app.eval_task`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def run(cfg: Any, out_dir: Path, epoch_callbacks: Sequence[Any] = ()) -> Any:
    """Validate ``cfg``, then evaluate into ``out_dir``."""
    from mnistfw.app.eval_task import build_eval_spec, evaluate

    return evaluate(build_eval_spec(cfg), out_dir)


def main() -> Any:
    """Entry point of the ``mnistfw-eval`` console script."""
    from mnistfw.cli.hydra_app import hydra_entry

    return hydra_entry("eval", run)()


if __name__ == "__main__":
    main()
