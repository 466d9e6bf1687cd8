"""``mnistfw-train``: compose the config, validate it, train, evaluate, plot; return the objective."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def run(cfg: Any, run_dir: Path, epoch_callbacks: Sequence[Any] = ()) -> Any:
    """Validate ``cfg`` into a run spec (refusing unread keys), then train into ``run_dir``."""
    from mnistfw.app.run_spec import build_run_spec
    from mnistfw.app.train_task import train
    from mnistfw.app.unread_keys import user_set_keys

    spec = build_run_spec(cfg, run_dir, user_set_keys(cfg))
    return train(spec, run_dir, epoch_callbacks)


def main() -> Any:
    """Entry point of the ``mnistfw-train`` console script."""
    from mnistfw.cli.hydra_app import hydra_entry

    return hydra_entry("train", run)()


if __name__ == "__main__":
    main()
