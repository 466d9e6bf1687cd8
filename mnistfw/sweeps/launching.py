"""Trials through the configured Hydra launcher (joblib, submitit, ray, ...): ask, launch, tell.

When ``hydra/launcher`` is not Hydra's basic launcher, the sweeper process asks Optuna for up
to ``n_jobs`` trials (under the stop rules every worker uses: :func:`~mnistfw.sweeps.runner.ask_trial`),
hands their overrides to the launcher as one batch and tells Optuna how each job ended. Job
number = trial number, so each trial's run folder is ``<sweep dir>/<trial number>`` as in-process.

With a persistent storage each job also gets its trial's address through ``hydra.job.env_set``
(Hydra sets those variables around the task in whatever process runs it); :class:`LaunchedTask`
then hands the task the pruning callback :func:`~mnistfw.sweeps.pruning.pruning_from_environment`
builds, so intermediate values and pruning work wherever the job runs.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mnistfw.sweeps.devices import VAR as CUDA_VAR
from mnistfw.sweeps.devices import device_for, visible_devices
from mnistfw.sweeps.pruning import (
    PRUNER_ATTR,
    STORAGE_VAR,
    STUDY_VAR,
    TRIAL_VAR,
    objective_of,
    pruning_from_environment,
)
from mnistfw.sweeps.runner import (
    Heartbeat,
    JobContext,
    Outcome,
    SweepPlan,
    ask_trial,
    fail_interrupted,
    load_sweep_study,
    outcome_of,
    prepare_trial,
    tell_outcome,
    wait_for_others,
    write_traceback,
)
from mnistfw.sweeps.space import load_custom_search_space
from mnistfw.sweeps.storage import machine_id

log = logging.getLogger("mnistfw.sweep")

BASIC = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
#: Launchers that run jobs on this machine and place no GPU themselves: the sweeper spreads their
#: jobs over the GPUs. Cluster launchers (submitit, ray) place jobs by their own resource settings.
PLACED = ("hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher",)


def launcher_target(config: Any) -> str:
    """``hydra.launcher._target_`` of the sweep's config (the basic launcher when unset)."""
    from omegaconf import OmegaConf

    return str(OmegaConf.select(config, "hydra.launcher._target_", default=None) or BASIC)


def uses_launcher(config: Any) -> bool:
    """True when trials go through a launcher other than Hydra's basic (in-process) one."""
    return launcher_target(config) != BASIC


def describe_launcher(config: Any) -> str:
    """``hydra/launcher=joblib (JoblibLauncher)``, for the start line."""
    from omegaconf import OmegaConf

    choice = OmegaConf.select(config, "hydra.runtime.choices.hydra/launcher", default=None)
    name = launcher_target(config).rsplit(".", 1)[-1]
    return f"hydra/launcher={choice} ({name})" if choice else name


def placed_devices(config: Any, n_jobs: int, count: int | None = None) -> list[str]:
    """The GPUs to spread a batch's jobs over; none for a single job at a time, a launcher that
    places jobs itself, or ``hydra.job.env_set.CUDA_VISIBLE_DEVICES`` set by the user."""
    from omegaconf import OmegaConf

    if n_jobs < 2 or launcher_target(config) not in PLACED:
        return []
    if OmegaConf.select(config, f"hydra.job.env_set.{CUDA_VAR}", default=None) is not None:
        return []
    return visible_devices(count)


def quote(value: str) -> str:
    """``value`` as a quoted Hydra override value that reads back unchanged."""
    value = re.sub(r"(\\*)(?='|\$\{|$)", lambda m: m.group(1) * 2, value)
    return "'" + value.replace("'", "\\'").replace("${", "\\${") + "'"


def local_thread_share(config: Any, batch: int) -> int | None:
    """CPU threads per job when a batch of ``batch`` jobs runs at once on this machine (joblib, as many
    at a time as its ``hydra.launcher.n_jobs`` allows); None when they do not share this machine."""
    from omegaconf import OmegaConf

    from mnistfw.backends.threads import share_of_cores, usable_cores

    if launcher_target(config) not in PLACED:
        return None
    parallel = OmegaConf.select(config, "hydra.launcher.n_jobs", default=-1)
    at_once = min(batch, parallel if isinstance(parallel, int) and parallel > 0 else usable_cores())
    return share_of_cores(at_once) if at_once > 1 else None


def job_environment(plan: SweepPlan, trial: Any, slot: int, devices: Sequence[str], share: bool,
                    threads: int | None = None) -> list[str]:
    """The ``hydra.job.env_set`` overrides of the job running ``trial`` in batch place ``slot``."""
    from mnistfw.backends.threads import MAX_THREADS_ENV

    env: dict[str, str] = {}
    if share and plan.storage.address:
        env = {STORAGE_VAR: plan.storage.address, STUDY_VAR: plan.study_name, TRIAL_VAR: str(trial._trial_id)}
    if threads is not None:
        env[MAX_THREADS_ENV] = str(threads)
    device = device_for(slot, devices)
    if device is not None:
        env[CUDA_VAR] = device
    return [f"++hydra.job.env_set.{key}={quote(value)}" for key, value in env.items()]


class LaunchedTask:
    """The task function the launcher runs: in the job's process it attaches the pruning callback
    the job's environment names, and writes a failing job's traceback into its run folder."""

    def __init__(self, task_function: Any) -> None:
        self.task_function = task_function

    def __call__(self, cfg: Any) -> Any:
        task = self.task_function
        attach = getattr(task, "with_epoch_callback", None)
        callback = pruning_from_environment(objective_of(cfg)) if attach is not None else None
        if callback is not None:
            task = attach(callback)
        try:
            return task(cfg)
        except Exception as exc:
            from hydra.core.hydra_config import HydraConfig
            from optuna import TrialPruned

            if not isinstance(exc, TrialPruned):
                write_traceback(str(HydraConfig.get().runtime.output_dir), exc)
            raise


@dataclass
class _Launched:
    """One prepared trial of a batch: its job's overrides and run folder."""

    trial: Any
    overrides: list[str]
    run_dir: str | None


def run_launched(plan: SweepPlan, job: JobContext, n_jobs: int, seed_offset: int = 0, storage: Any = None) -> str:
    """Run trials in batches of up to ``n_jobs`` through the configured launcher; return why it stopped."""
    from hydra.core.plugins import Plugins

    study = load_sweep_study(plan, storage, seed_offset)
    custom = load_custom_search_space(plan.custom_search_space)
    launcher = Plugins.instance().instantiate_launcher(
        hydra_context=job.hydra_context, task_function=LaunchedTask(job.task_function), config=job.master_config)
    devices = placed_devices(job.master_config, n_jobs)
    share = plan.storage.address is not None and len(plan.directions) == 1
    host = machine_id()
    waited = False
    while True:
        trials: list[Any] = []
        status, counts = None, None
        while len(trials) < n_jobs:
            status, trial, counts = ask_trial(study, plan, host)
            if trial is None:
                break
            trials.append(trial)
        if not trials:
            if status is not None:
                return status
            waited = wait_for_others(plan, counts, "sweeper", waited)
            continue
        waited = False
        batch = _prepare(study, plan, job, trials, custom, devices, share)
        _launch_batch(study, plan, launcher, batch)


def _prepare(study: Any, plan: SweepPlan, job: JobContext, trials: list[Any], custom: Any,
             devices: Sequence[str], share: bool) -> list[_Launched]:
    """Sample each trial and build its job's overrides; a trial that cannot be composed is FAIL."""
    batch = []
    for slot, trial in enumerate(trials):
        try:
            overrides, _, run_dir = prepare_trial(trial, plan, job, custom)
        except Exception as exc:  # noqa: BLE001 - a bad trial must not end the sweep
            tell_outcome(study, trial, Outcome(error=exc), None)
            continue
        if share:
            pruner = {k: v for k, v in (plan.pruner or {}).items() if v is not None}
            study._storage.set_trial_system_attr(trial._trial_id, PRUNER_ATTR, pruner)
        env = job_environment(plan, trial, slot, devices, share, local_thread_share(job.master_config, len(trials)))
        batch.append(_Launched(trial, overrides + env, run_dir))
    return batch


def _launch_batch(study: Any, plan: SweepPlan, launcher: Any, batch: list[_Launched]) -> None:
    """Launch the batch (runs of consecutive trial numbers together) and tell Optuna each outcome.

    The sweeper writes the trials' heartbeats meanwhile: it is the process that answers for them.
    """
    beats = [Heartbeat(study._storage, b.trial._trial_id, plan.heartbeat_interval)
             for b in batch] if plan.storage.persistent else []
    try:
        for run in _consecutive(batch):
            try:
                returns = launcher.launch([b.overrides for b in run], initial_job_idx=run[0].trial.number)
                outcomes = [outcome_of(ret, len(plan.directions)) for ret in returns]
            except Exception as exc:  # noqa: BLE001 - the launcher failed: these trials failed
                outcomes = [Outcome(error=exc)] * len(run)
            for b, outcome in zip(run, outcomes):
                tell_outcome(study, b.trial, outcome, b.run_dir)
    except (KeyboardInterrupt, SystemExit) as exc:
        from optuna.trial import TrialState

        for b in batch:
            if study._storage.get_trial(b.trial._trial_id).state == TrialState.RUNNING:
                fail_interrupted(study, b.trial, plan, exc)
        raise
    finally:
        for beat in beats:
            beat.stop()


def _consecutive(batch: list[_Launched]) -> list[list[_Launched]]:
    """The batch cut into runs of consecutive trial numbers (launchers number jobs consecutively)."""
    runs: list[list[_Launched]] = []
    for b in batch:
        if runs and runs[-1][-1].trial.number + 1 == b.trial.number:
            runs[-1].append(b)
        else:
            runs.append([b])
    return runs
