"""Learning-rate schedules, implemented once for every backend that trains by gradient descent.

:func:`epoch_lr` gives the rate of an epoch for ``none``, ``cosine``, ``step`` and
``exponential`` (each with an optional linear warm-up); :class:`Plateau` lowers the rate when a
validation metric stops improving. The Lightning backend feeds these to torch through a
``LambdaLR``; the NumPy backend calls them directly, so both follow the same curve.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from mnistfw.backends.monitoring import BestEpoch
from mnistfw.config.vocabulary import SchedulerSettings

#: Schedules computed from the epoch number alone.
EPOCH_SCHEDULES = ("none", "cosine", "step", "exponential")


def epoch_lr(scheduler: SchedulerSettings, base_lr: float, epoch: int, max_epochs: int) -> float:
    """Learning rate of the 0-based ``epoch`` of ``max_epochs``.

    cosine: from ``base_lr`` towards ``min_lr`` along half a cosine over the run (torch's
    ``CosineAnnealingLR`` with ``T_max = max_epochs``); step: ``base_lr * gamma^(epoch // step_size)``;
    exponential: ``base_lr * gamma^epoch``. ``warmup_epochs`` first ramps linearly up to it.
    """
    name = scheduler.name
    if name == "cosine":
        span = max(max_epochs, 1)
        low = float(scheduler.min_lr or 0.0)
        lr = low + 0.5 * (base_lr - low) * (1.0 + math.cos(math.pi * min(epoch, span) / span))
    elif name == "step":
        lr = base_lr * float(scheduler.gamma) ** (epoch // int(scheduler.step_size))  # type: ignore[arg-type]
    elif name == "exponential":
        lr = base_lr * float(scheduler.gamma) ** epoch  # type: ignore[arg-type]
    else:
        lr = base_lr
    warmup = int(scheduler.warmup_epochs or 0)
    if epoch < warmup:
        lr *= (epoch + 1) / (warmup + 1)
    return float(lr)


class Plateau:
    """``plateau``: multiply the rate by ``factor`` after ``patience`` validations without improvement."""

    def __init__(self, scheduler: SchedulerSettings, base_lr: float) -> None:
        assert scheduler.monitor is not None and scheduler.mode is not None
        self.best = BestEpoch(scheduler.monitor, scheduler.mode)
        self.factor = float(scheduler.factor)  # type: ignore[arg-type]
        self.patience = int(scheduler.patience)  # type: ignore[arg-type]
        self.min_lr = float(scheduler.min_lr or 0.0)
        self.lr = float(base_lr)
        self.stale = 0

    def step(self, epoch: int, metrics: Mapping[str, float]) -> float:
        """Take one epoch's metrics; return the rate for the next epoch."""
        if self.best.monitor in metrics:
            if self.best.update(epoch, metrics):
                self.stale = 0
            else:
                self.stale += 1
                if self.stale > self.patience:
                    self.lr = max(self.lr * self.factor, self.min_lr)
                    self.stale = 0
        return self.lr
