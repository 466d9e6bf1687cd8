"""The trackers' own UIs on real runs: ``mlflow ui`` and ``optuna-dashboard`` on 127.0.0.1.

Slow (a Spark run, two servers, headless Chromium): ``pytest -m slow tests/test_tracker_uis.py``.
Set ``MNISTFW_SCREENSHOT_DIR`` to keep the screenshots (to look at them).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import BIN, png_ok, run_cli

pytestmark = pytest.mark.slow

QUICK = ["data=mnist_sample", "trainer.enable_progress_bar=false", "visualization.visualizers.prediction_grid=null"]
BACKENDS = {"lightning_mlp": "trainer.max_epochs=2", "numpy_net": "trainer.max_epochs=2",
            "spark_mlp": "trainer.max_epochs=5"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(cmd: list[str], url: str, log: Path, cwd: Path) -> Iterator[None]:
    """Start a server in its own process group; wait until ``url`` answers; stop the group after."""
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, f"{cmd[0]} exited: {log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"{url} did not answer in 120 s: {log.read_text()[-2000:]}"
            time.sleep(1)
        yield
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def get_json(url: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def screenshot(url: str, path: Path, height: int = 1200) -> None:
    """A headless Chromium screenshot of ``url`` (the page's scripts get 20 s to render)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("headless Chromium is not installed (apt install chromium)")
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--window-size=1600,{height}", "--virtual-time-budget=20000", f"--screenshot={path}", url],
                   capture_output=True, timeout=180, check=False)
    assert png_ok(path), f"no screenshot of {url}"
    keep = os.environ.get("MNISTFW_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / path.name)


def test_mlflow_ui_shows_every_backend_with_config_and_test_metrics(tmp_path: Path) -> None:
    pytest.importorskip("mlflow")
    pytest.importorskip("pyspark")
    out = tmp_path / "out"
    summaries = {}
    for model, epochs in BACKENDS.items():
        proc = run_cli("mnistfw-train", f"model={model}", epochs, "logger=mlflow", *QUICK, f"paths.log_dir={out}",
                       cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        (metrics,) = [p for p in out.glob("train/runs/*/metrics.json")
                      if json.loads(p.read_text())["model"]["backend"] == model]
        summaries[model] = json.loads(metrics.read_text())

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [str(BIN / "mlflow"), "ui", "--backend-store-uri", f"sqlite:///{out / 'mlflow.db'}",
           "--host", "127.0.0.1", "--port", str(port)]
    with serve(cmd, f"{base}/health", tmp_path / "mlflow_ui.log", tmp_path):
        (experiment,) = [e for e in get_json(f"{base}/ajax-api/2.0/mlflow/experiments/search",
                                             {"max_results": 50})["experiments"] if e["name"] == "mnistfw"]
        tags = {t["key"]: t["value"] for t in experiment.get("tags", [])}
        assert tags.get("mlflow.experimentKind") == "custom_model_development"
        runs = get_json(f"{base}/ajax-api/2.0/mlflow/runs/search",
                        {"experiment_ids": [experiment["experiment_id"]]})["runs"]
        by_backend = {}
        for run in runs:
            params = {p["key"]: p["value"] for p in run["data"]["params"]}
            by_backend[params["model.backend"]] = (run, params)
        assert set(by_backend) == set(BACKENDS)
        for model, (run, params) in by_backend.items():
            assert run["info"]["status"] == "FINISHED"
            assert run["info"]["run_name"].startswith(f"{model} ")
            assert params["trainer.max_epochs"] == BACKENDS[model].split("=")[1]
            metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
            assert metrics["test/accuracy"] == pytest.approx(summaries[model]["metrics"]["test/accuracy"])
        with urllib.request.urlopen(base + "/", timeout=30) as response:
            assert b"<!doctype html>" in response.read(200).lower()
        ids = urllib.parse.quote(json.dumps([run["info"]["run_id"] for run, _ in by_backend.values()]))
        experiments = urllib.parse.quote(json.dumps([experiment["experiment_id"]]))
        screenshot(f"{base}/#/experiments/{experiment['experiment_id']}/runs", tmp_path / "mlflow_runs.png", 700)
        screenshot(f"{base}/#/compare-runs?runs={ids}&experiments={experiments}", tmp_path / "mlflow_compare.png")


def test_optuna_dashboard_shows_the_sweeps_study_with_named_metrics(tmp_path: Path) -> None:
    pytest.importorskip("optuna_dashboard")
    proc = run_cli("mnistfw-train", "-m", "hparams_search=numpy_optuna", "hydra.sweeper.n_trials=3",
                   "trainer.max_epochs=2", *QUICK, "logger=none", f"paths.log_dir={tmp_path / 'out'}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (db,) = (tmp_path / "out").rglob("*.db")
    assert f"sqlite:///{db}" in proc.stderr + proc.stdout  # the sweep printed the URL to give the dashboard

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [str(BIN / "optuna-dashboard"), f"sqlite:///{db}", "--host", "127.0.0.1", "--port", str(port)]
    if not (BIN / "optuna-dashboard").exists():
        cmd = [sys.executable, "-m", "optuna_dashboard", *cmd[1:]]
    with serve(cmd, f"{base}/api/studies", tmp_path / "dashboard.log", tmp_path):
        (study,) = get_json(f"{base}/api/studies")["study_summaries"]
        assert study["study_name"] == db.stem
        detail = get_json(f"{base}/api/studies/{study['study_id']}?after=0")
        assert detail["objective_names"] == ["val/accuracy"]
        assert sum(t["state"] == "Complete" for t in detail["trials"]) == 3
        screenshot(f"{base}/dashboard/studies/{study['study_id']}", tmp_path / "optuna_dashboard.png")
