"""What a finished sweep leaves in its folder (``hydra.sweep.dir``).

* ``optimization_results.yaml`` / ``.json`` - best value and parameters, the best trial's run
  folder, a ready-to-run command line, trial counts by state, epochs reported; for several
  objectives the Pareto-optimal trials under ``solutions`` (the published sweeper's key) and
  ``pareto_front``;
* ``best_config.yaml`` - the best trial's composed config, re-runnable with
  ``mnistfw-train --config-path <sweep dir> --config-name best_config``;
* ``trials.csv`` - one row per trial: Optuna's ``trials_dataframe()`` plus epochs reported,
  run folder, retried trial and error;
* ``optimization_history.png``, ``param_importances.png``, ``parallel_coordinate.png``,
  ``intermediate_values.png`` (when trials reported per epoch), ``pareto_front.png``
  (multi-objective). A plot that cannot be drawn (e.g. importances with fewer than two
  completed trials) is listed under ``plots_skipped`` with the reason.
"""

from __future__ import annotations

import logging
import os
import shlex
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mnistfw.io import write_json, write_text
from mnistfw.sweeps.runner import SweepPlan

log = logging.getLogger("mnistfw.sweep")


def _program() -> str:
    prog = sys.argv[0] if sys.argv and sys.argv[0] else "mnistfw-train"
    return f"python {prog}" if prog.endswith(".py") else os.path.basename(prog)


def command_line() -> str:
    """This process's command line, as a user types it again."""
    return " ".join([_program(), *(shlex.quote(a) for a in sys.argv[1:])])


def _command(overrides: list[str]) -> str:
    """The command line re-running one trial as a single run."""
    extra = []
    if not any(a in ("-m", "--multirun") for a in sys.argv[1:]):
        extra.append("hydra.mode=RUN")  # the config itself asks for a multirun (hydra.mode: MULTIRUN)
    return " ".join([_program(), *(shlex.quote(o) for o in [*overrides, *extra])])


def _trial_entry(t: Any) -> dict[str, Any]:
    return {
        "number": t.number,
        "values" if t.values and len(t.values) > 1 else "value": (list(t.values) if t.values and len(t.values) > 1
                                                                  else t.value),
        "params": dict(t.params),
        "run_dir": t.user_attrs.get("run_dir"),
        "overrides": list(t.user_attrs.get("overrides", [])),
        "command": _command(list(t.user_attrs.get("overrides", []))),
    }


def write_best_config(trial: Any, sweep_dir: Path, master_config: Any, value_text: str, study_name: str) -> Path | None:
    """``best_config.yaml``: the best run's composed config plus the project's run-folder settings."""
    from omegaconf import OmegaConf

    run_dir = trial.user_attrs.get("run_dir")
    source = Path(run_dir, ".hydra", "config.yaml") if run_dir else None
    if source is None or not source.is_file():
        log.warning("best trial %d: %s not found; best_config.yaml not written", trial.number, source)
        return None
    cfg = OmegaConf.load(source)
    hydra_part: dict[str, Any] = {"job": {"chdir": False}}
    run = OmegaConf.select(master_config, "hydra.run", default=None)
    if run is not None:
        hydra_part["run"] = OmegaConf.to_container(run, resolve=False)
    job_logging = OmegaConf.select(master_config, "hydra.job_logging", default=None)
    if job_logging is not None:
        hydra_part["job_logging"] = OmegaConf.to_container(job_logging, resolve=False)
    cfg.hydra = hydra_part
    path = sweep_dir / "best_config.yaml"
    header = (
        f"# Best trial {trial.number} of Optuna study '{study_name}' ({value_text}), from {run_dir}\n"
        f"# Re-run it: {_program()} --config-path {shlex.quote(str(sweep_dir))} --config-name best_config\n"
    )
    write_text(path, header + OmegaConf.to_yaml(cfg))
    return path


def write_trials_csv(study: Any, path: Path) -> Path:
    """Optuna's ``study.trials_dataframe()`` (named values, params, state) plus the columns
    ``epochs_reported``, ``run_dir``, ``retry_of`` and ``error``."""
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    frame = study.trials_dataframe(attrs=("number", "value", "datetime_start", "datetime_complete", "duration",
                                          "params", "state"))
    if len(frame):
        extra = [trials[int(n)] for n in frame["number"]]
        frame["epochs_reported"] = [len(t.intermediate_values) for t in extra]
        frame["run_dir"] = [t.user_attrs.get("run_dir", "") for t in extra]
        frame["retry_of"] = [t.system_attrs.get("failed_trial", "") for t in extra]
        frame["error"] = [t.user_attrs.get("error", "") for t in extra]
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="") as fh:
            frame.to_csv(fh, index=False)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _importance_ready(complete: list[Any]) -> str | None:
    """None when parameter importances can be computed, else the reason they cannot."""
    if len(complete) < 2:
        return f"needs at least 2 completed trials, have {len(complete)}"
    common = set.intersection(*(set(t.params) for t in complete))
    varying = [n for n in common if len({repr(t.params[n]) for t in complete}) > 1]
    if not varying:
        return "no parameter took two different values among the completed trials"
    return None


def draw_plots(study: Any, sweep_dir: Path, objective_names: list[str]) -> tuple[list[str], dict[str, str]]:
    """The search's PNG plots; returns (written file names, {skipped name: reason})."""
    import matplotlib

    matplotlib.use("Agg")
    from optuna.importance import FanovaImportanceEvaluator
    from optuna.trial import TrialState
    from optuna.visualization import matplotlib as ovm

    from mnistfw.contract import save_figure

    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    multi = len(study.directions) > 1
    target: dict[str, Any] = {}
    if multi:
        target = {"target": lambda t: t.values[0], "target_name": objective_names[0]}
    elif objective_names:
        target = {"target_name": objective_names[0]}
    written: list[str] = []
    skipped: dict[str, str] = {}
    jobs: list[tuple[str, Callable[[], Any], str | None]] = [
        ("optimization_history", lambda: ovm.plot_optimization_history(study, **target),
         None if complete else "no completed trial"),
        ("param_importances", lambda: ovm.plot_param_importances(
            study, evaluator=FanovaImportanceEvaluator(seed=0), **target), _importance_ready(complete)),
        ("parallel_coordinate", lambda: ovm.plot_parallel_coordinate(study, **target),
         None if complete and any(t.params for t in complete) else "no completed trial with parameters"),
        ("intermediate_values", lambda: ovm.plot_intermediate_values(study),
         None if not multi and any(t.intermediate_values for t in trials) else "no trial reported per-epoch values"),
    ]
    if multi:
        ready = complete and len(study.directions) in (2, 3)
        jobs.append(("pareto_front", lambda: ovm.plot_pareto_front(study, target_names=objective_names),
                     None if ready else "needs 2-3 objectives and a completed trial"))
    for name, draw, reason in jobs:
        if reason is not None:
            skipped[name] = reason
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                axes = draw()
            first = axes.flat[0] if hasattr(axes, "flat") else axes
            if name == "parallel_coordinate":  # one vertical axis per parameter: give each room
                width, height = first.figure.get_size_inches()
                first.figure.set_size_inches(max(width, 1.5 * len(first.figure.axes)), max(height, 5.5))
            if name == "intermediate_values":
                _label_intermediate_values(first, objective_names[0] if objective_names else "objective")
            save_figure(first.figure, sweep_dir / f"{name}.png")
            written.append(f"{name}.png")
        except Exception as exc:  # noqa: BLE001 - a plot must not lose the results
            skipped[name] = f"{type(exc).__name__}: {exc}"
            log.warning("plot %s not drawn: %s", name, skipped[name])
    return written, skipped


#: Above this many trials the per-trial legend of intermediate_values.png would outgrow the plot.
MAX_LEGEND_TRIALS = 12


def _label_intermediate_values(ax: Any, objective: str) -> None:
    """Name the axes after what the trials reported; drop the per-trial legend when it would crowd the plot."""
    ax.set_xlabel("epoch")
    ax.set_ylabel(objective)
    legend = ax.get_legend()
    if legend is not None and len(ax.get_lines()) > MAX_LEGEND_TRIALS:
        legend.remove()
        ax.set_title(f"{ax.get_title()} ({len(ax.get_lines())} trials)")
    ax.figure.tight_layout()


def write_results(
    study: Any, plan: SweepPlan, master_config: Any, plan_elapsed: float, plots: bool = True
) -> dict[str, Any]:
    """Write every results file into the sweep folder; return what went into the YAML."""
    from omegaconf import OmegaConf
    from optuna.trial import TrialState

    sweep_dir = plan.sweep_dir
    trials = study.get_trials(deepcopy=False)
    objective = OmegaConf.select(master_config, "objective", default=None)
    if OmegaConf.is_config(objective):
        objective = OmegaConf.to_container(objective, resolve=True)
    names = [objective] if isinstance(objective, str) else list(objective or [])
    if len(plan.directions) > 1 and len(names) != len(plan.directions):
        names = [f"objective_{i}" for i in range(len(plan.directions))]
    elif len(plan.directions) == 1:
        names = names[:1] or ["value"]
    counts = {s.name: 0 for s in TrialState}
    for t in trials:
        counts[t.state.name] += 1
    results: dict[str, Any] = {
        "name": "optuna",
        "study_name": plan.study_name,
        "storage": plan.storage.shown,
        "directions": list(plan.directions),
        "objective": names if len(names) > 1 else names[0],
        "n_trials": plan.n_trials,
        "finished": counts["COMPLETE"] + counts["PRUNED"],
        "trials": {k: v for k, v in counts.items() if v},
        "epochs_reported": sum(len(t.intermediate_values) for t in trials),
        "elapsed_s": round(plan_elapsed, 1),
        "sweep_dir": str(sweep_dir),
    }
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if len(plan.directions) == 1:
        if complete:
            best = study.best_trial
            entry = _trial_entry(best)
            results.update(best_value=best.value, best_params=dict(best.params), best_trial=best.number,
                           best_run_dir=entry["run_dir"], best_overrides=entry["overrides"],
                           best_command=entry["command"])
            value_text = f"{names[0]} = {best.value:.6g}"
            path = write_best_config(best, sweep_dir, master_config, value_text, plan.study_name)
            if path is not None:
                results["best_config"] = str(path)
                results["best_config_command"] = (f"{_program()} --config-path {shlex.quote(str(sweep_dir))} "
                                                  "--config-name best_config")
            log.info("best trial %d: %s  params %s", best.number, value_text, dict(best.params))
            log.info("best run folder: %s", entry["run_dir"])
        else:
            results.update(best_value=None, best_params=None, best_trial=None)
            log.warning("no trial completed: no best value")
    else:
        pareto = [_trial_entry(t) for t in study.best_trials]
        results["solutions"] = pareto  # the published sweeper's key
        results["pareto_front"] = pareto
        log.info("%d Pareto-optimal trial(s)", len(pareto))
    write_trials_csv(study, sweep_dir / "trials.csv")
    if plots:
        written, skipped = draw_plots(study, sweep_dir, names)
        results["plots"] = written
        if skipped:
            results["plots_skipped"] = skipped
    write_json(sweep_dir / "optimization_results.json", results)
    write_text(sweep_dir / "optimization_results.yaml", OmegaConf.to_yaml(OmegaConf.create(_yaml_safe(results))))
    log.info("results: %s", sweep_dir / "optimization_results.yaml")
    return results


def _yaml_safe(obj: Any) -> Any:
    """Plain containers of str/int/float/bool/None for OmegaConf."""
    if isinstance(obj, dict):
        return {str(k): _yaml_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_yaml_safe(v) for v in obj]
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return str(obj)
