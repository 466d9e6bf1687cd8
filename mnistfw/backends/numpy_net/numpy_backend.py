"""``model=numpy_net``: the :class:`~mnistfw.backends.base.Backend` adapter around the NumPy network.

It builds a :class:`Network` from the validated ``model`` section and a :class:`Trainer` from
the shared training settings, seeds both from the run's ``seed``, checkpoints the best epoch
into ``<run_dir>/checkpoints/best.npz``, and saves/loads the weights as ``weights.npz`` (read
back with ``allow_pickle=False``).
"""

from __future__ import annotations

import contextlib
import logging
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from mnistfw.backends.base import Backend, EpochCallback, History
from mnistfw.backends.numpy_net.augment import RandomAffine
from mnistfw.backends.numpy_net.network import Network
from mnistfw.backends.numpy_net.numpy_settings import NumpyNetSettings
from mnistfw.backends.numpy_net.optimizers import OPTIMIZERS
from mnistfw.backends.numpy_net.trainer import Trainer
from mnistfw.backends.threads import AUTO, ThreadGovernor
from mnistfw.config.validation import require
from mnistfw.config.vocabulary import SHARED_TRAINER_KEYS, Reads, Training, initial_scheme
from mnistfw.data.dataset import Dataset
from mnistfw.errors import ModelFormatError
from mnistfw.io import atomic_path

log = logging.getLogger(__name__)

WEIGHTS_FILE = "weights.npz"
#: Stored inside every weights file so that a file of another kind is recognised as such.
FORMAT_TAG = "mnistfw.numpy_net/1"
#: ``trainer.precision`` -> the NumPy dtype it means.
DTYPES = {"32-true": "float32", "64-true": "float64"}


class NumpyNetBackend(Backend):
    """A from-scratch NumPy multi-layer perceptron (see :mod:`mnistfw.backends.numpy_net`)."""

    name: ClassVar[str] = "numpy_net"
    settings_schema: ClassVar[type] = NumpyNetSettings
    reads: ClassVar[Reads] = Reads(
        trainer=SHARED_TRAINER_KEYS,
        optimizers=OPTIMIZERS,
        schedulers=("none", "cosine", "step", "exponential", "plateau"),
    )

    def __init__(self, settings: Any, context: Any, **sections: Any) -> None:
        super().__init__(settings, context, **sections)
        self.net: Network | None = None
        #: BLAS threads for predicting: the count training ended with, else chosen at the first call.
        self._predict_threads: int | None = None

    @classmethod
    def check_training(cls, training: Training) -> None:
        require(training.trainer.precision in DTYPES, "trainer.precision",
                f"{cls.name} computes in float32 or float64: use 32-true or 64-true, "
                f"not {training.trainer.precision}")

    # -- the network this backend trains (overridden by softmax regression) -----------------
    def hidden_layers(self) -> list[int]:
        return list(self.settings.hidden)

    def build_network(self, n_features: int, n_classes: int, dtype: str, dropout: float | None = None) -> Network:
        """An untrained network of this backend's shape."""
        s = self.settings
        return Network([n_features, *self.hidden_layers(), n_classes], s.activation, leaky_slope=s.leaky_slope,
                       dropout=s.dropout if dropout is None else dropout, dtype=dtype)

    def shuffles(self) -> bool:
        """Whether the training rows are reshuffled every epoch."""
        return bool(self.settings.shuffle)

    def initialize(self, net: Network, rng: np.random.Generator) -> None:
        net.initialize(initial_scheme(self.settings.init, self.settings.activation), rng)

    def max_norm(self) -> float | None:
        """The bound on each hidden unit's incoming weight norm (``model.max_norm``); None: off (0 or null)."""
        return self.settings.max_norm or None  # 0 is off too

    def augmenter(self, data: Dataset, rng: np.random.Generator) -> RandomAffine | None:
        """The distortion of training batches ``model.augment`` asks for; None when it is all zeros."""
        augment = self.settings.augment
        if not augment.enabled:
            return None
        pre = data.preprocessing
        return RandomAffine(data.info.image_shape, augment, rng, pre.mean, pre.std)

    # -- training ---------------------------------------------------------------------------
    def fit(self, data: Dataset, on_epoch_end: EpochCallback) -> History:
        """Train on ``data.train``, scoring ``data.val`` after every validating epoch."""
        training = self.context.train
        init_rng, shuffle_rng, dropout_rng, augment_rng = (
            np.random.default_rng(child) for child in np.random.SeedSequence(self.context.seed).spawn(4)
        )
        net = self.build_network(data.info.n_features, data.info.n_classes, DTYPES[training.trainer.precision])
        self.initialize(net, init_rng)
        net.rng = dropout_rng
        self.net = net
        x, y = _inputs(data.train.x, net.dtype), np.asarray(data.train.y, dtype=np.int64)
        x_val, y_val = _inputs(data.val.x, net.dtype), np.asarray(data.val.y, dtype=np.int64)
        save_best = self._save_checkpoint if self.context.run_dir is not None else None
        t, opt = training.trainer, training.optimizer
        log.info("%s: layers %s, %s lr=%g, batch %s, %d epochs, %d parameters", self.name, net.sizes, opt.name,
                 opt.lr, t.batch_size or "full", t.max_epochs, net.params.size)
        trainer = Trainer(net, training, shuffle_rng, self.shuffles(), augment=self.augmenter(data, augment_rng),
                          max_norm=self.max_norm())
        with self._threads(t.num_threads) as governor:
            history = trainer.fit(x, y, x_val, y_val, governor.wrap(on_epoch_end), save_best)
            self._predict_threads = governor.current
            return history

    def _save_checkpoint(self, epoch: int) -> None:
        assert self.context.run_dir is not None and self.net is not None
        write_weights(self.context.run_dir / "checkpoints" / "best.npz", self.net, extra={"epoch": np.array(epoch)})

    @staticmethod
    @contextlib.contextmanager
    def _threads(num_threads: int | str) -> Iterator[ThreadGovernor]:
        """BLAS threads from ``num_threads`` (``auto``: the idle cores); the old counts come back after."""
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=None, user_api="blas"):  # restores the original counts on exit
            yield ThreadGovernor(num_threads, lambda k: threadpool_limits(k, user_api="blas"))

    # -- inference --------------------------------------------------------------------------
    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Softmax probabilities ``(n, n_classes)`` for preprocessed rows ``x``."""
        if self.net is None:
            raise RuntimeError(f"{self.name}: call fit() or load() before predicting")
        if self._predict_threads is None:  # a loaded model: the idle cores, chosen once
            with self._threads(AUTO) as governor:
                self._predict_threads = governor.current
        with self._threads(self._predict_threads):
            return self.net.predict_proba(_inputs(x, self.net.dtype))

    def first_layer_weights(self) -> np.ndarray | None:
        """``W0`` as ``(n_features, n_units)``."""
        return None if self.net is None else self.net.weights[0].copy()

    def n_parameters(self) -> int | None:
        return None if self.net is None else int(self.net.params.size)

    # -- save / restore ---------------------------------------------------------------------
    def save(self, directory: Path) -> dict[str, Any]:
        """Write ``weights.npz``; return the architecture for ``mnistfw_model.json``."""
        if self.net is None:
            raise RuntimeError(f"{self.name}: nothing to save, call fit() first")
        write_weights(Path(directory) / WEIGHTS_FILE, self.net)
        return {"layers": self.net.sizes, "dtype": self.net.dtype.name, "weights_file": WEIGHTS_FILE}

    def restore(self, directory: Path, architecture: dict[str, Any]) -> None:
        """Read ``weights.npz`` and check it against the saved architecture."""
        path = Path(directory) / str(architecture.get("weights_file", WEIGHTS_FILE))
        if not path.is_file():
            raise ModelFormatError(f"{directory} has no {path.name}: it is not a {self.name} model folder")
        arrays = read_weights(path)
        sizes = [int(n) for n in arrays["layers"]]
        saved = architecture.get("layers")
        if saved is None or [int(n) for n in saved] != sizes or sizes[1:-1] != self.hidden_layers():
            raise ModelFormatError(
                f"{path} holds layers {sizes} but {Path(directory).name}/mnistfw_model.json says {saved}; "
                "the folder's files do not belong together: re-save the model"
            )
        net = self.build_network(sizes[0], sizes[-1], str(architecture.get("dtype", "float32")), dropout=0.0)
        net.load_state(arrays)
        self.net = net


def _inputs(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``x`` as a C-contiguous 2-D array of the network's dtype (no copy when it already is one)."""
    x = np.asarray(x)
    return np.ascontiguousarray(x.reshape(len(x), -1), dtype=dtype)


def write_weights(path: Path, net: Network, extra: dict[str, np.ndarray] | None = None) -> None:
    """Save the network's arrays (``W0``, ``b0``, ...) plus its layer sizes and format tag, atomically."""
    arrays = {"format": np.array(FORMAT_TAG), "layers": np.array(net.sizes, dtype=np.int64), **net.state()}
    arrays.update(extra or {})
    with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


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
