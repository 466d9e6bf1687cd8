"""``model=numpy_net``: the :class:`~mnistfw.backends.base.Backend` adapter around the NumPy network.

It turns the validated config into a :class:`Network` and a :class:`Trainer`, seeds them from
the run's top-level ``seed``, checkpoints the best epoch into ``<run_dir>/checkpoints/best.npz``,
and saves/loads the weights as ``weights.npz`` (read back with ``allow_pickle=False``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from mnistfw.backends.base import Backend, EpochCallback, History
from mnistfw.backends.numpy_net.layers import default_init
from mnistfw.backends.numpy_net.network import Network
from mnistfw.backends.numpy_net.numpy_settings import EPOCH_METRICS, NumpyNetConfig
from mnistfw.backends.numpy_net.trainer import Trainer
from mnistfw.config.validation import validate_section
from mnistfw.data.dataset import Dataset
from mnistfw.errors import ConfigError, ModelFormatError

log = logging.getLogger(__name__)

WEIGHTS_FILE = "weights.npz"
#: Stored inside every weights file so that a file of another kind is recognised as such.
FORMAT_TAG = "mnistfw.numpy_net/1"


class NumpyNetBackend(Backend):
    """A from-scratch NumPy multi-layer perceptron (see :mod:`mnistfw.backends.numpy_net`)."""

    name = "numpy_net"
    config_schema = NumpyNetConfig

    def __init__(self, cfg: Any, run_dir: Path | None = None) -> None:
        super().__init__(cfg, run_dir)
        self.settings: NumpyNetConfig = validate_section(cfg.model, NumpyNetConfig, "model", "model=numpy_net")
        self.seed = int(cfg.get("seed") or 0)
        self.objective = str(cfg.get("objective") or "")
        self.net: Network | None = None

    # -- training ---------------------------------------------------------------------------
    def fit(self, data: Dataset, on_epoch_end: EpochCallback) -> History:
        """Train on ``data.train``, scoring ``data.val`` after every epoch."""
        s = self.settings
        has_val = len(data.val) > 0
        stopper = s.early_stopping
        if stopper and stopper.patience and stopper.monitor.startswith("val/") and not has_val:
            raise ConfigError(
                f"model.early_stopping.monitor: {stopper.monitor} needs a validation split; "
                "set data.split.val > 0 or model.early_stopping.patience=null"
            )
        init_rng, shuffle_rng, dropout_rng = (
            np.random.default_rng(child) for child in np.random.SeedSequence(self.seed).spawn(3)
        )
        sizes = [data.info.n_features, *s.hidden, data.info.n_classes]
        net = Network(sizes, s.activation, leaky_slope=s.leaky_slope, dropout=s.dropout, dtype=s.dtype)
        net.initialize(default_init(s.activation) if s.init == "auto" else s.init, init_rng)
        net.rng = dropout_rng
        self.net = net

        x, y = _inputs(data.train.x, net.dtype), np.asarray(data.train.y, dtype=np.int64)
        x_val, y_val = _inputs(data.val.x, net.dtype), np.asarray(data.val.y, dtype=np.int64)
        monitor = self._monitor(has_val)
        save_best = self._save_checkpoint if self.run_dir is not None and monitor else None
        log.info(
            "numpy_net: layers %s, %s, %s lr=%g, batch %s, %d epochs, %d parameters",
            sizes,
            s.activation,
            s.optimizer.name,
            s.optimizer.lr,
            s.batch_size or "full",
            s.epochs,
            net.params.size,
        )
        with self._threads():
            return Trainer(net, s, shuffle_rng).fit(x, y, x_val, y_val, on_epoch_end, monitor, save_best)

    def _monitor(self, has_val: bool) -> str | None:
        """The metric that picks the best epoch: early stopping's, else the run objective, else val/accuracy.

        None when that metric is not measured (a validation metric without a validation split).
        """
        stopper = self.settings.early_stopping
        if stopper:
            monitor = stopper.monitor
        elif self.objective in EPOCH_METRICS:
            monitor = self.objective
        else:
            monitor = "val/accuracy"
        return monitor if has_val or not monitor.startswith("val/") else None

    def _save_checkpoint(self, epoch: int) -> None:
        assert self.run_dir is not None and self.net is not None
        path = self.run_dir / "checkpoints" / "best.npz"
        write_weights(path, self.net, extra={"epoch": np.array(epoch)})

    def _threads(self) -> contextlib.AbstractContextManager[Any]:
        if self.settings.num_threads is None:
            return contextlib.nullcontext()
        from threadpoolctl import threadpool_limits

        return threadpool_limits(self.settings.num_threads, user_api="blas")

    # -- inference --------------------------------------------------------------------------
    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Softmax probabilities ``(n, n_classes)`` for preprocessed rows ``x``."""
        if self.net is None:
            raise RuntimeError("numpy_net: call fit() or load() before predicting")
        with self._threads():
            return self.net.predict_proba(_inputs(x, self.net.dtype))

    def first_layer_weights(self) -> np.ndarray | None:
        """``W0`` as ``(n_features, n_units)``."""
        return None if self.net is None else self.net.weights[0].copy()

    # -- save / load ------------------------------------------------------------------------
    def save(self, directory: Path) -> dict[str, Any]:
        """Write ``weights.npz``; return the architecture for ``mnistfw_model.json``."""
        if self.net is None:
            raise RuntimeError("numpy_net: nothing to save, call fit() first")
        write_weights(Path(directory) / WEIGHTS_FILE, self.net)
        return {
            "layers": self.net.sizes,
            "activation": self.net.activation.name,
            "leaky_slope": self.net.activation.slope,
            "dropout": self.net.dropout,
            "dtype": self.net.dtype.name,
            "weights_file": WEIGHTS_FILE,
        }

    @classmethod
    def load(cls, directory: Path, meta: dict[str, Any]) -> NumpyNetBackend:
        """Rebuild the network saved in ``directory`` and check it against ``meta``."""
        directory = Path(directory)
        if meta.get("backend", cls.name) != cls.name:
            raise ModelFormatError(
                f"{directory} holds a {meta.get('backend')!r} model, not a numpy_net one; "
                f"use model={meta.get('backend')}"
            )
        arch = meta.get("architecture") or {}
        path = directory / str(arch.get("weights_file", WEIGHTS_FILE))
        if not path.is_file():
            raise ModelFormatError(f"{directory} has no {path.name}: it is not a numpy_net model folder")
        arrays = read_weights(path)
        sizes = [int(n) for n in arrays["layers"]]
        if arch.get("layers") is not None and [int(n) for n in arch["layers"]] != sizes:
            raise ModelFormatError(
                f"{path} holds layers {sizes} but {directory.name}/mnistfw_model.json says {list(arch['layers'])}; "
                "the folder's files do not belong together: re-save the model"
            )
        model = {
            "backend": cls.name,
            "hidden": sizes[1:-1],
            "activation": arch.get("activation", "relu"),
            "leaky_slope": arch.get("leaky_slope", 0.01),
            "dtype": arch.get("dtype", "float32"),
            "progress": False,
        }
        try:
            backend = cls(OmegaConf.create({"seed": 0, "model": model}))
        except ConfigError as exc:
            raise ModelFormatError(f"{directory}/mnistfw_model.json has an invalid architecture ({exc})") from None
        net = Network(
            sizes, backend.settings.activation, leaky_slope=backend.settings.leaky_slope, dtype=backend.settings.dtype
        )
        net.load_state(arrays)
        backend.net = net
        return backend


def _inputs(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``x`` as a C-contiguous 2-D array of the network's dtype (no copy when it already is one)."""
    x = np.asarray(x)
    return np.ascontiguousarray(x.reshape(len(x), -1), dtype=dtype)


def write_weights(path: Path, net: Network, extra: dict[str, np.ndarray] | None = None) -> None:
    """Save the network's arrays (``W0``, ``b0``, ...) plus its layer sizes and format tag, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"format": np.array(FORMAT_TAG), "layers": np.array(net.sizes, dtype=np.int64), **net.state()}
    arrays.update(extra or {})
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", suffix=".npz", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def read_weights(path: Path) -> dict[str, np.ndarray]:
    """Read a file written by :func:`write_weights`, refusing anything else (and never unpickling)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise ModelFormatError(f"{path} is a single array, not numpy_net weights")
            names = set(npz.files)
            tag = str(npz["format"]) if "format" in names else None
            if tag != FORMAT_TAG:
                raise ModelFormatError(
                    f"{path} is not a numpy_net weights file (format tag {tag!r}, expected {FORMAT_TAG!r}); "
                    "point at the 'model' folder of a numpy_net run"
                )
            arrays = {name: npz[name] for name in names}
    except ModelFormatError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise ModelFormatError(f"{path} cannot be read as numpy_net weights ({exc}); re-save the model") from None
    sizes = [int(n) for n in np.atleast_1d(arrays["layers"])]
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        w, b = arrays.get(f"W{i}"), arrays.get(f"b{i}")
        if w is None or b is None or w.shape != (n_in, n_out) or b.shape != (n_out,):
            raise ModelFormatError(
                f"{path}: layer {i} should be {n_in}x{n_out} but holds "
                f"{None if w is None else w.shape}; the file is damaged or was edited, re-save the model"
            )
    return arrays
