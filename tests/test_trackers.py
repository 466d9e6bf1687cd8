"""Trackers for every backend, read back with the trackers' own readers (MLflow's client,
TensorBoard's event reader), through the installed ``mnistfw-train``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from conftest import run_cli

QUICK = ["data=mnist_sample", "trainer.max_epochs=2", "trainer.enable_progress_bar=false",
         "visualization.visualizers.prediction_grid=null"]


def _run(tmp_path: Path, *args: str) -> tuple[Path, dict]:
    proc = run_cli("mnistfw-train", *args, f"paths.log_dir={tmp_path / 'out'}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (metrics,) = list((tmp_path / "out").glob("*/runs/*/metrics.json"))
    return metrics.parent, json.loads(metrics.read_text())


@pytest.mark.parametrize("model", ["numpy_net", "baseline_logreg"])
def test_mlflow_records_every_backend(tmp_path: Path, model: str) -> None:
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    run_dir, summary = _run(tmp_path, f"model={model}", "logger=mlflow", *QUICK)
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'out' / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("mnistfw").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["model.backend"] == model and run.data.params["trainer.max_epochs"] == "2"
    assert run.data.tags["backend"] == model and run.data.tags["run_dir"] == str(run_dir)
    assert run.data.metrics["test/accuracy"] == pytest.approx(summary["metrics"]["test/accuracy"])
    history = client.get_metric_history(run.info.run_id, "val/accuracy")
    assert sorted(m.step for m in history if m.step) == [1, 2]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert "metrics.json" in artifacts and "plots" in artifacts
    plots = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "plots")}
    assert "learning_curves.png" in plots and "confusion_matrix_test.png" in plots


def test_tensorboard_records_a_lightning_run(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir, summary = _run(tmp_path, "model=lightning_mlp", "model.hidden=[32]", "logger=tensorboard", *QUICK)
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"images": 0, "tensors": 0})
    events.Reload()
    tags = events.Tags()
    assert [e.step for e in events.Scalars("val/accuracy")] == [1, 2]
    assert events.Scalars("final/test/accuracy")[0].value == pytest.approx(summary["metrics"]["test/accuracy"],
                                                                            abs=1e-6)
    assert "plots/learning_curves" in tags["images"]
    assert any(t.startswith("config") for t in tags["tensors"])


def test_csv_tracker_is_the_default_for_every_backend(tmp_path: Path) -> None:
    run_dir, summary = _run(tmp_path, "model=numpy_net", *QUICK)
    with (run_dir / "csv" / "metrics.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["step"] for r in rows] == ["1", "2", "final"]
    assert float(rows[-1]["test/accuracy"]) == pytest.approx(summary["metrics"]["test/accuracy"])
    assert rows[-1]["status"] == "FINISHED"


def test_a_failed_run_is_recorded_as_failed(tmp_path: Path) -> None:
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    proc = run_cli("mnistfw-train", "model=numpy_net", "logger=mlflow", *QUICK, "optimizer=sgd", "optimizer.lr=1e9",
                   f"paths.log_dir={tmp_path / 'out'}", cwd=tmp_path)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "training diverged; lower optimizer.lr" in lines[0], proc.stderr[-2000:]
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'out' / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("mnistfw").experiment_id])
    assert run.info.status == "FAILED"
