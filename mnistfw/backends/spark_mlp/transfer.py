"""Moving arrays between NumPy and Spark without the per-row Python path.

NumPy rows become an Arrow table (``id``, ``label``, ``pixels``: a list<float> column built
zero-copy from the flat buffer) that Spark reads either straight from memory (``arrow``) or
from a Parquet file written once into the cache folder (``parquet``). Probabilities come
back through Arrow too. No Python UDFs are involved, so executors need no Python.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from mnistfw.backends.spark_mlp.spark_settings import SparkConfig
from mnistfw.data.dataset import Dataset, Preprocessing
from mnistfw.errors import ConfigError, DataError

log = logging.getLogger(__name__)

PIXELS = "pixels"
FEATURES = "features"
LABEL = "label"
ROW_ID = "id"


def arrow_table(x: np.ndarray, y: np.ndarray | None = None) -> Any:
    """``(n, d)`` inputs (+ labels) as an Arrow table with ``id``, ``label`` and ``pixels`` columns."""
    import pyarrow as pa

    x = np.ascontiguousarray(x, dtype=np.float32).reshape(len(x), -1)
    n, d = x.shape
    big = (n + 1) * d >= 2**31
    offsets = pa.array(np.arange(0, (n + 1) * d, d, dtype=np.int64 if big else np.int32))
    list_array = pa.LargeListArray if big else pa.ListArray
    columns = {ROW_ID: pa.array(np.arange(n, dtype=np.int64))}
    if y is not None:
        columns[LABEL] = pa.array(np.asarray(y, dtype=np.float64))
    columns[PIXELS] = list_array.from_arrays(offsets, pa.array(x.reshape(-1)))
    return pa.table(columns)


def _batch_rows(spark: Any, n: int, partitions: int | None) -> int:
    parts = partitions or spark.sparkContext.defaultParallelism
    return max(1000, math.ceil(n / max(parts, 1)))


def to_spark(
    spark: Any,
    x: np.ndarray,
    y: np.ndarray | None = None,
    *,
    transfer: str = "arrow",
    cache_dir: str | Path | None = None,
    partitions: int | None = None,
) -> Any:
    """A DataFrame (``id``, [``label``,] ``pixels`` array<float>) of ``x`` (and ``y``).

    ``arrow`` sends the table from memory in about ``partitions`` batches (default: Spark's
    default parallelism); ``parquet`` writes it once to ``cache_dir/<content hash>.parquet``
    and lets Spark read the file (a shared folder makes that readable by every executor).
    """
    table = arrow_table(x, y)
    if transfer == "parquet":
        if not cache_dir:
            raise ConfigError("spark.cache_dir: transfer=parquet needs a cache folder")
        path = _parquet_cache(table, x, y, Path(cache_dir))
        df = spark.read.parquet(str(path))
        if partitions:
            df = df.repartition(partitions)
        return df
    key = "spark.sql.execution.arrow.maxRecordsPerBatch"
    old = spark.conf.get(key)
    # One Arrow batch becomes one partition: size the batches to spread rows over the cores.
    spark.conf.set(key, str(_batch_rows(spark, len(table), partitions)))
    try:
        return spark.createDataFrame(table)
    finally:
        spark.conf.set(key, old)


def _parquet_cache(table: Any, x: np.ndarray, y: np.ndarray | None, cache_dir: Path) -> Path:
    """Write ``table`` to ``cache_dir`` once, named by a hash of its content; return the path."""
    import pyarrow.parquet as pq

    digest = hashlib.sha1(np.ascontiguousarray(x, dtype=np.float32).tobytes())
    if y is not None:
        digest.update(np.asarray(y, dtype=np.int64).tobytes())
    path = cache_dir / f"mnistfw-{digest.hexdigest()[:16]}-{len(x)}.parquet"
    if path.is_file():
        log.debug("Spark data: reusing %s", path)
        return path
    from mnistfw.io import atomic_path

    try:
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp, row_group_size=10_000, compression="snappy")
    except OSError as exc:
        reason = exc.strerror or exc
        raise DataError(f"cannot write the Spark data cache {path}: {reason}; fix spark.cache_dir") from exc
    log.info("Spark data: wrote %s (%.1f MB)", path, path.stat().st_size / 1e6)
    return path


def read_files(spark: Any, path: str, fmt: str, label_column: str, preprocessing: Preprocessing) -> Any:
    """Read a Parquet/CSV file of raw 0-255 pixels into (``id``, ``label``, ``pixels``).

    The file holds a label column plus either one array column or one numeric column per
    pixel (the Kaggle ``train.csv`` layout: ``label, pixel0, ..., pixel783``); the run's
    preprocessing (scale, and mean/std when the data config standardizes) is applied in Spark.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType

    if fmt == "auto":
        fmt = "csv" if path.rstrip("/").lower().endswith((".csv", ".csv.gz")) else "parquet"
    try:
        reader = spark.read
        df = reader.csv(path, header=True, inferSchema=True) if fmt == "csv" else reader.parquet(path)
    except Exception as exc:  # AnalysisException: path missing / unreadable
        first = str(exc).strip().splitlines()[0]
        raise DataError(f"spark.data_path: cannot read {path} as {fmt}: {first[:200]}") from None
    if label_column not in df.columns:
        raise DataError(f"spark.data_path: {path} has no '{label_column}' column; set spark.data_path.label_column")
    others = [f for f in df.schema.fields if f.name not in (label_column, ROW_ID)]
    arrays = [f.name for f in others if isinstance(f.dataType, ArrayType)]
    if len(arrays) == 1:
        pixels = F.col(arrays[0]).cast("array<float>")
    else:
        pixels = F.array(*[F.col(f.name).cast("float") for f in others])
    scale = float(preprocessing.scale)
    if preprocessing.mean is not None and preprocessing.std is not None:
        mean = F.array(*[F.lit(float(v)) for v in preprocessing.mean])
        std = F.array(*[F.lit(float(v)) for v in preprocessing.std])
        pixels = F.transform(pixels, lambda v, i: ((v * scale - mean[i]) / std[i]).cast("float"))
    else:
        pixels = F.transform(pixels, lambda v: (v * scale).cast("float"))
    return df.select(
        F.monotonically_increasing_id().alias(ROW_ID),
        F.col(label_column).cast("double").alias(LABEL),
        pixels.alias(PIXELS),
    )


def collect_proba(df: Any, n_classes: int, with_labels: bool = False) -> Any:
    """The ``probability`` column of a transformed DataFrame as ``(n, n_classes)`` float64, in ``id``
    order; with ``with_labels`` also its ``label`` column as int64: ``(proba, labels)``."""
    from pyspark.ml.functions import vector_to_array

    columns = [ROW_ID, vector_to_array("probability").alias("p")] + ([LABEL] if with_labels else [])
    table = df.select(*columns).toArrow()
    n = table.num_rows
    if n == 0:
        proba = np.zeros((0, n_classes))
        return (proba, np.zeros(0, dtype=np.int64)) if with_labels else proba
    order = np.argsort(table.column(ROW_ID).to_numpy(), kind="stable")
    values = table.column("p").combine_chunks().flatten().to_numpy(zero_copy_only=False)
    proba = values.reshape(n, -1)[order]
    if with_labels:
        return proba, table.column(LABEL).to_numpy()[order].astype(np.int64)
    return proba


class Frames:
    """The DataFrames of one run: built from NumPy arrays (or ``spark.data_path`` files), in the
    layout the pipeline's first stage reads, and cached until :meth:`release`."""

    def __init__(self, spark: Any, session: SparkConfig, features: str) -> None:
        self.spark, self.session, self.features = spark, session, features
        self._cached: list[Any] = []

    def cache(self, df: Any) -> Any:
        """``df.cache()``, remembered so :meth:`release` unpersists it."""
        df = df.cache()
        self._cached.append(df)
        return df

    def uncache(self, df: Any) -> None:
        """Unpersist ``df`` now if this object cached it."""
        if any(df is cached for cached in self._cached):
            self._cached = [cached for cached in self._cached if cached is not df]
            df.unpersist()

    def release(self) -> None:
        """Unpersist everything cached (safe when the session is already gone)."""
        for df in self._cached:
            with contextlib.suppress(Exception):
                df.unpersist()
        self._cached = []

    def from_arrays(self, x: np.ndarray, y: np.ndarray | None, transfer: str | None = None) -> Any:
        """A DataFrame of the inputs (and labels), sent the configured way."""
        cfg = self.session
        df = to_spark(self.spark, x, y, transfer=transfer or cfg.transfer, cache_dir=cfg.cache_dir,
                      partitions=cfg.partitions)
        return self.expanded(df, x.shape[1])

    def expanded(self, df: Any, n_features: int) -> Any:
        """``df`` with one column per pixel when the pipeline reads columns, cached.

        Left lazy, the 784 array lookups are inlined into every later stage's expressions and
        recomputed there: a prediction over per-pixel columns ran about 40x slower."""
        from mnistfw.backends.spark_mlp.stages import expand_pixels

        return self.cache(expand_pixels(df, n_features)) if self.features == "columns" else df

    def split(self, data: Dataset, name: str) -> Any:
        """Split ``name`` of ``data``, or of ``spark.data_path`` when that names a file for it; None if empty."""
        path = getattr(self.session.data_path, name)
        if path:
            dp = self.session.data_path
            df = read_files(self.spark, path, dp.format, dp.label_column, data.preprocessing)
            if self.session.partitions:
                df = df.repartition(self.session.partitions)
            return self.expanded(df, data.info.n_features)
        part = data.split(name)
        return self.from_arrays(part.x, part.y) if len(part) else None
