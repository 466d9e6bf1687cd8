"""Any Lightning logger as an mnistfw tracker: W&B, Neptune, Comet, ... by config, when installed.

    # configs/logger/wandb.yaml
    wandb:
      _target_: mnistfw.trackers.lightning_logger.LightningLoggerTracker
      logger: {_target_: pytorch_lightning.loggers.WandbLogger, project: mnistfw}
      requires: {wandb: wandb}     # package -> what to pip install (checked before the run starts)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mnistfw.trackers.tracker import TrackedRun, Tracker, flatten


class LightningLoggerTracker(Tracker):
    """Feeds a ``pytorch_lightning.loggers.Logger`` (built from ``logger``'s ``_target_``)."""

    def __init__(self, logger: Mapping[str, Any], requires: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self.logger_spec = dict(logger)
        self.requires_packages = dict(requires or {})
        self.logger: Any = None

    def start(self, run: TrackedRun) -> None:
        from hydra.utils import instantiate

        self.logger = instantiate(self.logger_spec, _convert_="all")
        self.logger.log_hyperparams(flatten(run.config))

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        self.logger.log_metrics(dict(metrics), step=step)

    def finish(self, metrics: Mapping[str, float], files: Sequence[Path], status: str) -> None:
        if self.logger is None:
            return
        self.logger.log_metrics(dict(metrics))
        self.logger.finalize("success" if status == "FINISHED" else "failed")
