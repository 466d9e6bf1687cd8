"""The Lightning backend through the backend protocol: determinism, save/load, wrong folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from mnistfw.backends.base import load_model, save_model
from mnistfw.data.pipeline import load_dataset
from mnistfw.errors import ModelFormatError


@pytest.fixture(scope="module")
def data():
    return load_dataset({"source": "sample", "split": {"val": 0.1, "test": 0.2}, "limit_train": 1500}, seed=0)


def _cfg(compose, *overrides: str):
    cfg = compose(["logger=none", "trainer.max_epochs=2", "trainer.enable_progress_bar=false",
                   "model.hidden=[64]", *overrides])
    OmegaConf.set_struct(cfg, False)
    cfg.pop("hydra", None)
    return cfg


def _fit(cfg, data, run_dir: Path | None = None):
    from mnistfw.backends.lightning_mlp import LightningMLPBackend

    backend = LightningMLPBackend(cfg, run_dir)
    history = backend.fit(data, lambda epoch, metrics: None)
    return backend, history


def test_same_seed_same_model_other_seed_other_model(compose, data) -> None:
    a, hist_a = _fit(_cfg(compose, "seed=3"), data)
    b, hist_b = _fit(_cfg(compose, "seed=3"), data)
    c, _ = _fit(_cfg(compose, "seed=4"), data)
    pa, pb, pc = (m.predict_proba(data.test.x) for m in (a, b, c))
    np.testing.assert_array_equal(pa, pb)
    assert not np.allclose(pa, pc)
    assert [h["train/loss"] for h in hist_a] == [h["train/loss"] for h in hist_b]
    assert [h["epoch"] for h in hist_a] == [1, 2]
    assert {"train/loss", "train/accuracy", "val/loss", "val/accuracy", "val/f1", "lr"} <= set(hist_a[0])


def test_save_load_gives_identical_predictions(compose, data, tmp_path: Path) -> None:
    backend, _ = _fit(_cfg(compose, "model.batch_norm=true", "model.activation=gelu"), data, tmp_path / "run")
    save_model(backend, tmp_path / "model", data.info, data.preprocessing)
    loaded = load_model(tmp_path / "model")
    assert loaded.backend.name == "lightning_mlp"
    np.testing.assert_allclose(loaded.backend.predict_proba(data.test.x), backend.predict_proba(data.test.x),
                               rtol=0, atol=1e-6)
    np.testing.assert_allclose(loaded.predict_proba_raw(data.test.images), backend.predict_proba(data.test.x),
                               atol=1e-5)
    assert loaded.backend.first_layer_weights().shape == (784, 64)
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()


def test_model_folder_errors(compose, data, tmp_path: Path) -> None:
    backend, _ = _fit(_cfg(compose, "trainer.max_epochs=1"), data)
    folder = save_model(backend, tmp_path / "model", data.info, data.preprocessing)
    with pytest.raises(ModelFormatError, match="holds a 'lightning_mlp' model, not a 'numpy_net'"):
        load_model(folder, expected_backend="numpy_net")
    meta = json.loads((folder / "mnistfw_model.json").read_text())
    meta["architecture"]["hidden"] = [32]
    (folder / "mnistfw_model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFormatError, match="does not match the saved lightning_mlp architecture"):
        load_model(folder)
    meta["format_version"] = 99
    (folder / "mnistfw_model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFormatError, match="newer than this mnistfw"):
        load_model(folder)
    with pytest.raises(ModelFormatError, match="not an mnistfw model folder"):
        load_model(tmp_path)
