"""Pruning through the epoch-callback seam: the sweep hands the run a callback, the run calls it.

A task function that takes epoch callbacks has a ``with_epoch_callback(callback)`` method
returning a copy of itself that passes ``callback`` to its training run's ``on_epoch_end``
(mnistfw's console scripts do: :class:`mnistfw.cli.hydra_app.HydraTask`). For each trial the
sweeper attaches a :class:`PruningCallback` that way; nothing is shared through globals, and
the training run never imports the sweeper.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class PruningCallback:
    """Reports ``metrics[objective]`` to a live Optuna trial each epoch; raises ``TrialPruned`` when told.

    Epochs whose metrics lack the objective (no validation that epoch) are not reported.
    """

    def __init__(self, trial: Any, objective: str) -> None:
        self.trial, self.objective = trial, objective

    def __call__(self, epoch: int, metrics: Mapping[str, float]) -> None:
        import optuna

        value = metrics.get(self.objective)
        if value is None:
            return
        self.trial.report(float(value), step=int(epoch))
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {epoch} ({self.objective}={value:.4f})")


def with_pruning(task_function: Any, trial: Any, objective: str | None, n_objectives: int) -> Any:
    """``task_function`` reporting to ``trial``, when it takes epoch callbacks and pruning applies.

    Optuna prunes single-objective studies only; a task without ``with_epoch_callback`` runs as is.
    """
    attach = getattr(task_function, "with_epoch_callback", None)
    if attach is None or not objective or n_objectives != 1:
        return task_function
    return attach(PruningCallback(trial, objective))
