"""Structured config of the ``mnistfw_optuna`` sweeper, registered in Hydra's ConfigStore.

The keys follow the published ``hydra-optuna-sweeper`` (``sampler``, ``direction``,
``storage``, ``study_name``, ``n_trials``, ``n_jobs``, ``max_failure_rate``, ``params``,
``custom_search_space``, ``hydra/sweeper/sampler`` options) and add pruning, resuming,
lost-trial recovery, worker processes and results files. See :mod:`mnistfw.sweeps`.
"""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore


@dataclass
class MnistfwOptunaSweeperConf:
    """``hydra.sweeper`` when ``hydra/sweeper=mnistfw_optuna``."""

    _target_: str = "hydra_plugins.mnistfw_optuna_sweeper.optuna_sweeper.MnistfwOptunaSweeper"
    # Hand sampler/pruner/storage mappings to the sweeper as configs: it creates them in each
    # worker process (with a per-worker seed) instead of Hydra creating them once here.
    _recursive_: bool = False
    defaults: list[Any] = field(default_factory=lambda: [{"sampler": "tpe"}])

    #: Optuna sampler: {_target_: optuna.samplers.TPESampler, seed: 42, ...}; options of the
    #: hydra/sweeper/sampler group: tpe, random, cmaes, gp, qmc, nsgaii, grid, bruteforce.
    sampler: dict[str, Any] = field(default_factory=dict)
    #: Optuna pruner: {_target_: optuna.pruners.MedianPruner, n_warmup_steps: 2}; null: no pruning.
    pruner: dict[str, Any] | None = field(default_factory=dict)
    #: minimize | maximize | a list of them (multi-objective); null: maximize, or minimize
    #: when the objective's name contains loss/error.
    direction: Any = None
    #: null (in memory), a SQLAlchemy URL (sqlite:///outputs/study.db) or a journal file
    #: (journal:///path/study.log, or a path ending in .log/.jsonl).
    storage: Any | None = None
    #: null: <task_name>-<hparams_search option>.
    study_name: str | None = None
    #: Continue a study of the same name in the storage (resume) instead of failing.
    load_if_exists: bool = True
    #: Finished trials (COMPLETE + PRUNED) the study must reach; a re-run continues to it.
    n_trials: int = 20
    #: Worker processes running trials at the same time on the shared storage.
    n_jobs: int = 1
    #: Stop starting new trials after this many seconds (null: no limit).
    timeout: float | None = None
    #: Stop when more than this fraction of the trials ended by this command failed ...
    max_failure_rate: float = 0.5
    #: ... counting at least this many trials (so 3 early failures of 5 stop it at 0.5).
    failure_rate_min_trials: int = 5
    #: How often the parameters of a trial lost with its process are queued again (null: always).
    max_retry: int | None = 2
    #: Seconds between heartbeats of a running trial (persistent storages) ...
    heartbeat_interval: float = 10.0
    #: ... and the silence after which another machine's trial counts as lost (null: 6 x interval, >= 30 s).
    grace_period: float | None = None
    #: Search space, Hydra override syntax: {model.optimizer.lr: tag(log, interval(1e-4, 1e-1)), ...}.
    params: dict[str, Any] | None = field(default_factory=dict)
    #: List values built element by element: {model.hidden: {length: range(1, 4), item: range(32, 513, 32)}}.
    list_params: dict[str, Any] | None = field(default_factory=dict)
    #: package.module.function(cfg, trial) suggesting more parameters (returns None or {key: value}).
    custom_search_space: str | None = None
    #: Draw the PNG plots of the search into the sweep folder.
    plots: bool = True


_SAMPLERS = {
    "tpe": "optuna.samplers.TPESampler",
    "random": "optuna.samplers.RandomSampler",
    "cmaes": "optuna.samplers.CmaEsSampler",
    "gp": "optuna.samplers.GPSampler",
    "qmc": "optuna.samplers.QMCSampler",
    "nsgaii": "optuna.samplers.NSGAIISampler",
    "grid": "optuna.samplers.GridSampler",
    "bruteforce": "optuna.samplers.BruteForceSampler",
}

_store = ConfigStore.instance()
_store.store(group="hydra/sweeper", name="mnistfw_optuna", node=MnistfwOptunaSweeperConf, provider="mnistfw")
for _name, _target in _SAMPLERS.items():
    _store.store(group="hydra/sweeper/sampler", name=_name, node={"_target_": _target, "seed": None},
                 provider="mnistfw")
