"""The trial a job belongs to, when it runs under the mnistfw Optuna sweeper.

The sweeper calls :func:`set_active_trial` before it runs a job and clears it afterwards;
the training pipeline asks :func:`pruning_hook` for an epoch callback that reports the
objective to that trial and raises ``optuna.TrialPruned`` when the pruner says so.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

_ACTIVE_TRIAL: Any = None


def set_active_trial(trial: Any) -> None:
    """Make ``trial`` (an ``optuna.Trial``, or None to clear) the current one in this process."""
    global _ACTIVE_TRIAL
    _ACTIVE_TRIAL = trial


def active_trial() -> Any:
    """The current ``optuna.Trial``, or None outside a sweep."""
    return _ACTIVE_TRIAL


def pruning_hook(objective: str) -> Callable[[int, Mapping[str, float]], None] | None:
    """An ``on_epoch_end`` callback reporting ``metrics[objective]`` to the active trial.

    Returns None when no trial is active or the study has several objectives (Optuna prunes
    single-objective studies only). Epochs whose metrics lack the objective are not reported
    (the backend cannot measure it per epoch).
    """
    trial = active_trial()
    if trial is None:
        return None
    study = getattr(trial, "study", None)
    if study is not None and len(study.directions) > 1:
        return None  # Optuna cannot prune multi-objective trials


    def report(epoch: int, metrics: Mapping[str, float]) -> None:
        import optuna

        value = metrics.get(objective)
        if value is None:
            return
        trial.report(float(value), step=int(epoch))
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {epoch} ({objective}={value:.4f})")

    return report
