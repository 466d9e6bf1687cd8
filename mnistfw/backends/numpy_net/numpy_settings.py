"""The ``model`` config section of ``model=numpy_net``, checked.

``optimizer`` and ``scheduler`` take either a name (``model.optimizer=adam``: that optimiser
with its defaults) or a mapping (``{name: adam, lr: 0.001, weight_decay: 1e-4}``);
``early_stopping`` takes a mapping, ``true`` (its defaults) or ``null`` (off: no best-epoch
tracking beyond the checkpoint of the run's objective).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mnistfw.backends.numpy_net.layers import ACTIVATIONS, INITS
from mnistfw.backends.numpy_net.optimizers import DEFAULT_LR, SCHEDULES
from mnistfw.config.validation import require, validate_section

#: Metrics the trainer measures each epoch (what early stopping and checkpoints may monitor).
EPOCH_METRICS = ("val/accuracy", "val/loss", "val/f1", "train/accuracy", "train/loss")


@dataclass
class OptimizerConfig:
    """``model.optimizer``: sgd | momentum | nesterov | adam and its settings."""

    name: str = "adam"
    #: null: the optimiser's default (sgd 0.1, momentum/nesterov 0.05, adam 0.001).
    lr: float | None = None
    momentum: float = 0.9
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    #: L2 penalty ``weight_decay / 2 * ||W||^2`` on the weights (not the biases).
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        require(self.name in DEFAULT_LR, "name", f"unknown optimizer {self.name!r}; use one of {', '.join(DEFAULT_LR)}")
        if self.lr is None:
            self.lr = DEFAULT_LR[self.name]
        require(self.lr > 0, "lr", f"must be > 0, got {self.lr}")
        require(0 <= self.momentum < 1, "momentum", f"must be in [0, 1), got {self.momentum}")
        require(
            len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
            "betas",
            f"must be two numbers in [0, 1), got {list(self.betas)}",
        )
        require(self.eps > 0, "eps", f"must be > 0, got {self.eps}")
        require(self.weight_decay >= 0, "weight_decay", f"must be >= 0, got {self.weight_decay}")


@dataclass
class SchedulerConfig:
    """``model.scheduler``: how the learning rate changes from epoch to epoch."""

    name: str = "none"
    #: step: multiply the rate by ``gamma`` every ``step_size`` epochs.
    step_size: int = 10
    #: step / exponential: the factor (exponential multiplies by it every epoch).
    gamma: float = 0.1
    #: cosine: the rate it decays towards at the end of the run.
    min_lr: float = 0.0
    #: Ramp the rate up linearly over the first epochs (any schedule).
    warmup_epochs: int = 0

    def __post_init__(self) -> None:
        require(self.name in SCHEDULES, "name", f"unknown scheduler {self.name!r}; use one of {', '.join(SCHEDULES)}")
        require(self.step_size >= 1, "step_size", f"must be >= 1, got {self.step_size}")
        require(0 < self.gamma <= 1, "gamma", f"must be in (0, 1], got {self.gamma}")
        require(self.min_lr >= 0, "min_lr", f"must be >= 0, got {self.min_lr}")
        require(self.warmup_epochs >= 0, "warmup_epochs", f"must be >= 0, got {self.warmup_epochs}")


@dataclass
class EarlyStoppingConfig:
    """``model.early_stopping``: which epoch is best, and when to stop waiting for a better one.

    The best epoch by ``monitor`` is checkpointed (and restored at the end with ``restore_best``);
    training stops once ``monitor`` has not improved for ``patience`` epochs (null: never).
    """

    monitor: str = "val/accuracy"
    #: min | max | null (min for losses, max otherwise).
    mode: str | None = None
    patience: int | None = None
    #: The smallest change that counts as an improvement.
    min_delta: float = 0.0
    #: Finish with the weights of the best epoch rather than the last.
    restore_best: bool = True

    def __post_init__(self) -> None:
        require(
            self.monitor in EPOCH_METRICS,
            "monitor",
            f"unknown metric {self.monitor!r}; use one of {', '.join(EPOCH_METRICS)}",
        )
        require(self.mode in (None, "min", "max"), "mode", f"must be min, max or null, got {self.mode!r}")
        if self.mode is None:
            self.mode = "min" if self.monitor.endswith("loss") else "max"
        require(
            self.patience is None or self.patience >= 1,
            "patience",
            f"must be >= 1 or null (never stop early), got {self.patience}",
        )
        require(self.min_delta >= 0, "min_delta", f"must be >= 0, got {self.min_delta}")


@dataclass
class NumpyNetConfig:
    """``model`` section for ``model=numpy_net`` (see ``configs/model/numpy_net.yaml``)."""

    backend: str = "numpy_net"
    hidden: list[int] = field(default_factory=lambda: [256, 128, 64])
    activation: str = "relu"
    leaky_slope: float = 0.01
    #: auto (he for relu/leaky_relu, lecun for selu, xavier for tanh/sigmoid), he, xavier, lecun.
    init: str = "auto"
    epochs: int = 20
    #: null: full-batch gradient descent (one step per epoch).
    batch_size: int | None = 128
    shuffle: bool = True
    optimizer: Any = "adam"
    scheduler: Any = None
    dropout: float = 0.0
    early_stopping: Any = None
    dtype: str = "float32"
    #: BLAS threads while training/predicting; null leaves the library's setting (usually all cores).
    #: 1 is nearly as fast as more for batches of a few hundred rows, and does not collapse when
    #: other processes share the cores (spinning BLAS threads do).
    num_threads: int | None = 1
    progress: bool = True

    def __post_init__(self) -> None:
        require(len(self.hidden) > 0, "hidden", "needs at least one hidden layer size, e.g. [256, 128, 64]")
        require(all(h > 0 for h in self.hidden), "hidden", f"layer sizes must be > 0, got {list(self.hidden)}")
        require(
            self.activation in ACTIVATIONS,
            "activation",
            f"unknown activation {self.activation!r}; use one of {', '.join(ACTIVATIONS)}",
        )
        require(0 < self.leaky_slope < 1, "leaky_slope", f"must be in (0, 1), got {self.leaky_slope}")
        require(self.init in INITS, "init", f"unknown init {self.init!r}; use one of {', '.join(INITS)}")
        require(self.epochs >= 1, "epochs", f"must be >= 1, got {self.epochs}")
        require(
            self.batch_size is None or self.batch_size >= 1,
            "batch_size",
            f"must be >= 1 or null (full batch), got {self.batch_size}",
        )
        require(0 <= self.dropout < 1, "dropout", f"must be in [0, 1), got {self.dropout}")
        require(self.dtype in ("float32", "float64"), "dtype", f"must be float32 or float64, got {self.dtype!r}")
        require(
            self.num_threads is None or self.num_threads >= 1,
            "num_threads",
            f"must be >= 1 or null, got {self.num_threads}",
        )
        self.optimizer = _section(self.optimizer, OptimizerConfig, "optimizer")
        self.scheduler = _section(self.scheduler, SchedulerConfig, "scheduler") or SchedulerConfig()
        self.early_stopping = _section(self.early_stopping, EarlyStoppingConfig, "early_stopping")


def _section(value: Any, schema: type, key: str) -> Any:
    """A nested section given as a mapping, a name (its ``name`` field), true (defaults) or null/false (None)."""
    if value is None or value is False:
        return None
    if value is True:
        return schema()
    if isinstance(value, schema):
        return value
    if isinstance(value, str):
        has_name = "name" in schema.__dataclass_fields__
        require(has_name, key, f"expects a mapping, true or null, got {value!r}")
        return validate_section({"name": value}, schema, key)
    require(isinstance(value, dict), key, f"expects a name or a mapping, got {value!r}")
    return validate_section(value, schema, key)
