"""Classification metrics as evaluator plugins: accuracy, F1, precision, recall, log loss,
confusion matrix. Each one calls :mod:`mnistfw.metrics`, the same code the backends use for
their per-epoch numbers."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from mnistfw import metrics
from mnistfw.contract import Evaluator, MetricValue


def _n_classes(y_true: np.ndarray, proba: np.ndarray) -> int:
    return proba.shape[1] if np.ndim(proba) == 2 else int(np.max(y_true)) + 1


class Accuracy(Evaluator):
    """Fraction of correct predictions."""

    provides: ClassVar[tuple[str, ...]] = ("accuracy",)

    def evaluate(self, y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray) -> dict[str, MetricValue]:
        return {"accuracy": metrics.accuracy(y_true, y_pred)}


class _Averaged(Evaluator):
    metric: ClassVar[str] = ""

    def __init__(self, average: str = "macro") -> None:
        if average not in metrics.AVERAGES:
            raise ValueError(f"average must be one of {', '.join(metrics.AVERAGES)}, got '{average}'")
        self.average = average

    @property
    def key(self) -> str:
        return self.metric if self.average == "macro" else f"{self.metric}_{self.average}"

    def metric_names(self) -> tuple[str, ...]:
        return (self.key,)

    def evaluate(self, y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray) -> dict[str, MetricValue]:
        cm = metrics.confusion_matrix(y_true, y_pred, _n_classes(y_true, proba))
        return {self.key: metrics.averaged(cm, self.metric, self.average)}


class F1(_Averaged):
    """F1 score (macro-averaged over the classes present by default; ``average`` = macro|micro|weighted)."""

    metric = "f1"


class Precision(_Averaged):
    """Precision (macro-averaged by default)."""

    metric = "precision"


class Recall(_Averaged):
    """Recall (macro-averaged by default)."""

    metric = "recall"


class LogLoss(Evaluator):
    """Mean cross-entropy of the predicted probabilities, stored as ``loss``."""

    provides: ClassVar[tuple[str, ...]] = ("loss",)

    def evaluate(self, y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray) -> dict[str, MetricValue]:
        return {"loss": metrics.log_loss(y_true, proba)}


class ConfusionMatrix(Evaluator):
    """Counts ``[true][predicted]`` as a nested list (``normalize``: none|true|pred)."""

    provides: ClassVar[tuple[str, ...]] = ("confusion_matrix",)

    def __init__(self, normalize: str = "none") -> None:
        if normalize not in ("none", "true", "pred"):
            raise ValueError(f"normalize must be none, true or pred, got '{normalize}'")
        self.normalize = normalize

    def evaluate(self, y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray) -> dict[str, MetricValue]:
        cm = metrics.confusion_matrix(y_true, y_pred, _n_classes(y_true, proba))
        if self.normalize == "none":
            return {"confusion_matrix": cm.tolist()}
        axis = 1 if self.normalize == "true" else 0
        sums = cm.sum(axis=axis, keepdims=True)
        return {"confusion_matrix": np.round(np.divide(cm, np.maximum(sums, 1)), 6).tolist()}
