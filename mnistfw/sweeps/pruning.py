"""Pruning through the epoch-callback seam: the sweep hands the run a callback, the run calls it.

A task function that takes epoch callbacks has a ``with_epoch_callback(callback)`` method
returning a copy of itself that passes ``callback`` to its training run's ``on_epoch_end``
(mnistfw's console scripts do: :class:`mnistfw.cli.hydra_app.HydraTask`). For each trial the
sweeper attaches a :class:`PruningCallback` that way; nothing is shared through globals, and
the training run never imports the sweeper.

A job that a Hydra launcher runs in another process (joblib, submitit, ...) finds its trial
through environment variables the sweeper sets with ``hydra.job.env_set``
(:data:`STORAGE_VAR`, :data:`STUDY_VAR`, :data:`TRIAL_VAR`); :func:`pruning_from_environment`
builds its callback from them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger("mnistfw.sweep")

#: Where a launched job finds its trial: the storage, the study's name and the trial's id.
STORAGE_VAR, STUDY_VAR, TRIAL_VAR = "MNISTFW_OPTUNA_STORAGE", "MNISTFW_OPTUNA_STUDY", "MNISTFW_OPTUNA_TRIAL_ID"
#: Trial system attribute holding the ``hydra.sweeper.pruner`` mapping, for launched jobs.
PRUNER_ATTR = "mnistfw:pruner"


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


def objective_of(cfg: Any) -> str | None:
    """The job config's ``objective`` (the first one of a list), or None."""
    from omegaconf import OmegaConf

    objective = OmegaConf.select(cfg, "objective", default=None)
    if OmegaConf.is_list(objective) or isinstance(objective, (list, tuple)):
        objective = objective[0] if len(objective) else None
    return str(objective) if objective else None


def pruning_from_environment(objective: str | None) -> PruningCallback | None:
    """The callback reporting to the trial named by this job's environment, or None when none is
    named. A storage that cannot be reached from here costs the trial its pruning, not its run."""
    address = os.environ.get(STORAGE_VAR)
    if not address or not objective:
        return None
    try:
        import optuna

        from mnistfw.sweeps.runner import pruner_from_config
        from mnistfw.sweeps.storage import resolve_storage

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        spec = resolve_storage(address, 1, Path.cwd())
        sqlite_file = spec.location[len("sqlite:///"):].partition("?")[0]
        if spec.location.startswith("sqlite:///") and not Path(sqlite_file).is_file():
            raise FileNotFoundError(f"{sqlite_file} is not on this machine")  # don't create an empty one
        storage = spec.open()
        trial_id = int(os.environ[TRIAL_VAR])
        pruner = pruner_from_config(storage.get_trial_system_attrs(trial_id).get(PRUNER_ATTR))
        study = optuna.load_study(study_name=os.environ[STUDY_VAR], storage=storage, pruner=pruner,
                                  sampler=optuna.samplers.RandomSampler())
        return PruningCallback(optuna.trial.Trial(study, trial_id), objective)
    except Exception as exc:  # noqa: BLE001 - run the trial without pruning
        log.warning("pruning is off for this job: cannot reach its trial (%s: %s)", type(exc).__name__, exc)
        return None
