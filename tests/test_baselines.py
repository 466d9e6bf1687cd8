"""Baselines: majority class and NumPy softmax regression, through the common backend protocol."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mnistfw.backends.base import MODEL_META_FILE, load_model, save_model
from mnistfw.backends.baselines import PRIOR_FILE, LogRegBackend, MajorityBackend
from mnistfw.backends.numpy_net.numpy_backend import WEIGHTS_FILE
from mnistfw.data.data_settings import DataConfig, SplitConfig
from mnistfw.data.dataset import Dataset
from mnistfw.data.loading import load_dataset
from mnistfw.errors import ConfigError, ModelFormatError


@pytest.fixture(scope="module")
def sample() -> Dataset:
    return load_dataset(DataConfig(source="sample", split=SplitConfig(val=0.1, test=0.2)), seed=0)


QUIET = "trainer.enable_progress_bar=false"


def test_majority_predicts_the_most_frequent_training_class(make_backend, sample: Dataset) -> None:  # noqa: ANN001
    epochs: list[tuple[int, dict]] = []
    backend = make_backend(["model=baseline_majority"])
    history = backend.fit(sample, lambda e, m: epochs.append((e, dict(m))))
    counts = np.bincount(sample.train.y, minlength=10)
    assert (backend.predict(sample.test.x) == counts.argmax()).all()
    proba = backend.predict_proba(sample.test.x[:3])
    assert proba.shape == (3, 10) and np.allclose(proba.sum(axis=1), 1) and np.allclose(proba[0], counts / counts.sum())
    assert [e for e, _ in epochs] == [1] and len(history) == 1
    for key in ("train/loss", "train/accuracy", "val/loss", "val/accuracy", "val/f1"):
        assert key in epochs[0][1]
    assert epochs[0][1]["val/accuracy"] == pytest.approx(np.mean(sample.val.y == counts.argmax()))


def test_logreg_learns_and_reports_every_epoch(make_backend, sample: Dataset) -> None:  # noqa: ANN001
    epochs: list[int] = []
    metrics: list[dict] = []
    backend = make_backend(["model=baseline_logreg", "trainer.max_epochs=4", "trainer.batch_size=128", QUIET])
    assert isinstance(backend, LogRegBackend)
    history = backend.fit(sample, lambda e, m: (epochs.append(e), metrics.append(dict(m))))
    assert epochs == [1, 2, 3, 4] and [h["epoch"] for h in history] == epochs
    assert {"train/loss", "train/accuracy", "val/loss", "val/accuracy", "val/f1"} <= set(metrics[-1])
    assert metrics[-1]["train/loss"] < metrics[0]["train/loss"]
    accuracy = float(np.mean(backend.predict(sample.test.x) == sample.test.y))
    assert accuracy > 0.85, accuracy  # chance is 0.10, the majority baseline ~0.11
    weights = backend.first_layer_weights()
    assert weights is not None and weights.shape == (784, 10)


def test_logreg_is_the_numpy_network_without_hidden_layers(make_backend, sample: Dataset) -> None:  # noqa: ANN001
    """Same optimiser, schedule and loop as numpy_net: sgd with momentum, seeded and repeatable."""
    overrides = ["model=baseline_logreg", "trainer.max_epochs=2", "optimizer=sgd", "optimizer.momentum=0.9",
                 "trainer.num_threads=1", QUIET]  # auto threads follow the load: BLAS sums differ by thread count
    a, b, c = (make_backend([*overrides, f"seed={seed}"]) for seed in (3, 3, 4))
    for backend in (a, b, c):
        backend.fit(sample, lambda e, m: None)
    assert a.net.sizes == [784, 10]
    np.testing.assert_array_equal(a.net.params, b.net.params)
    assert not np.array_equal(a.net.params, c.net.params)  # the seed shuffles the rows differently
    assert np.mean(a.predict(sample.test.x) == sample.test.y) > 0.8


@pytest.mark.parametrize(
    ("overrides", "match"),
    [(["optimizer.lr=0"], "optimizer.lr"), (["trainer.max_epochs=0"], "trainer.max_epochs"),
     (["optimizer=lbfgs"], "does not implement optimizer=lbfgs"), (["+model.hidden=[10]"], "unknown key")],
)
def test_logreg_config_errors(make_backend, overrides: list[str], match: str) -> None:  # noqa: ANN001
    with pytest.raises(ConfigError, match=match):
        make_backend(["model=baseline_logreg", *overrides])


@pytest.mark.parametrize(("model", "weights_file"),
                         [("baseline_majority", PRIOR_FILE), ("baseline_logreg", WEIGHTS_FILE)])
def test_save_load_roundtrip_and_damaged_files(make_backend, model: str, weights_file: str, sample: Dataset,  # noqa: ANN001
                                               tmp_path: Path) -> None:
    backend = make_backend([f"model={model}", "trainer.max_epochs=1", QUIET] if model == "baseline_logreg"
                           else [f"model={model}"])
    backend.fit(sample, lambda e, m: None)
    folder = save_model(backend, tmp_path / "model", sample.info, sample.preprocessing)
    loaded = load_model(folder)
    assert loaded.backend.name == model
    assert np.array_equal(loaded.backend.predict_proba(loaded.model_inputs(sample.test.images)),
                          backend.predict_proba(sample.test.x))

    # A file holding a pickled object must not be unpickled.
    with open(folder / weights_file, "wb") as fh:
        if weights_file.endswith(".npz"):
            np.savez(fh, format=np.array([{"x": 1}], dtype=object))
        else:
            np.save(fh, np.array([{"x": 1}], dtype=object))
    with pytest.raises(ModelFormatError, match="cannot be read"):
        load_model(folder)
    (folder / weights_file).unlink()
    with pytest.raises(ModelFormatError, match="not a|cannot be read"):
        load_model(folder)


def test_newer_model_format_is_refused(make_backend, sample: Dataset, tmp_path: Path) -> None:  # noqa: ANN001
    backend = make_backend(["model=baseline_majority"])
    assert isinstance(backend, MajorityBackend)
    backend.fit(sample, lambda e, m: None)
    folder = save_model(backend, tmp_path / "model", sample.info, sample.preprocessing)
    meta = json.loads((folder / MODEL_META_FILE).read_text())
    meta["format_version"] = 99
    (folder / MODEL_META_FILE).write_text(json.dumps(meta))
    with pytest.raises(ModelFormatError, match="newer"):
        load_model(folder)


# Both baselines run through the installed mnistfw-train in
# tests/test_experiments_keras_tf.py::test_tf_lifecycle_is_a_multirun_of_the_baselines.
