"""Shared plumbing of the Hydra-based console scripts."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mnistfw.errors import MnistfwError

log = logging.getLogger("mnistfw")


def hydra_entry(config_name: str, task: Callable[[Any, Path], Any]) -> Callable[[], Any]:
    """A console-script ``main`` running ``task(cfg, run_dir)`` under ``@hydra.main``.

    A :class:`MnistfwError` in a single run is printed as one line and exits with status 2;
    in a multirun it propagates so the sweeper records the job as failed.
    """

    def main() -> Any:
        import hydra

        from mnistfw.config.location import config_dir

        @hydra.main(version_base="1.3", config_path=str(config_dir()), config_name=config_name)
        def _run(cfg: Any) -> Any:
            from hydra.core.hydra_config import HydraConfig
            from hydra.types import RunMode

            hc = HydraConfig.get()
            try:
                return task(cfg, Path(hc.runtime.output_dir))
            except MnistfwError as exc:
                if hc.mode == RunMode.MULTIRUN:
                    raise
                log.error("%s", exc)
                print(f"error: {exc}", file=sys.stderr)
                sys.exit(2)

        return _run()

    return main
