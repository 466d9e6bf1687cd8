"""Built-in evaluators against hand computations."""

from __future__ import annotations

import numpy as np
import pytest

from mnistfw.evaluators.classification import F1, Accuracy, ConfusionMatrix, LogLoss, Precision, Recall


@pytest.fixture
def preds() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y_true = np.array([0, 0, 1, 1, 2, 2, 2])
    y_pred = np.array([0, 1, 1, 1, 2, 0, 2])
    proba = np.full((7, 3), 0.1)
    proba[np.arange(7), y_pred] = 0.8
    return y_true, y_pred, proba


def test_accuracy(preds) -> None:
    assert Accuracy().evaluate(*preds)["accuracy"] == pytest.approx(5 / 7)


def test_macro_f1_precision_recall_by_hand(preds) -> None:
    # class 0: tp1 fp1 fn1; class 1: tp2 fp1 fn0; class 2: tp2 fp0 fn1
    p = [1 / 2, 2 / 3, 1.0]
    r = [1 / 2, 1.0, 2 / 3]
    f = [2 * a * b / (a + b) for a, b in zip(p, r)]
    assert Precision().evaluate(*preds)["precision"] == pytest.approx(np.mean(p))
    assert Recall().evaluate(*preds)["recall"] == pytest.approx(np.mean(r))
    assert F1().evaluate(*preds)["f1"] == pytest.approx(np.mean(f))
    assert F1(average="micro").evaluate(*preds)["f1_micro"] == pytest.approx(5 / 7)


def test_confusion_matrix_counts(preds) -> None:
    cm = ConfusionMatrix().evaluate(*preds)["confusion_matrix"]
    assert cm == [[1, 1, 0], [0, 2, 0], [1, 0, 2]]
    norm = ConfusionMatrix(normalize="true").evaluate(*preds)["confusion_matrix"]
    assert norm[2] == pytest.approx([1 / 3, 0, 2 / 3])


def test_log_loss(preds) -> None:
    y_true, _, proba = preds
    expected = -np.mean(np.log(proba[np.arange(7), y_true]))
    assert LogLoss().evaluate(*preds)["loss"] == pytest.approx(expected)


def test_bad_options_are_rejected() -> None:
    with pytest.raises(ValueError, match="average"):
        F1(average="median")
    with pytest.raises(ValueError, match="normalize"):
        ConfusionMatrix(normalize="rows")
