"""Benchmark of the NumPy backend on full MNIST, in one run:

1. seconds per epoch of ``numpy_net`` against a hand-written PyTorch loop on the same
   784-256-128-64-10 ReLU network, batch 128, Adam (lr 1e-3), the same 60,000 training images;
   epochs of the two alternate so that both see the same machine load; medians and their ratio;
2. test accuracy of ``model=numpy_net`` with the shared training defaults (the same
   ``trainer``/``optimizer``/``scheduler`` as the Lightning default), and of the same at batch
   128, ``trainer.batch_size=128 optimizer.lr=1e-3``;
3. validation and test accuracy of the founding setup (``experiment=numpy_founding``).

    MNISTFW_DATA_DIR=../shared/data .venv/bin/python benchmarks/bench_numpy.py [--rounds 5] [--skip-accuracy]

The data is read from ``$MNISTFW_DATA_DIR/mnist`` (default ``../shared/data/mnist``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SIZES = [784, 256, 128, 64, 10]
BATCH = 128
LR = 1e-3


def load_mnist(directory: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The official train and test sets as float32 rows in [0, 1] and int64 labels."""
    from mnistfw.data.idx import read_images, read_labels

    def images(name: str) -> np.ndarray:
        raw = read_images(directory / name)
        return (raw.reshape(len(raw), -1).astype(np.float32)) * np.float32(1 / 255)

    return (
        images("train-images-idx3-ubyte.gz"),
        read_labels(directory / "train-labels-idx1-ubyte.gz").astype(np.int64),
        images("t10k-images-idx3-ubyte.gz"),
        read_labels(directory / "t10k-labels-idx1-ubyte.gz").astype(np.int64),
    )


def run_spec(overrides: list[str]):  # type: ignore[no-untyped-def]
    """The validated run spec of ``mnistfw-train <overrides>`` (nothing is run)."""
    import tempfile

    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from mnistfw.app.run_spec import build_run_spec
    from mnistfw.config.location import config_dir

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, "trainer.enable_progress_bar=false",
                                          f"paths.output_dir={tempfile.mkdtemp()}"])
    return build_run_spec(cfg, None)


def numpy_epoch_runner(x: np.ndarray, y: np.ndarray, threads: int | None):
    """A function running one epoch of the backend's own training loop (Trainer.run_epoch)."""
    from threadpoolctl import threadpool_limits

    from mnistfw.backends.numpy_net.network import Network
    from mnistfw.backends.numpy_net.trainer import Trainer

    spec = run_spec(["model=numpy_net", f"model.hidden={SIZES[1:-1]}", f"trainer.batch_size={BATCH}",
                     "optimizer=adam", f"optimizer.lr={LR}"])
    net = Network(SIZES, "relu")
    net.initialize("he", np.random.default_rng(0))
    trainer = Trainer(net, spec.context.training, np.random.default_rng(1))

    def run() -> float:
        with threadpool_limits(threads, user_api="blas") if threads else contextlib.nullcontext():
            start = time.perf_counter()
            loss, _ = trainer.run_epoch(x, y, LR)
            elapsed = time.perf_counter() - start
        assert np.isfinite(loss)
        return elapsed

    return run


def torch_epoch_runner(x: np.ndarray, y: np.ndarray, threads: int):
    """A function running one epoch of a plain PyTorch loop over pre-shuffled tensor slices."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for n_in, n_out in zip(SIZES[:-1], SIZES[1:]):
        layers += [nn.Linear(n_in, n_out), nn.ReLU()]
    model = nn.Sequential(*layers[:-1])
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    loss_fn = nn.CrossEntropyLoss()
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(0)

    def run() -> float:
        torch.set_num_threads(threads)
        start = time.perf_counter()
        perm = torch.randperm(len(ty), generator=gen)
        xs, ys = tx[perm], ty[perm]
        model.train()
        for i in range(0, len(ys), BATCH):
            loss = loss_fn(model(xs[i : i + BATCH]), ys[i : i + BATCH])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        elapsed = time.perf_counter() - start
        assert torch.isfinite(loss)
        return elapsed

    return run


def time_epochs(x: np.ndarray, y: np.ndarray, rounds: int, numpy_threads: list[int], torch_threads: list[int]) -> None:
    """Time ``rounds`` epochs of each contender, alternating, after one warm-up epoch each."""
    runners = {f"numpy_net, {t} BLAS thread{'s' * (t > 1)}": numpy_epoch_runner(x, y, t) for t in numpy_threads}
    torch_names = [f"torch loop, {t} thread{'s' * (t > 1)}" for t in torch_threads]
    runners.update({name: torch_epoch_runner(x, y, t) for name, t in zip(torch_names, torch_threads)})
    for run in runners.values():  # warm-up (allocations, thread pools)
        run()
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            times[name].append(run())
            print(f"  {name}: {times[name][-1]:.3f} s", flush=True)
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(
        f"\nSeconds per epoch, {len(y):,} images, 784-256-128-64-10 ReLU, batch {BATCH}, Adam lr {LR:g} "
        f"(median of {rounds}, contenders alternating):"
    )
    labels = [f"vs torch {t}T" for t in torch_threads]
    print(f"  {'':28s} {'median':>9s}" + "".join(f"  {label:>12s}" for label in labels))
    for name, med in medians.items():
        ratios = "".join(f"  {med / medians[t]:11.2f}x" for t in torch_names)
        print(f"  {name:28s} {med:7.3f} s{ratios}")


def accuracy_runs(data_dir: Path) -> None:
    from mnistfw.data.loading import load_dataset

    os.environ["MNISTFW_DATA_DIR"] = str(data_dir)
    full = ["data.source=full", "data.download=false"]
    setups = {
        "shared training defaults (model=numpy_net)": ["model=numpy_net", *full],
        "batch 128 (model=numpy_net trainer.max_epochs=20 trainer.batch_size=128 optimizer.lr=1e-3)": [
            "model=numpy_net", "trainer.max_epochs=20", "trainer.batch_size=128", "optimizer.lr=1e-3", *full,
        ],
        "founding setup (experiment=numpy_founding)": ["experiment=numpy_founding", *full],
    }  # fmt: skip
    for title, overrides in setups.items():
        spec = run_spec(overrides)
        data = load_dataset(spec.data, seed=spec.context.seed)
        backend = spec.make_backend()
        start = time.perf_counter()
        history = backend.fit(data, lambda epoch, metrics: None)
        fit_s = time.perf_counter() - start
        test_acc = float(np.mean(backend.predict(data.test.x) == data.test.y))
        val_acc = float(np.mean(backend.predict(data.val.x) == data.val.y))
        t = spec.context.training
        print(
            f"\n{title}: layers {backend.net.sizes}, {t.optimizer.name} lr {t.optimizer.lr:g}, "
            f"batch {t.trainer.batch_size or 'full'}, {len(history)} epochs, train/val/test "
            f"{len(data.train)}/{len(data.val)}/{len(data.test)}"
        )
        print(
            f"  val accuracy {val_acc:.4f}   test accuracy {test_acc:.4f}   fit {fit_s:.1f} s "
            f"({fit_s / len(history):.2f} s/epoch incl. validation)"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed epochs per contender")
    parser.add_argument("--numpy-threads", type=int, nargs="+", default=[1, 2], help="BLAS thread counts to time")
    parser.add_argument("--torch-threads", type=int, nargs="+", default=[1, 2], help="torch thread counts to time")
    parser.add_argument("--skip-timing", action="store_true")
    parser.add_argument("--skip-accuracy", action="store_true")
    args = parser.parse_args()
    data_dir = Path(os.environ.get("MNISTFW_DATA_DIR", REPO.parent / "shared" / "data")).resolve()
    if not (data_dir / "mnist").is_dir():
        print(f"MNIST not found in {data_dir / 'mnist'}; set MNISTFW_DATA_DIR", file=sys.stderr)
        return 2
    print(f"numpy {np.__version__}, {os.cpu_count()} CPUs, data {data_dir / 'mnist'}")
    if not args.skip_timing:
        x, y, _, _ = load_mnist(data_dir / "mnist")
        time_epochs(x, y, args.rounds, args.numpy_threads, args.torch_threads)
    if not args.skip_accuracy:
        accuracy_runs(data_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
