"""The Lightning backend through the backend protocol: determinism, save/load, wrong folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mnistfw.app.run_spec import build_run_spec
from mnistfw.backends.base import load_model, save_model
from mnistfw.data.loading import load_dataset
from mnistfw.errors import ModelFormatError


@pytest.fixture(scope="module")
def data():
    return load_dataset({"source": "sample", "split": {"val": 0.1, "test": 0.2}, "limit_train": 1500}, seed=0)


def _cfg(compose, *overrides: str):
    return compose(["logger=none", "trainer.max_epochs=2", "trainer.enable_progress_bar=false",
                    "model.hidden=[64]", *overrides])


def _fit(cfg, data, run_dir: Path | None = None):
    from mnistfw.backends.lightning_mlp import LightningMLPBackend

    backend = build_run_spec(cfg, run_dir).make_backend()
    assert isinstance(backend, LightningMLPBackend)
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
    np.testing.assert_allclose(loaded.backend.predict_proba(loaded.model_inputs(data.test.images)),
                               backend.predict_proba(data.test.x), atol=1e-5)
    assert loaded.backend.first_layer_weights().shape == (784, 64)
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()

    # A model saved before a setting existed loads with that setting's default from the YAML file.
    meta_path = tmp_path / "model" / "mnistfw_model.json"
    meta = json.loads(meta_path.read_text())
    del meta["settings"]["max_norm"]
    meta_path.write_text(json.dumps(meta))
    older = load_model(tmp_path / "model")
    assert older.backend.settings.max_norm is None
    np.testing.assert_array_equal(older.backend.predict_proba(data.test.x), loaded.backend.predict_proba(data.test.x))


def test_model_folder_errors(compose, data, tmp_path: Path) -> None:
    backend, _ = _fit(_cfg(compose, "trainer.max_epochs=1"), data)
    folder = save_model(backend, tmp_path / "model", data.info, data.preprocessing)
    meta = json.loads((folder / "mnistfw_model.json").read_text())
    meta["settings"]["hidden"] = [32]
    (folder / "mnistfw_model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFormatError, match="does not match the saved lightning_mlp architecture"):
        load_model(folder)
    meta["format_version"] = 99
    (folder / "mnistfw_model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFormatError, match="newer than this mnistfw"):
        load_model(folder)
    with pytest.raises(ModelFormatError, match="not an mnistfw model folder"):
        load_model(tmp_path)


def test_damaged_model_folders_are_one_line(compose, data, tmp_path: Path) -> None:
    backend, _ = _fit(_cfg(compose, "trainer.max_epochs=1"), data)
    folder = save_model(backend, tmp_path / "model", data.info, data.preprocessing)
    meta_path = folder / "mnistfw_model.json"
    good = meta_path.read_text()
    cases = {
        "[1, 2]": "not an object",
        "{": "is damaged",
        json.dumps({**json.loads(good), "format_version": "2"}): "not a whole number",
        json.dumps({k: v for k, v in json.loads(good).items() if k != "settings"}): "'settings' is missing",
        json.dumps({**json.loads(good), "data": {"name": "x"}}): "data description is incomplete",
        json.dumps({**json.loads(good), "format_version": 1}): "older mnistfw",
    }
    for text, fragment in cases.items():
        meta_path.write_text(text)
        with pytest.raises(ModelFormatError, match=fragment) as info:
            load_model(folder)
        assert "\n" not in str(info.value)
    meta_path.write_text(good)
    weights = folder / "model.pt"
    weights.write_bytes(b"")  # what an interrupted copy leaves
    with pytest.raises(ModelFormatError, match="is empty"):
        load_model(folder)

    import torch

    class Evil:
        def __reduce__(self):  # noqa: ANN204 - would run code if unpickled
            return (print, ("unpickled!",))

    torch.save({"0.weight": Evil()}, weights)
    with pytest.raises(ModelFormatError, match="never unpickles") as info:
        load_model(folder)
    assert "weights_only=False" not in str(info.value)


def test_random_affine_moves_ink_within_its_limits(data) -> None:
    import torch

    from mnistfw.backends.lightning_mlp.lightning_module import RandomAffine

    # One bright pixel in the middle: a pure shift of at most 2 px moves it by at most 2 px
    # and keeps its mass (bilinear weights sum to one away from the border).
    x = torch.zeros(200, 784)
    x[:, 14 * 28 + 14] = 1.0
    torch.manual_seed(0)
    out = RandomAffine((28, 28), shift=2, rotation=0, scale=0)(x).view(-1, 28, 28)
    rows, cols = torch.arange(28.0).view(1, 28, 1), torch.arange(28.0).view(1, 1, 28)
    mass = out.sum((1, 2))
    dy, dx = (out * rows).sum((1, 2)) / mass - 14, (out * cols).sum((1, 2)) / mass - 14
    torch.testing.assert_close(mass, torch.ones(200))
    assert dx.abs().max() <= 2 + 1e-4 and dy.abs().max() <= 2 + 1e-4
    assert dx.std() > 0.5 and dy.std() > 0.5  # drawn per image, not one shift for the batch

    # Standardised inputs go through pixel space and back: no distortion is the identity, and
    # the padding is background (the per-pixel mean), not zero in standardised units.
    std_data = load_dataset({"source": "sample", "standardize": True, "split": {"val": 0.1, "test": 0.1}}, seed=0)
    xs = torch.from_numpy(std_data.train.x[:16])
    pre = std_data.preprocessing
    same = RandomAffine((28, 28), 0, 0, 0, pre.mean, pre.std)(xs)
    torch.testing.assert_close(same, xs, atol=1e-4, rtol=0)
    moved = RandomAffine((28, 28), 0, 90, 0, pre.mean, pre.std)(xs)
    assert not torch.allclose(moved, xs, atol=1e-2)
    pixels = moved * torch.tensor(pre.std) + torch.tensor(pre.mean)
    assert float(pixels.min()) > -1e-4 and float(pixels.max()) < 1 + 1e-4
    corner = pixels.view(-1, 28, 28)[:, 0, 0]
    torch.testing.assert_close(corner, torch.zeros(16), atol=1e-4, rtol=0)


def test_augmented_training_is_seeded_and_differs_from_plain(compose, data) -> None:
    aug = ("model.augment.shift=2", "model.augment.rotation=10", "model.augment.scale=0.1", "seed=5")
    a, hist_a = _fit(_cfg(compose, *aug), data)
    b, hist_b = _fit(_cfg(compose, *aug), data)
    plain, hist_plain = _fit(_cfg(compose, "seed=5"), data)
    assert [h["train/loss"] for h in hist_a] == [h["train/loss"] for h in hist_b]
    assert [h["train/loss"] for h in hist_a] != [h["train/loss"] for h in hist_plain]
    np.testing.assert_array_equal(a.predict_proba(data.test.x), b.predict_proba(data.test.x))


def test_max_norm_bounds_every_hidden_unit_and_is_off_when_null(compose, data) -> None:
    import torch

    def row_norms(backend) -> list[torch.Tensor]:  # noqa: ANN001
        return [m.weight.detach().norm(dim=1) for m in backend.net if isinstance(m, torch.nn.Linear)]

    bounded, _ = _fit(_cfg(compose, "model.hidden=[64,32]", "model.max_norm=0.3", "optimizer.lr=0.01"), data)
    free, _ = _fit(_cfg(compose, "model.hidden=[64,32]", "optimizer.lr=0.01"), data)
    *hidden, output = row_norms(bounded)
    assert all(float(n.max()) <= 0.3 + 1e-5 for n in hidden)
    assert any(float(n.max()) > 0.3 for n in row_norms(free)[:-1])  # without it the norms grow past 0.3
    assert float(output.max()) > 0.3  # the output layer is not constrained


def test_best_mlp_experiment_composes(compose) -> None:  # noqa: ANN001 - the conftest fixture
    """experiment=best_mlp is the sweep's best trial trained longer, on full MNIST only."""
    from mnistfw.app.run_spec import build_run_spec

    cfg = compose(["experiment=best_mlp"])
    spec = build_run_spec(cfg, None)
    s, t = spec.settings, spec.context.training
    assert (s.backend, s.hidden, s.init) == ("lightning_mlp", [1536, 1536, 1280], "torch")  # as in the sweep
    assert 0.1 <= s.dropout <= 0.5 and s.augment.shift > 0 and s.augment.rotation > 0
    assert (t.optimizer.name, t.scheduler.name, t.trainer.batch_size) == ("adamw", "cosine", 128)
    assert t.trainer.max_epochs > 20  # longer than the sweep's trials
    assert cfg.data.source == "full"



def test_plain_steps_train_exactly_as_lightnings_wrappers(data) -> None:
    """Without hooks to dispatch, steps skip Lightning's wrappers: same weights, same global_step;
    a callback in the step's hooks puts the wrappers back and is called on every step."""
    import pytorch_lightning as pl
    import torch

    from mnistfw.backends.lightning_mlp.lightning_module import MLPModule, StepBatches, TensorBatches

    class CountSteps(pl.Callback):
        calls = 0

        def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
            CountSteps.calls += 1

    def fit(callbacks: list[pl.Callback]) -> tuple[MLPModule, pl.Trainer]:
        torch.manual_seed(0)
        module = MLPModule(784, 10, [32], "relu", False, 0.1, {"name": "adam", "lr": 1e-3},
                           {"name": "none"}, "torch", max_epochs=2)
        batches = TensorBatches(torch.from_numpy(data.train.x), torch.from_numpy(data.train.y), 100,
                                shuffle=True, seed=0)
        trainer = pl.Trainer(max_epochs=2, accelerator="cpu", devices=1, logger=False, callbacks=callbacks,
                             enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                             num_sanity_val_steps=0)
        trainer.fit(module, train_dataloaders=StepBatches(batches, 1))
        return module, trainer

    plain, plain_trainer = fit([])
    wrapped, wrapped_trainer = fit([CountSteps()])
    steps = 2 * -(-len(data.train) // 100)
    assert plain._plain_steps and not wrapped._plain_steps
    assert plain_trainer.global_step == wrapped_trainer.global_step == steps == CountSteps.calls
    for a, b in zip(plain.parameters(), wrapped.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def _flushes_denormals() -> bool:
    import torch

    return float(torch.tensor([1e-39], dtype=torch.float32) * 1.0) == 0.0


@pytest.mark.parametrize("flush", [True, False])
def test_flush_denormal_sets_the_cpus_denormal_mode_for_the_fit(compose, data, flush: bool) -> None:
    import torch

    torch.set_flush_denormal(not flush)  # the opposite state before the fit
    try:
        _fit(_cfg(compose, f"trainer.flush_denormal={str(flush).lower()}", "trainer.max_epochs=1"), data)
        assert _flushes_denormals() is flush
    finally:
        torch.set_flush_denormal(False)


def test_batches_per_step_trains_the_same_steps_on_the_same_batches(compose, data) -> None:
    """Several mini-batches per Lightning step: the same optimiser steps in the same order (same
    weights, history and global_step), fewer Lightning steps."""
    runs = {}
    for per_step in (1, 3):
        backend, history = _fit(_cfg(compose, f"trainer.batches_per_step={per_step}", "trainer.batch_size=64"), data)
        runs[per_step] = (backend.predict_proba(data.test.x), history)
    np.testing.assert_array_equal(runs[1][0], runs[3][0])
    assert runs[1][1] == runs[3][1]


def test_limit_train_batches_counts_mini_batches_whatever_the_batches_per_step(compose, data) -> None:
    import pytorch_lightning as pl

    seen = {}

    class Count(pl.Callback):
        def on_train_end(self, trainer, pl_module) -> None:
            seen["global_step"] = trainer.global_step
            seen["lightning_steps"] = trainer.fit_loop.epoch_loop.batch_progress.total.completed

    from mnistfw.backends.lightning_mlp import lightning_backend

    original = lightning_backend.LightningMLPBackend._callbacks
    lightning_backend.LightningMLPBackend._callbacks = lambda self, training: [*original(self, training), Count()]
    try:
        _fit(_cfg(compose, "trainer.batches_per_step=4", "trainer.limit_train_batches=5", "trainer.batch_size=32"),
             data)
    finally:
        lightning_backend.LightningMLPBackend._callbacks = original
    assert seen == {"global_step": 2 * 5, "lightning_steps": 2 * 2}  # 2 epochs of 5 batches, in steps of 4 + 1
