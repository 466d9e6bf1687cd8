"""Baselines: majority class and NumPy softmax regression, through the common backend protocol."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from mnistfw.backends.base import MODEL_META_FILE, load_model, save_model
from mnistfw.backends.baselines import WEIGHTS_FILE, LogRegBackend, MajorityBackend
from mnistfw.data.data_settings import DataConfig, SplitConfig
from mnistfw.data.dataset import Dataset
from mnistfw.data.loading import load_dataset
from mnistfw.errors import ConfigError, ModelFormatError


@pytest.fixture(scope="module")
def sample() -> Dataset:
    return load_dataset(DataConfig(source="sample", split=SplitConfig(val=0.1, test=0.2)), seed=0)


def _cfg(backend: str, seed: int = 0, **model: object) -> object:
    return OmegaConf.create({"seed": seed, "model": {"backend": backend, **model}})


def test_majority_predicts_the_most_frequent_training_class(sample: Dataset) -> None:
    epochs: list[tuple[int, dict]] = []
    backend = MajorityBackend(_cfg("baseline_majority"))
    history = backend.fit(sample, lambda e, m: epochs.append((e, dict(m))))
    counts = np.bincount(sample.train.y, minlength=10)
    assert (backend.predict(sample.test.x) == counts.argmax()).all()
    proba = backend.predict_proba(sample.test.x[:3])
    assert proba.shape == (3, 10) and np.allclose(proba.sum(axis=1), 1) and np.allclose(proba[0], counts / counts.sum())
    assert [e for e, _ in epochs] == [1] and len(history) == 1
    for key in ("train/loss", "train/accuracy", "val/loss", "val/accuracy", "val/f1"):
        assert key in epochs[0][1]
    assert epochs[0][1]["val/accuracy"] == pytest.approx(np.mean(sample.val.y == counts.argmax()))


def test_logreg_learns_and_reports_every_epoch(sample: Dataset) -> None:
    epochs: list[int] = []
    metrics: list[dict] = []
    backend = LogRegBackend(_cfg("baseline_logreg", epochs=4, batch_size=128))
    history = backend.fit(sample, lambda e, m: (epochs.append(e), metrics.append(dict(m))))
    assert epochs == [1, 2, 3, 4] and [h["epoch"] for h in history] == epochs
    assert {"train/loss", "train/accuracy", "val/loss", "val/accuracy", "val/f1"} <= set(metrics[-1])
    assert metrics[-1]["train/loss"] < metrics[0]["train/loss"]
    accuracy = float(np.mean(backend.predict(sample.test.x) == sample.test.y))
    assert accuracy > 0.85, accuracy  # chance is 0.10, the majority baseline ~0.11
    weights = backend.first_layer_weights()
    assert weights is not None and weights.shape == (784, 10)


def test_logreg_adam_and_seeded_determinism(sample: Dataset) -> None:
    a = LogRegBackend(_cfg("baseline_logreg", seed=3, epochs=2, optimizer="adam", lr=1e-3))
    b = LogRegBackend(_cfg("baseline_logreg", seed=3, epochs=2, optimizer="adam", lr=1e-3))
    c = LogRegBackend(_cfg("baseline_logreg", seed=4, epochs=2, optimizer="adam", lr=1e-3))
    for backend in (a, b, c):
        backend.fit(sample, lambda e, m: None)
    assert np.array_equal(a.weights, b.weights)
    assert not np.array_equal(a.weights, c.weights)
    assert np.mean(a.predict(sample.test.x) == sample.test.y) > 0.8


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [("lr", 0.0, "model.lr"), ("epochs", 0, "model.epochs"), ("optimizer", "lbfgs", "sgd or adam"),
     ("momentum", 1.0, "model.momentum"), ("hidden", [10], "unknown key")],
)
def test_logreg_config_errors(key: str, value: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        LogRegBackend(_cfg("baseline_logreg", **{key: value}))


@pytest.mark.parametrize("cls", [MajorityBackend, LogRegBackend])
def test_save_load_roundtrip_and_damaged_files(cls: type, sample: Dataset, tmp_path: Path) -> None:
    backend = cls(_cfg(cls.name, epochs=1) if cls is LogRegBackend else _cfg(cls.name))
    backend.fit(sample, lambda e, m: None)
    folder = save_model(backend, tmp_path / "model", sample.info, sample.preprocessing)
    loaded = load_model(folder)
    assert loaded.backend.name == cls.name
    assert np.array_equal(loaded.predict_proba_raw(sample.test.images), backend.predict_proba(sample.test.x))

    # A .npz holding a pickled object must not be unpickled.
    with open(folder / WEIGHTS_FILE, "wb") as fh:
        np.savez(fh, prior=np.array([{"x": 1}], dtype=object), weights=np.array([None], dtype=object))
    with pytest.raises(ModelFormatError, match="corrupt or not a plain .npz"):
        load_model(folder)
    (folder / WEIGHTS_FILE).unlink()
    with pytest.raises(ModelFormatError, match=f"no {WEIGHTS_FILE}"):
        load_model(folder)


def test_newer_model_format_is_refused(sample: Dataset, tmp_path: Path) -> None:
    backend = MajorityBackend(_cfg("baseline_majority"))
    backend.fit(sample, lambda e, m: None)
    folder = save_model(backend, tmp_path / "model", sample.info, sample.preprocessing)
    meta = json.loads((folder / MODEL_META_FILE).read_text())
    meta["format_version"] = 99
    (folder / MODEL_META_FILE).write_text(json.dumps(meta))
    with pytest.raises(ModelFormatError, match="newer"):
        load_model(folder)


# Both baselines run through the installed mnistfw-train in
# tests/test_experiments_keras_tf.py::test_tf_lifecycle_is_a_multirun_of_the_baselines.
