"""Spark's own scoring of a fitted pipeline: ``MulticlassClassificationEvaluator`` inside Spark,
as a cross-check of mnistfw's evaluators (this module imports pyspark: import it lazily)."""

from __future__ import annotations

from typing import Any

from mnistfw.backends.spark_mlp.transfer import LABEL
from mnistfw.metrics import averaged, confusion_matrix


def spark_metrics(model: Any, df: Any, split: str, n_classes: int) -> dict[str, float]:
    """``<split>/spark_f1`` (Spark's class-weighted F1), ``/spark_accuracy`` and ``/spark_f1_macro``.

    The macro F1 is computed by :mod:`mnistfw.metrics` from Spark's own predictions (collected
    through Arrow, two numbers per row), so it is comparable to the evaluators' ``f1``.
    """
    from pyspark.ml.evaluation import MulticlassClassificationEvaluator

    pred = model.transform(df).select(LABEL, "prediction").cache()
    try:

        def evaluate(metric: str) -> float:
            return float(MulticlassClassificationEvaluator(labelCol=LABEL, metricName=metric).evaluate(pred))

        table = pred.toArrow()
        cm = confusion_matrix(table.column(LABEL).to_numpy(), table.column("prediction").to_numpy(), n_classes)
        return {
            f"{split}/spark_f1": evaluate("f1"),
            f"{split}/spark_accuracy": evaluate("accuracy"),
            f"{split}/spark_f1_macro": averaged(cm, "f1", "macro"),
        }
    finally:
        pred.unpersist()
