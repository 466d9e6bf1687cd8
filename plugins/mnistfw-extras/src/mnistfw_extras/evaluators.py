"""Extra evaluators, written against :mod:`mnistfw.contract`."""

from __future__ import annotations

import numpy as np

from mnistfw.contract import Evaluator, MetricValue


class TopKAccuracy(Evaluator):
    """Share of samples whose true class is among the ``k`` most probable ones.

    Config: ``evaluation.evaluators.top_k_accuracy: {k: 3}`` -> ``test/top_3_accuracy``.
    """

    def __init__(self, k: int = 5) -> None:
        if int(k) < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.k = int(k)

    def evaluate(self, y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray) -> dict[str, MetricValue]:
        proba = np.asarray(proba)
        k = min(self.k, proba.shape[1])
        # argpartition: the k largest per row, unordered (enough to test membership).
        top = np.argpartition(-proba, k - 1, axis=1)[:, :k]
        hit = (top == np.asarray(y_true)[:, None]).any(axis=1)
        return {f"top_{self.k}_accuracy": float(hit.mean()) if len(hit) else 0.0}


class BalancedAccuracy(Evaluator):
    """Mean of the per-class recalls (classes absent from ``y_true`` are left out).

    Config: ``evaluation.evaluators.balanced_accuracy: {}`` -> ``test/balanced_accuracy``.
    """

    def evaluate(self, y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray) -> dict[str, MetricValue]:
        y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
        n_classes = max(np.asarray(proba).shape[1], int(y_true.max(initial=-1)) + 1)
        support = np.bincount(y_true, minlength=n_classes)
        correct = np.bincount(y_true[y_true == y_pred], minlength=n_classes)
        present = support > 0
        recall = correct[present] / support[present]
        return {"balanced_accuracy": float(recall.mean()) if present.any() else 0.0}
