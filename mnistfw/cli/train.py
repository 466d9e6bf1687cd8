"""``mnistfw-train``: compose the config, train, evaluate, plot; return the objective."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _train(cfg: Any, run_dir: Path) -> Any:
    from mnistfw.pipeline import train

    return train(cfg, run_dir)


def main() -> Any:
    """Entry point of the ``mnistfw-train`` console script."""
    from mnistfw.cli.hydra_app import hydra_entry

    return hydra_entry("train", _train)()


if __name__ == "__main__":
    main()
