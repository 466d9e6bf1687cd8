"""The mnistfw Optuna sweeper (``hydra/sweeper=mnistfw_optuna``).

Three layers: the search space / storage / lost-trial logic in-process on real Optuna
storages; the small Hydra app in ``tests/sweeper_app`` (fast, no training) swept through
its command line; and ``mnistfw-train -m`` sweeps of the NumPy backend on the bundled sample.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest
from conftest import REPO, png_ok, run_cli

from mnistfw.errors import ConfigError
from mnistfw.sweeps.runner import (
    HEARTBEAT,
    OWNER,
    SweepPlan,
    count_trials,
    recover_lost_trials,
)
from mnistfw.sweeps.space import build_search_space
from mnistfw.sweeps.storage import JOURNAL, MEMORY, RDB, StorageSpec, machine_id, resolve_storage
from mnistfw.sweeps.sweeper import resolve_directions

APP = REPO / "tests" / "sweeper_app" / "app.py"
PLOTS = ("optimization_history.png", "param_importances.png", "parallel_coordinate.png")


# ----------------------------------------------------------------------------- helpers


def run_app(*args: str, cwd: Path, timeout: int = 180) -> subprocess.CompletedProcess[str]:
    """Sweep the test app (``python app.py -m ...``) and capture its output."""
    return subprocess.run([sys.executable, str(APP), "-m", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "HYDRA_FULL_ERROR": "1"})


def start_app(*args: str, cwd: Path, log: Path) -> subprocess.Popen:
    fh = log.open("w")
    return subprocess.Popen([sys.executable, str(APP), "-m", *args], cwd=cwd, stdout=fh, stderr=subprocess.STDOUT)


def results(sweep_dir: Path) -> dict:
    return json.loads((sweep_dir / "optimization_results.json").read_text())


def load_study(storage: str, name: str):
    import optuna

    spec = resolve_storage(storage, 1, Path("."))
    return optuna.load_study(study_name=name, storage=spec.open())


def states(study) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in study.trials:
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"sweep ended (code {proc.returncode}) before {path} appeared")
        if time.time() > deadline:
            proc.kill()
            pytest.fail(f"{path} did not appear within {timeout}s")
        time.sleep(0.05)


def assert_no_duplicates(study) -> None:
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers))
    run_dirs = [t.user_attrs["run_dir"] for t in study.trials if "run_dir" in t.user_attrs]
    assert len(run_dirs) == len(set(run_dirs)), "two trials wrote into one run folder"


# ----------------------------------------------------------------------------- search space


def _sample(space, n: int, seed: int = 0) -> list[dict[str, object]]:
    """Ask ``n`` trials of a real study; parse each override line back with Hydra's parser."""
    import optuna
    from hydra.core.override_parser.overrides_parser import OverridesParser

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    parser = OverridesParser.create()
    out = []
    for _ in range(n):
        trial = study.ask()
        parsed = {o.key_or_group: o.value() for o in parser.parse_overrides(space.suggest(trial))}
        study.tell(trial, 0.0)
        out.append(parsed)
    return out


def test_search_space_published_syntax_round_trips_through_hydra() -> None:
    space = build_search_space(
        {
            "lr": "tag(log, interval(1e-4, 1e-1))",
            "dropout": "interval(0.0, 0.5)",
            "layers": "int(interval(1, 4))",
            "units": "range(32, 129, 32)",
            "frac": "range(0.1, 0.5, 0.1)",
            "hidden": "choice([128], [256, 128])",
            "opt": "choice(adam, sgd)",
            "epochs": 3,
        },
        ["opt=adam,sgd,rmsprop", "dropout=0.25", "+extra=x"],
    )
    assert set(space.params) == {"lr", "layers", "units", "frac", "hidden", "opt"}
    assert space.fixed == ["epochs=3", "dropout=0.25", "+extra=x"]  # the command line fixes dropout
    assert space.params["lr"].log and space.params["layers"].kind == "int"
    assert space.params["opt"].choices == ["adam", "sgd", "rmsprop"]  # the command line widens opt
    for values in _sample(space, 40):
        assert 1e-4 <= values["lr"] <= 1e-1 and isinstance(values["lr"], float)
        assert values["layers"] in (1, 2, 3, 4)
        assert values["units"] in (32, 64, 96, 128)  # 129 is off the grid: lowered to 128
        assert values["frac"] in (0.1, 0.2, 0.3, 0.4, 0.5)  # range's stop is included, as in the published sweeper
        assert values["hidden"] in ([128], [256, 128])  # list choices become list overrides
        assert values["opt"] in ("adam", "sgd", "rmsprop")
        assert values["epochs"] == 3 and values["dropout"] == 0.25


def test_list_params_draw_length_and_each_element() -> None:
    space = build_search_space(
        {"model.hidden": "choice([1],[2])"},
        [],
        {"model.hidden": {"length": "range(1, 3)", "item": "choice(16, 32)", "prefix": [784], "suffix": [10]}},
    )
    assert "model.hidden" not in space.params  # list_params wins over params for the same key
    seen_lengths = set()
    for values in _sample(space, 30, seed=1):
        layers = values["model.hidden"]
        assert layers[0] == 784 and layers[-1] == 10
        assert 1 <= len(layers) - 2 <= 3 and set(layers[1:-1]) <= {16, 32}
        seen_lengths.add(len(layers) - 2)
    assert seen_lengths == {1, 2, 3}


@pytest.mark.parametrize(
    ("params", "lists", "message"),
    [
        ({"a": "interval(2, 1)"}, None, "start < end"),
        ({"a": "tag(log, interval(0, 1))"}, None, "positive start"),
        ({"a": "glob(*)"}, None, "glob"),
        ({"a": "choice(1,"}, None, "cannot parse"),
        (None, {"h": {"length": "range(1,3)"}}, "needs 'length' and 'item'"),
        (None, {"h": {"length": "interval(1,3)", "item": "choice(1,2)"}}, "must be integers"),
        (None, {"h": {"length": "range(1,3)", "item": "choice(1,2)", "size": 3}}, "unknown key"),
    ],
)
def test_search_space_errors_name_the_key(params, lists, message) -> None:
    with pytest.raises(ConfigError, match=message):
        build_search_space(params, [], lists)


def test_grid_needs_discrete_values() -> None:
    assert build_search_space({"a": "choice(1, 2)", "b": "range(0, 4, 2)"}).grid() == {"a": [1, 2], "b": [0, 2, 4]}
    with pytest.raises(ConfigError, match="GridSampler"):
        build_search_space({"a": "interval(0, 1)"}).grid()


def test_sampler_switch_drops_foreign_arguments_but_typos_fail(tmp_path: Path) -> None:
    import optuna

    from mnistfw.sweeps.runner import make_pruner, make_sampler

    plan = SweepPlan(study_name="s", storage=StorageSpec(MEMORY), directions=["maximize"],
                     space=build_search_space({"a": "choice(1, 2)"}), pruner=None, n_trials=2, sweep_dir=tmp_path,
                     session="x", sampler={"_target_": "optuna.samplers.RandomSampler", "seed": 3,
                                           "n_startup_trials": 10})
    assert isinstance(make_sampler(plan), optuna.samplers.RandomSampler)  # TPE's n_startup_trials dropped
    plan.sampler = {"_target_": "optuna.samplers.GridSampler"}
    assert isinstance(make_sampler(plan), optuna.samplers.GridSampler)  # the grid comes from params
    plan.sampler = {"_target_": "optuna.samplers.TPESampler", "n_startup_trial": 5}
    with pytest.raises(ConfigError, match="n_startup_trial: not an argument"):
        make_sampler(plan)
    plan.sampler = {"_target_": "optuna.samplers.NoSuchSampler"}
    with pytest.raises(ConfigError, match="cannot import"):
        make_sampler(plan)
    assert isinstance(make_pruner(plan), optuna.pruners.NopPruner)
    plan.pruner = {"_target_": "optuna.pruners.HyperbandPruner", "n_warmup_steps": 2, "min_resource": 1}
    assert isinstance(make_pruner(plan), optuna.pruners.HyperbandPruner)


def test_importances_need_two_completed_trials_and_a_varying_parameter() -> None:
    import optuna

    from mnistfw.sweeps.results import _importance_ready

    def done(**params: float):
        return optuna.trial.create_trial(params=params, distributions={
            k: optuna.distributions.FloatDistribution(0, 1) for k in params}, value=0.5)

    assert "at least 2" in _importance_ready([done(a=0.1)])
    assert "two different values" in _importance_ready([done(a=0.1), done(a=0.1)])
    assert _importance_ready([done(a=0.1), done(a=0.2)]) is None


# ----------------------------------------------------------------------------- storage, directions


def test_storage_forms(tmp_path: Path) -> None:
    assert resolve_storage("memory", 1, tmp_path).kind == MEMORY
    shared = resolve_storage("memory", 2, tmp_path)
    assert shared.kind == JOURNAL and shared.location == str(tmp_path / "optuna_journal.log")
    for text in (f"journal://{tmp_path}/a.log", str(tmp_path / "a.log"), str(tmp_path / "a.jsonl")):
        spec = resolve_storage(text, 1, tmp_path)
        assert spec.kind == JOURNAL and spec.location.startswith(str(tmp_path))
    sqlite = resolve_storage(f"sqlite:///{tmp_path}/sub/s.db", 1, tmp_path)
    assert sqlite.kind == RDB and (tmp_path / "sub").is_dir()
    assert "secret" not in resolve_storage("postgresql://me:secret@db/x", 1, tmp_path).shown
    with pytest.raises(ConfigError, match="neither a database URL"):
        resolve_storage("study.db", 1, tmp_path)


def test_directions() -> None:
    assert resolve_directions(None, "val/accuracy") == ["minimize"]  # the published sweeper's default
    assert resolve_directions(None, ["val/accuracy", "val/loss"]) == ["minimize", "minimize"]
    assert resolve_directions("MINIMIZE", "val/accuracy") == ["minimize"]
    with pytest.raises(ConfigError, match="not minimize or maximize"):
        resolve_directions("up", "val/accuracy")
    with pytest.raises(ConfigError, match="one per objective"):
        resolve_directions(["maximize"], ["val/accuracy", "val/loss"])


# ----------------------------------------------------------------------------- lost trials


def _journal_study(tmp_path: Path):
    import optuna

    spec = StorageSpec(JOURNAL, str(tmp_path / "j.log"))
    study = optuna.create_study(study_name="s", storage=spec.open(), direction="maximize")
    plan = SweepPlan(study_name="s", storage=spec, directions=["maximize"], space=build_search_space({}),
                     sampler=None, pruner=None, n_trials=5, sweep_dir=tmp_path, session="x", grace_period=60)
    return study, plan


def _running(study, owner: dict | None, beat: float | None):
    trial = study.ask()
    trial.suggest_float("x", 0, 1)
    if owner is not None:
        study._storage.set_trial_system_attr(trial._trial_id, OWNER, owner)
    if beat is not None:
        study._storage.set_trial_system_attr(trial._trial_id, HEARTBEAT, beat)
    return trial


def test_lost_trials_are_failed_and_retried_live_ones_kept(tmp_path: Path) -> None:
    from optuna.trial import TrialState

    study, plan = _journal_study(tmp_path)
    host, now = machine_id(), time.time()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    done = study.ask()
    done.suggest_float("x", 0, 1)
    study.tell(done, 0.5)
    killed = _running(study, {"host": host, "pid": dead.pid}, now)  # same machine, process gone
    silent = _running(study, {"host": "elsewhere", "pid": 1}, now - 600)  # no heartbeat for 10 min
    alive = _running(study, {"host": "elsewhere", "pid": 1}, now)  # another machine, beating
    mine = _running(study, {"host": host, "pid": os.getppid()}, now - 600)  # live local process...
    foreign = _running(study, None, None)  # started by another tool: never touched

    lost = recover_lost_trials(study, plan, host)

    # ...but a live local process still loses its trial once its heartbeat is older than the grace period.
    assert sorted(lost) == sorted([killed.number, silent.number, mine.number])
    trials = {t.number: t for t in study.get_trials()}
    for number in lost:
        assert trials[number].state == TrialState.FAIL
        assert trials[number].user_attrs["error"].startswith("lost: ")
    assert trials[alive.number].state == TrialState.RUNNING
    assert trials[foreign.number].state == TrialState.RUNNING
    assert trials[done.number].state == TrialState.COMPLETE
    waiting = [t for t in trials.values() if t.state == TrialState.WAITING]
    assert sorted(t.system_attrs["failed_trial"] for t in waiting) == sorted(lost)
    for t in waiting:  # the retry carries the lost trial's parameters
        assert t.params == trials[t.system_attrs["failed_trial"]].params
    assert count_trials(study, "x").finished == 1
    assert recover_lost_trials(study, plan, host) == []  # idempotent


def test_retry_limit(tmp_path: Path) -> None:
    from optuna.trial import TrialState

    study, plan = _journal_study(tmp_path)
    plan.max_retry = 1
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for _ in range(2):
        trial = study.ask()  # the second time, the queued retry of trial 0
        trial.suggest_float("x", 0, 1)
        study._storage.set_trial_system_attr(trial._trial_id, OWNER, {"host": machine_id(), "pid": dead.pid})
        recover_lost_trials(study, plan, machine_id())
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.FAIL]  # trial 1 was not retried again
    assert trials[1].system_attrs["retry_history"] == [0] and trials[1].params == trials[0].params


# ----------------------------------------------------------------------------- pruning hook


def test_pruning_callback_reports_and_prunes() -> None:
    import optuna

    from mnistfw.sweeps.pruning import PruningCallback, with_pruning

    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=0.5))
    trial = study.ask()
    callback = PruningCallback(trial, "val/accuracy")
    callback(1, {"val/accuracy": 0.9, "val/loss": 0.1})
    callback(2, {"val/loss": 0.1})  # no objective this epoch: not reported
    with pytest.raises(optuna.TrialPruned):
        callback(3, {"val/accuracy": 0.2})
    assert study._storage.get_trial(trial._trial_id).intermediate_values == {1: 0.9, 3: 0.2}

    class Task:
        def __init__(self, callbacks: tuple = ()) -> None:
            self.callbacks = callbacks

        def with_epoch_callback(self, cb: object) -> Task:
            return Task((*self.callbacks, cb))

    task = Task()
    attached = with_pruning(task, trial, "val/accuracy", 1)
    assert isinstance(attached.callbacks[0], PruningCallback) and task.callbacks == ()
    assert with_pruning(task, trial, "val/accuracy", 2) is task  # Optuna cannot prune multi-objective trials
    assert with_pruning(print, trial, "val/accuracy", 1) is print  # a task without the seam runs as it is


# ----------------------------------------------------------------------------- plugin, configs


def test_plugin_is_found_by_hydra(tmp_path: Path) -> None:
    proc = run_cli("mnistfw-train", "--info", "plugins", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "MnistfwOptunaSweeper" in proc.stdout


@pytest.mark.parametrize(
    ("name", "backend"),
    [("lightning_optuna", "lightning_mlp"), ("numpy_optuna", "numpy_net"), ("spark_optuna", "spark_mlp"),
     ("mlp_optuna", "lightning_mlp"), ("best_mlp", "lightning_mlp")],
)
def test_hparams_search_configs_search_existing_keys(compose, name: str, backend: str) -> None:
    from omegaconf import OmegaConf

    cfg = compose([f"hparams_search={name}"], hydra_config=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("MnistfwOptunaSweeper")
    assert cfg.model.backend == backend and cfg.objective
    assert sweeper.pruner._target_.startswith("optuna.pruners.")
    assert sweeper.sampler._target_ == "optuna.samplers.TPESampler" and sweeper.sampler.seed is not None
    keys = list(sweeper.params) + list(sweeper.list_params)
    for key in keys:
        assert OmegaConf.select(cfg, key, default="<missing>") != "<missing>", f"{name}: {key} is not a config key"
    space = build_search_space(sweeper.params, [], sweeper.list_params)  # parses
    assert space.list_params["model.hidden"].length.kind == "int"


# ----------------------------------------------------------------------------- the test app, via its CLI


def test_app_sweep_writes_results_plots_and_a_rerunnable_best_config(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = run_app(f"hydra.sweep.dir={sweep}", "hydra.sweeper.n_trials=5", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = results(sweep)
    assert res["finished"] == 5 and res["trials"] == {"COMPLETE": 5}
    assert res["directions"] == ["maximize"]  # set in the app's config
    assert res["epochs_reported"] == 15
    best_dir = Path(res["best_run_dir"])
    assert best_dir == sweep / str(res["best_trial"]) and best_dir.is_dir()
    assert set(res["best_params"]) == {"x", "y", "act"}
    assert res["best_command"].split()[-3:] == res["best_overrides"]
    yaml_text = (sweep / "optimization_results.yaml").read_text()
    assert f"best_value: {res['best_value']}" in yaml_text
    csv_lines = (sweep / "trials.csv").read_text().splitlines()
    assert len(csv_lines) == 6 and csv_lines[0].startswith("number,value_val/score,datetime_start")
    for name in (*PLOTS, "intermediate_values.png"):
        assert png_ok(sweep / name), name
    for n in range(5):
        assert (sweep / str(n) / ".hydra" / "overrides.yaml").is_file()

    # best_config.yaml re-runs the best trial as a single run.
    rerun = tmp_path / "rerun"
    proc = subprocess.run([sys.executable, str(APP), "--config-path", str(sweep), "--config-name", "best_config",
                           f"hydra.run.dir={rerun}"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import yaml

    rerun_cfg = yaml.safe_load((rerun / ".hydra" / "config.yaml").read_text())
    for key, value in res["best_params"].items():
        assert rerun_cfg[key] == pytest.approx(value)


def test_app_cli_sweep_overrides_and_grid_sampler(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = run_app(f"hydra.sweep.dir={sweep}", "hydra.sweeper.n_trials=50", "hydra.sweeper.plots=false",
                   "hydra.sweeper.sampler._target_=optuna.samplers.GridSampler",
                   "x=choice(0.1,0.3)", "y=range(1,2)", "hidden=choice([8],[16,8])", "act=relu", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = results(sweep)
    assert res["n_trials"] == 8 and res["finished"] == 8  # the grid has 2 x 2 x 2 points
    import csv

    rows = list(csv.DictReader((sweep / "trials.csv").open()))
    combos = {(r["params_x"], r["params_y"], r["params_hidden"]) for r in rows}
    assert len(combos) == 8
    assert {r["params_hidden"] for r in rows} == {"[8]", "[16,8]"}
    assert "params_act" not in rows[0]  # fixed by the command line


@pytest.mark.parametrize("function", ["layers", "published_style"])
def test_app_custom_search_space(tmp_path: Path, function: str) -> None:
    sweep = tmp_path / "sweep"
    proc = run_app(f"hydra.sweep.dir={sweep}", f"hydra.sweeper.custom_search_space=custom_space.{function}",
                   "hydra.sweeper.n_trials=3", "hydra.sweeper.plots=false", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import yaml

    for n in range(3):
        cfg = yaml.safe_load((sweep / str(n) / ".hydra" / "config.yaml").read_text())
        if function == "layers":
            assert 1 <= len(cfg["hidden"]) <= 3 and set(cfg["hidden"]) <= {8, 16}
        else:
            assert 0.0 <= cfg["sleep"] <= 0.01 and cfg["sleep"] != 0
    assert ("n_layers" in results(sweep)["best_params"]) == (function == "layers")


def test_app_failing_trials_are_recorded_and_too_many_stop_the_sweep(tmp_path: Path) -> None:
    sweep = tmp_path / "tolerant"
    proc = run_app(f"hydra.sweep.dir={sweep}", "fail_if=tanh", "hydra.sweeper.plots=false",
                   "hydra.sweeper.max_failure_rate=1.0", "hydra.sweeper.n_trials=4", "hydra.sweeper.sampler.seed=3",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = results(sweep)
    assert res["finished"] == 4 and res["trials"]["FAIL"] >= 1
    import csv

    rows = list(csv.DictReader((sweep / "trials.csv").open()))
    for row in rows:
        if row["state"] == "FAIL":
            assert row["params_act"] == "tanh" and row["error"] == "ValueError: act=tanh is a bad combination"
            assert "bad combination" in (sweep / row["number"] / "error.txt").read_text()
        else:
            assert row["state"] == "COMPLETE" and row["params_act"] == "relu"

    stopped = tmp_path / "stopped"
    proc = run_app(f"hydra.sweep.dir={stopped}", "act=tanh", "fail_if=tanh", "x=interval(0,1)",
                   "hydra.sweeper.plots=false", "hydra.sweeper.study_name=stopped", cwd=tmp_path)
    assert proc.returncode != 0
    assert "sweep stopped: 3 of 3 trials failed" in proc.stderr
    assert results(stopped)["trials"] == {"FAIL": 3}


def test_app_nan_objective_fails_the_trial(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = run_app(f"hydra.sweep.dir={sweep}", "nan=true", cwd=tmp_path)
    assert proc.returncode != 0 and "sweep stopped: 3 of 3 trials failed" in proc.stderr
    res = results(sweep)
    assert res["finished"] == 0 and res["trials"] == {"FAIL": 3} and res["best_value"] is None
    # No completed trial: those plots are skipped with a reason; the failed trials' learning curves are drawn.
    assert set(res["plots_skipped"]) == {"optimization_history", "param_importances", "parallel_coordinate"}
    assert res["plots"] == ["intermediate_values.png"] and png_ok(sweep / "intermediate_values.png")
    assert "finite number" in (sweep / "trials.csv").read_text()


def test_app_multi_objective(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = run_app(f"hydra.sweep.dir={sweep}", "multi=true", "objective=[val/score,x]",
                   "hydra.sweeper.direction=[maximize,minimize]", "hydra.sweeper.n_trials=4", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = results(sweep)
    assert res["directions"] == ["maximize", "minimize"] and res["finished"] == 4
    assert res["pareto_front"] and all(len(p["values"]) == 2 for p in res["pareto_front"])
    assert png_ok(sweep / "pareto_front.png") and png_ok(sweep / "optimization_history.png")


def test_app_killed_sweep_resumes_to_exactly_n_trials(tmp_path: Path) -> None:
    db = f"journal://{tmp_path}/study.log"  # (the NumPy test below resumes from SQLite)
    common = [f"hydra.sweeper.storage={db}", "hydra.sweeper.study_name=resume", "hydra.sweeper.n_trials=4",
              "sleep=0.2", "hydra.sweeper.plots=false"]
    first = tmp_path / "first"
    proc = start_app(*common, f"hydra.sweep.dir={first}", cwd=tmp_path, log=tmp_path / "first.log")
    wait_for(first / "2" / "epochs.txt", proc)  # trial 2 is running
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    study = load_study(db, "resume")
    assert states(study) == {"COMPLETE": 2, "RUNNING": 1}
    before = {t.number: (t.value, t.params) for t in study.trials if t.state.name == "COMPLETE"}
    killed = next(t for t in study.trials if t.state.name == "RUNNING")

    second = tmp_path / "second"
    proc2 = run_app(*common, f"hydra.sweep.dir={second}", cwd=tmp_path)
    assert proc2.returncode == 0, proc2.stderr[-3000:]
    study = load_study(db, "resume")
    assert states(study) == {"COMPLETE": 4, "FAIL": 1}
    trials = {t.number: t for t in study.trials}
    assert trials[killed.number].state.name == "FAIL" and "lost" in trials[killed.number].user_attrs["error"]
    for number, (value, params) in before.items():  # nothing finished was lost or run again
        assert (trials[number].value, trials[number].params) == (value, params)
    retries = [t for t in study.trials if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1 and retries[0].params == killed.params and retries[0].state.name == "COMPLETE"
    assert_no_duplicates(study)
    assert results(second)["finished"] == 4

    third = run_app(*common, f"hydra.sweep.dir={tmp_path / 'third'}", cwd=tmp_path)  # already done: no new trial
    assert third.returncode == 0 and len(load_study(db, "resume").trials) == 5


def test_app_ctrl_c_queues_the_running_trial_again(tmp_path: Path) -> None:
    journal = f"journal://{tmp_path}/study.log"
    sweep = tmp_path / "sweep"
    proc = start_app(f"hydra.sweeper.storage={journal}", "hydra.sweeper.study_name=int", "sleep=0.3",
                     "hydra.sweeper.plots=false", f"hydra.sweep.dir={sweep}", cwd=tmp_path, log=tmp_path / "log")
    wait_for(sweep / "1" / "epochs.txt", proc)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) != 0
    study = load_study(journal, "int")
    trial = study.trials[1]
    assert trial.state.name == "FAIL" and trial.user_attrs["error"].startswith("interrupted")
    assert [t.system_attrs.get("failed_trial") for t in study.trials if t.state.name == "WAITING"] == [1]
    assert results(sweep)["trials"]["COMPLETE"] == 1  # results are written on the way out


def test_app_two_sweeps_share_one_journal(tmp_path: Path) -> None:
    journal = tmp_path / "shared.log"
    common = [f"hydra.sweeper.storage={journal}", "hydra.sweeper.study_name=shared", "hydra.sweeper.n_trials=8",
              "sleep=0.5", "hydra.sweeper.plots=false"]
    procs = [start_app(*common, f"hydra.sweep.dir={tmp_path / f'w{i}'}", f"hydra.sweeper.sampler.seed={i}",
                       cwd=tmp_path, log=tmp_path / f"w{i}.log") for i in range(2)]
    for p in procs:
        assert p.wait(timeout=180) == 0, (tmp_path / "w0.log").read_text()[-2000:]
    study = load_study(str(journal), "shared")
    assert states(study) == {"COMPLETE": 8}
    assert_no_duplicates(study)
    owners = {t.system_attrs[OWNER]["pid"] for t in study.trials}
    assert len(owners) == 2, "both sweeps ran trials"


# ----------------------------------------------------------------------------- mnistfw-train -m, NumPy backend

NUMPY = ["hparams_search=numpy_optuna", "data=mnist_sample", "visualization=none", "save_model=false",
         "evaluation=minimal"]


def train_sweep(tmp_path: Path, sweep: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("mnistfw-train", "-m", *NUMPY, f"hydra.sweep.dir={sweep}", f"paths.log_dir={tmp_path / 'logs'}",
                   *args, cwd=tmp_path)


def test_numpy_sweep_results_and_best_config_rerun(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = train_sweep(tmp_path, sweep, "trainer.max_epochs=2", "hydra.sweeper.n_trials=3", "hydra.sweeper.pruner=null")
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = results(sweep)
    assert res["finished"] == 3 and res["trials"] == {"COMPLETE": 3} and res["epochs_reported"] == 6
    assert 0.5 < res["best_value"] <= 1.0
    best_metrics = json.loads((Path(res["best_run_dir"]) / "metrics.json").read_text())
    assert best_metrics["metrics"]["val/accuracy"] == pytest.approx(res["best_value"])
    for name in PLOTS:
        assert png_ok(sweep / name), name

    rerun = run_cli("mnistfw-train", "--config-path", str(sweep), "--config-name", "best_config",
                    f"paths.log_dir={tmp_path / 'rerun'}", cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    (metrics_file,) = (tmp_path / "rerun").glob("*/runs/*/metrics.json")
    assert json.loads(metrics_file.read_text())["metrics"]["val/accuracy"] == pytest.approx(res["best_value"])


def test_numpy_aggressive_pruner_prunes(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = train_sweep(tmp_path, sweep, "trainer.max_epochs=4", "hydra.sweeper.n_trials=5", "hydra.sweeper.plots=false",
                       "hydra.sweeper.pruner._target_=optuna.pruners.MedianPruner",
                       "hydra.sweeper.pruner.n_startup_trials=1", "hydra.sweeper.pruner.n_warmup_steps=0")
    assert proc.returncode == 0, proc.stderr[-3000:]
    study_rows = (sweep / "trials.csv").read_text().splitlines()[1:]
    pruned = [r for r in study_rows if ",PRUNED," in r]
    assert pruned, "no trial pruned under MedianPruner(n_startup_trials=1, n_warmup_steps=0)"
    assert results(sweep)["finished"] == 5
    assert results(sweep)["epochs_reported"] < 5 * 4  # pruned trials stopped early


def test_numpy_sweep_killed_mid_trial_resumes(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/numpy.db"
    args = ["trainer.max_epochs=15", "hydra.sweeper.n_trials=3", "hydra.sweeper.pruner=null",
            "hydra.sweeper.plots=false", f"hydra.sweeper.storage={db}", "hydra.sweeper.study_name=np1",
            "model.hidden=[64]", "trainer.batch_size=128"]
    env = {**os.environ, "MNISTFW_DATA_DIR": str(tmp_path / "no-data")}
    from conftest import script

    first = tmp_path / "first"
    with (tmp_path / "first.log").open("w") as log:
        proc = subprocess.Popen([script("mnistfw-train"), "-m", *NUMPY, *args, f"hydra.sweep.dir={first}",
                                 f"paths.log_dir={tmp_path / 'logs'}"], cwd=tmp_path, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
        wait_for(first / "1" / "numpy_optuna.log", proc)  # trial 1 has started: ~1.5 s of data loading and training
        time.sleep(0.3)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    study = load_study(db, "np1")
    assert states(study) == {"COMPLETE": 1, "RUNNING": 1}, (tmp_path / "first.log").read_text()[-2000:]

    proc2 = train_sweep(tmp_path, tmp_path / "second", *args)
    assert proc2.returncode == 0, proc2.stderr[-3000:]
    study = load_study(db, "np1")
    assert states(study) == {"COMPLETE": 3, "FAIL": 1}
    assert [t.system_attrs.get("failed_trial") for t in study.trials] == [None, None, 1, None]
    assert study.trials[2].params == study.trials[1].params
    assert_no_duplicates(study)


def test_numpy_two_worker_processes_share_sqlite(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/par.db"
    sweep = tmp_path / "sweep"
    proc = train_sweep(tmp_path, sweep, "trainer.max_epochs=1", "hydra.sweeper.n_trials=4", "hydra.sweeper.n_jobs=2",
                       "hydra.sweeper.pruner=null", "hydra.sweeper.plots=false", f"hydra.sweeper.storage={db}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    study = load_study(db, "numpy_optuna-numpy_net")
    assert states(study) == {"COMPLETE": 4}
    assert_no_duplicates(study)
    assert len({t.system_attrs[OWNER]["pid"] for t in study.trials}) == 2
    assert results(sweep)["finished"] == 4
    for t in study.trials:
        assert (Path(t.user_attrs["run_dir"]) / "metrics.json").is_file()


# ----------------------------------------------------------------------------- other backends (slow)


@pytest.mark.slow
def test_lightning_sweep_prunes_and_finishes(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = run_cli("mnistfw-train", "-m", "hparams_search=lightning_optuna", "data=mnist_sample",
                   "visualization=none", "save_model=false", "trainer.max_epochs=3", "trainer.limit_train_batches=5",
                   "hydra.sweeper.n_trials=4", "hydra.sweeper.pruner._target_=optuna.pruners.MedianPruner",
                   "hydra.sweeper.pruner.n_startup_trials=1", "hydra.sweeper.pruner.n_warmup_steps=0",
                   f"hydra.sweep.dir={sweep}", f"paths.log_dir={tmp_path / 'logs'}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = results(sweep)
    assert res["finished"] == 4 and res["epochs_reported"] >= 4
    assert any("model.hidden.length" in k for k in res["best_params"])


@pytest.mark.slow
def test_spark_sweep_finishes(tmp_path: Path) -> None:
    pytest.importorskip("pyspark")

    sweep = tmp_path / "sweep"
    proc = run_cli("mnistfw-train", "-m", "hparams_search=spark_optuna", "data=mnist_sample", "visualization=none",
                   "save_model=false", "hydra.sweeper.n_trials=2", "trainer.check_val_every_n_epoch=5",
                   "trainer.max_epochs=choice(10,15)", "hydra.sweeper.sampler._target_=optuna.samplers.RandomSampler",
                   f"hydra.sweep.dir={sweep}", f"paths.log_dir={tmp_path / 'logs'}", cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = results(sweep)
    assert res["finished"] == 2 and res["epochs_reported"] >= 4


def test_worker_lock_serialises_asks(tmp_path: Path) -> None:
    """Processes on one machine take the study lock around count-and-ask (no overshoot)."""
    from mnistfw.sweeps.storage import study_lock

    path = tmp_path / "x.lock"
    inside: list[int] = []
    overlap = threading.Event()

    def hold() -> None:
        with study_lock(path):
            inside.append(1)
            if len(inside) > 1:
                overlap.set()
            time.sleep(0.1)
            inside.pop()

    threads = [threading.Thread(target=hold) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not overlap.is_set()


def test_one_mlp_search_space_drives_the_numpy_network(tmp_path: Path) -> None:
    """hparams_search=mlp_optuna (written in the shared vocabulary) runs unchanged with model=numpy_net."""
    sweep = tmp_path / "sweep"
    proc = run_cli("mnistfw-train", "-m", "hparams_search=mlp_optuna", "model=numpy_net", "data=mnist_sample",
                   "visualization=none", "save_model=false", "evaluation=minimal", "trainer.max_epochs=2",
                   "hydra.sweeper.n_trials=2", "hydra.sweeper.plots=false", f"hydra.sweep.dir={sweep}",
                   f"paths.log_dir={tmp_path / 'logs'}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = results(sweep)
    assert res["finished"] == 2 and res["epochs_reported"] == 4
    assert {"optimizer", "optimizer.lr", "trainer.batch_size", "model.hidden.length"} <= set(res["best_params"])
    for trial in (0, 1):
        saved = json.loads((sweep / str(trial) / "metrics.json").read_text())
        assert saved["model"]["backend"] == "numpy_net"
    # The study is kept beside the sweep folder, named after the task and the model.
    assert (tmp_path / "mlp_optuna-numpy_net.db").is_file()


@pytest.mark.parametrize("n_trials", [3, 13])
def test_intermediate_values_plot_keeps_its_legend_only_while_it_fits(tmp_path: Path, n_trials: int) -> None:
    import optuna

    from mnistfw.sweeps.results import MAX_LEGEND_TRIALS, _label_intermediate_values

    study = optuna.create_study(direction="maximize")
    for i in range(n_trials):
        trial = study.ask()
        for epoch in (1, 2):
            trial.report(0.9 + 0.01 * i + 0.001 * epoch, epoch)
        study.tell(trial, 0.9 + 0.01 * i)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        ax = optuna.visualization.matplotlib.plot_intermediate_values(study)
    _label_intermediate_values(ax, "val/accuracy")
    assert ax.get_ylabel() == "val/accuracy" and ax.get_xlabel() == "epoch"
    assert (ax.get_legend() is not None) == (n_trials <= MAX_LEGEND_TRIALS)
