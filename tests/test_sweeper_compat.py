"""The mnistfw Optuna sweeper against the published ``hydra-optuna-sweeper``'s behaviour and examples.

Every test runs a real ``-m`` multirun in a subprocess: the small app in ``tests/sweeper_app``
or the published sweeper's example apps with their own configs (``tests/sweeper_app/published``),
on real SQLite and journal storages, several commands at once where that is the point.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO

APP = REPO / "tests" / "sweeper_app" / "app.py"
PUBLISHED = REPO / "tests" / "sweeper_app" / "published"
TRIALS_EXTRA = ["epochs_reported", "run_dir", "retry_of", "error"]


def sweep(script: Path, *args: str, cwd: Path, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    """``python script -m args`` as a user runs it; output captured."""
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    return subprocess.run([sys.executable, str(script), "-m", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


def start(script: Path, *args: str, cwd: Path, log: Path) -> subprocess.Popen:
    with log.open("w") as fh:
        return subprocess.Popen([sys.executable, str(script), "-m", *args], cwd=cwd, stdout=fh,
                                stderr=subprocess.STDOUT)


def results(sweep_dir: Path) -> dict:
    return json.loads((sweep_dir / "optimization_results.json").read_text())


def load(storage: str, name: str):
    """The study ``name`` in ``storage`` (a SQLAlchemy URL or a journal file path)."""
    import optuna

    from mnistfw.sweeps.storage import resolve_storage

    return optuna.load_study(study_name=name, storage=resolve_storage(storage, 1, Path(".")).open())


def sqlite(path: Path) -> str:
    return f"sqlite:///{path}"


# ----------------------------------------------------------------------------- the published examples


def test_published_sphere_example_searches_the_same_space(tmp_path: Path) -> None:
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    proc = sweep(PUBLISHED / "sphere.py", "hydra.sweeper.n_trials=6", "hydra.sweeper.plots=false",
                 f"hydra.sweep.dir={tmp_path / 'sphere'}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = yaml.safe_load((tmp_path / "sphere" / "optimization_results.yaml").read_text())
    assert res["name"] == "optuna" and set(res["best_params"]) == {"x", "y"} and res["best_value"] >= 0
    study = load(sqlite(tmp_path / "sphere.db"), "sphere")  # storage: null -> a file beside the sweep folder
    assert [d.name for d in study.directions] == ["MINIMIZE"] and len(study.trials) == 6
    for t in study.trials:  # what the published sweeper builds from range(-5.5, 5.5, step=0.5) and choice(-5 ,0 ,5)
        assert t.distributions == {"x": FloatDistribution(-5.5, 5.5, step=0.5),
                                   "y": CategoricalDistribution([-5, 0, 5])}


def test_published_multi_objective_example_writes_solutions(tmp_path: Path) -> None:
    from optuna.distributions import FloatDistribution

    proc = sweep(PUBLISHED / "multi-objective.py", "hydra.sweeper.n_trials=6", "hydra.sweeper.plots=false",
                 f"hydra.sweep.dir={tmp_path / 'mo'}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = yaml.safe_load((tmp_path / "mo" / "optimization_results.yaml").read_text())
    assert res["solutions"] and res["solutions"] == res["pareto_front"]
    for solution in res["solutions"]:
        assert set(solution["params"]) == {"x", "y"} and len(solution["values"]) == 2
    study = load(sqlite(tmp_path / "multi-objective.db"), "multi-objective")
    assert study.trials[0].distributions == {"x": FloatDistribution(0.0, 5.0, step=0.5),
                                             "y": FloatDistribution(0.0, 3.0, step=0.5)}


def test_published_custom_search_space_example_adds_a_new_key(tmp_path: Path) -> None:
    proc = sweep(PUBLISHED / "custom-search-space-objective.py", "hydra.sweeper.n_trials=4",
                 "hydra.sweeper.plots=false", f"hydra.sweep.dir={tmp_path / 'css'}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for n in range(4):
        cfg = yaml.safe_load((tmp_path / "css" / str(n) / ".hydra" / "config.yaml").read_text())
        assert 0.0 <= cfg["w"] <= 1.0 and abs(cfg["z"] - cfg["x"]) <= 0.5 and cfg["y"] in (-5, 0, 5)
        assert (cfg["x"] * 2).is_integer() and -5.5 <= cfg["x"] <= 5.5


def test_direction_defaults_to_minimize(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    text = (PUBLISHED / "conf" / "config.yaml").read_text()
    (conf / "config.yaml").write_text("\n".join(line for line in text.splitlines() if "direction:" not in line))
    proc = sweep(PUBLISHED / "sphere.py", "--config-path", str(conf), "--config-name", "config",
                 "+objective=val/accuracy", "hydra.sweeper.n_trials=3", "hydra.sweeper.plots=false",
                 f"hydra.sweep.dir={tmp_path / 's'}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert results(tmp_path / "s")["directions"] == ["minimize"]  # whatever the objective is called


# ----------------------------------------------------------------------------- search space and options


def test_range_includes_its_stop(tmp_path: Path) -> None:
    proc = sweep(APP, "hydra.sweeper.sampler._target_=optuna.samplers.GridSampler", "hydra.sweeper.n_trials=50",
                 "x=range(0.1,0.3,0.1)", "y=range(1,4)", "act=relu", "hydra.sweeper.plots=false",
                 "hydra.sweeper.storage=memory",
                 f"hydra.sweep.dir={tmp_path / 'grid'}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = list(csv.DictReader((tmp_path / "grid" / "trials.csv").open()))
    assert len(rows) == 12  # the grid: 3 x 4 points
    assert {float(r["params_x"]) for r in rows} == {0.1, 0.2, 0.3}
    assert {int(r["params_y"]) for r in rows} == {1, 2, 3, 4}

    from optuna.distributions import IntDistribution

    proc = sweep(APP, "hydra.sweeper.n_trials=2", "hydra.sweeper.plots=false", "hydra.sweeper.study_name=lists",
                 '+hydra.sweeper.list_params.hidden={length:"range(1, 3)",item:"choice(8,16)"}',
                 f"hydra.sweep.dir={tmp_path / 'lists'}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    trial = load(sqlite(tmp_path / "lists.db"), "lists").trials[0]
    assert trial.distributions["hidden.length"] == IntDistribution(1, 3)


def test_new_key_and_sampler_and_pruner_options_on_the_command_line(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "s"
    proc = sweep(APP, "+w=interval(0,1)", "hydra.sweeper.sampler.n_startup_trials=2", "hydra.sweeper.sampler.seed=3",
                 "hydra.sweeper.pruner._target_=optuna.pruners.MedianPruner", "hydra.sweeper.pruner.n_warmup_steps=1",
                 "hydra.sweeper.n_trials=3", "hydra.sweeper.plots=false", f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweeper = yaml.safe_load((sweep_dir / "multirun.yaml").read_text())["hydra"]["sweeper"]
    assert sweeper["sampler"]["n_startup_trials"] == 2 and sweeper["pruner"]["n_warmup_steps"] == 1
    assert "pruner MedianPruner" in proc.stdout
    study = load(sqlite(tmp_path / "app.db"), "app")
    for t in study.trials:
        cfg = yaml.safe_load((sweep_dir / str(t.number) / ".hydra" / "config.yaml").read_text())
        assert cfg["w"] == pytest.approx(t.params["w"]) and 0 <= cfg["w"] <= 1  # Optuna records w; the job got +w=

    typo = sweep(APP, "hydra.sweeper.sampler.n_startup_trial=2", cwd=tmp_path)
    assert typo.returncode != 0 and "n_startup_trial" in typo.stderr


def test_null_sampler_arguments_mean_optuna_defaults_and_tpe_gets_constant_liar(tmp_path: Path) -> None:
    from hydra_plugins.mnistfw_optuna_sweeper.sweeper_config import sampler_node
    from mnistfw.sweeps.runner import SweepPlan, make_sampler
    from mnistfw.sweeps.space import build_search_space
    from mnistfw.sweeps.storage import MEMORY, StorageSpec

    plan = SweepPlan(study_name="s", storage=StorageSpec(MEMORY), directions=["minimize"],
                     space=build_search_space({"a": "interval(0, 1)"}), sampler={**sampler_node("tpe"), "seed": 5},
                     pruner=None, n_trials=2, sweep_dir=tmp_path, session="x")
    sampler = make_sampler(plan)
    assert sampler._constant_liar is True  # not set: on, so running trials are not suggested again
    plan.sampler["constant_liar"] = False
    assert make_sampler(plan)._constant_liar is False
    for name in ("random", "cmaes", "gp", "qmc", "nsgaii", "bruteforce"):  # every option's null arguments are dropped
        plan.sampler = {**sampler_node(name), "seed": 5}
        assert type(make_sampler(plan)).__name__.lower().startswith(name[:3])


def test_no_parameter_sweep_runs_the_fixed_config_n_trials_times(tmp_path: Path) -> None:
    proc = sweep(APP, "hydra.sweeper.params=null", "hydra.sweeper.n_trials=3", "hydra.sweeper.storage=memory",
                 "hydra.sweeper.plots=false", f"hydra.sweep.dir={tmp_path / 's'}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = results(tmp_path / "s")
    assert res["trials"] == {"COMPLETE": 3} and res["best_params"] == {}
    assert not list(tmp_path.glob("*.db"))  # storage=memory keeps nothing


def test_one_process_with_a_fixed_seed_is_reproducible(tmp_path: Path) -> None:
    params = []
    for name in ("a", "b"):
        proc = sweep(APP, "hydra.sweeper.n_trials=3", "hydra.sweeper.plots=false", "hydra.sweeper.storage=memory",
                     f"hydra.sweep.dir={tmp_path / name}", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        rows = csv.DictReader((tmp_path / name / "trials.csv").open())
        params.append([(r["params_x"], r["params_y"], r["params_act"]) for r in rows])
    assert params[0] == params[1] and len(set(params[0])) == 3


# ----------------------------------------------------------------------------- termination


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_always_failing_trial_ends_within_the_attempt_limit(tmp_path: Path, n_jobs: int) -> None:
    proc = sweep(APP, "act=relu", "fail_if=relu", "hydra.sweeper.max_failure_rate=1.0", "hydra.sweeper.n_trials=2",
                 "hydra.sweeper.max_retry=1", f"hydra.sweeper.n_jobs={n_jobs}", "hydra.sweeper.plots=false",
                 f"hydra.sweep.dir={tmp_path / 's'}", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr
    assert errors[0].startswith("error: sweep stopped: this command started 4 trials")
    assert "0/2 are finished" in errors[0] and "act=relu is a bad combination" in errors[0]
    assert errors[0][len("error: "):] in proc.stdout  # also in the log
    study = load(sqlite(tmp_path / "app.db"), "app")
    assert [t.state.name for t in study.trials] == ["FAIL"] * 4  # n_trials x (1 + max_retry)
    assert results(tmp_path / "s")["trials"] == {"FAIL": 4}


# ----------------------------------------------------------------------------- several commands on one study


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_two_commands_on_one_study_sample_distinct_parameters(tmp_path: Path, kind: str) -> None:
    storage = sqlite(tmp_path / "shared.db") if kind == "sqlite" else str(tmp_path / "shared.log")
    common = [f"hydra.sweeper.storage={storage}", "hydra.sweeper.study_name=shared", "hydra.sweeper.n_trials=6",
              "sleep=0.3", "epochs=2", "hydra.sweeper.plots=false"]  # the same seed (1, in the app's config)
    procs = [start(APP, *common, f"hydra.sweep.dir={tmp_path / f'w{i}'}", cwd=tmp_path, log=tmp_path / f"w{i}.log")
             for i in range(2)]
    for i, p in enumerate(procs):
        assert p.wait(timeout=120) == 0, (tmp_path / f"w{i}.log").read_text()[-3000:]
    study = load(storage, "shared")
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(done) == 6 == len(study.trials)
    assert len({tuple(sorted(t.params.items())) for t in done}) == 6, "two commands sampled the same parameters"
    assert len({t.system_attrs["mnistfw:owner"]["pid"] for t in done}) == 2, "both commands ran trials"


def test_two_commands_creating_a_new_sqlite_study_together(tmp_path: Path) -> None:
    for attempt in range(5):
        folder = tmp_path / str(attempt)
        folder.mkdir()
        common = [f"hydra.sweeper.storage={sqlite(folder / 'new.db')}", "hydra.sweeper.n_trials=1",
                  "hydra.sweeper.plots=false"]
        procs = [start(APP, *common, f"hydra.sweep.dir={folder / f'w{i}'}", cwd=folder, log=folder / f"w{i}.log")
                 for i in range(2)]
        codes = [p.wait(timeout=120) for p in procs]
        logs = [(folder / f"w{i}.log").read_text() for i in range(2)]
        assert codes == [0, 0] and not any("Traceback" in text for text in logs), "\n".join(logs)[-3000:]
        assert len(load(sqlite(folder / "new.db"), "app").trials) == 1


@pytest.mark.parametrize("case", ["sqlite under a file", "corrupt sqlite", "journal under a file"])
def test_storage_problems_are_one_error_line(tmp_path: Path, case: str) -> None:
    (tmp_path / "afile").write_text("not a folder")
    (tmp_path / "study.db").write_bytes(b"this is not an SQLite database" * 100)
    storage = {"sqlite under a file": sqlite(tmp_path / "afile" / "study.db"),
               "corrupt sqlite": sqlite(tmp_path / "study.db"),
               "journal under a file": f"journal://{tmp_path}/afile/study.log"}[case]
    proc = sweep(APP, f"hydra.sweeper.storage={storage}", "hydra.sweeper.n_trials=2", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    (line,) = [line for line in proc.stderr.splitlines() if line.strip()]
    assert line.startswith("error: hydra.sweeper.storage: cannot ") and str(tmp_path) in line
    assert "move a damaged file away" in line


# ----------------------------------------------------------------------------- the study is kept by default


def test_study_is_kept_beside_the_sweep_folder_and_continued(tmp_path: Path) -> None:
    command = ["hydra.sweeper.n_trials=2", "hydra.sweeper.plots=false"]  # sweep folder multirun/<time>
    first = sweep(APP, *command, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    db = tmp_path / "multirun" / "app.db"
    url = sqlite(db)
    assert f"storage: {url}" in first.stdout and f"optuna-dashboard {url}" in first.stdout
    assert f"run the same command again: python {APP} -m hydra.sweeper.n_trials=2 hydra.sweeper.plots=false" \
        in first.stdout

    again = sweep(APP, *command, cwd=tmp_path)  # the same command: the study is complete, nothing to run
    assert again.returncode == 0 and "nothing to run" in again.stdout
    more = sweep(APP, "hydra.sweeper.n_trials=3", "hydra.sweeper.plots=false", cwd=tmp_path)
    assert more.returncode == 0, more.stderr[-3000:]
    study = load(url, "app")
    assert [t.number for t in study.trials] == [0, 1, 2] and study.metric_names == ["val/score"]

    (sweep_dir,) = {p.parent for p in (tmp_path / "multirun").glob("*/trials.csv")
                    if len((p.parent / "trials.csv").read_text().splitlines()) == 4}
    header = next(csv.reader((sweep_dir / "trials.csv").open()))
    optuna_columns = list(study.trials_dataframe(attrs=("number", "value", "datetime_start", "datetime_complete",
                                                        "duration", "params", "state")).columns)
    assert header == optuna_columns + TRIALS_EXTRA and "value_val/score" in header
