"""Config schemas of the Spark backend: the ``model`` section (``model=spark_mlp``) and the
``spark`` group (``spark=local`` / ``spark=cluster``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

from mnistfw.config.validation import Checked, Constraints, Each, Interval, Options, require

FEATURES = ("array", "columns")
TUNING = ("none", "cross_validator", "train_validation_split")
TUNING_METRICS = ("f1", "accuracy", "weightedPrecision", "weightedRecall")
TRANSFERS = ("arrow", "parquet")
#: ``model.param_grid`` keys and the ``MultilayerPerceptronClassifier`` params they set.
GRID_PARAMS = {
    "hidden": "layers",
    "layers": "layers",
    "max_iter": "maxIter",
    "tol": "tol",
    "block_size": "blockSize",
    "step_size": "stepSize",
    "solver": "solver",
}


@dataclass
class SparkMLPConfig(Checked):
    """``model=spark_mlp``: a ``pyspark.ml`` Pipeline of feature assembly, StandardScaler and
    MultilayerPerceptronClassifier (sigmoid hidden layers, softmax output).

    Iterations, validation cadence, early stopping, the kept model and the solver come from the
    shared ``trainer`` and ``optimizer`` groups (``optimizer=lbfgs`` or ``optimizer=sgd``).
    """

    backend: str
    hidden: list[int]
    layers: list[int] | None
    tol: float
    block_size: int
    features: str
    standardize: bool
    with_mean: bool
    with_std: bool
    train_eval_rows: int
    tuning: str
    tuning_metric: str
    num_folds: int
    train_ratio: float
    parallelism: int
    param_grid: dict[str, list[Any]]

    constraints: ClassVar[Constraints] = {
        "backend": Options("spark_mlp"),
        "hidden": Each(Interval(1, None, integer=True)),
        "tol": Interval(0, None),
        "block_size": Interval(1, None, integer=True),
        "features": Options(*FEATURES),
        "train_eval_rows": Interval(0, None, integer=True),
        "tuning": Options(*TUNING),
        "tuning_metric": Options(*TUNING_METRICS),
        "num_folds": Interval(2, None, integer=True),
        "train_ratio": Interval(0, 1, open_low=True, open_high=True),
        "parallelism": Interval(1, None, integer=True),
    }

    def check(self) -> None:
        require(
            self.layers is None or (len(self.layers) >= 2 and all(n >= 1 for n in self.layers)),
            "layers",
            "a full layer list [inputs, hidden..., classes] such as [784, 128, 64, 10], or null to use hidden",
        )
        for key, values in self.param_grid.items():
            require(key in GRID_PARAMS, f"param_grid.{key}", f"unknown; tunable keys: {', '.join(GRID_PARAMS)}")
            require(
                isinstance(values, list) and len(values) >= 1,
                f"param_grid.{key}",
                "must be a non-empty list of candidate values",
            )
        require(not ("hidden" in self.param_grid and "layers" in self.param_grid), "param_grid",
                "give either hidden or layers candidates, not both")

    def hidden_layers(self) -> list[int]:
        """Hidden layer sizes, from ``layers`` when given, else ``hidden``."""
        return list(self.layers[1:-1]) if self.layers is not None else list(self.hidden)


@dataclass
class DataPathConfig:
    """Files the executors read themselves instead of data shipped from the driver."""

    train: str | None
    val: str | None
    test: str | None
    format: str
    label_column: str

    def __post_init__(self) -> None:
        require(self.format in ("auto", "parquet", "csv"), "format", "must be auto, parquet or csv")
        require(
            self.train is not None or (self.val is None and self.test is None),
            "train",
            "set data_path.train too when data_path.val/test are set",
        )


_MASTER_RE = re.compile(r"^(local(\[(\*|\d+)(,\s*\d+)?\])?|local-cluster\[.+\]|spark://.+|yarn|k8s://.+|mesos://.+)$")


@dataclass
class SparkConfig:
    """The ``spark`` group: how the SparkSession of a run is built."""

    master: str
    app_name: str
    driver_memory: str
    log_level: str
    ui: bool
    partitions: int | None
    transfer: str
    cache_dir: str | None
    data_path: DataPathConfig
    connect_timeout: float
    conf: dict[str, Any]

    def __post_init__(self) -> None:
        require(
            bool(_MASTER_RE.match(self.master)),
            "master",
            f"'{self.master}' is not a Spark master URL; use local[*], local[N], spark://host:7077, "
            "yarn or k8s://https://host:443",
        )
        require(
            self.log_level.upper() in ("ALL", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "OFF", "TRACE"),
            "log_level",
            "must be one of ERROR, WARN, INFO, DEBUG",
        )
        require(self.partitions is None or self.partitions >= 1, "partitions", "must be >= 1 or null")
        require(self.transfer in TRANSFERS, "transfer", f"must be one of {', '.join(TRANSFERS)}")
        require(
            self.transfer != "parquet" or bool(self.cache_dir),
            "cache_dir",
            "transfer=parquet needs a cache folder (spark.cache_dir)",
        )
        require(self.connect_timeout > 0, "connect_timeout", "must be > 0 seconds")
        for key, value in flat_conf(self.conf).items():
            require(key.startswith("spark."), f"conf.{key}", "Spark settings start with 'spark.'")
            require(
                not isinstance(value, (list, tuple)),
                f"conf.{key}",
                "must be a single value (string, number or boolean)",
            )

    def spark_settings(self) -> dict[str, str]:
        """Every ``spark.*`` setting of the session as strings (``conf`` wins over the named fields)."""
        settings = {
            "spark.app.name": self.app_name,
            "spark.driver.memory": self.driver_memory,
            "spark.ui.enabled": str(self.ui).lower(),
            "spark.ui.showConsoleProgress": "false",
            "spark.log.level": self.log_level.upper(),
            # Native BLAS (OpenBLAS) must not start its own threads inside each task.
            "spark.executorEnv.OPENBLAS_NUM_THREADS": "1",
        }
        for key, value in flat_conf(self.conf).items():
            if value is not None:
                settings[key] = str(value).lower() if isinstance(value, bool) else str(value)
        return settings


def flat_conf(conf: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten ``{spark: {executor: {memory: 4g}}}`` (what ``spark.conf.spark.executor.memory=4g``
    builds on the command line) into ``{"spark.executor.memory": "4g"}``."""
    out: dict[str, Any] = {}
    if not isinstance(conf, dict):
        return {prefix: conf} if prefix else {}
    for key, value in conf.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            out.update(flat_conf(value, name))
        else:
            out[name] = value
    return out
