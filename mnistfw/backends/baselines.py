"""Baselines to compare every network against, through the same backend protocol.

* ``model=baseline_majority``: always predicts the class most frequent in the training split,
  with the training class frequencies as its probabilities (the floor any model must beat).
* ``model=baseline_logreg``: softmax (multinomial logistic) regression in NumPy, trained with
  mini-batch gradient descent (momentum or Adam) and L2 weight decay; about 92 % on MNIST.

Both save a ``baseline.npz`` (read back with ``allow_pickle=False``) and report per-epoch
``train/*`` and ``val/*`` metrics, so their runs look like any other in ``metrics.json``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from mnistfw.backends.base import Backend, EpochCallback, History, epoch_metrics
from mnistfw.config.validation import require, validate_section
from mnistfw.data.dataset import Dataset
from mnistfw.errors import ModelFormatError

log = logging.getLogger(__name__)

WEIGHTS_FILE = "baseline.npz"


def _load_npz(directory: Path, keys: tuple[str, ...], backend: str) -> dict[str, np.ndarray]:
    """Read ``baseline.npz`` without unpickling, checking it holds ``keys``."""
    path = Path(directory) / WEIGHTS_FILE
    if not path.is_file():
        raise ModelFormatError(f"{directory} has no {WEIGHTS_FILE}; it is not a saved {backend} model")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (ValueError, OSError) as exc:
        raise ModelFormatError(f"{path} is corrupt or not a plain .npz ({exc}); re-train the model") from None
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise ModelFormatError(f"{path} lacks {', '.join(missing)}; it was not written by {backend}")
    return arrays


def _save_npz(directory: Path, **arrays: np.ndarray) -> None:
    with open(Path(directory) / WEIGHTS_FILE, "wb") as fh:
        np.savez(fh, **arrays)


# --------------------------------------------------------------------------- majority


@dataclass
class MajorityConfig:
    """``model=baseline_majority``: nothing to tune."""

    backend: str = "baseline_majority"


class MajorityBackend(Backend):
    """Predicts the training split's most frequent class; probabilities = class frequencies."""

    name: ClassVar[str] = "baseline_majority"
    config_schema: ClassVar[type] = MajorityConfig

    def __init__(self, cfg: Any, run_dir: Path | None = None, prior: np.ndarray | None = None) -> None:
        super().__init__(cfg, run_dir)
        if cfg is not None:
            validate_section(cfg.model, MajorityConfig, "model", "model=baseline_majority")
        self.prior = prior

    def fit(self, data: Dataset, on_epoch_end: EpochCallback) -> History:
        n_classes = data.info.n_classes
        counts = np.bincount(data.train.y, minlength=n_classes).astype(np.float64)
        self.prior = counts / max(counts.sum(), 1.0)
        metrics = self._metrics("train", data.train.y)
        if len(data.val):
            metrics.update(self._metrics("val", data.val.y))
        on_epoch_end(1, metrics)
        log.info("majority class %s (%.1f %% of training rows)", int(self.prior.argmax()), 100 * self.prior.max())
        return [{"epoch": 1, **metrics}]

    def _metrics(self, prefix: str, y: np.ndarray) -> dict[str, float]:
        return epoch_metrics(prefix, y, self.predict_proba(np.zeros((len(y), 1), dtype=np.float32)))

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        if self.prior is None:
            raise RuntimeError("baseline_majority: call fit() or load() before predicting")
        return np.tile(self.prior.astype(np.float32), (len(x), 1))

    def save(self, directory: Path) -> dict[str, Any]:
        _save_npz(directory, prior=np.asarray(self.prior, dtype=np.float64))
        return {"type": "majority", "n_classes": len(self.prior), "majority_class": int(self.prior.argmax())}

    @classmethod
    def load(cls, directory: Path, meta: dict[str, Any]) -> MajorityBackend:
        arrays = _load_npz(directory, ("prior",), cls.name)
        return cls(None, None, prior=arrays["prior"])


# --------------------------------------------------------------------------- logistic regression


@dataclass
class LogRegConfig:
    """``model=baseline_logreg``: softmax regression trained by mini-batch gradient descent."""

    backend: str = "baseline_logreg"
    epochs: int = 10
    batch_size: int = 256
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    #: BLAS threads while training (null: the library's default). The matrices are small, and
    #: one thread is fastest: on 2 busy cores it is ~30x faster than two threads fighting.
    num_threads: int | None = 1

    def __post_init__(self) -> None:
        require(self.num_threads is None or self.num_threads >= 1, "num_threads", "must be >= 1 or null")
        require(self.epochs >= 1, "epochs", f"must be >= 1, got {self.epochs}")
        require(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")
        require(self.optimizer in ("sgd", "adam"), "optimizer", f"must be sgd or adam, got {self.optimizer!r}")
        require(self.lr > 0, "lr", f"must be > 0, got {self.lr}")
        require(0 <= self.momentum < 1, "momentum", f"must be in [0, 1), got {self.momentum}")
        require(self.weight_decay >= 0, "weight_decay", f"must be >= 0, got {self.weight_decay}")


def _blas_threads(n: int | None) -> contextlib.AbstractContextManager[Any]:
    """Limit the BLAS thread pool to ``n`` threads inside the block (no-op for None)."""
    if n is None:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # comes with scikit-learn; without it, leave the defaults
        return contextlib.nullcontext()
    return threadpool_limits(limits=n, user_api="blas")


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


class LogRegBackend(Backend):
    """Multinomial logistic regression ``softmax(x W + b)`` in float32 NumPy."""

    name: ClassVar[str] = "baseline_logreg"
    config_schema: ClassVar[type] = LogRegConfig
    #: Its only weight matrix maps pixels to classes (weight plots label units by class).
    first_layer_is_output: ClassVar[bool] = True

    def __init__(
        self,
        cfg: Any,
        run_dir: Path | None = None,
        weights: np.ndarray | None = None,
        bias: np.ndarray | None = None,
    ) -> None:
        super().__init__(cfg, run_dir)
        self.params = (
            validate_section(cfg.model, LogRegConfig, "model", "model=baseline_logreg") if cfg is not None else None
        )
        self.seed = int(cfg.get("seed", 0) or 0) if cfg is not None else 0
        self.weights = weights
        self.bias = bias

    def fit(self, data: Dataset, on_epoch_end: EpochCallback) -> History:
        with _blas_threads(self.params.num_threads):  # type: ignore[union-attr]
            return self._fit(data, on_epoch_end)

    def _fit(self, data: Dataset, on_epoch_end: EpochCallback) -> History:
        p: LogRegConfig = self.params  # type: ignore[assignment]
        rng = np.random.default_rng(self.seed)
        x, y = np.ascontiguousarray(data.train.x, dtype=np.float32), data.train.y.astype(np.int64)
        n, d = x.shape
        k = data.info.n_classes
        w = np.zeros((d, k), dtype=np.float32)
        b = np.zeros(k, dtype=np.float32)
        self.weights, self.bias = w, b
        state = [np.zeros_like(w), np.zeros_like(b)]  # momentum / Adam first moment
        second = [np.zeros_like(w), np.zeros_like(b)]  # Adam second moment
        eye = np.eye(k, dtype=np.float32)
        history: History = []
        step = 0
        for epoch in range(1, p.epochs + 1):
            start = time.perf_counter()
            order = rng.permutation(n)
            loss_sum, correct = 0.0, 0
            for lo in range(0, n, p.batch_size):
                idx = order[lo : lo + p.batch_size]
                xb, yb = x[idx], y[idx]
                proba = _softmax(xb @ w + b)
                loss_sum += float(-np.log(np.clip(proba[np.arange(len(yb)), yb], 1e-12, None)).sum())
                correct += int((proba.argmax(axis=1) == yb).sum())
                grad_z = (proba - eye[yb]) / np.float32(len(yb))
                grads = [xb.T @ grad_z + np.float32(p.weight_decay) * w, grad_z.sum(axis=0)]
                step += 1
                for param, grad, m, v in zip((w, b), grads, state, second):
                    if p.optimizer == "sgd":
                        m *= np.float32(p.momentum)
                        m += grad
                        param -= np.float32(p.lr) * m
                    else:
                        m *= np.float32(0.9)
                        m += np.float32(0.1) * grad
                        v *= np.float32(0.999)
                        v += np.float32(0.001) * grad * grad
                        m_hat = m / np.float32(1 - 0.9**step)
                        v_hat = v / np.float32(1 - 0.999**step)
                        param -= np.float32(p.lr) * m_hat / (np.sqrt(v_hat) + np.float32(1e-8))
            metrics = {"train/loss": loss_sum / n, "train/accuracy": correct / n}
            if len(data.val):
                metrics.update(epoch_metrics("val", data.val.y, self.predict_proba(data.val.x)))
            if not np.isfinite(metrics["train/loss"]):
                raise FloatingPointError(
                    f"baseline_logreg: loss became {metrics['train/loss']} at epoch {epoch}; lower model.lr"
                )
            log.info(
                "epoch %d/%d  %s  (%.2f s)",
                epoch,
                p.epochs,
                "  ".join(f"{key}={val:.4f}" for key, val in metrics.items()),
                time.perf_counter() - start,
            )
            on_epoch_end(epoch, metrics)
            history.append({"epoch": epoch, **metrics})
        return history

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        if self.weights is None or self.bias is None:
            raise RuntimeError("baseline_logreg: call fit() or load() before predicting")
        x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
        if x.shape[1] != self.weights.shape[0]:
            raise ModelFormatError(
                f"baseline_logreg: inputs have {x.shape[1]} features, the model was trained on "
                f"{self.weights.shape[0]}"
            )
        return _softmax(x @ self.weights + self.bias)

    def first_layer_weights(self) -> np.ndarray | None:
        return None if self.weights is None else np.asarray(self.weights)

    def save(self, directory: Path) -> dict[str, Any]:
        _save_npz(directory, weights=self.weights, bias=self.bias)
        return {"type": "softmax_regression", "n_features": int(self.weights.shape[0]),
                "n_classes": int(self.weights.shape[1])}

    @classmethod
    def load(cls, directory: Path, meta: dict[str, Any]) -> LogRegBackend:
        arrays = _load_npz(directory, ("weights", "bias"), cls.name)
        w, b = arrays["weights"], arrays["bias"]
        if w.ndim != 2 or b.shape != (w.shape[1],):
            raise ModelFormatError(
                f"{directory}/{WEIGHTS_FILE}: weights {w.shape} and bias {b.shape} do not fit together; "
                "the file is damaged"
            )
        return cls(None, None, weights=w.astype(np.float32), bias=b.astype(np.float32))
