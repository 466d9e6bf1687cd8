"""The backend protocol and the on-disk model format shared by all backends.

A backend wraps one way of training a classifier (Lightning, NumPy, Spark ML, baselines). The
application layer (:mod:`mnistfw.app`) is the only code that reads the raw Hydra config: it
validates the ``model`` section into the backend's :attr:`Backend.settings_schema` and hands the
backend that object plus a :class:`RunContext`::

    backend = BackendClass(settings, context, **sections)   # sections: e.g. spark=SparkConfig
    history = backend.fit(dataset, on_epoch_end)            # calls on_epoch_end(epoch, metrics)
    proba = backend.predict_proba(x)                        # (n, n_classes) probabilities
    architecture = backend.save(folder)                     # files of the backend's own format
    backend = BackendClass.load(folder, meta)               # the one way back

What a backend honours of the shared training vocabulary (``trainer``, ``optimizer``,
``scheduler``) is declared in :attr:`Backend.reads`; the application layer refuses a key the
user set that the backend does not read.

``on_epoch_end`` is the single seam for history, logging, early stopping, trackers and Optuna
pruning. It may raise :class:`StopTraining` (stop now and keep the model: backends end their
loop normally) or anything else (``optuna.TrialPruned``: backends let it propagate). Its
``metrics`` have ``train/loss`` and ``train/accuracy`` every epoch, and ``val/loss``,
``val/accuracy``, ``val/f1`` (:func:`mnistfw.metrics.epoch_metrics`) on epochs that validated.

A saved model is a folder holding the backend's files plus ``mnistfw_model.json``::

    {"format_version": 2, "backend": "numpy_net", "mnistfw_version": "...", "settings": {...},
     "architecture": {...}, "preprocessing": {...}, "data": {...}}
"""

from __future__ import annotations

import json
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from mnistfw import __version__
from mnistfw.config.vocabulary import Reads, Training
from mnistfw.data.dataset import DataInfo, Dataset, Preprocessing
from mnistfw.errors import ModelFormatError
from mnistfw.io import atomic_directory, write_json

#: Called once per epoch (or reporting step) with the 1-based epoch and its metrics.
EpochCallback = Callable[[int, Mapping[str, float]], None]
#: One dict per epoch: ``{"epoch": 1, "train/loss": ..., "val/accuracy": ...}``.
History = list[dict[str, float]]

log = logging.getLogger(__name__)

MODEL_META_FILE = "mnistfw_model.json"
FORMAT_VERSION = 2
#: Rows per forward pass when validating or predicting (all backends).
EVAL_BATCH_SIZE = 1024


class StopTraining(Exception):  # noqa: N818 - a signal, not an error
    """Raised by an epoch callback to end training after this epoch (early stopping)."""


@dataclass(frozen=True)
class RunContext:
    """What a backend needs to know about the run besides its own settings."""

    seed: int
    #: The run folder (checkpoints go in ``run_dir/checkpoints``); None when nothing may be written.
    run_dir: Path | None
    #: The metric names the run returns (``("val/accuracy",)``).
    objective: tuple[str, ...]
    #: The validated ``trainer``/``optimizer``/``scheduler``; None for a model only loaded to predict.
    training: Training | None
    #: A checkpoint to resume training from (``ckpt_path``).
    resume_from: Path | None = None

    @classmethod
    def for_inference(cls) -> RunContext:
        """The context of a model loaded from a folder to evaluate or predict."""
        return cls(seed=0, run_dir=None, objective=(), training=None)

    @property
    def train(self) -> Training:
        """The training settings; only valid while fitting."""
        if self.training is None:
            raise RuntimeError("this model was loaded to predict; train a new one with mnistfw-train")
        return self.training


class Backend(ABC):
    """Base class of every backend; see the module docstring for the protocol."""

    #: The name under which the backend is registered (``model.backend`` in the config).
    name: ClassVar[str]
    #: Dataclass that validates the ``model`` config section.
    settings_schema: ClassVar[type]
    #: What of the shared training vocabulary (and which other top-level keys) it reads.
    reads: ClassVar[Reads] = Reads()
    #: Schemas of the other top-level config sections it reads, by name (``{"spark": SparkConfig}``).
    section_schemas: ClassVar[dict[str, type]] = {}
    #: Whether the first weight matrix maps pixels straight to classes (softmax regression).
    first_layer_is_output: ClassVar[bool] = False
    #: Python packages it needs beyond mnistfw's own, with what to pip install for each.
    requires: ClassVar[dict[str, str]] = {}

    @classmethod
    def check_installed(cls) -> None:
        """One line saying what to install when a package this backend needs is missing."""
        import importlib.util

        from mnistfw.errors import BackendUnavailableError

        for package, install in cls.requires.items():
            if importlib.util.find_spec(package) is None:
                raise BackendUnavailableError(f"model={cls.name} needs the '{package}' package; "
                                              f"pip install '{install}'")

    #: Modules :meth:`warm_up` imports in the background while the data loads (torch, Lightning, ...).
    heavy_modules: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def warm_up(cls) -> threading.Thread | None:
        """Start importing :attr:`heavy_modules` in a background thread: reading the data mostly
        waits on the disk and on zlib, which leave the interpreter free for the imports. Returns
        the thread (None when there is nothing to import)."""
        if not cls.heavy_modules:
            return None
        import importlib

        def load() -> None:
            for module in cls.heavy_modules:
                try:
                    importlib.import_module(module)
                except Exception:  # noqa: BLE001 - the import proper, in fit(), reports it
                    return

        thread = threading.Thread(target=load, name=f"import-{cls.name}", daemon=True)
        thread.start()
        return thread

    def __init__(self, settings: Any, context: RunContext, **sections: Any) -> None:
        self.settings = settings
        self.context = context
        self.sections = sections

    # -- declared checks ------------------------------------------------------------------
    @classmethod
    def check_training(cls, training: Training) -> None:
        """Refuse values of the shared settings this backend cannot honour (one ConfigError line)."""
        return None

    @classmethod
    def extra_metric_names(cls, settings: Any) -> tuple[str, ...]:
        """Names (``test/spark_f1`` ...) that :meth:`extra_metrics` adds, for checking ``objective`` early."""
        return ()

    # -- training and inference -----------------------------------------------------------
    @abstractmethod
    def fit(self, data: Dataset, on_epoch_end: EpochCallback) -> History:
        """Train on ``data.train`` (validating on ``data.val``) and return the per-epoch history."""

    @abstractmethod
    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities for preprocessed inputs ``x`` of shape ``(n, n_features)``."""

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Most probable class per row."""
        return np.asarray(self.predict_proba(x)).argmax(axis=1)

    # -- optional extras (the base class says "none") ---------------------------------------
    def extra_metrics(self) -> dict[str, float]:
        """Metrics beyond the evaluators' for ``metrics.json`` (Spark's own evaluator, ...)."""
        return {}

    def fit_details(self) -> dict[str, Any]:
        """What the fit did, for ``metrics.json`` under ``model.details`` (timings, tuning, ...)."""
        return {}

    def first_layer_weights(self) -> np.ndarray | None:
        """First dense layer's weights as ``(n_features, n_units)``, for weight plots; None if n/a."""
        return None

    def n_parameters(self) -> int | None:
        """Trainable numbers in the fitted model (recorded in ``metrics.json``); None if not counted."""
        return None

    # -- persistence ----------------------------------------------------------------------
    @abstractmethod
    def save(self, directory: Path) -> dict[str, Any]:
        """Write the model's files into ``directory``; return its architecture as a JSON-able dict."""

    @abstractmethod
    def restore(self, directory: Path, architecture: dict[str, Any]) -> None:
        """Read the files :meth:`save` wrote into this (untrained) backend."""

    @classmethod
    def load(cls, directory: Path, meta: ModelMeta, **sections: Any) -> Backend:
        """Rebuild a model saved by :meth:`save`: the saved settings, an inference context, its files."""
        from mnistfw.config.validation import validate_section
        from mnistfw.errors import ConfigError

        try:
            settings = validate_section(_with_new_defaults(cls.name, meta.settings), cls.settings_schema, "settings")
        except ConfigError as exc:
            raise ModelFormatError(f"{directory / MODEL_META_FILE}: the saved settings are invalid ({exc}); "
                                   "re-train or restore the run") from None
        backend = cls(settings, RunContext.for_inference(), **sections)
        backend.restore(Path(directory), meta.architecture)
        return backend

    def close(self) -> None:
        """Release external resources (e.g. a Spark session). Safe to call twice."""
        return None

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _with_new_defaults(backend: str, saved: Mapping[str, Any]) -> dict[str, Any]:
    """``saved`` settings plus the keys a newer mnistfw added to ``configs/model/<backend>.yaml``.

    A model saved before a setting existed (e.g. ``max_norm``) was trained without it, which
    the setting's default in the YAML file (off) describes; saved values always win.
    """
    from omegaconf import OmegaConf

    from mnistfw.config.location import config_dir

    path = config_dir() / "model" / f"{backend}.yaml"
    if not path.is_file():  # a plugin backend: its settings must be complete
        return dict(saved)
    defaults = OmegaConf.to_container(OmegaConf.load(path))
    if isinstance(defaults, dict) and isinstance(defaults.get("model"), dict):  # a `@package _global_` file
        defaults = defaults["model"]
    if not isinstance(defaults, dict):
        return dict(saved)
    added = sorted(k for k in defaults if k not in saved and k != "defaults")
    if added:
        log.info("settings %s: not in the saved model (saved by an older mnistfw); using %s's defaults",
                 ", ".join(added), path.name)
    return {**{k: defaults[k] for k in added}, **saved}


@dataclass
class ModelMeta:
    """The parsed ``mnistfw_model.json`` of a model folder."""

    backend: str
    settings: dict[str, Any]
    architecture: dict[str, Any]
    preprocessing: Preprocessing
    info: DataInfo
    mnistfw_version: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "backend": self.backend,
            "mnistfw_version": self.mnistfw_version,
            "settings": self.settings,
            "architecture": self.architecture,
            "preprocessing": self.preprocessing.to_dict(),
            "data": self.info.to_dict(),
        }


@dataclass
class LoadedModel:
    """A model read back from a folder, with what is needed to feed it raw images."""

    backend: Backend
    meta: ModelMeta

    @property
    def info(self) -> DataInfo:
        return self.meta.info

    @property
    def preprocessing(self) -> Preprocessing:
        return self.meta.preprocessing

    def model_inputs(self, images: np.ndarray) -> np.ndarray:
        """Raw 0-255 images ``(n, h, w)`` or rows ``(n, h*w)`` as this model's inputs (its preprocessing)."""
        images = np.asarray(images)
        expected = self.info.n_features
        if images.reshape(len(images), -1).shape[1] != expected:
            raise ModelFormatError(
                f"inputs have {images.reshape(len(images), -1).shape[1]} pixels but the model expects "
                f"{expected} ({self.info.image_shape[0]}x{self.info.image_shape[1]}); resize the inputs"
            )
        return self.preprocessing.apply(images)


def save_model(backend: Backend, directory: Path | str, data_info: DataInfo, preprocessing: Preprocessing) -> Path:
    """Save ``backend`` and its metadata into ``directory`` atomically."""
    directory = Path(directory)
    with atomic_directory(directory) as tmp:
        architecture = backend.save(tmp)
        settings = asdict(backend.settings)
        meta = ModelMeta(backend.name, settings, architecture, preprocessing, data_info, __version__)
        write_json(tmp / MODEL_META_FILE, meta.to_dict())
    return directory


def read_model_meta(directory: Path | str) -> ModelMeta:
    """Parse and check ``mnistfw_model.json`` of a model folder; every problem is one line."""
    directory = Path(directory)
    meta_path = directory / MODEL_META_FILE
    if not directory.is_dir():
        raise ModelFormatError(f"model folder {directory} does not exist; pass the 'model' folder of a finished run")
    if not meta_path.is_file():
        raise ModelFormatError(
            f"{directory} is not an mnistfw model folder (no {MODEL_META_FILE}); "
            "pass the 'model' folder of a run trained by mnistfw-train"
        )
    damaged = f"{meta_path} is damaged"
    fix = "re-train, or restore the run folder from a copy"
    try:
        raw = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFormatError(f"{damaged} ({type(exc).__name__}: {exc}); {fix}") from None
    if not isinstance(raw, dict):
        raise ModelFormatError(f"{damaged} (it holds a {type(raw).__name__}, not an object); {fix}")
    version = raw.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise ModelFormatError(f"{damaged} (format_version is {version!r}, not a whole number); {fix}")
    if version > FORMAT_VERSION:
        raise ModelFormatError(
            f"{directory} was saved with model format version {version}, newer than this mnistfw "
            f"({__version__}) reads (<= {FORMAT_VERSION}); upgrade mnistfw"
        )
    if version < FORMAT_VERSION:
        raise ModelFormatError(
            f"{directory} was saved by an older mnistfw (model format {version}), which this version "
            f"({__version__}) no longer reads; re-train it with mnistfw-train"
        )
    expected = {"backend": str, "settings": dict, "architecture": dict, "preprocessing": dict, "data": dict}
    for key, kind in expected.items():
        if not isinstance(raw.get(key), kind):
            what = "missing" if key not in raw else f"a {type(raw[key]).__name__}, not a {kind.__name__}"
            raise ModelFormatError(f"{damaged} ('{key}' is {what}); {fix}")
    try:
        data = raw["data"]
        info = DataInfo(
            name=str(data.get("name", "?")),
            source=str(data.get("source", "?")),
            image_shape=(int(data["image_shape"][0]), int(data["image_shape"][1])),
            n_classes=int(data["n_classes"]),
            class_names=[str(c) for c in data["class_names"]],
            sizes=dict(data.get("sizes", {})),
        )
        preprocessing = Preprocessing.from_dict(raw["preprocessing"])
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise ModelFormatError(f"{damaged} (its data description is incomplete: {type(exc).__name__} {exc}); "
                               f"{fix}") from None
    return ModelMeta(raw["backend"], raw["settings"], raw["architecture"], preprocessing, info,
                     str(raw.get("mnistfw_version", "?")))


def load_model(directory: Path | str, **sections: Any) -> LoadedModel:
    """Load any backend's model folder (dispatching on the backend named in its metadata).

    ``sections`` are config sections the backend may need to run (``spark=SparkConfig``); the
    ones its class does not declare are dropped.
    """
    from mnistfw import registry

    directory = Path(directory)
    meta = read_model_meta(directory)
    backend_cls = registry.load("backend", meta.backend)
    backend_cls.check_installed()
    wanted = {k: v for k, v in sections.items() if k in backend_cls.section_schemas}
    backend = backend_cls.load(directory, meta, **wanted)
    return LoadedModel(backend, meta)


def validation_metrics(data: Dataset, predict_proba: Callable[[np.ndarray], np.ndarray],
                       limit_rows: int | None = None) -> dict[str, float]:
    """``val/loss``, ``val/accuracy``, ``val/f1`` of ``predict_proba`` on (the first ``limit_rows`` of) ``data.val``."""
    from mnistfw.metrics import epoch_metrics

    x, y = data.val.x, data.val.y
    if limit_rows is not None:
        x, y = x[:limit_rows], y[:limit_rows]
    if len(y) == 0:
        return {}
    return epoch_metrics("val", y, predict_proba(x))


def limited_rows(limit: Any, n_rows: int, batch_size: int) -> int:
    """Rows left by ``trainer.limit_*_batches`` (int: batches, float: share of the batches, None: all)."""
    if limit is None:
        return n_rows
    n_batches = -(-n_rows // max(batch_size, 1))
    keep = int(limit) if isinstance(limit, int) else max(1, int(n_batches * float(limit)))
    return min(n_rows, keep * batch_size)
