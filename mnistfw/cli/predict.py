"""``mnistfw-predict``: label digit pictures, IDX files or ``.npy`` arrays with a saved model
(see :mod:`mnistfw.app.predict_task`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def run(cfg: Any, out_dir: Path, epoch_callbacks: Sequence[Any] = ()) -> Any:
    """Validate ``cfg``, then predict into ``out_dir``."""
    from mnistfw.app.predict_task import build_predict_spec, predict

    return predict(build_predict_spec(cfg), out_dir)


def main() -> Any:
    """Entry point of the ``mnistfw-predict`` console script."""
    from mnistfw.cli.hydra_app import hydra_entry

    return hydra_entry("predict", run)()


if __name__ == "__main__":
    main()
