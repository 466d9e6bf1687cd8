"""The Optuna sweep behind the ``mnistfw_optuna`` Hydra sweeper plugin.

``hydra_plugins/mnistfw_optuna_sweeper`` only registers the config and forwards to
:class:`OptunaSweep`, so Hydra's plugin scan stays cheap and this module (with Optuna) is
imported only when a sweep runs.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mnistfw.errors import ConfigError, MnistfwError
from mnistfw.sweeps.runner import (
    DONE,
    FAILURE_RATE,
    TIMEOUT,
    JobContext,
    SweepPlan,
    count_trials,
    make_pruner,
    make_sampler,
    run_worker,
)
from mnistfw.sweeps.space import SearchSpace, build_search_space
from mnistfw.sweeps.storage import resolve_storage

log = logging.getLogger("mnistfw.sweep")

DIRECTIONS = ("minimize", "maximize")
_LOWER_IS_BETTER = ("loss", "error", "mse", "mae", "rmse", "nll")


class SweepError(MnistfwError):
    """A sweep stopped before reaching its target (too many failures, a worker died)."""


def resolve_directions(direction: Any, objective: Any) -> list[str]:
    """``direction`` as a list; ``null`` infers it from the objective name(s) (``*loss*`` -> minimize)."""
    from omegaconf import OmegaConf

    if OmegaConf.is_config(direction):
        direction = OmegaConf.to_container(direction, resolve=True)
    if OmegaConf.is_config(objective):
        objective = OmegaConf.to_container(objective, resolve=True)
    names = [objective] if isinstance(objective, str) else list(objective or [])
    if direction is None:
        if not names:
            return ["minimize"]
        return ["minimize" if any(w in n.lower() for w in _LOWER_IS_BETTER) else "maximize" for n in names]
    items = list(direction) if isinstance(direction, (list, tuple)) else [direction]
    out = []
    for item in items:
        name = getattr(item, "name", item)
        name = str(name).lower()
        if name not in DIRECTIONS:
            raise ConfigError(f"hydra.sweeper.direction: '{item}' is not minimize or maximize")
        out.append(name)
    if not out:
        raise ConfigError("hydra.sweeper.direction: give minimize, maximize or a list of them")
    if names and len(names) > 1 and len(out) != len(names):
        raise ConfigError(f"hydra.sweeper.direction: {len(out)} direction(s) for {len(names)} objectives "
                          f"({', '.join(names)}); give one per objective")
    return out


def _plain(value: Any) -> Any:
    from omegaconf import OmegaConf

    if OmegaConf.is_config(value):
        return OmegaConf.to_container(value, resolve=True)
    return value


class OptunaSweep:
    """Runs a whole sweep: builds the search space, opens the study, runs workers, writes results."""

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.settings = dict(settings)
        self.config: Any = None
        self.hydra_context: Any = None
        self.task_function: Any = None

    def setup(self, *, hydra_context: Any, task_function: Any, config: Any) -> None:
        self.hydra_context = hydra_context
        self.task_function = task_function
        self.config = config

    # ----------------------------------------------------------------------- settings

    def _int(self, key: str, minimum: int, default: int) -> int:
        value = self.settings.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise ConfigError(f"hydra.sweeper.{key}: must be an integer >= {minimum}, got {value!r}")
        return value

    def _study_name(self) -> str:
        name = self.settings.get("study_name")
        if name:
            return str(name)
        from omegaconf import OmegaConf

        choice = OmegaConf.select(self.config, "hydra.runtime.choices.hparams_search", default=None)
        parts = [str(p) for p in (self.config.get("task_name"), choice) if p]
        return "-".join(parts) or "mnistfw"

    def _plan(self, arguments: Sequence[str], sweep_dir: Path) -> SweepPlan:
        s = self.settings
        n_jobs = self._int("n_jobs", 1, 1)
        n_trials = self._int("n_trials", 1, 20)
        rate = s.get("max_failure_rate", 0.5)
        if not isinstance(rate, (int, float)) or not 0.0 <= float(rate) <= 1.0:
            raise ConfigError(f"hydra.sweeper.max_failure_rate: must be between 0 and 1, got {rate!r}")
        interval = s.get("heartbeat_interval") or 10
        if not isinstance(interval, (int, float)) or interval <= 0:
            raise ConfigError(f"hydra.sweeper.heartbeat_interval: must be > 0 seconds, got {interval!r}")
        grace = s.get("grace_period")
        grace = float(grace) if grace is not None else max(6.0 * float(interval), 30.0)
        if grace <= interval:
            raise ConfigError(f"hydra.sweeper.grace_period: must exceed heartbeat_interval ({interval}s), got {grace}")
        timeout = s.get("timeout")
        if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
            raise ConfigError(f"hydra.sweeper.timeout: must be > 0 seconds or null, got {timeout!r}")
        max_retry = s.get("max_retry", 2)
        if max_retry is not None and (not isinstance(max_retry, int) or max_retry < 0):
            raise ConfigError(f"hydra.sweeper.max_retry: must be an integer >= 0 or null, got {max_retry!r}")
        space = build_search_space(_plain(s.get("params")), arguments, _plain(s.get("list_params")))
        if space.is_empty() and not s.get("custom_search_space"):
            raise ConfigError("hydra.sweeper.params: nothing to search; add e.g. model.optimizer.lr: "
                              "tag(log, interval(1e-4, 1e-1)) or pass a sweep like model.dropout='interval(0,0.5)'")
        sampler = _plain(s.get("sampler"))
        pruner = _plain(s.get("pruner"))
        for name, section in (("sampler", sampler), ("pruner", pruner)):
            if section is not None and not isinstance(section, dict):
                raise ConfigError(f"hydra.sweeper.{name}: expected a mapping with _target_, got {section!r}")
        if sampler and str(sampler.get("_target_", "")).endswith("GridSampler"):
            size = 1
            for values in space.grid().values():
                size *= len(values)
            if size < n_trials:
                log.info("GridSampler: the grid has %d points; n_trials lowered from %d", size, n_trials)
                n_trials = size
        return SweepPlan(
            study_name=self._study_name(),
            storage=resolve_storage(s.get("storage"), n_jobs, sweep_dir),
            directions=resolve_directions(s.get("direction"), self.config.get("objective")),
            space=space,
            sampler=sampler,
            pruner=pruner,
            n_trials=n_trials,
            sweep_dir=sweep_dir,
            session=uuid.uuid4().hex,
            custom_search_space=s.get("custom_search_space"),
            timeout=float(timeout) if timeout is not None else None,
            max_failure_rate=float(rate),
            failure_rate_min_trials=self._int("failure_rate_min_trials", 1, 5),
            max_retry=max_retry,
            heartbeat_interval=float(interval),
            grace_period=grace,
            poll_interval=min(2.0, float(interval)),
        )

    def _check_fixed_overrides(self, space: SearchSpace) -> None:
        """Compose once with the overrides every trial shares: a typo fails here, not in every trial."""
        self.hydra_context.config_loader.load_sweep_config(self.config, list(space.fixed))

    def _open_study(self, plan: SweepPlan) -> tuple[Any, Any]:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = plan.storage.open()
        load = bool(self.settings.get("load_if_exists", True))
        try:
            study = optuna.create_study(study_name=plan.study_name, storage=storage,
                                        directions=plan.directions, load_if_exists=load)
        except optuna.exceptions.DuplicatedStudyError:
            raise ConfigError(f"hydra.sweeper.study_name: study '{plan.study_name}' already exists in "
                              f"{plan.storage.shown}; set hydra.sweeper.load_if_exists=true to continue it, "
                              "or choose another study_name") from None
        existing = [d.name.lower() for d in study.directions]
        if existing != plan.directions:
            raise ConfigError(f"hydra.sweeper.direction: study '{plan.study_name}' was created with {existing}, "
                              f"not {plan.directions}; use the same direction or another study_name")
        return study, storage

    # ----------------------------------------------------------------------- the sweep

    def sweep(self, arguments: list[str]) -> dict[str, Any]:
        """Run the study until ``n_trials`` trials are finished; write the results; return them."""
        from omegaconf import OmegaConf

        assert self.config is not None and self.hydra_context is not None
        sweep_dir = Path(str(self.config.hydra.sweep.dir)).absolute()
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        plan = self._plan(arguments, sweep_dir)
        self._check_fixed_overrides(plan.space)
        make_sampler(plan), make_pruner(plan)  # fail here, not in every worker, on a bad sampler/pruner
        study, storage = self._open_study(plan)
        n_jobs = self._int("n_jobs", 1, 1)
        before = count_trials(study, plan.session)
        log.info("study '%s' in %s: %d/%d trials finished, %s, sampler %s, pruner %s, %d process(es)",
                 plan.study_name, plan.storage.shown, before.finished, plan.n_trials, "/".join(plan.directions),
                 (plan.sampler or {}).get("_target_", "TPESampler").rsplit(".", 1)[-1],
                 (plan.pruner or {}).get("_target_", "none").rsplit(".", 1)[-1], n_jobs)
        log.info("sweep folder: %s", sweep_dir)
        job = JobContext(self.config, self.hydra_context, self.task_function)
        seed_offset = len(study.trials)
        started = time.time()
        crashed: list[str] = []
        try:
            if n_jobs == 1:
                status = run_worker(plan, job, 0, seed_offset, storage=None if plan.storage.persistent else storage)
            else:
                status, crashed = self._run_processes(plan, job, n_jobs, seed_offset)
        except (KeyboardInterrupt, SystemExit):
            log.warning("interrupted: the running trial is marked FAIL and queued again; "
                        "with a persistent storage, run the same command again to continue")
            self._finish(study, plan, started)
            raise
        results, study = self._finish(study, plan, started)
        counts = count_trials(study, plan.session)
        if status == FAILURE_RATE:
            raise SweepError(
                f"sweep stopped: {counts.session_failed} of {counts.session_ended} trials failed "
                f"(hydra.sweeper.max_failure_rate={plan.max_failure_rate}); last {counts.last_error}; "
                f"fix the cause (see the trials' error.txt) or raise max_failure_rate - results in {sweep_dir}"
            )
        if crashed:
            raise SweepError(f"sweep stopped: {'; '.join(crashed)}; {counts.finished}/{plan.n_trials} trials "
                             "finished - run the same command again to continue the study")
        if status == TIMEOUT:
            log.warning("timeout reached: %d/%d trials finished; run the same command again to continue",
                        counts.finished, plan.n_trials)
        return results

    def _finish(self, study: Any, plan: SweepPlan, started: float) -> tuple[dict[str, Any], Any]:
        """Re-read the study (workers wrote to the storage), write the results files; return both."""
        from mnistfw.sweeps.results import write_results

        if plan.storage.persistent:
            import optuna

            study = optuna.load_study(study_name=plan.study_name, storage=plan.storage.open())
        results = write_results(study, plan, self.config, plan_elapsed=time.time() - started,
                                plots=bool(self.settings.get("plots", True)))
        return results, study

    def _run_processes(self, plan: SweepPlan, job: JobContext, n_jobs: int, seed_offset: int) -> tuple[str, list[str]]:
        """Run ``n_jobs`` worker processes on the shared storage; wait for all of them."""
        methods = multiprocessing.get_all_start_methods()
        if "fork" not in methods:
            raise ConfigError("hydra.sweeper.n_jobs > 1 needs the 'fork' start method (Linux, macOS); "
                              "on this system start several sweeps on one storage instead")
        ctx = multiprocessing.get_context("fork")
        procs = [ctx.Process(target=_worker_main, args=(plan, job, i, seed_offset + 1000 * i),
                             name=f"mnistfw-sweep-worker-{i}") for i in range(n_jobs)]
        for p in procs:
            p.start()
        log.info("started %d worker processes: %s", n_jobs, ", ".join(str(p.pid) for p in procs))
        try:
            for p in procs:
                p.join()
        except KeyboardInterrupt:
            for p in procs:
                p.join(timeout=30)
            raise
        codes = {p.pid: p.exitcode for p in procs}
        crashed = [f"worker {pid} exited with code {code}" for pid, code in codes.items()
                   if code not in (0, _EXIT[FAILURE_RATE], _EXIT[TIMEOUT])]
        if any(code == _EXIT[FAILURE_RATE] for code in codes.values()):
            return FAILURE_RATE, crashed
        if any(code == _EXIT[TIMEOUT] for code in codes.values()):
            return TIMEOUT, crashed
        return DONE, crashed


_EXIT = {DONE: 0, FAILURE_RATE: 3, TIMEOUT: 4}


def _worker_main(plan: SweepPlan, job: JobContext, index: int, seed_offset: int) -> None:
    """Entry point of a forked worker process: run trials, exit with a code saying why it stopped."""
    import os
    import sys

    try:
        status = run_worker(plan, job, index, seed_offset)
    except KeyboardInterrupt:
        os._exit(130)
    except BaseException as exc:  # noqa: BLE001 - report and exit non-zero
        import traceback

        traceback.print_exc()
        print(f"error: worker {os.getpid()}: {exc}", file=sys.stderr)
        sys.stderr.flush()
        os._exit(1)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_EXIT.get(status, 0))
