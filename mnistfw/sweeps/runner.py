"""The trial loop one sweep process (the main one, or one of ``n_jobs`` workers) runs.

Each pass, under a per-machine lock: fail trials whose process is gone (and queue their
parameters again), count the study's finished trials (COMPLETE + PRUNED), stop at
``n_trials``; otherwise ask Optuna for a trial, stamp it with this process's identity and a
heartbeat, and run it as a Hydra job in this process, handing the task a pruning callback
(:mod:`mnistfw.sweeps.pruning`) that reports to the live trial.

A RUNNING trial counts as lost when

* it was started on this machine by a process that no longer exists (checked at once), or
* its heartbeat (written every ``heartbeat_interval`` seconds while it runs) is older than
  ``grace_period`` seconds - the rule for workers on other machines.

A lost trial is marked FAIL (user attribute ``error`` says why) and a copy with the same
parameters is queued (WAITING; system attributes ``failed_trial``/``retry_history`` as in
Optuna's ``RetryHeartbeatStaleTrialCallback``), at most ``max_retry`` times.
Trials started by other tools (no mnistfw stamp) are never touched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import threading
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mnistfw.errors import ConfigError
from mnistfw.sweeps.space import SearchSpace, is_finite_number, load_custom_search_space
from mnistfw.sweeps.storage import StorageSpec, machine_id, pid_alive, study_lock

log = logging.getLogger("mnistfw.sweep")

OWNER = "mnistfw:owner"
HEARTBEAT = "mnistfw:heartbeat"
LOST = "mnistfw:lost"

_WARNED: set[str] = set()

#: Why a worker stopped.
DONE, FAILURE_RATE, TIMEOUT, ATTEMPTS = "done", "failure_rate", "timeout", "attempts"


@dataclass
class SweepPlan:
    """Everything a sweep process needs; plain data, shared by all workers."""

    study_name: str
    storage: StorageSpec
    directions: list[str]
    space: SearchSpace
    sampler: dict[str, Any] | None
    pruner: dict[str, Any] | None
    n_trials: int
    sweep_dir: Path
    session: str
    custom_search_space: str | None = None
    timeout: float | None = None
    max_failure_rate: float = 0.5
    failure_rate_min_trials: int = 5
    max_retry: int | None = 2
    heartbeat_interval: float = 10.0
    grace_period: float = 60.0
    poll_interval: float = 1.0
    start_time: float = field(default_factory=time.time)

    @property
    def max_attempts(self) -> int:
        """Trials this command may start: ``n_trials x (1 + max_retry)`` (``max_retry`` null: x 10)."""
        return self.n_trials * (1 + self.max_retry if self.max_retry is not None else 10)


@dataclass
class JobContext:
    """The Hydra side: how to compose and run one job."""

    master_config: Any
    hydra_context: Any
    task_function: Any


@dataclass
class Counts:
    """The study's trials by what they mean for the target."""

    finished: int = 0
    running: int = 0
    #: Trials this session asked for, whatever became of them (the attempts).
    session_started: int = 0
    session_ended: int = 0
    session_failed: int = 0
    last_error: str = ""


# --------------------------------------------------------------------------- sampler, pruner


def _filtered_kwargs(target: str, kwargs: dict[str, Any], section: str) -> dict[str, Any]:
    """Drop keys the target's constructor does not take (e.g. TPE options after switching
    ``_target_`` to RandomSampler on the command line), with a warning naming them."""
    import inspect

    from hydra.utils import get_class

    try:
        cls = get_class(target)
    except Exception:  # noqa: BLE001
        example = "optuna.samplers.TPESampler" if section == "sampler" else "optuna.pruners.MedianPruner"
        raise ConfigError(f"hydra.sweeper.{section}._target_: cannot import '{target}'; "
                          f"give a class such as {example}") from None
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return kwargs
    if any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return kwargs
    dropped = sorted(k for k in kwargs if k not in params)
    typos = [k for k in dropped if k not in _known_arguments(section)]
    if typos:
        raise ConfigError(f"hydra.sweeper.{section}.{typos[0]}: not an argument of {target} (nor of any other "
                          f"Optuna {section}); allowed: {', '.join(p for p in params if p != 'self')}")
    message = f"hydra.sweeper.{section}: {target.rsplit('.', 1)[-1]} does not take {', '.join(dropped)}; ignored"
    if dropped and message not in _WARNED:
        _WARNED.add(message)
        log.warning(message)
    return {k: v for k, v in kwargs.items() if k in params}


def _known_arguments(section: str) -> set[str]:
    """Constructor arguments of every class in ``optuna.samplers`` / ``optuna.pruners``."""
    import inspect

    import optuna

    module = optuna.samplers if section == "sampler" else optuna.pruners
    names: set[str] = set()
    for obj in vars(module).values():
        if inspect.isclass(obj):
            try:
                names.update(inspect.signature(obj).parameters)
            except (TypeError, ValueError):
                continue
    return names


def _instantiate(section: str, cfg: dict[str, Any], extra: dict[str, Any]) -> Any:
    from hydra.utils import instantiate

    cfg = dict(cfg)
    target = cfg.pop("_target_", None)
    if not target:
        raise ConfigError(f"hydra.sweeper.{section}: needs _target_, e.g. optuna.{section}s.<Class>")
    kwargs = _filtered_kwargs(str(target), {**cfg, **extra}, section)
    try:
        return instantiate({"_target_": target, **kwargs}, _convert_="all")
    except Exception as exc:  # noqa: BLE001 - one line naming the section
        cause = str(exc.__cause__ or exc).strip().splitlines()
        raise ConfigError(f"hydra.sweeper.{section}: cannot create {target}: {cause[0] if cause else exc}") from None


def make_sampler(plan: SweepPlan, seed_offset: int = 0) -> Any:
    """The configured sampler; its seed is shifted by ``seed_offset`` (one per process).

    Null arguments mean Optuna's default and are not passed; a sampler that takes
    ``constant_liar`` (TPE) gets ``True`` unless it is set, so concurrent processes do not
    suggest the parameters of trials still running elsewhere.
    """
    import optuna

    cfg = {k: v for k, v in (plan.sampler or {}).items() if v is not None}
    cfg.setdefault("_target_", "optuna.samplers.TPESampler")
    extra: dict[str, Any] = {}
    if "seed" in cfg:
        extra["seed"] = (int(cfg["seed"]) + seed_offset) % 2**32
    if str(cfg["_target_"]).endswith("GridSampler"):
        extra["search_space"] = plan.space.grid()
    if "constant_liar" not in cfg and "constant_liar" in _arguments(str(cfg["_target_"])):
        extra["constant_liar"] = True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return _instantiate("sampler", cfg, extra)


def _arguments(target: str) -> set[str]:
    """Constructor argument names of ``target`` (empty when it cannot be inspected)."""
    import inspect

    from hydra.utils import get_class

    try:
        return set(inspect.signature(get_class(target)).parameters)
    except Exception:  # noqa: BLE001 - _instantiate reports an unknown class
        return set()


def make_pruner(plan: SweepPlan) -> Any:
    """The configured pruner (``NopPruner`` when none: null, or no ``_target_`` and no argument)."""
    return pruner_from_config(plan.pruner)


def pruner_from_config(section: dict[str, Any] | None) -> Any:
    """An Optuna pruner from a ``hydra.sweeper.pruner`` mapping (null arguments: Optuna's defaults)."""
    import optuna

    cfg = {k: v for k, v in (section or {}).items() if v is not None}
    if not cfg:
        return optuna.pruners.NopPruner()
    return _instantiate("pruner", cfg, {})


# --------------------------------------------------------------------------- counting, recovery


def count_trials(study: Any, session: str) -> Counts:
    """Finished/running trials of the study, and this session's ended/failed ones."""
    from optuna.trial import TrialState

    counts = Counts()
    for t in study.get_trials(deepcopy=False):
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED):
            counts.finished += 1
        elif t.state == TrialState.RUNNING:
            counts.running += 1
        owner = t.system_attrs.get(OWNER)
        if not isinstance(owner, dict) or owner.get("session") != session:
            continue
        counts.session_started += 1
        if t.system_attrs.get(LOST):
            continue
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL):
            counts.session_ended += 1
        if t.state == TrialState.FAIL:
            counts.session_failed += 1
            counts.last_error = f"trial {t.number}: {t.user_attrs.get('error', 'failed')}"
    return counts


def failure_rate_exceeded(plan: SweepPlan, counts: Counts) -> bool:
    """More failures than ``max_failure_rate`` of the ended trials (at least ``failure_rate_min_trials``)."""
    if counts.session_failed == 0:
        return False
    return counts.session_failed > plan.max_failure_rate * max(counts.session_ended, plan.failure_rate_min_trials)


def retry_trial(study: Any, trial: Any, max_retry: int | None) -> int | None:
    """Queue a WAITING copy of ``trial``'s parameters; return False when out of retries."""
    import optuna

    history = list(trial.system_attrs.get("retry_history", [])) + [trial.number]
    if max_retry is not None and len(history) > max_retry:
        log.warning("trial %d: not retried again (max_retry=%s reached)", trial.number, max_retry)
        return None
    study.add_trial(optuna.trial.create_trial(
        state=optuna.trial.TrialState.WAITING,
        params=dict(trial.params),
        distributions=dict(trial.distributions),
        system_attrs={"failed_trial": trial.system_attrs.get("failed_trial", trial.number),
                      "retry_history": history},
    ))
    return len(history)


def recover_lost_trials(study: Any, plan: SweepPlan, host: str) -> list[int]:
    """Fail the RUNNING trials whose process is gone and queue their parameters again."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    storage = study._storage
    now = time.time()
    lost: list[int] = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = t.system_attrs.get(OWNER)
        if not isinstance(owner, dict):
            continue  # not started by mnistfw: leave it alone
        same_host = owner.get("host") == host
        if same_host and owner.get("pid") == os.getpid():
            continue
        beat = float(t.system_attrs.get(HEARTBEAT, owner.get("started", now)))
        if same_host and not pid_alive(int(owner.get("pid", -1))):
            reason = f"its process {owner.get('pid')} on this machine ended before it finished (killed?)"
        elif now - beat > plan.grace_period:
            reason = f"no heartbeat from {owner.get('host')} pid {owner.get('pid')} for {now - beat:.0f}s"
        else:
            continue
        try:
            storage.set_trial_user_attr(t._trial_id, "error", f"lost: {reason}")
            storage.set_trial_system_attr(t._trial_id, LOST, True)
            if not storage.set_trial_state_values(t._trial_id, TrialState.FAIL):
                continue
        except UpdateFinishedTrialError:
            continue  # it finished (or another process failed it) meanwhile
        retried = retry_trial(study, t, plan.max_retry)
        log.warning("trial %d marked FAIL: %s%s", t.number, reason,
                    f"; its parameters are queued again (retry {retried})" if retried else "")
        lost.append(t.number)
    return lost


# --------------------------------------------------------------------------- one trial


class Heartbeat:
    """Writes the trial's heartbeat every ``interval`` seconds from a daemon thread."""

    def __init__(self, storage: Any, trial_id: int, interval: float) -> None:
        self._storage, self._trial_id, self._interval = storage, trial_id, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"mnistfw-heartbeat-{trial_id}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._storage.set_trial_system_attr(self._trial_id, HEARTBEAT, time.time())
            except Exception:  # noqa: BLE001 - the trial finished, or the storage is gone
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _objective_values(value: Any, n_objectives: int) -> list[float]:
    """The task's return value as a list of finite floats, or a ValueError saying what is wrong."""
    from omegaconf import OmegaConf

    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value, resolve=True)
    if n_objectives == 1:
        if isinstance(value, (list, tuple)) and len(value) == 1:
            value = value[0]
        if not is_finite_number(value):
            raise ValueError(f"the task returned {value!r}; the objective must be a finite number")
        return [float(value)]
    if not isinstance(value, (list, tuple)) or len(value) != n_objectives:
        raise ValueError(f"the task returned {value!r}; {n_objectives} directions need {n_objectives} numbers")
    if not all(is_finite_number(v) for v in value):
        raise ValueError(f"the task returned {value!r}; every objective must be a finite number")
    return [float(v) for v in value]


def compose_job(job: JobContext, overrides: list[str], number: int, sweep_dir: Path) -> Any:
    """The job's full config (as Hydra's launcher composes it) with job number = trial number."""
    from omegaconf import open_dict, read_write

    cfg = job.hydra_context.config_loader.load_sweep_config(job.master_config, list(overrides))
    with read_write(cfg), open_dict(cfg):
        cfg.hydra.job.id = number
        cfg.hydra.job.num = number
        cfg.hydra.sweep.dir = str(sweep_dir)
    return cfg


def job_output_dir(cfg: Any) -> str | None:
    """``<sweep dir>/<subdir>`` of a composed job config, or None if it cannot be resolved yet."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    saved = HydraConfig.instance().cfg
    try:
        HydraConfig.instance().set_config(cfg)
        return os.path.abspath(os.path.join(str(cfg.hydra.sweep.dir), str(OmegaConf.select(cfg, "hydra.sweep.subdir"))))
    except Exception:  # noqa: BLE001 - only informative
        return None
    finally:
        HydraConfig.instance().cfg = saved


def run_job(job: JobContext, cfg: Any) -> Any:
    """Run the task on ``cfg`` in this process (Hydra's ``run_job``); return its ``JobReturn``."""
    from hydra.core.utils import configure_log
    from hydra.core.utils import run_job as hydra_run_job

    try:
        return hydra_run_job(hydra_context=job.hydra_context, task_function=job.task_function, config=cfg,
                             job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")
    finally:
        configure_log(job.master_config.hydra.hydra_logging, job.master_config.hydra.verbose)


def _error_text(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}"[:2000]


def write_traceback(run_dir: str | None, exc: BaseException) -> None:
    """Write ``exc``'s traceback into ``<run_dir>/error.txt`` (kept when one is there and ``exc`` has none)."""
    if not run_dir or not os.path.isdir(run_dir):
        return
    if exc.__traceback__ is None and Path(run_dir, "error.txt").exists():
        return  # a launched job's process wrote the traceback; this copy of the error has none
    with contextlib.suppress(OSError):
        Path(run_dir, "error.txt").write_text("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))


@dataclass
class Outcome:
    """How a trial's job ended: its objective values, or the ``TrialPruned`` or error it raised."""

    values: list[float] | None = None
    pruned: BaseException | None = None
    error: BaseException | None = None


def outcome_of(ret: Any, n_objectives: int) -> Outcome:
    """A Hydra ``JobReturn`` (from this process or a launcher's) as an :class:`Outcome`."""
    import optuna
    from hydra.core.utils import JobStatus

    value = ret._return_value  # ret.return_value re-raises a failed job's exception
    if ret.status == JobStatus.COMPLETED:
        try:
            return Outcome(values=_objective_values(value, n_objectives))
        except ValueError as exc:
            return Outcome(error=exc)
    if isinstance(value, optuna.TrialPruned):
        return Outcome(pruned=value)
    if isinstance(value, BaseException):
        return Outcome(error=value)
    return Outcome(error=RuntimeError(f"job failed: {value!r}"))


def prepare_trial(trial: Any, plan: SweepPlan, job: JobContext,
                  custom: Any = None) -> tuple[list[str], Any, str | None]:
    """Sample ``trial``: its overrides, its composed job config and run folder (user attributes
    ``overrides`` and ``run_dir`` are set)."""
    from hydra.core.utils import filter_overrides

    overrides = plan.space.suggest(trial)
    if custom is not None:
        overrides = _apply_custom(custom, job, trial, overrides, plan.space)
    shown = list(filter_overrides(overrides))
    trial.set_user_attr("overrides", shown)
    cfg = compose_job(job, overrides, trial.number, plan.sweep_dir)
    run_dir = job_output_dir(cfg)
    if run_dir:
        trial.set_user_attr("run_dir", run_dir)
    log.info("trial %d: %s", trial.number, " ".join(o for o in shown if o not in plan.space.fixed))
    return overrides, cfg, run_dir


def fail_interrupted(study: Any, trial: Any, plan: SweepPlan, exc: BaseException) -> None:
    """Ctrl-C (or a task exiting) during ``trial``: mark it FAIL and queue its parameters again."""
    from optuna.trial import TrialState

    # Lightning turns Ctrl-C into sys.exit(1) after its own clean-up.
    what = "Ctrl-C" if isinstance(exc, KeyboardInterrupt) else f"exit {getattr(exc, 'code', '')}"
    trial.set_user_attr("error", f"interrupted ({what})")
    study.tell(trial, state=TrialState.FAIL)
    retry_trial(study, study._storage.get_trial(trial._trial_id), plan.max_retry)


def run_trial(study: Any, trial: Any, plan: SweepPlan, job: JobContext, custom: Any = None) -> str:
    """Run ``trial`` as one Hydra job in this process and tell Optuna how it ended; return the state's name."""
    import optuna

    from mnistfw.sweeps.pruning import objective_of, with_pruning

    heartbeat = None
    if plan.storage.persistent:
        heartbeat = Heartbeat(study._storage, trial._trial_id, plan.heartbeat_interval)
    run_dir: str | None = None
    try:
        try:
            overrides, cfg, run_dir = prepare_trial(trial, plan, job, custom)
            task = with_pruning(job.task_function, trial, objective_of(cfg), len(plan.directions))
            outcome = outcome_of(run_job(dataclasses.replace(job, task_function=task), cfg), len(plan.directions))
        except (KeyboardInterrupt, SystemExit) as exc:
            fail_interrupted(study, trial, plan, exc)
            raise
        except optuna.TrialPruned as exc:
            outcome = Outcome(pruned=exc)
        except Exception as exc:  # noqa: BLE001 - a bad trial must not end the sweep
            outcome = Outcome(error=exc)
    finally:
        if heartbeat is not None:
            heartbeat.stop()
    return tell_outcome(study, trial, outcome, run_dir)


def tell_outcome(study: Any, trial: Any, outcome: Outcome, run_dir: str | None) -> str:
    """Tell Optuna how ``trial`` ended (an error goes into user attribute ``error`` and the run
    folder's ``error.txt``); log it; return the state's name."""
    from optuna.trial import TrialState

    if outcome.pruned is not None:
        state = TrialState.PRUNED
        _tell(study, trial, state=state)
        log.info("trial %d: PRUNED (%s)", trial.number, outcome.pruned)
    elif outcome.error is not None or outcome.values is None:
        state = TrialState.FAIL
        error = outcome.error or RuntimeError("the job returned nothing")
        message = _error_text(error)
        trial.set_user_attr("error", message)
        write_traceback(run_dir, error)
        _tell(study, trial, state=state)
        log.warning("trial %d: FAIL: %s", trial.number, message)
    else:
        state = TrialState.COMPLETE
        _tell(study, trial, values=outcome.values)
        log.info("trial %d: COMPLETE value=%s", trial.number, ", ".join(f"{v:.6g}" for v in outcome.values))
    return state.name


def _tell(study: Any, trial: Any, **kwargs: Any) -> None:
    try:
        study.tell(trial, **kwargs)
    except RuntimeError as exc:
        # GridSampler stops the study when the grid is exhausted, which Optuna only allows
        # inside study.optimize; the trial is already recorded.
        if "Study.stop" not in str(exc):
            raise


def _apply_custom(custom: Any, job: JobContext, trial: Any, overrides: list[str], space: SearchSpace) -> list[str]:
    """Call ``custom_search_space(cfg, trial)``; its suggestions (or the mapping it returns) become overrides.

    With the published sweeper's convention (return None), every parameter the function
    suggests is a config key; returning a mapping ``{key: value}`` instead lets it suggest
    helper parameters (``n_layers``, ``units_0``, ...) and build the values itself.
    """
    from mnistfw.sweeps.space import render_value

    before = set(trial.params)
    result = custom(job.master_config, trial)
    if result is None:
        extra = {k: v for k, v in trial.params.items() if k not in before}
    elif isinstance(result, dict):
        extra = dict(result)
    else:
        raise TypeError(f"custom_search_space returned {type(result).__name__}; expected None or a mapping")
    keys = set(extra)
    kept = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") not in keys]
    return kept + [f"{k}={render_value(v)}" for k, v in extra.items()]


# --------------------------------------------------------------------------- the loop


def load_sweep_study(plan: SweepPlan, storage: Any = None, seed_offset: int = 0) -> Any:
    """The study with this process's sampler and pruner; ``storage`` is one already open
    in this process, or None to open ``plan.storage``."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if storage is None:
        with study_lock(plan.storage.lock_path()):
            storage = plan.storage.open()
    try:
        return optuna.load_study(study_name=plan.study_name, storage=storage,
                                 sampler=make_sampler(plan, seed_offset), pruner=make_pruner(plan))
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - the storage went away or is damaged
        raise plan.storage.error(exc, "load the study from") from None


def ask_trial(study: Any, plan: SweepPlan, host: str, worker_index: int = 0) -> tuple[str | None, Any, Counts]:
    """Under the study's lock: recover lost trials, apply the stop rules, and ask for a trial
    when one may start. Returns (why to stop or None, the new trial or None, the counts)."""
    with study_lock(plan.storage.lock_path(plan.study_name)):
        recover_lost_trials(study, plan, host)
        counts = count_trials(study, plan.session)
        if counts.finished >= plan.n_trials:
            return DONE, None, counts
        if failure_rate_exceeded(plan, counts):
            return FAILURE_RATE, None, counts
        if plan.timeout is not None and time.time() - plan.start_time > plan.timeout:
            return TIMEOUT, None, counts
        if counts.session_started >= plan.max_attempts:
            return ATTEMPTS, None, counts
        if counts.finished + counts.running >= plan.n_trials:
            return None, None, counts
        trial = study.ask()
        stamp = {"host": host, "pid": os.getpid(), "worker": worker_index, "started": time.time(),
                 "session": plan.session}
        study._storage.set_trial_system_attr(trial._trial_id, OWNER, stamp)
        return None, trial, counts


def wait_for_others(plan: SweepPlan, counts: Counts, who: str, logged: bool) -> bool:
    """The last trials are running elsewhere: wait a moment in case one of them is lost
    (said once per wait: ``logged``); return True."""
    if not logged:
        log.info("%s: %d finished, %d running elsewhere; waiting for them", who, counts.finished, counts.running)
    time.sleep(plan.poll_interval)
    return True


def run_worker(plan: SweepPlan, job: JobContext, worker_index: int = 0, seed_offset: int = 0,
               storage: Any = None) -> str:
    """Run trials until the study has ``n_trials`` finished ones; return why it stopped.

    ``storage`` is the storage already open in the main process (one-process sweeps);
    worker processes open their own from ``plan.storage``. A process also stops when this
    command has started ``plan.max_attempts`` trials (all failing, or lost again and again).
    """
    study = load_sweep_study(plan, storage, seed_offset)
    custom = load_custom_search_space(plan.custom_search_space)
    host = machine_id()
    waited = False
    while True:
        status, trial, counts = ask_trial(study, plan, host, worker_index)
        if status is not None:
            return status
        if trial is None:
            waited = wait_for_others(plan, counts, f"worker {worker_index}", waited)
            continue
        waited = False
        run_trial(study, trial, plan, job, custom)
