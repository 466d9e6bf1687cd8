"""Classification metrics, implemented once.

The per-epoch numbers every backend reports (``val/f1`` that picks checkpoints and drives
pruning), the evaluator plugins behind ``metrics.json``, Spark's cross-check and the
confusion-matrix heatmap all call these functions, so they always agree.

Averaging over classes follows one rule: a class that occurs neither among the true labels nor
among the predictions has no defined precision, recall or F1 and is left out of the macro
average (scikit-learn would count it as 0 and drag the average down when a split lacks a class).
"""

from __future__ import annotations

import numpy as np

AVERAGES = ("macro", "micro", "weighted")


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts ``cm[true, predicted]`` as int64 ``(n_classes, n_classes)``."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    cells = y_true * n_classes + y_pred
    return np.bincount(cells, minlength=n_classes * n_classes)[: n_classes * n_classes].reshape(n_classes, n_classes)


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Share of correct predictions (0 for no rows)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float(np.mean(y_true == y_pred)) if len(y_true) else 0.0


def per_class_scores(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support per class from a confusion matrix (0 where undefined)."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    predicted, actual = cm.sum(axis=0), cm.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    denom = predicted + actual
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": actual, "present": denom > 0}


def averaged(cm: np.ndarray, metric: str, average: str = "macro") -> float:
    """``metric`` (precision | recall | f1) averaged over classes: macro, micro or weighted."""
    if average not in AVERAGES:
        raise ValueError(f"average must be one of {', '.join(AVERAGES)}, got '{average}'")
    scores = per_class_scores(cm)
    if average == "micro":  # for single-label classification every micro average is the accuracy
        total = float(np.asarray(cm).sum())
        return float(np.trace(cm) / total) if total else 0.0
    values, present = scores[metric], scores["present"]
    if average == "weighted":
        support = scores["support"]
        return float((values * support).sum() / support.sum()) if support.sum() else 0.0
    return float(values[present].mean()) if present.any() else 0.0


def log_loss(y_true: np.ndarray, proba: np.ndarray) -> float:
    """Mean cross-entropy of the probabilities given to the true classes (clipped at 1e-12)."""
    proba = np.asarray(proba, dtype=np.float64)
    y_true = np.asarray(y_true, dtype=np.int64)
    if len(y_true) == 0:
        return 0.0
    picked = np.clip(proba[np.arange(len(y_true)), y_true], 1e-12, 1.0)
    return float(-np.mean(np.log(picked)))


def epoch_metrics(prefix: str, y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """``<prefix>/loss``, ``/accuracy`` and ``/f1`` (macro) of one split: what backends report per epoch."""
    proba = np.asarray(proba)
    y_pred = proba.argmax(axis=1)
    cm = confusion_matrix(y_true, y_pred, proba.shape[1])
    return {
        f"{prefix}/loss": log_loss(y_true, proba),
        f"{prefix}/accuracy": accuracy(y_true, y_pred),
        f"{prefix}/f1": averaged(cm, "f1", "macro"),
    }
