"""Baselines to compare every network against, through the same backend protocol.

* ``model=baseline_majority``: always predicts the class most frequent in the training split,
  with the training class frequencies as its probabilities (the floor any model must beat).
* ``model=baseline_logreg``: softmax (multinomial logistic) regression, which is the NumPy
  network with no hidden layer: the same optimisers, schedules, training loop and files, so
  it takes the shared ``trainer``/``optimizer``/``scheduler`` settings exactly as ``numpy_net``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from mnistfw.backends.base import Backend, EpochCallback, History
from mnistfw.backends.numpy_net.augment import RandomAffine
from mnistfw.backends.numpy_net.network import Network
from mnistfw.backends.numpy_net.numpy_backend import NumpyNetBackend
from mnistfw.config.validation import Checked, Constraints, Options
from mnistfw.data.dataset import Dataset
from mnistfw.errors import ModelFormatError
from mnistfw.io import atomic_path
from mnistfw.metrics import epoch_metrics

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- majority

PRIOR_FILE = "prior.npy"


@dataclass
class MajoritySettings(Checked):
    """``model=baseline_majority``: nothing to tune."""

    backend: str

    constraints: ClassVar[Constraints] = {"backend": Options("baseline_majority")}


class MajorityBackend(Backend):
    """Predicts the training split's most frequent class; probabilities = class frequencies."""

    name: ClassVar[str] = "baseline_majority"
    settings_schema: ClassVar[type] = MajoritySettings

    def __init__(self, settings: Any, context: Any, **sections: Any) -> None:
        super().__init__(settings, context, **sections)
        self.prior: np.ndarray | None = None

    def fit(self, data: Dataset, on_epoch_end: EpochCallback) -> History:
        counts = np.bincount(data.train.y, minlength=data.info.n_classes).astype(np.float64)
        self.prior = counts / max(counts.sum(), 1.0)
        metrics = epoch_metrics("train", data.train.y, self.predict_proba(data.train.x))
        if len(data.val):
            metrics.update(epoch_metrics("val", data.val.y, self.predict_proba(data.val.x)))
        log.info("majority class %s (%.1f %% of training rows)", int(self.prior.argmax()), 100 * self.prior.max())
        on_epoch_end(1, metrics)
        return [{"epoch": 1, **metrics}]

    def n_parameters(self) -> int | None:
        return None if self.prior is None else int(self.prior.size)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        if self.prior is None:
            raise RuntimeError("baseline_majority: call fit() or load() before predicting")
        return np.tile(self.prior.astype(np.float32), (len(x), 1))

    def save(self, directory: Path) -> dict[str, Any]:
        with atomic_path(Path(directory) / PRIOR_FILE, suffix=".npy") as tmp, open(tmp, "wb") as fh:
            np.save(fh, np.asarray(self.prior, dtype=np.float64))
        return {"n_classes": len(self.prior), "majority_class": int(self.prior.argmax())}  # type: ignore[arg-type]

    def restore(self, directory: Path, architecture: dict[str, Any]) -> None:
        path = Path(directory) / PRIOR_FILE
        try:
            prior = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise ModelFormatError(f"{path} cannot be read ({exc}); it is not a saved {self.name} model") from None
        if prior.ndim != 1 or prior.size != architecture.get("n_classes") or not np.isclose(prior.sum(), 1.0):
            raise ModelFormatError(f"{path} does not hold class frequencies for "
                                   f"{architecture.get('n_classes')} classes; the file is damaged")
        self.prior = prior


# --------------------------------------------------------------------------- logistic regression


@dataclass
class LogRegSettings(Checked):
    """``model=baseline_logreg``: the network has no hidden layer, so there is nothing else to choose."""

    backend: str

    constraints: ClassVar[Constraints] = {"backend": Options("baseline_logreg")}


class LogRegBackend(NumpyNetBackend):
    """Multinomial logistic regression ``softmax(x W + b)``: the NumPy network without hidden layers."""

    name: ClassVar[str] = "baseline_logreg"
    settings_schema: ClassVar[type] = LogRegSettings
    #: Its only weight matrix maps pixels to classes (weight plots label units by class).
    first_layer_is_output: ClassVar[bool] = True

    def hidden_layers(self) -> list[int]:
        return []

    def build_network(self, n_features: int, n_classes: int, dtype: str, dropout: float | None = None) -> Network:
        return Network([n_features, n_classes], dtype=dtype)

    def shuffles(self) -> bool:
        return True

    def initialize(self, net: Network, rng: np.random.Generator) -> None:
        net.params[:] = 0  # the loss is convex: start from zero, as is usual for softmax regression

    def max_norm(self) -> float | None:
        return None  # no hidden units to constrain

    def augmenter(self, data: Dataset, rng: np.random.Generator) -> RandomAffine | None:
        return None  # the baseline trains on the images as they are
