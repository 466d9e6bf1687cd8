"""The Spark backend against a real standalone cluster on 127.0.0.1.

A Master and a Worker are started from the classes that ship inside pyspark
(``<pyspark>/bin/spark-class org.apache.spark.deploy.master.Master`` / ``...worker.Worker``),
the backend trains and predicts on ``spark://127.0.0.1:<port>`` (the work runs in the
worker's executor JVM), and both daemons are stopped afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mnistfw.backends.base import read_model_meta, save_model
from mnistfw.backends.spark_mlp import SparkMLPBackend

pyspark = pytest.importorskip("pyspark")

from test_spark_mlp import _session, make_backend, make_dataset  # noqa: E402

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout: float, what: str, logs: list[Path]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    tails = "\n".join(f"--- {p.name}\n" + p.read_text()[-2000:] for p in logs if p.exists())
    pytest.fail(f"{what} not ready after {timeout:.0f} s\n{tails}")


def _alive_workers(ui_port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=2) as resp:
            return int(json.load(resp).get("aliveworkers", 0))
    except (OSError, ValueError):
        return 0


def _port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.fixture
def standalone_cluster(tmp_path: Path) -> Iterator[str]:
    """``spark://127.0.0.1:<port>`` of a running Master with one Worker (1 core, 1g)."""
    spark_home = Path(pyspark.__file__).parent
    spark_class = spark_home / "bin" / "spark-class"
    port, ui_port, worker_port, worker_ui = (_free_port() for _ in range(4))
    env = {
        **os.environ,
        "SPARK_HOME": str(spark_home),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOG_DIR": str(tmp_path / "logs"),
        "SPARK_WORKER_DIR": str(tmp_path / "work"),
    }
    master_cmd = [str(spark_class), "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                  "--port", str(port), "--webui-port", str(ui_port)]  # fmt: skip
    worker_cmd = [str(spark_class), "org.apache.spark.deploy.worker.Worker", f"spark://127.0.0.1:{port}",
                  "--host", "127.0.0.1", "--port", str(worker_port), "--webui-port", str(worker_ui),
                  "--cores", "1", "--memory", "1g", "--work-dir", str(tmp_path / "work")]  # fmt: skip
    logs = [tmp_path / "master.log", tmp_path / "worker.log"]
    procs: list[subprocess.Popen] = []
    try:
        for cmd, log in ((master_cmd, logs[0]), (worker_cmd, logs[1])):
            with open(log, "w") as fh:
                procs.append(
                    subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)
                )
            if len(procs) == 1:
                _wait(lambda: _port_open(port), 90, "Spark master", logs)
        _wait(lambda: _alive_workers(ui_port) >= 1, 90, "Spark worker", logs)
        yield f"spark://127.0.0.1:{port}"
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def test_backend_on_standalone_cluster(standalone_cluster: str, tmp_path: Path) -> None:
    from pyspark.sql import SparkSession

    start = time.perf_counter()
    data = make_dataset(300, 100, 100)
    backend = make_backend(
        "trainer.max_epochs=6", "trainer.check_val_every_n_epoch=3", "model.train_eval_rows=100",
        "spark=cluster", f"spark.master={standalone_cluster}", "spark.ui=false",
        "spark.conf.spark.driver.host=127.0.0.1", "+spark.conf.spark.driver.bindAddress=127.0.0.1",
        "spark.conf.spark.executor.memory=512m", "spark.conf.spark.executor.cores=1",
    )
    calls: list[int] = []
    try:
        backend.fit(data, lambda e, m: calls.append(e))
        sc = backend.spark.sparkContext
        assert sc.master == standalone_cluster
        assert sc._jsc.sc().getExecutorIds().size() >= 1  # the work ran in the worker's executor
        assert calls == [3, 6]
        proba = backend.predict_proba(data.test.x)
        assert proba.shape == (100, 10)
        accuracy = float((proba.argmax(axis=1) == data.test.y).mean())
        assert accuracy == pytest.approx(backend.spark_scores["test/spark_accuracy"], abs=1e-12)
        assert accuracy > 0.5
        folder = save_model(backend, tmp_path / "model", data.info, data.preprocessing)
        loaded = SparkMLPBackend.load(folder, read_model_meta(folder), **_session())  # joins the cluster session
        np.testing.assert_allclose(loaded.predict_proba(data.test.x), proba, atol=1e-12)
    finally:
        backend.close()
    assert SparkSession.getActiveSession() is None  # the run's session was stopped
    print(f"standalone cluster run: {time.perf_counter() - start:.1f} s")
