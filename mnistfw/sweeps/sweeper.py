"""The Optuna sweep behind the ``mnistfw_optuna`` Hydra sweeper plugin.

``hydra_plugins/mnistfw_optuna_sweeper`` only registers the config and forwards to
:class:`OptunaSweep`, so Hydra's plugin scan stays cheap and this module (with Optuna) is
imported only when a sweep runs.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shlex
import time
import uuid
import warnings
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mnistfw.backends.threads import MAX_THREADS_ENV, share_of_cores
from mnistfw.errors import ConfigError, MnistfwError
from mnistfw.sweeps.devices import VAR as CUDA_VAR
from mnistfw.sweeps.devices import device_for, visible_devices
from mnistfw.sweeps.launching import describe_launcher, placed_devices, run_launched, uses_launcher
from mnistfw.sweeps.results import command_line
from mnistfw.sweeps.runner import (
    ATTEMPTS,
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
from mnistfw.sweeps.storage import resolve_storage, study_lock

log = logging.getLogger("mnistfw.sweep")

DIRECTIONS = ("minimize", "maximize")
#: Study system attribute counting the sweep commands that opened the study.
SESSIONS = "mnistfw:sessions"


class SweepError(MnistfwError):
    """A sweep stopped before reaching its target (too many failures, a worker died)."""


def objective_names(objective: Any) -> list[str]:
    """The app's ``objective`` config value (a name or a list of names) as a list."""
    from omegaconf import OmegaConf

    if OmegaConf.is_config(objective):
        objective = OmegaConf.to_container(objective, resolve=True)
    return [objective] if isinstance(objective, str) else [str(n) for n in objective or []]


def resolve_directions(direction: Any, objective: Any) -> list[str]:
    """``direction`` as a list; null means minimize (one per objective), as in the published sweeper."""
    from omegaconf import OmegaConf

    if OmegaConf.is_config(direction):
        direction = OmegaConf.to_container(direction, resolve=True)
    names = objective_names(objective)
    if direction is None:
        return ["minimize"] * max(1, len(names))
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
        """``study_name``, or ``<task_name>-<hparams_search option>-<model option>`` (repeats dropped)."""
        name = self.settings.get("study_name")
        if name:
            return str(name)
        from omegaconf import OmegaConf

        task = self.config.get("task_name") or OmegaConf.select(self.config, "hydra.job.name", default=None)
        parts: list[str] = []
        for part in (task, *(OmegaConf.select(self.config, f"hydra.runtime.choices.{group}", default=None)
                             for group in ("hparams_search", "model"))):
            if part and str(part) not in parts:
                parts.append(str(part))
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
            log.info("nothing to search: each trial runs the fixed config")
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
        study_name = self._study_name()
        return SweepPlan(
            study_name=study_name,
            # Launched trials are asked and told by this one process: memory stays in memory.
            storage=resolve_storage(s.get("storage"), 1 if uses_launcher(self.config) else n_jobs, sweep_dir,
                                    study_name),
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

    def _open_study(self, plan: SweepPlan) -> tuple[Any, Any, int]:
        """Open the storage, create or load the study; return it, the storage and this command's
        index among the commands that opened the study (0: the first)."""
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        load = bool(self.settings.get("load_if_exists", True))
        # Two commands started together on a new SQLite file would both create its tables.
        with study_lock(plan.storage.lock_path()):
            storage = plan.storage.open()
            try:
                study = optuna.create_study(study_name=plan.study_name, storage=storage,
                                            directions=plan.directions, load_if_exists=load)
            except optuna.exceptions.DuplicatedStudyError:
                raise ConfigError(f"hydra.sweeper.study_name: study '{plan.study_name}' already exists in "
                                  f"{plan.storage.shown}; set hydra.sweeper.load_if_exists=true to continue it, "
                                  "or choose another study_name") from None
            except Exception as exc:  # noqa: BLE001 - a read-only or damaged database
                raise plan.storage.error(exc, "create the study in") from None
        existing = [d.name.lower() for d in study.directions]
        if existing != plan.directions:
            raise ConfigError(f"hydra.sweeper.direction: study '{plan.study_name}' was created with {existing}, "
                              f"not {plan.directions}; use the same direction or another study_name")
        names = objective_names(self.config.get("objective"))
        with study_lock(plan.storage.lock_path(plan.study_name)):
            index = int(storage.get_study_system_attrs(study._study_id).get(SESSIONS, 0))
            storage.set_study_system_attr(study._study_id, SESSIONS, index + 1)
            if len(names) == len(plan.directions) and study.metric_names != names:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    study.set_metric_names(names)  # optuna-dashboard shows them instead of "Objective Value"
        return study, storage, index

    def _announce(self, plan: SweepPlan) -> None:
        """Log where the study lives, the command that continues it and the dashboard line."""
        if not plan.storage.persistent:
            log.info("storage: in memory (nothing is kept when this command ends)")
            return
        log.info("storage: %s", plan.storage.url)
        log.info("to continue this study, run the same command again: %s", command_line())
        log.info("to watch it: optuna-dashboard %s", shlex.quote(plan.storage.url))

    def _log_start(self, plan: SweepPlan, study: Any, n_jobs: int, launched: bool) -> None:
        """The start lines: the study, its storage, who runs the trials, the sweep folder."""
        before = count_trials(study, plan.session)
        log.info("study '%s': %d/%d trials finished, %s, sampler %s, pruner %s, %s",
                 plan.study_name, before.finished, plan.n_trials, "/".join(plan.directions),
                 str((plan.sampler or {}).get("_target_") or "TPESampler").rsplit(".", 1)[-1],
                 str((plan.pruner or {}).get("_target_") or "none").rsplit(".", 1)[-1],
                 f"{n_jobs} at a time" if launched else f"{n_jobs} process(es)")
        self._announce(plan)
        if launched:
            self._announce_launcher(plan, n_jobs)
        if before.finished >= plan.n_trials:
            log.info("the study already has %d finished trials: nothing to run; raise hydra.sweeper.n_trials to "
                     "continue it, or start another with hydra.sweeper.study_name=<name>", before.finished)
        log.info("sweep folder: %s", plan.sweep_dir)

    def _announce_launcher(self, plan: SweepPlan, n_jobs: int) -> None:
        """Log which launcher runs the trials, their GPUs, and whether pruning reaches them."""
        log.info("trials run through %s, %d at a time", describe_launcher(self.config), n_jobs)
        devices = placed_devices(self.config, n_jobs)
        if devices:
            log.info("GPUs: job k of each batch sees %s=<device k mod %d> of %s",
                     CUDA_VAR, len(devices), ",".join(devices))
        if len(plan.directions) == 1 and plan.storage.address is None:
            pruning = type(make_pruner(plan)).__name__ != "NopPruner"
            log.log(logging.WARNING if pruning else logging.INFO,
                    "pruning is off: the launcher's jobs cannot report to a study kept %s; "
                    "use a persistent hydra.sweeper.storage (the default SQLite file) to prune",
                    "in memory" if not plan.storage.persistent else f"in {plan.storage.shown}")

    # ----------------------------------------------------------------------- the sweep

    def sweep(self, arguments: list[str]) -> dict[str, Any]:
        """Run the study until ``n_trials`` trials are finished; write the results; return them."""
        from omegaconf import OmegaConf

        from mnistfw.app import heap

        heap.settle()  # hydra.mode=MULTIRUN set in a config: the collector runs for the whole sweep
        assert self.config is not None and self.hydra_context is not None
        sweep_dir = Path(str(self.config.hydra.sweep.dir)).absolute()
        try:
            sweep_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"hydra.sweep.dir: cannot create {sweep_dir} ({exc.strerror}); "
                              "choose a folder you can write to") from None
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        plan = self._plan(arguments, sweep_dir)
        self._check_fixed_overrides(plan.space)
        make_sampler(plan), make_pruner(plan)  # fail here, not in every worker, on a bad sampler/pruner
        study, storage, index = self._open_study(plan)
        n_jobs = self._int("n_jobs", 1, 1)
        launched = uses_launcher(self.config)
        self._log_start(plan, study, n_jobs, launched)
        job = JobContext(self.config, self.hydra_context, self.task_function)
        # The first command on a study samples with the configured seed (a one-process sweep is
        # reproducible); any later or concurrent one shifts it by a number of its own.
        seed_offset = 0 if index == 0 else zlib.crc32(plan.session.encode())
        started = time.time()
        crashed: list[str] = []
        try:
            if launched:
                status = run_launched(plan, job, n_jobs, seed_offset, storage=storage)
            elif n_jobs == 1:
                status = run_worker(plan, job, 0, seed_offset, storage=storage)
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
        if status == ATTEMPTS and counts.finished < plan.n_trials:
            message = (f"sweep stopped: this command started {counts.session_started} trials, its limit "
                       f"(n_trials x (1 + max_retry) = {plan.max_attempts}), and {counts.finished}/{plan.n_trials} "
                       f"are finished; last {counts.last_error or 'trial lost'}; fix the cause (see the trials' "
                       f"error.txt) - results in {sweep_dir}")
            log.warning(message)
            raise SweepError(message)
        if status == TIMEOUT:
            log.warning("timeout reached: %d/%d trials finished; run the same command again to continue",
                        counts.finished, plan.n_trials)
        return results

    def _finish(self, study: Any, plan: SweepPlan, started: float) -> tuple[dict[str, Any], Any]:
        """Re-read the study (workers wrote to the storage), write the results files; return both."""
        from mnistfw.sweeps.results import write_results

        if plan.storage.persistent:
            import optuna

            try:
                study = optuna.load_study(study_name=plan.study_name, storage=plan.storage.open())
            except ConfigError:
                raise
            except Exception as exc:  # noqa: BLE001 - the storage went away meanwhile
                raise plan.storage.error(exc, "read the study from") from None
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
        devices = visible_devices()  # each worker sees one GPU: device i mod the GPUs present
        gpus = [device_for(i, devices) for i in range(n_jobs)]
        threads = share_of_cores(n_jobs)
        procs = [ctx.Process(target=_worker_main, args=(plan, job, i, seed_offset + 1000 * i, gpus[i], threads),
                             name=f"mnistfw-sweep-worker-{i}") for i in range(n_jobs)]
        for p in procs:
            p.start()
        log.info("started %d worker processes: %s (at most %d CPU threads each)", n_jobs,
                 ", ".join(str(p.pid) for p in procs), threads)
        if gpus[0] is not None:
            log.info("GPUs: %s=%s", CUDA_VAR, ", ".join(f"{g} for worker {i}" for i, g in enumerate(gpus)))
        try:
            for p in procs:
                p.join()
        except KeyboardInterrupt:
            for p in procs:
                p.join(timeout=30)
            raise
        codes = {p.pid: p.exitcode for p in procs}
        crashed = [f"worker {pid} exited with code {code}" for pid, code in codes.items()
                   if code not in _EXIT.values()]
        for status in (FAILURE_RATE, ATTEMPTS, TIMEOUT):
            if any(code == _EXIT[status] for code in codes.values()):
                return status, crashed
        return DONE, crashed


_EXIT = {DONE: 0, FAILURE_RATE: 3, TIMEOUT: 4, ATTEMPTS: 5}


def _worker_main(plan: SweepPlan, job: JobContext, index: int, seed_offset: int, gpu: str | None = None,
                 threads: int | None = None) -> None:
    """Entry point of a forked worker process: run trials (on GPU ``gpu`` when given, with at most
    ``threads`` CPU threads for ``trainer.num_threads=auto``), exit with a code saying why it stopped."""
    import sys

    if gpu is not None:
        os.environ[CUDA_VAR] = gpu  # before any CUDA use in this process: its trials see that GPU only
    if threads is not None:
        os.environ[MAX_THREADS_ENV] = str(threads)  # the workers share the cores instead of each taking all
    try:
        status = run_worker(plan, job, index, seed_offset)
    except KeyboardInterrupt:
        os._exit(130)
    except MnistfwError as exc:
        print(f"error: worker {os.getpid()}: {exc}", file=sys.stderr)
        sys.stderr.flush()
        os._exit(1)
    except BaseException as exc:  # noqa: BLE001 - report and exit non-zero
        import traceback

        traceback.print_exc()
        print(f"error: worker {os.getpid()}: {exc}", file=sys.stderr)
        sys.stderr.flush()
        os._exit(1)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_EXIT.get(status, 0))
