"""Pipeline stages of the Spark backend (this module imports pyspark: import it lazily)."""

from __future__ import annotations

from typing import Any

from pyspark import keyword_only
from pyspark.ml import Transformer
from pyspark.ml.feature import StandardScaler, VectorAssembler
from pyspark.ml.functions import array_to_vector
from pyspark.ml.param.shared import HasInputCol, HasOutputCol
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable
from pyspark.sql import functions as F

from mnistfw.backends.spark_mlp.transfer import FEATURES, PIXELS


class ArrayToVector(Transformer, HasInputCol, HasOutputCol, DefaultParamsReadable, DefaultParamsWritable):
    """Turn an ``array<float>`` column into an ML vector column (no Python UDF: runs in the JVM).

    The fast equivalent of ``VectorAssembler`` over one column per pixel; saved inside the
    ``PipelineModel`` like any other stage.
    """

    @keyword_only
    def __init__(self, *, inputCol: str = PIXELS, outputCol: str = "assembled") -> None:  # noqa: N803
        super().__init__()
        self._setDefault(inputCol=PIXELS, outputCol="assembled")
        self._set(**self._input_kwargs)

    def _transform(self, dataset: Any) -> Any:
        return dataset.withColumn(self.getOutputCol(), array_to_vector(F.col(self.getInputCol())))


def pixel_columns(n_features: int) -> list[str]:
    """Names of the per-pixel columns of ``features=columns`` (the Kaggle CSV naming)."""
    return [f"pixel{i}" for i in range(n_features)]


def expand_pixels(df: Any, n_features: int) -> Any:
    """Replace the ``pixels`` array column by one float column per pixel."""
    keep = [c for c in df.columns if c != PIXELS]
    return df.select(*keep, *[F.col(PIXELS)[i].alias(name) for i, name in enumerate(pixel_columns(n_features))])


def feature_stages(features: str, n_features: int, standardize: bool, with_mean: bool, with_std: bool) -> list[Any]:
    """Assembly (+ StandardScaler) stages producing the ``features`` vector column."""
    assembled = FEATURES if not standardize else "assembled"
    if features == "columns":
        first: Any = VectorAssembler(inputCols=pixel_columns(n_features), outputCol=assembled)
    else:
        first = ArrayToVector(inputCol=PIXELS, outputCol=assembled)
    if not standardize:
        return [first]
    return [first, StandardScaler(inputCol=assembled, outputCol=FEATURES, withMean=with_mean, withStd=with_std)]
