"""Classification metrics: accuracy, F1, precision, recall, log loss, confusion matrix."""

from __future__ import annotations

import numpy as np

from mnistfw.contract import Evaluator, MetricValue

_AVERAGES = ("macro", "micro", "weighted")


class Accuracy(Evaluator):
    """Fraction of correct predictions."""

    def evaluate(self, y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray) -> dict[str, MetricValue]:
        return {"accuracy": float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))}


class _Averaged(Evaluator):
    metric = ""

    def __init__(self, average: str = "macro") -> None:
        if average not in _AVERAGES:
            raise ValueError(f"average must be one of {', '.join(_AVERAGES)}, got '{average}'")
        self.average = average

    def _labels(self, y_true: np.ndarray, proba: np.ndarray) -> list[int]:
        n_classes = proba.shape[1] if proba.ndim == 2 else int(np.max(y_true)) + 1
        return list(range(n_classes))

    def evaluate(self, y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray) -> dict[str, MetricValue]:
        from sklearn import metrics

        fn = {"f1": metrics.f1_score, "precision": metrics.precision_score, "recall": metrics.recall_score}
        value = fn[self.metric](
            y_true, y_pred, labels=self._labels(y_true, proba), average=self.average, zero_division=0
        )
        key = self.metric if self.average == "macro" else f"{self.metric}_{self.average}"
        return {key: float(value)}


class F1(_Averaged):
    """F1 score (macro-averaged over classes by default; ``average`` = macro|micro|weighted)."""

    metric = "f1"


class Precision(_Averaged):
    """Precision (macro-averaged by default)."""

    metric = "precision"


class Recall(_Averaged):
    """Recall (macro-averaged by default)."""

    metric = "recall"


class LogLoss(Evaluator):
    """Mean cross-entropy of the predicted probabilities, stored as ``loss``."""

    def evaluate(self, y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray) -> dict[str, MetricValue]:
        p = np.clip(np.asarray(proba, dtype=np.float64)[np.arange(len(y_true)), np.asarray(y_true)], 1e-12, 1.0)
        return {"loss": float(-np.mean(np.log(p)))}


class ConfusionMatrix(Evaluator):
    """Counts ``[true][predicted]`` as a nested list (``normalize``: none|true|pred)."""

    def __init__(self, normalize: str = "none") -> None:
        if normalize not in ("none", "true", "pred"):
            raise ValueError(f"normalize must be none, true or pred, got '{normalize}'")
        self.normalize = normalize

    def evaluate(self, y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray) -> dict[str, MetricValue]:
        n = proba.shape[1]
        cm = np.bincount(np.asarray(y_true) * n + np.asarray(y_pred), minlength=n * n).reshape(n, n)
        if self.normalize == "none":
            return {"confusion_matrix": cm.tolist()}
        axis = 1 if self.normalize == "true" else 0
        sums = cm.sum(axis=axis, keepdims=True)
        return {"confusion_matrix": np.round(np.divide(cm, np.maximum(sums, 1)), 6).tolist()}
