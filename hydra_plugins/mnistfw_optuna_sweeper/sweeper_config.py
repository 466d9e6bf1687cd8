"""Structured config of the ``mnistfw_optuna`` sweeper, registered in Hydra's ConfigStore.

The keys follow the published ``hydra-optuna-sweeper`` (``sampler``, ``direction``,
``storage``, ``study_name``, ``n_trials``, ``n_jobs``, ``max_failure_rate``, ``params``,
``custom_search_space``, ``hydra/sweeper/sampler`` options) and add pruning, resuming,
lost-trial recovery, worker processes and results files. See :mod:`mnistfw.sweeps`.

Each ``hydra/sweeper/sampler`` option lists every argument of its Optuna sampler, and the
``pruner`` mapping every argument of Optuna's pruners, so ``hydra.sweeper.sampler.n_startup_trials=2``
or ``hydra.sweeper.pruner.n_warmup_steps=3`` work on the command line without ``+``. A null
argument means "Optuna's default" and is not passed on.
"""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore

#: hydra/sweeper/sampler options: the sampler class and its constructor arguments.
SAMPLERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "tpe": ("optuna.samplers.TPESampler", (
        "consider_prior", "prior_weight", "consider_magic_clip", "consider_endpoints", "n_startup_trials",
        "n_ei_candidates", "multivariate", "group", "warn_independent_sampling", "constant_liar")),
    "random": ("optuna.samplers.RandomSampler", ()),
    "cmaes": ("optuna.samplers.CmaEsSampler", (
        "x0", "sigma0", "n_startup_trials", "independent_sampler", "warn_independent_sampling",
        "consider_pruned_trials", "restart_strategy", "popsize", "inc_popsize", "use_separable_cma", "with_margin",
        "lr_adapt")),
    "gp": ("optuna.samplers.GPSampler", (
        "independent_sampler", "n_startup_trials", "deterministic_objective", "warn_independent_sampling")),
    "qmc": ("optuna.samplers.QMCSampler", (
        "qmc_type", "scramble", "independent_sampler", "warn_asynchronous_seeding", "warn_independent_sampling")),
    "nsgaii": ("optuna.samplers.NSGAIISampler", (
        "population_size", "mutation", "mutation_prob", "crossover", "crossover_prob", "swapping_prob")),
    "nsgaiii": ("optuna.samplers.NSGAIIISampler", (
        "population_size", "mutation", "mutation_prob", "crossover", "crossover_prob", "swapping_prob",
        "reference_points",
        "dividing_parameter")),
    "grid": ("optuna.samplers.GridSampler", ()),  # the grid itself comes from params
    "bruteforce": ("optuna.samplers.BruteForceSampler", ("avoid_premature_stop",)),
}

#: hydra/sweeper/pruner options, and every argument any of them takes.
PRUNERS: dict[str, str] = {
    "median": "optuna.pruners.MedianPruner",
    "percentile": "optuna.pruners.PercentilePruner",
    "hyperband": "optuna.pruners.HyperbandPruner",
    "successive_halving": "optuna.pruners.SuccessiveHalvingPruner",
    "threshold": "optuna.pruners.ThresholdPruner",
    "patient": "optuna.pruners.PatientPruner",
    "wilcoxon": "optuna.pruners.WilcoxonPruner",
    "nop": "optuna.pruners.NopPruner",
}
PRUNER_ARGUMENTS = (
    "n_startup_trials", "n_warmup_steps", "interval_steps", "n_min_trials", "percentile", "min_resource",
    "max_resource", "reduction_factor", "bootstrap_count", "min_early_stopping_rate", "lower", "upper",
    "wrapped_pruner", "patience", "min_delta", "p_threshold", "n_startup_steps",
)


def sampler_node(name: str) -> dict[str, Any]:
    """The ``hydra/sweeper/sampler`` option ``name``: ``_target_``, ``seed`` and its arguments (null)."""
    target, arguments = SAMPLERS[name]
    return {"_target_": target, "seed": None, **dict.fromkeys(arguments)}


def pruner_node(target: str | None = None) -> dict[str, Any]:
    """A pruner mapping with every pruner argument present (null: Optuna's default)."""
    return {"_target_": target, **dict.fromkeys(PRUNER_ARGUMENTS)}


@dataclass
class MnistfwOptunaSweeperConf:
    """``hydra.sweeper`` when ``hydra/sweeper=mnistfw_optuna``."""

    _target_: str = "hydra_plugins.mnistfw_optuna_sweeper.optuna_sweeper.MnistfwOptunaSweeper"
    # Hand sampler/pruner/storage mappings to the sweeper as configs: it creates them in each
    # worker process (with a per-process seed) instead of Hydra creating them once here.
    _recursive_: bool = False
    defaults: list[Any] = field(default_factory=lambda: [{"sampler": "tpe"}])

    #: Optuna sampler: {_target_: optuna.samplers.TPESampler, seed: 42, ...}; options of the
    #: hydra/sweeper/sampler group: tpe, random, cmaes, gp, qmc, nsgaii, nsgaiii, grid, bruteforce.
    #: Concurrent sweep commands on one study each derive their own seed from ``seed`` (the
    #: first command on a study uses it as given); TPE gets constant_liar=true unless set.
    sampler: dict[str, Any] = field(default_factory=dict)
    #: Optuna pruner: {_target_: optuna.pruners.MedianPruner, n_warmup_steps: 2}; null (or no
    #: _target_): no pruning. Options of hydra/sweeper/pruner: median, percentile, hyperband, ...
    pruner: dict[str, Any] | None = field(default_factory=pruner_node)
    #: minimize (the default, as in the published sweeper) | maximize | a list of them
    #: (multi-objective, one per objective).
    direction: Any = "minimize"
    #: null: a SQLite file beside the sweep folder, <parent of hydra.sweep.dir>/<study_name>.db,
    #: so the same command again continues the study; memory: in memory (nothing kept);
    #: a SQLAlchemy URL (sqlite:///outputs/study.db, postgresql://...) or a journal file
    #: (journal:///path/study.log, or a path ending in .log/.jsonl).
    storage: Any | None = None
    #: null: <task_name>-<hparams_search option>-<model option>, repeated names left out
    #: (the app's job name when there is no task_name).
    study_name: str | None = None
    #: Continue a study of the same name in the storage (resume) instead of failing.
    load_if_exists: bool = True
    #: Finished trials (COMPLETE + PRUNED) the study must reach; a re-run continues to it.
    n_trials: int = 20
    #: Worker processes running trials at the same time on the shared storage; with a hydra/launcher
    #: other than basic (joblib, submitit_slurm, ...), the trials in each batch it launches.
    n_jobs: int = 1
    #: Stop starting new trials after this many seconds (null: no limit).
    timeout: float | None = None
    #: Stop when more than this fraction of the trials ended by this command failed ...
    max_failure_rate: float = 0.5
    #: ... counting at least this many trials (so 3 early failures of 5 stop it at 0.5).
    failure_rate_min_trials: int = 5
    #: How often the parameters of a trial lost with its process are queued again (null: always).
    #: A command also stops after n_trials x (1 + max_retry) trial attempts (x 10 for null).
    max_retry: int | None = 2
    #: Seconds between heartbeats of a running trial (persistent storages) ...
    heartbeat_interval: float = 10.0
    #: ... and the silence after which another machine's trial counts as lost (null: 6 x interval, >= 30 s).
    grace_period: float | None = None
    #: Search space, Hydra override syntax: {model.optimizer.lr: tag(log, interval(1e-4, 1e-1)), ...}.
    #: Empty: every trial runs the fixed config.
    params: dict[str, Any] | None = field(default_factory=dict)
    #: List values built element by element: {model.hidden: {length: range(1, 3), item: range(32, 512, 32)}}.
    list_params: dict[str, Any] | None = field(default_factory=dict)
    #: package.module.function(cfg, trial) suggesting more parameters (returns None or {key: value}).
    custom_search_space: str | None = None
    #: Draw the PNG plots of the search into the sweep folder.
    plots: bool = True


_store = ConfigStore.instance()
_store.store(group="hydra/sweeper", name="mnistfw_optuna", node=MnistfwOptunaSweeperConf, provider="mnistfw")
for _name in SAMPLERS:
    _store.store(group="hydra/sweeper/sampler", name=_name, node=sampler_node(_name), provider="mnistfw")
for _name, _target in PRUNERS.items():
    _store.store(group="hydra/sweeper/pruner", name=_name, node=pruner_node(_target), provider="mnistfw")
