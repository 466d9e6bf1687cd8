"""The backend protocol and the on-disk model format shared by all backends.

A backend wraps one way of training a classifier (Lightning, NumPy, Spark ML, baselines)::

    backend = BackendClass(cfg, run_dir)            # cfg: the whole validated run config
    history = backend.fit(dataset, on_epoch_end)    # calls on_epoch_end(epoch, metrics) each epoch
    proba = backend.predict_proba(x)                # (n, n_classes) probabilities
    backend.save(folder) -> architecture dict       # files of the backend's own format
    BackendClass.load(folder, meta) -> backend

``on_epoch_end`` is the single seam for history, progress and Optuna pruning: it may raise
(e.g. ``optuna.TrialPruned``) and backends must let that propagate. ``metrics`` uses the keys
``train/loss``, ``train/accuracy``, ``val/loss``, ``val/accuracy`` (those the backend has).

A saved model is a folder holding the backend's files plus ``mnistfw_model.json``::

    {"format_version": 1, "backend": "numpy_net", "mnistfw_version": "...",
     "architecture": {...}, "preprocessing": {...}, "data": {...}}
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from mnistfw import __version__
from mnistfw.data.dataset import DataInfo, Dataset, Preprocessing
from mnistfw.errors import ModelFormatError
from mnistfw.io import atomic_directory, write_json

#: Called once per epoch (or reporting step) with the 1-based epoch and its metrics.
EpochCallback = Callable[[int, Mapping[str, float]], None]
#: One dict per epoch: ``{"epoch": 1, "train/loss": ..., "val/accuracy": ...}``.
History = list[dict[str, float]]

MODEL_META_FILE = "mnistfw_model.json"
FORMAT_VERSION = 1


class Backend(ABC):
    """Base class of every backend; see the module docstring for the protocol."""

    #: The name under which the backend is registered (``model.backend`` in the config).
    name: ClassVar[str]
    #: Dataclass that validates the ``model`` config section.
    config_schema: ClassVar[type]

    def __init__(self, cfg: Any, run_dir: Path | None = None) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir) if run_dir is not None else None

    @abstractmethod
    def fit(self, data: Dataset, on_epoch_end: EpochCallback) -> History:
        """Train on ``data.train`` (validating on ``data.val``) and return the per-epoch history."""

    @abstractmethod
    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities for preprocessed inputs ``x`` of shape ``(n, n_features)``."""

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Most probable class per row."""
        return np.asarray(self.predict_proba(x)).argmax(axis=1)

    @abstractmethod
    def save(self, directory: Path) -> dict[str, Any]:
        """Write the model's files into ``directory``; return its architecture as a JSON-able dict."""

    @classmethod
    @abstractmethod
    def load(cls, directory: Path, meta: dict[str, Any]) -> Backend:
        """Rebuild a model saved by :meth:`save`; ``meta`` is the parsed ``mnistfw_model.json``."""

    def first_layer_weights(self) -> np.ndarray | None:
        """First dense layer's weights as ``(n_features, n_units)``, for weight plots; None if n/a."""
        return None

    def close(self) -> None:
        """Release external resources (e.g. a Spark session). Safe to call twice."""
        return None


@dataclass
class LoadedModel:
    """A model read back from a folder, with what is needed to feed it raw images."""

    backend: Backend
    meta: dict[str, Any]
    preprocessing: Preprocessing
    info: DataInfo

    def predict_proba_raw(self, images: np.ndarray) -> np.ndarray:
        """Probabilities for raw 0-255 images ``(n, h, w)`` or rows ``(n, h*w)``."""
        images = np.asarray(images)
        expected = self.info.n_features
        if images.reshape(len(images), -1).shape[1] != expected:
            raise ModelFormatError(
                f"inputs have {images.reshape(len(images), -1).shape[1]} pixels but the model expects "
                f"{expected} ({self.info.image_shape[0]}x{self.info.image_shape[1]}); resize the inputs"
            )
        return self.backend.predict_proba(self.preprocessing.apply(images))


def save_model(backend: Backend, directory: Path | str, data_info: DataInfo, preprocessing: Preprocessing) -> Path:
    """Save ``backend`` and its metadata into ``directory`` atomically."""
    directory = Path(directory)
    with atomic_directory(directory) as tmp:
        architecture = backend.save(tmp)
        write_json(
            tmp / MODEL_META_FILE,
            {
                "format_version": FORMAT_VERSION,
                "backend": backend.name,
                "mnistfw_version": __version__,
                "architecture": architecture,
                "preprocessing": preprocessing.to_dict(),
                "data": data_info.to_dict(),
            },
        )
    return directory


def read_model_meta(directory: Path | str) -> dict[str, Any]:
    """Parse and check ``mnistfw_model.json`` of a model folder."""
    directory = Path(directory)
    meta_path = directory / MODEL_META_FILE
    if not directory.is_dir():
        raise ModelFormatError(f"model folder {directory} does not exist; pass the 'model' folder of a finished run")
    if not meta_path.is_file():
        raise ModelFormatError(
            f"{directory} is not an mnistfw model folder (no {MODEL_META_FILE}); "
            "pass the 'model' folder of a run trained by mnistfw-train"
        )
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelFormatError(f"{meta_path} is corrupt ({exc}); re-train or restore the run") from exc
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFormatError(
            f"{directory} was saved with model format version {version!r}, newer than this mnistfw "
            f"({__version__}) reads (<= {FORMAT_VERSION}); upgrade mnistfw"
        )
    return meta


def load_model(directory: Path | str, expected_backend: str | None = None) -> LoadedModel:
    """Load any backend's model folder (dispatching on the backend named in its metadata)."""
    from mnistfw import registry

    directory = Path(directory)
    meta = read_model_meta(directory)
    name = meta.get("backend")
    if expected_backend is not None and name != expected_backend:
        raise ModelFormatError(
            f"{directory} holds a '{name}' model, not a '{expected_backend}' one; "
            f"use model={name} or point at a {expected_backend} run"
        )
    backend_cls = registry.load("backend", str(name))
    backend = backend_cls.load(directory, meta)
    data = meta["data"]
    info = DataInfo(
        name=data.get("name", "?"),
        source=data.get("source", "?"),
        image_shape=tuple(data["image_shape"]),
        n_classes=int(data["n_classes"]),
        class_names=list(data["class_names"]),
        sizes=dict(data.get("sizes", {})),
    )
    return LoadedModel(backend, meta, Preprocessing.from_dict(meta["preprocessing"]), info)


def epoch_metrics(prefix: str, y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Per-epoch ``<prefix>/loss`` (cross-entropy), ``/accuracy`` and ``/f1`` (macro), in NumPy.

    Backends call this on their validation predictions each epoch so that any of these can be
    the run's ``objective`` and be reported to an Optuna pruner.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    proba = np.asarray(proba, dtype=np.float64)
    n_classes = proba.shape[1]
    y_pred = proba.argmax(axis=1)
    loss = float(-np.mean(np.log(np.clip(proba[np.arange(len(y_true)), y_true], 1e-12, None))))
    cm = np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    tp = np.diag(cm).astype(np.float64)
    denom = cm.sum(axis=0) + cm.sum(axis=1)
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    present = cm.sum(axis=1) + cm.sum(axis=0) > 0
    return {
        f"{prefix}/loss": loss,
        f"{prefix}/accuracy": float(tp.sum() / max(len(y_true), 1)),
        f"{prefix}/f1": float(f1[present].mean()) if present.any() else 0.0,
    }
