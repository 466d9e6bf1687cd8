"""Config schemas of the Spark backend: the ``model`` section (``model=spark_mlp``) and the
``spark`` group (``spark=local`` / ``spark=cluster``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from mnistfw.config.validation import require

SOLVERS = ("l-bfgs", "gd")
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
class SparkMLPConfig:
    """``model=spark_mlp``: a ``pyspark.ml`` Pipeline of feature assembly, StandardScaler and
    MultilayerPerceptronClassifier (sigmoid hidden layers, softmax output)."""

    backend: str = "spark_mlp"
    hidden: list[int] = field(default_factory=lambda: [256])
    layers: list[int] | None = None
    solver: str = "l-bfgs"
    max_iter: int = 300
    tol: float = 1e-6
    block_size: int = 128
    step_size: float = 0.03
    features: str = "array"
    standardize: bool = False
    with_mean: bool = True
    with_std: bool = True
    report_every: int | None = 50
    train_eval_rows: int = 5000
    keep_best: bool = True
    patience: int | None = None
    tuning: str = "none"
    tuning_metric: str = "f1"
    num_folds: int = 3
    train_ratio: float = 0.8
    parallelism: int = 1
    param_grid: dict[str, list[Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        require(self.backend == "spark_mlp", "backend", "must be spark_mlp for model=spark_mlp")
        require(all(h >= 1 for h in self.hidden), "hidden", "layer sizes must be >= 1, e.g. [256] or [300, 100]")
        require(
            self.layers is None or (len(self.layers) >= 2 and all(n >= 1 for n in self.layers)),
            "layers",
            "a full layer list [inputs, hidden..., classes] such as [784, 128, 64, 10], or null to use hidden",
        )
        require(self.solver in SOLVERS, "solver", f"must be one of {', '.join(SOLVERS)}")
        require(self.max_iter >= 1, "max_iter", "must be >= 1")
        require(self.tol >= 0, "tol", "must be >= 0")
        require(self.block_size >= 1, "block_size", "must be >= 1 (Spark's default is 128)")
        require(self.step_size > 0, "step_size", "must be > 0")
        require(self.features in FEATURES, "features", f"must be one of {', '.join(FEATURES)}")
        require(
            self.report_every is None or self.report_every >= 1,
            "report_every",
            "iterations per reporting step must be >= 1, or null for one uninterrupted fit",
        )
        require(
            self.patience is None or self.patience >= 1,
            "patience",
            "reports without a better val/accuracy before stopping: >= 1, or null to run max_iter",
        )
        require(self.train_eval_rows >= 0, "train_eval_rows", "must be >= 0 (0 skips train/accuracy)")
        require(self.tuning in TUNING, "tuning", f"must be one of {', '.join(TUNING)}")
        require(self.tuning_metric in TUNING_METRICS, "tuning_metric", f"must be one of {', '.join(TUNING_METRICS)}")
        require(self.num_folds >= 2, "num_folds", "must be >= 2")
        require(0 < self.train_ratio < 1, "train_ratio", "must be between 0 and 1 (exclusive)")
        require(self.parallelism >= 1, "parallelism", "must be >= 1")
        for key, values in self.param_grid.items():
            require(key in GRID_PARAMS, f"param_grid.{key}", f"unknown; tunable keys: {', '.join(GRID_PARAMS)}")
            require(
                isinstance(values, list) and len(values) >= 1,
                f"param_grid.{key}",
                "must be a non-empty list of candidate values",
            )

    def hidden_layers(self) -> list[int]:
        """Hidden layer sizes, from ``layers`` when given, else ``hidden``."""
        return list(self.layers[1:-1]) if self.layers is not None else list(self.hidden)


@dataclass
class DataPathConfig:
    """Files the executors read themselves instead of data shipped from the driver."""

    train: str | None = None
    val: str | None = None
    test: str | None = None
    format: str = "auto"
    label_column: str = "label"

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

    master: str = "local[*]"
    app_name: str = "mnistfw"
    driver_memory: str = "4g"
    log_level: str = "ERROR"
    ui: bool = False
    partitions: int | None = None
    transfer: str = "arrow"
    cache_dir: str | None = None
    data_path: DataPathConfig = field(default_factory=DataPathConfig)
    connect_timeout: float = 5.0
    conf: dict[str, Any] = field(default_factory=dict)

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
