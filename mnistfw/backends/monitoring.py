"""Watching a per-epoch metric: which epoch is best, and when to stop (one implementation for all backends).

:class:`BestEpoch` decides whether an epoch beats the best so far (backends keep that epoch's
weights for ``trainer.checkpoint``); :class:`EarlyStopping` is an epoch callback that raises
:class:`~mnistfw.backends.base.StopTraining` once ``trainer.early_stopping.monitor`` has not
improved for ``patience`` validations.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

from mnistfw.backends.base import StopTraining
from mnistfw.config.vocabulary import EarlyStoppingSettings

log = logging.getLogger("mnistfw")


class BestEpoch:
    """The best value of ``monitor`` seen so far (``mode`` min or max), and its epoch."""

    def __init__(self, monitor: str, mode: str, min_delta: float = 0.0) -> None:
        self.monitor, self.mode, self.min_delta = monitor, mode, float(min_delta)
        self.value: float | None = None
        self.epoch = 0

    def update(self, epoch: int, metrics: Mapping[str, float]) -> bool:
        """Record ``metrics`` of ``epoch``; True when it is the new best (epochs without the metric never are)."""
        value = metrics.get(self.monitor)
        if value is None or not math.isfinite(value):
            return False
        if self.value is not None:
            better = value < self.value - self.min_delta if self.mode == "min" else value > self.value + self.min_delta
            if not better:
                return False
        self.value, self.epoch = float(value), epoch
        return True


class EarlyStopping:
    """An epoch callback: stop when ``monitor`` has not improved for ``patience`` validations."""

    def __init__(self, settings: EarlyStoppingSettings, min_epochs: int = 0) -> None:
        assert settings.patience is not None and settings.mode is not None
        self.best = BestEpoch(settings.monitor, settings.mode, settings.min_delta)
        self.patience = settings.patience
        self.min_epochs = min_epochs
        self.stale = 0

    def __call__(self, epoch: int, metrics: Mapping[str, float]) -> None:
        if self.best.monitor not in metrics:
            return  # no validation this epoch
        if self.best.update(epoch, metrics):
            self.stale = 0
            return
        self.stale += 1
        if self.stale >= self.patience and epoch >= self.min_epochs:
            log.info("early stopping at epoch %d: %s has not improved for %d validations (best %.4f at epoch %d)",
                     epoch, self.best.monitor, self.stale, self.best.value, self.best.epoch)
            raise StopTraining(f"{self.best.monitor} stopped improving")
