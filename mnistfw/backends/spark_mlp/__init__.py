"""Spark ML backend (``model=spark_mlp``): a ``pyspark.ml`` Pipeline trained locally or on a cluster.

pyspark is imported only when a session is started, so importing this package is cheap.
"""

from mnistfw.backends.spark_mlp.spark_backend import SparkMLPBackend

__all__ = ["SparkMLPBackend"]
