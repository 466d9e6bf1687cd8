"""The shared training vocabulary means the same for every backend that trains in epochs.

Every optimizer and scheduler option trains each gradient backend; the learning rate of each
epoch, early stopping and the kept epoch follow the same rules in Lightning and NumPy.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import backend_from

from mnistfw.backends.base import StopTraining
from mnistfw.backends.schedules import epoch_lr
from mnistfw.data.dataset import DataInfo, Dataset, Preprocessing, Split

BACKENDS = ["lightning_mlp", "numpy_net", "baseline_logreg"]
QUIET = ["trainer.enable_progress_bar=false", "logger=none"]


@pytest.fixture(scope="module")
def blobs() -> Dataset:
    """Three Gaussian blobs as 4x4 'images': quick to learn, not trivial."""
    rng = np.random.default_rng(0)
    n, d = 600, 16
    centres = rng.normal(0, 1, (3, d))
    y = rng.integers(0, 3, n)
    x = (centres[y] + rng.normal(0, 1.0, (n, d))).astype(np.float32)
    images = np.zeros((n, 4, 4), np.uint8)
    parts = [Split(x[s], y[s].astype(np.int64), images[s]) for s in np.split(np.arange(n), [420, 510])]
    info = DataInfo("blobs", "synthetic", (4, 4), 3, ["a", "b", "c"], {"train": 420})
    return Dataset(*parts, info=info, preprocessing=Preprocessing(scale=1.0))


def _model(backend: str) -> list[str]:
    return [f"model={backend}"] + (["model.hidden=[16]"] if backend != "baseline_logreg" else [])


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw", "rmsprop"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_every_optimizer_trains_every_gradient_backend(blobs: Dataset, backend: str, optimizer: str) -> None:
    lr = {"sgd": 0.1, "adam": 0.01, "adamw": 0.01, "rmsprop": 0.01}[optimizer]
    model = backend_from([*_model(backend), *QUIET, f"optimizer={optimizer}", f"optimizer.lr={lr}",
                          "trainer.max_epochs=3", "trainer.batch_size=32"])
    history = model.fit(blobs, lambda e, m: None)
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[-1]["train/loss"] < history[0]["train/loss"]
    assert history[-1]["val/accuracy"] > 0.6


@pytest.mark.parametrize("scheduler", ["none", "cosine", "step", "exponential"])
def test_epoch_schedules_give_the_same_rates_in_lightning_and_numpy(blobs: Dataset, scheduler: str) -> None:
    """The ``lr`` each backend reports per epoch is the shared schedule's (warm-up included)."""
    extra = {"cosine": ["scheduler.warmup_epochs=1", "scheduler.min_lr=0.001"], "step": ["scheduler.step_size=2"],
             "exponential": ["scheduler.gamma=0.5"], "none": []}[scheduler]
    overrides = [*QUIET, f"scheduler={scheduler}", *extra, "optimizer=sgd", "optimizer.lr=0.1",
                 "trainer.max_epochs=5", "trainer.batch_size=64"]
    rates = {}
    for backend in ("lightning_mlp", "numpy_net"):
        history = backend_from([*_model(backend), *overrides]).fit(blobs, lambda e, m: None)
        rates[backend] = [h["lr"] for h in history]
    training = backend_from([*_model("numpy_net"), *overrides]).context.training
    expected = [epoch_lr(training.scheduler, 0.1, e, 5) for e in range(5)]
    np.testing.assert_allclose(rates["lightning_mlp"], expected, rtol=1e-6)
    np.testing.assert_allclose(rates["numpy_net"], expected, rtol=1e-6)
    if scheduler != "none":
        assert len(set(np.round(expected, 8))) > 1


@pytest.mark.parametrize("backend", ["lightning_mlp", "numpy_net"])
def test_plateau_schedule_lowers_the_rate_when_validation_stalls(blobs: Dataset, backend: str) -> None:
    # With a monitor that never improves (train/loss maximised), the rate halves after each patience+1 epochs.
    history = backend_from([*_model(backend), *QUIET, "scheduler=plateau", "scheduler.patience=0",
                            "scheduler.monitor=train/loss", "scheduler.mode=max", "optimizer=sgd", "optimizer.lr=0.1",
                            "trainer.max_epochs=4"]).fit(blobs, lambda e, m: None)
    rates = [h["lr"] for h in history]
    assert rates[0] == pytest.approx(0.1) and rates[-1] < rates[0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_early_stopping_stops_every_backend_the_same_way(blobs: Dataset, backend: str) -> None:
    # With small plain SGD steps train/loss falls every epoch, so watched with mode=max it never
    # improves after epoch 1: with patience 2 every backend stops after epoch 3.
    model = backend_from([*_model(backend), *QUIET, "trainer.max_epochs=8", "trainer.early_stopping.patience=2",
                          "trainer.early_stopping.monitor=train/loss", "trainer.early_stopping.mode=max",
                          "optimizer=sgd", "optimizer.lr=0.02", "scheduler=none"])
    from mnistfw.backends.monitoring import EarlyStopping

    stopper = EarlyStopping(model.context.training.trainer.early_stopping, model.context.training.trainer.min_epochs)
    history = model.fit(blobs, stopper)
    assert len(history) == 3


def test_stop_training_is_honoured_by_lightning(blobs: Dataset) -> None:
    seen: list[int] = []

    def stop_at_two(epoch: int, metrics: object) -> None:
        seen.append(epoch)
        if epoch == 2:
            raise StopTraining

    history = backend_from([*_model("lightning_mlp"), *QUIET, "trainer.max_epochs=6"]).fit(blobs, stop_at_two)
    assert seen == [1, 2] and len(history) == 2


@pytest.mark.parametrize("backend", ["lightning_mlp", "numpy_net"])
def test_validation_cadence(blobs: Dataset, backend: str) -> None:
    seen: list[dict] = []
    backend_from([*_model(backend), *QUIET, "trainer.max_epochs=4", "trainer.check_val_every_n_epoch=2"]).fit(
        blobs, lambda e, m: seen.append(dict(m)))
    assert ["val/accuracy" in m for m in seen] == [False, True, False, True]


def test_weight_decay_applies_to_weight_matrices_only_in_both_gradient_backends() -> None:
    pytest.importorskip("torch")
    from mnistfw.backends.lightning_mlp.lightning_module import build_mlp, make_optimizer
    from mnistfw.backends.numpy_net.network import Network
    from mnistfw.config.vocabulary import OptimizerSettings

    settings = OptimizerSettings(name="sgd", lr=0.1, momentum=0.0, nesterov=False, weight_decay=0.5)
    net = build_mlp(4, 3, [5], "relu", False, 0.0, "torch")
    opt = make_optimizer(settings, net)
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] == 0.5 for p in g["params"]}
    assert decayed == {id(p) for p in net.parameters() if p.ndim == 2}
    # NumPy: the penalty's gradient reaches the weights, not the biases.
    numpy_net = Network([4, 5, 3], "relu", dtype="float64")
    numpy_net.initialize("he", np.random.default_rng(0))
    numpy_net.forward(np.zeros((2, 4)), training=True)
    numpy_net.backward(np.array([0, 1]), 0.0)
    plain = numpy_net.grads.copy()
    numpy_net.forward(np.zeros((2, 4)), training=True)
    numpy_net.backward(np.array([0, 1]), 0.5)
    delta = numpy_net.grads - plain
    np.testing.assert_allclose(delta[: numpy_net.n_weights], 0.5 * numpy_net.params[: numpy_net.n_weights])
    assert not delta[numpy_net.n_weights :].any()


@pytest.mark.parametrize(("init", "activation", "std"), [
    ("auto", "relu", lambda fan_in, fan_out: np.sqrt(2 / fan_in)),
    ("auto", "selu", lambda fan_in, fan_out: np.sqrt(1 / fan_in)),
    ("auto", "tanh", lambda fan_in, fan_out: np.sqrt(2 / (fan_in + fan_out))),
    ("torch", "relu", lambda fan_in, fan_out: np.sqrt(1 / (3 * fan_in))),  # uniform +-1/sqrt(fan_in)
])
def test_model_init_means_the_same_in_both_mlp_backends(init: str, activation: str, std) -> None:  # noqa: ANN001
    """model.init draws every layer (the output layer too) from the same distribution in both backends."""
    import torch

    from mnistfw.backends.lightning_mlp.lightning_module import build_mlp
    from mnistfw.backends.numpy_net.layers import init_layer
    from mnistfw.config.vocabulary import initial_scheme

    torch.manual_seed(0)
    sizes = [(784, 512), (512, 10)]
    linears = [m for m in build_mlp(784, 10, [512], activation, False, 0.0, init) if isinstance(m, torch.nn.Linear)]
    rng = np.random.default_rng(0)
    for linear, (fan_in, fan_out) in zip(linears, sizes, strict=True):
        w, b = np.empty((fan_in, fan_out), np.float32), np.empty(fan_out, np.float32)
        init_layer(w, b, initial_scheme(init, activation), rng)
        torch_w, torch_b = linear.weight.detach().numpy(), linear.bias.detach().numpy()
        for weights in (torch_w, w):
            assert abs(weights.mean()) < 0.1 * std(fan_in, fan_out)
            assert weights.std() == pytest.approx(std(fan_in, fan_out), rel=0.05)
        if init == "torch":  # biases drawn too, within +-1/sqrt(fan_in)
            for bias in (torch_b, b):
                assert 0 < np.abs(bias).max() <= 1 / np.sqrt(fan_in)
            assert np.abs(w).max() <= 1 / np.sqrt(fan_in)
        else:
            assert not torch_b.any() and not b.any()
