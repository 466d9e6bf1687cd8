"""The mnistfw Optuna sweeper running trials through Hydra launchers, and GPU placement.

Real sweeps of the small app in ``tests/sweeper_app`` (it writes ``job.json``: the process that
ran the job and the ``CUDA_VISIBLE_DEVICES`` it saw) through ``hydra/launcher=joblib`` and
``submitit_local``, on real SQLite studies; the GPU mapping with an injected device count
(this machine has no GPU; ``CUDA_VISIBLE_DEVICES`` set by the user stands in for devices).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import REPO
from omegaconf import OmegaConf

from mnistfw.backends.threads import usable_cores
from mnistfw.sweeps.devices import device_for, gpu_count, visible_devices
from mnistfw.sweeps.launching import _consecutive, placed_devices, quote
from mnistfw.sweeps.pruning import PRUNER_ATTR, STORAGE_VAR, STUDY_VAR, TRIAL_VAR, pruning_from_environment

APP = REPO / "tests" / "sweeper_app" / "app.py"
FAST = ["hydra.sweeper.plots=false", "hydra.sweeper.n_jobs=2"]
#: ThresholdPruner(lower=0.35) prunes x=0.9 and x=1.0 at epoch 0, never x=0.1 or x=0.3 (y and act fixed).
PRUNER = ["hydra/sweeper/sampler=grid", "y=2", "act=relu",
          "hydra.sweeper.pruner._target_=optuna.pruners.ThresholdPruner", "hydra.sweeper.pruner.lower=0.35"]


def sweep(*args: str, cwd: Path, env: dict[str, str] | None = None) -> tuple[int, str, int]:
    """``python app.py -m args``; return the sweeper's pid, its output and exit status."""
    full_env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    proc = subprocess.Popen([sys.executable, str(APP), "-m", *FAST, *args, f"hydra.sweep.dir={cwd / 'sweep'}"],
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**full_env, **(env or {})})
    out, _ = proc.communicate(timeout=180)
    return proc.pid, out, proc.returncode


def study_of(cwd: Path):
    import optuna

    return optuna.load_study(study_name="app", storage=f"sqlite:///{cwd / 'app.db'}")


def jobs(cwd: Path) -> dict[int, dict]:
    """``{trial number: job.json}`` of the sweep's run folders."""
    return {int(p.parent.name): json.loads(p.read_text()) for p in (cwd / "sweep").glob("*/job.json")}


# ----------------------------------------------------------------------------- GPU placement


def test_devices_spread_slots_modulo_the_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    assert visible_devices(3, environ={}) == ["0", "1", "2"]
    assert [device_for(i, ["0", "1", "2"]) for i in range(5)] == ["0", "1", "2", "0", "1"]
    assert visible_devices(0, environ={}) == [] and device_for(0, []) is None  # no GPU: nothing set
    # The user's CUDA_VISIBLE_DEVICES wins over the count: its entries are spread over, as given.
    assert visible_devices(8, environ={"CUDA_VISIBLE_DEVICES": "2, 3"}) == ["2", "3"]
    assert visible_devices(8, environ={"CUDA_VISIBLE_DEVICES": "GPU-a1,GPU-b2"}) == ["GPU-a1", "GPU-b2"]
    assert visible_devices(8, environ={"CUDA_VISIBLE_DEVICES": ""}) == []
    assert visible_devices(8, environ={"CUDA_VISIBLE_DEVICES": "-1"}) == []
    assert gpu_count() >= 0

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    joblib = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"

    def config(target: str, env_set: dict | None = None):
        return OmegaConf.create({"hydra": {"launcher": {"_target_": target}, "job": {"env_set": env_set or {}}}})

    assert placed_devices(config(joblib), n_jobs=2, count=2) == ["0", "1"]
    assert placed_devices(config(joblib), n_jobs=1, count=2) == []  # one job at a time sees every GPU
    assert placed_devices(config(joblib, {"CUDA_VISIBLE_DEVICES": "1"}), n_jobs=2, count=2) == []  # the user's
    slurm = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert placed_devices(config(slurm), n_jobs=2, count=2) == []  # the cluster places its jobs


def test_forked_workers_each_get_their_own_gpu(tmp_path: Path) -> None:
    pid, out, code = sweep("hydra.sweeper.n_trials=4", "sleep=0.05", cwd=tmp_path, env={"CUDA_VISIBLE_DEVICES": "5,7"})
    assert code == 0, out[-3000:]
    assert "CUDA_VISIBLE_DEVICES=5 for worker 0, 7 for worker 1" in out
    workers = [int(p) for p in re.search(r"started 2 worker processes: (\d+), (\d+)", out).groups()]
    expected = dict(zip(workers, ["5", "7"]))
    ran = jobs(tmp_path)
    assert len(ran) == 4 and all(expected[j["pid"]] == j["cuda"] for j in ran.values()), ran
    # The two workers share the cores: each gets half of them for trainer.num_threads=auto.
    assert {j["max_threads"] for j in ran.values()} == {str(max(1, usable_cores() // 2))}


# ----------------------------------------------------------------------------- the pieces


def test_quoted_values_read_back_through_hydra_overrides() -> None:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for value in ["sqlite:////tmp/a b/x,y=z's.db", "postgresql://u:p@ss${x}w\\@h/db\\", "12", "a\\'b", "x\\${y}"]:
        override = parser.parse_override(f"++hydra.job.env_set.V={quote(value)}")
        assert OmegaConf.create({"v": override.value()}).v == value  # as the job's config holds it


def test_batches_are_launched_in_runs_of_consecutive_trial_numbers() -> None:
    batch = [SimpleNamespace(trial=SimpleNamespace(number=n)) for n in (4, 5, 7, 8, 10)]
    assert [[b.trial.number for b in run] for run in _consecutive(batch)] == [[4, 5], [7, 8], [10]]


def test_pruning_from_environment_reports_to_the_named_trial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import optuna

    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="s", storage=url, direction="maximize")
    trial = study.ask()
    study._storage.set_trial_system_attr(trial._trial_id, PRUNER_ATTR,
                                         {"_target_": "optuna.pruners.ThresholdPruner", "lower": 0.5})
    monkeypatch.setenv(STORAGE_VAR, url)
    monkeypatch.setenv(STUDY_VAR, "s")
    monkeypatch.setenv(TRIAL_VAR, str(trial._trial_id))
    callback = pruning_from_environment("val/score")
    callback(0, {"val/score": 0.7})
    with pytest.raises(optuna.TrialPruned):
        callback(1, {"val/score": 0.2})
    assert study._storage.get_trial(trial._trial_id).intermediate_values == {0: 0.7, 1: 0.2}

    assert pruning_from_environment(None) is None  # no objective: nothing to report
    monkeypatch.setenv(STORAGE_VAR, f"sqlite:///{tmp_path / 'elsewhere.db'}")
    assert pruning_from_environment("val/score") is None  # not reachable here: the run goes on unpruned
    assert not (tmp_path / "elsewhere.db").exists()


# ----------------------------------------------------------------------------- through launchers


def test_joblib_runs_the_trials_in_its_own_processes(tmp_path: Path) -> None:
    from optuna.trial import TrialState

    pid, out, code = sweep("hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.n_trials=4",
                           cwd=tmp_path)
    assert code == 0, out[-3000:]
    assert "trials run through hydra/launcher=joblib (JoblibLauncher), 2 at a time" in out
    study = study_of(tmp_path)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 4
    ran = jobs(tmp_path)
    assert sorted(ran) == [0, 1, 2, 3]  # run folder = trial number
    assert pid not in {j["pid"] for j in ran.values()}  # visibly run by the launcher's processes
    assert {j["max_threads"] for j in ran.values()} == {str(max(1, usable_cores() // 2))}  # 2 at a time
    for t in study.trials:
        assert t.system_attrs["mnistfw:owner"]["pid"] == pid  # the sweeper answers for them
        assert t.user_attrs["run_dir"] == str(tmp_path / "sweep" / str(t.number))
        assert any(o.startswith("x=") for o in t.user_attrs["overrides"])
        assert not any("env_set" in o for o in t.user_attrs["overrides"])
        assert sorted(t.intermediate_values) == [0, 1, 2]  # reported by the job's process
    assert json.loads((tmp_path / "sweep" / "optimization_results.json").read_text())["best_value"] > 0


def test_pruning_works_through_joblib_with_a_persistent_storage(tmp_path: Path) -> None:
    from optuna.trial import TrialState

    pid, out, code = sweep("hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "x=choice(0.1,0.3,0.9,1.0)", *PRUNER,
                           cwd=tmp_path)
    assert code == 0, out[-3000:]
    study = study_of(tmp_path)
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert len(pruned) == 2 and sum(t.state == TrialState.COMPLETE for t in study.trials) == 2
    ran = jobs(tmp_path)
    for t in pruned:
        assert list(t.intermediate_values) == [0]  # reported from the job's process, which then stopped
        assert ran[t.number]["pid"] != pid
        assert (tmp_path / "sweep" / str(t.number) / "epochs.txt").read_text().split() == ["0"]


def test_a_failing_trial_through_joblib_is_fail_with_its_error(tmp_path: Path) -> None:
    from optuna.trial import TrialState

    # Every trial raises; one attempt each (max_retry=0), so the sweep ends saying so.
    pid, out, code = sweep("hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.n_trials=2",
                           "hydra.sweeper.max_retry=0", "act=relu", "fail_if=relu", cwd=tmp_path)
    assert code == 2 and "sweep stopped" in out, out[-3000:]
    study = study_of(tmp_path)
    assert [t.state for t in study.trials] == [TrialState.FAIL] * 2
    for t in study.trials:
        assert t.user_attrs["error"] == "ValueError: act=relu is a bad combination"
        assert t.user_attrs["run_dir"] == str(tmp_path / "sweep" / str(t.number))
        traceback = (tmp_path / "sweep" / str(t.number) / "error.txt").read_text()
        assert "Traceback" in traceback and "in run" in traceback  # written where the job ran
    assert pid not in {j["pid"] for j in jobs(tmp_path).values()}


def test_memory_storage_through_joblib_says_pruning_is_off_and_places_gpus(tmp_path: Path) -> None:
    pid, out, code = sweep("hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.n_trials=2",
                           "hydra.sweeper.storage=memory", "hydra.sweeper.pruner._target_=optuna.pruners.MedianPruner",
                           cwd=tmp_path, env={"CUDA_VISIBLE_DEVICES": "5,7"})
    assert code == 0, out[-3000:]
    lines = [line for line in out.splitlines() if "pruning is off" in line]
    assert len(lines) == 1 and "in memory" in lines[0], out[-3000:]
    ran = jobs(tmp_path)
    assert sorted(ran) == [0, 1] and {j["cuda"] for j in ran.values()} == {"5", "7"}  # job k: device k
    assert not list(tmp_path.glob("*.db")) and not (tmp_path / "sweep" / "optuna_journal.log").exists()


def test_submitit_local_launcher_runs_and_prunes(tmp_path: Path) -> None:
    from optuna.trial import TrialState

    pid, out, code = sweep("hydra/launcher=submitit_local", "x=choice(0.3,1.0)", *PRUNER, cwd=tmp_path)
    assert code == 0, out[-3000:]
    assert "trials run through hydra/launcher=submitit_local (LocalLauncher), 2 at a time" in out
    study = study_of(tmp_path)
    assert sorted(t.state.name for t in study.trials) == ["COMPLETE", "PRUNED"]
    assert all(t.intermediate_values for t in study.trials if t.state == TrialState.PRUNED)
    pids = {j["pid"] for j in jobs(tmp_path).values()}
    assert len(pids) == 2 and pid not in pids  # submitit starts a process per job
