"""Schema of ``configs/model/lightning_mlp.yaml`` (no torch import here)."""

from __future__ import annotations

from dataclasses import dataclass, field

from mnistfw.config.validation import require

ACTIVATIONS = ("relu", "selu", "tanh", "gelu", "sigmoid", "leaky_relu")
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULERS = ("none", "cosine", "step", "onecycle", "plateau")


@dataclass
class OptimizerConfig:
    name: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9  # sgd and rmsprop
    nesterov: bool = False  # sgd

    def __post_init__(self) -> None:
        require(self.name in OPTIMIZERS, "optimizer.name", f"'{self.name}' is not one of {', '.join(OPTIMIZERS)}")
        require(self.lr > 0, "optimizer.lr", f"must be > 0, got {self.lr}")
        require(self.weight_decay >= 0, "optimizer.weight_decay", f"must be >= 0, got {self.weight_decay}")
        require(0 <= self.momentum < 1, "optimizer.momentum", f"must be in [0, 1), got {self.momentum}")
        require(not self.nesterov or (self.name == "sgd" and self.momentum > 0), "optimizer.nesterov",
                "needs optimizer.name=sgd with momentum > 0")


@dataclass
class SchedulerConfig:
    name: str = "none"
    step_size: int = 5  # step: epochs between decays
    gamma: float = 0.5  # step/plateau: decay factor
    patience: int = 2  # plateau
    min_lr: float = 0.0  # cosine

    def __post_init__(self) -> None:
        require(self.name in SCHEDULERS, "scheduler.name", f"'{self.name}' is not one of {', '.join(SCHEDULERS)}")
        require(self.step_size >= 1, "scheduler.step_size", f"must be >= 1, got {self.step_size}")
        require(0 < self.gamma <= 1, "scheduler.gamma", f"must be in (0, 1], got {self.gamma}")


@dataclass
class MonitorConfig:
    monitor: str = "val/accuracy"
    mode: str = "max"
    patience: int | None = None  # early stopping only; null disables it

    def __post_init__(self) -> None:
        require(self.mode in ("min", "max"), "mode", f"must be min or max, got '{self.mode}'")
        require(self.monitor in ("val/accuracy", "val/loss", "val/f1"), "monitor",
                f"'{self.monitor}' is not one of val/accuracy, val/loss, val/f1")
        require(self.patience is None or self.patience >= 1, "patience", "must be >= 1 or null (off)")


@dataclass
class AugmentConfig:
    """Random affine distortions of training images, drawn per image and step; 0 turns each off."""

    shift: float = 0.0  # largest translation, in pixels
    rotation: float = 0.0  # largest rotation, in degrees
    scale: float = 0.0  # largest relative zoom: 0.1 draws factors in [0.9, 1.1]

    def __post_init__(self) -> None:
        require(self.shift >= 0, "augment.shift", f"must be >= 0 pixels, got {self.shift}")
        require(0 <= self.rotation <= 180, "augment.rotation", f"must be in [0, 180] degrees, got {self.rotation}")
        require(0 <= self.scale < 1, "augment.scale", f"must be in [0, 1), got {self.scale}")

    @property
    def enabled(self) -> bool:
        return bool(self.shift or self.rotation or self.scale)


@dataclass
class LightningMLPConfig:
    backend: str = "lightning_mlp"
    hidden: list[int] = field(default_factory=lambda: [512, 256])
    activation: str = "relu"
    batch_norm: bool = False
    dropout: float = 0.0
    batch_size: int = 128
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    early_stopping: MonitorConfig = field(default_factory=MonitorConfig)
    checkpoint: MonitorConfig = field(default_factory=MonitorConfig)

    def __post_init__(self) -> None:
        require(len(self.hidden) > 0, "hidden", "needs at least one layer size, e.g. [256, 128]")
        require(all(h > 0 for h in self.hidden), "hidden", f"layer sizes must be positive, got {self.hidden}")
        require(self.activation in ACTIVATIONS, "activation",
                f"'{self.activation}' is not one of {', '.join(ACTIVATIONS)}")
        require(0 <= self.dropout < 1, "dropout", f"must be in [0, 1), got {self.dropout}")
        require(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")
