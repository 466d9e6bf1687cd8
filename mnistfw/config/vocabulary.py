"""The shared training vocabulary: one spelling of what every backend's training has in common.

Three config groups, read by every backend that trains (``configs/trainer``, ``configs/optimizer``,
``configs/scheduler``)::

    trainer.max_epochs=20 trainer.batch_size=128 optimizer=sgd optimizer.lr=0.05 scheduler=step

Each backend declares in :class:`~mnistfw.backends.base.Backend` which of these it reads
(:class:`Reads`); the application layer refuses a key the user set that the selected backend
does not read. The schemas here hold no defaults: the YAML files do.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar

from mnistfw.config.validation import Checked, Constraints, Each, Interval, Options, require

#: Metrics every training backend measures after each validation (what monitors may watch).
EPOCH_METRICS = ("val/accuracy", "val/loss", "val/f1", "train/accuracy", "train/loss")

#: The keys each optimizer option has besides ``name`` (``configs/optimizer/<name>.yaml``).
OPTIMIZER_KEYS: dict[str, tuple[str, ...]] = {
    "sgd": ("lr", "momentum", "nesterov", "weight_decay"),
    "adam": ("lr", "betas", "eps", "weight_decay"),
    "adamw": ("lr", "betas", "eps", "weight_decay"),
    "rmsprop": ("lr", "alpha", "eps", "momentum", "weight_decay"),
    "lbfgs": (),
}

#: The keys each scheduler option has besides ``name`` (``configs/scheduler/<name>.yaml``).
SCHEDULER_KEYS: dict[str, tuple[str, ...]] = {
    "none": (),
    "cosine": ("min_lr", "warmup_epochs"),
    "step": ("step_size", "gamma", "warmup_epochs"),
    "exponential": ("gamma", "warmup_epochs"),
    "plateau": ("factor", "patience", "monitor", "mode", "min_lr"),
    "onecycle": ("pct_start", "div_factor", "final_div_factor"),
}

#: Lightning's precision names, and the NumPy dtype each means.
PRECISIONS = ("32-true", "64-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true")


def lower_is_better(metric: str) -> bool:
    """Losses and errors are minimised; everything else is maximised."""
    return any(word in metric for word in ("loss", "error"))


def _resolve_mode(monitor: str | None, mode: str | None) -> str:
    if mode is not None:
        return mode
    return "min" if monitor and lower_is_better(monitor) else "max"


@dataclass
class AugmentSettings(Checked):
    """``model.augment`` of the MLP backends: random affine distortions of the training images,
    drawn per image and step (validation and test images are left alone); 0 turns each off."""

    shift: float  # largest translation, in pixels
    rotation: float  # largest rotation, in degrees
    scale: float  # largest relative zoom: 0.1 draws factors in [0.9, 1.1]

    constraints: ClassVar[Constraints] = {
        "shift": Interval(0, None, unit="pixels"),
        "rotation": Interval(0, 180, unit="degrees"),
        "scale": Interval(0, 1, open_high=True),
    }

    @property
    def enabled(self) -> bool:
        return bool(self.shift or self.rotation or self.scale)


#: Weight initialisation schemes of the MLP backends (``model.init``). he: normal, var 2/fan_in;
#: lecun: var 1/fan_in; xavier (Glorot): var 2/(fan_in + fan_out); torch: PyTorch's ``nn.Linear``
#: default, weights and biases uniform in +-1/sqrt(fan_in); auto: chosen from the activation.
INITS = ("auto", "he", "xavier", "lecun", "torch")


def initial_scheme(init: str, activation: str) -> str:
    """The scheme ``model.init`` means for ``activation``: ``auto`` is He for the ReLU family,
    LeCun for SELU (self-normalising networks need it), Xavier for tanh, sigmoid and GELU."""
    if init != "auto":
        return init
    return {"relu": "he", "leaky_relu": "he", "selu": "lecun"}.get(activation, "xavier")


@dataclass
class MLPSettings(Checked):
    """What the ``model`` sections of the multilayer-perceptron backends share (``lightning_mlp``,
    ``numpy_net``): the same keys with the same meaning; each backend adds its own."""

    backend: str
    #: Hidden layer sizes; the input and output sizes come from the data.
    hidden: list[int]
    activation: str
    #: Weight initialisation: auto (from the activation), he, xavier, lecun or torch; see INITS.
    init: str
    #: Dropout after each hidden layer; 0 disables it.
    dropout: float
    #: Max-norm constraint: after every step each hidden unit's incoming weights are scaled to
    #: L2 norm <= max_norm (Srivastava et al. 2014); 0 or null: off.
    max_norm: float | None
    #: Random shift, rotation and zoom of the training images.
    augment: AugmentSettings

    constraints: ClassVar[Constraints] = {
        "hidden": Each(Interval(1, None, integer=True), min_len=1),
        "init": Options(*INITS),
        "dropout": Interval(0, 1, open_high=True),
        "max_norm": Interval(0, None, none_ok=True, meaning_of_none="off"),
    }


@dataclass
class EarlyStoppingSettings(Checked):
    """``trainer.early_stopping``: stop when ``monitor`` has not improved for ``patience`` validations."""

    monitor: str
    #: min | max | null (min for losses and errors, max otherwise).
    mode: str | None
    #: Validations without improvement before stopping; null never stops.
    patience: int | None
    #: The smallest change that counts as an improvement.
    min_delta: float

    constraints: ClassVar[Constraints] = {
        "monitor": Options(*EPOCH_METRICS),
        "mode": Options("min", "max", none_ok=True),
        "patience": Interval(1, None, integer=True, none_ok=True, meaning_of_none="never stop early"),
        "min_delta": Interval(0, None),
    }

    def check(self) -> None:
        self.mode = _resolve_mode(self.monitor, self.mode)


@dataclass
class CheckpointSettings(Checked):
    """``trainer.checkpoint``: the epoch best by ``monitor`` becomes the final model (null: the last one)."""

    monitor: str | None
    mode: str | None

    constraints: ClassVar[Constraints] = {
        "monitor": Options(*EPOCH_METRICS, none_ok=True),
        "mode": Options("min", "max", none_ok=True),
    }

    def check(self) -> None:
        self.mode = _resolve_mode(self.monitor, self.mode)


@dataclass
class TrainerSettings(Checked):
    """The ``trainer`` group: how long and in what steps to train, and when to stop.

    The first block is shared by the training backends; the keys after ``checkpoint`` are read
    by the Lightning backend only (see each backend's :class:`Reads`).
    """

    #: Passes over the training split (Spark's full-batch L-BFGS: iterations).
    max_epochs: int
    #: Early stopping never ends a run before this many epochs.
    min_epochs: int
    #: Rows per optimiser step; null: the whole training split (full-batch gradient descent).
    batch_size: int | None
    #: Validate (and report to loggers, pruners, early stopping) every this many epochs, and after the last.
    check_val_every_n_epoch: int
    #: Quick runs: an int trains/validates on that many batches per epoch, a float on that share.
    limit_train_batches: Any
    limit_val_batches: Any
    #: CPU threads for the maths (torch intra-op / BLAS); auto: the cores other processes leave
    #: idle, measured again after every epoch (see mnistfw.backends.threads).
    num_threads: Any
    enable_progress_bar: bool
    #: Clip the gradient's global L2 norm to this value (null: no clipping).
    gradient_clip_val: float | None
    #: 32-true (float32), 64-true (float64); Lightning also takes 16-mixed, bf16-mixed, ...
    precision: str
    deterministic: bool
    early_stopping: EarlyStoppingSettings
    checkpoint: CheckpointSettings
    # -- Lightning's Trainer only --
    accelerator: str
    devices: Any
    strategy: str
    num_nodes: int
    num_sanity_val_steps: int
    #: Treat denormal floats (below 1.2e-38) as zero in CPU maths (torch.set_flush_denormal).
    flush_denormal: bool
    #: Mini-batches each Lightning training step trains, one optimiser step each (Keras' steps_per_execution).
    batches_per_step: int

    constraints: ClassVar[Constraints] = {
        "max_epochs": Interval(1, None, integer=True),
        "min_epochs": Interval(0, None, integer=True),
        "batch_size": Interval(1, None, integer=True, none_ok=True, meaning_of_none="full batch"),
        "check_val_every_n_epoch": Interval(1, None, integer=True),
        "gradient_clip_val": Interval(0, None, open_low=True, none_ok=True, meaning_of_none="no clipping"),
        "precision": Options(*PRECISIONS),
        "num_nodes": Interval(1, None, integer=True),
        "num_sanity_val_steps": Interval(0, None, integer=True),
        "batches_per_step": Interval(1, None, integer=True),
    }

    def check(self) -> None:
        for key in ("limit_train_batches", "limit_val_batches"):
            value = getattr(self, key)
            ok = value is None or (
                not isinstance(value, bool)
                and ((isinstance(value, int) and value >= 1) or (isinstance(value, float) and 0 < value <= 1))
            )
            require(ok, key, f"must be a number of batches (int >= 1), a share in (0, 1] or null (all); got {value!r}")
        threads = self.num_threads
        require(threads == "auto" or (isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1),
                "num_threads", f"must be auto or an integer >= 1; got {threads!r}")
        require(self.min_epochs <= self.max_epochs, "min_epochs",
                f"({self.min_epochs}) must not exceed max_epochs ({self.max_epochs})")


@dataclass
class OptimizerSettings(Checked):
    """The ``optimizer`` group: ``configs/optimizer/<name>.yaml`` holds the keys its optimiser takes.

    Keys an optimiser does not take are null (absent from its YAML file); weight decay is an L2
    penalty on the weight matrices (not the biases) for every backend.
    """

    name: str
    lr: float | None = None
    weight_decay: float | None = None
    momentum: float | None = None
    nesterov: bool | None = None
    betas: list[float] | None = None
    eps: float | None = None
    alpha: float | None = None

    constraints: ClassVar[Constraints] = {
        "name": Options(*OPTIMIZER_KEYS),
        "lr": Interval(0, None, open_low=True, none_ok=True),
        "weight_decay": Interval(0, None, none_ok=True),
        "momentum": Interval(0, 1, open_high=True, none_ok=True),
        "eps": Interval(0, None, open_low=True, none_ok=True),
        "alpha": Interval(0, 1, open_high=True, none_ok=True),
    }

    def check(self) -> None:
        _require_keys(self, OPTIMIZER_KEYS[self.name], "optimizer")
        if self.betas is not None:
            problem = Each(Interval(0, 1, open_high=True)).check(self.betas)
            require(problem is None and len(self.betas) == 2, "betas", problem or "must be two numbers in [0, 1)")
        require(not self.nesterov or (self.momentum or 0) > 0, "nesterov", "needs momentum > 0")


@dataclass
class SchedulerSettings(Checked):
    """The ``scheduler`` group: how the learning rate changes from epoch to epoch."""

    name: str
    #: cosine: the rate it decays towards; plateau: the lowest rate.
    min_lr: float | None = None
    #: Ramp the rate up linearly over the first epochs.
    warmup_epochs: int | None = None
    #: step: epochs between decays.
    step_size: int | None = None
    #: step / exponential: the decay factor.
    gamma: float | None = None
    #: plateau: the factor, the validations without improvement, and the metric watched.
    factor: float | None = None
    patience: int | None = None
    monitor: str | None = None
    mode: str | None = None
    #: onecycle (per step, Lightning only): share of steps spent warming up, and the divisors.
    pct_start: float | None = None
    div_factor: float | None = None
    final_div_factor: float | None = None

    constraints: ClassVar[Constraints] = {
        "name": Options(*SCHEDULER_KEYS),
        "min_lr": Interval(0, None, none_ok=True),
        "warmup_epochs": Interval(0, None, integer=True, none_ok=True),
        "step_size": Interval(1, None, integer=True, none_ok=True),
        "gamma": Interval(0, 1, open_low=True, none_ok=True),
        "factor": Interval(0, 1, open_low=True, open_high=True, none_ok=True),
        "patience": Interval(0, None, integer=True, none_ok=True),
        "monitor": Options(*EPOCH_METRICS, none_ok=True),
        "mode": Options("min", "max", none_ok=True),
        "pct_start": Interval(0, 1, open_low=True, open_high=True, none_ok=True),
        "div_factor": Interval(0, None, open_low=True, none_ok=True),
        "final_div_factor": Interval(0, None, open_low=True, none_ok=True),
    }

    def check(self) -> None:
        if self.name == "plateau":
            self.mode = _resolve_mode(self.monitor, self.mode)
        _require_keys(self, SCHEDULER_KEYS[self.name], "scheduler")


def _require_keys(settings: Any, wanted: tuple[str, ...], group: str) -> None:
    """Each key of this option is set and no other key is (the option's YAML file lists them)."""
    for f in fields(settings):
        if f.name == "name":
            continue
        value = getattr(settings, f.name)
        if f.name in wanted:
            require(value is not None, f.name,
                    f"{group}={settings.name} needs a value; choose the option with {group}={settings.name} "
                    f"(not {group}.name={settings.name}) to get its keys")
        else:
            require(value is None, f.name,
                    f"{group}={settings.name} does not take it (its keys: {', '.join(wanted) or 'none'})")


@dataclass(frozen=True)
class Training:
    """The validated ``trainer``, ``optimizer`` and ``scheduler`` of a run."""

    trainer: TrainerSettings
    optimizer: OptimizerSettings
    scheduler: SchedulerSettings


@dataclass(frozen=True)
class Reads:
    """What of the shared vocabulary a backend honours, declared on its class.

    ``trainer``: the ``trainer.*`` keys it reads; ``optimizers`` / ``schedulers``: the options
    it implements (empty: it does not train with an optimiser, and ignores the groups' defaults);
    ``sections``: other top-level keys it reads (``spark``, ``logger``, ``ckpt_path``).
    """

    trainer: frozenset[str] = frozenset()
    optimizers: tuple[str, ...] = ()
    schedulers: tuple[str, ...] = ()
    sections: frozenset[str] = frozenset()



#: The trainer keys every gradient-descent backend in mnistfw reads.
SHARED_TRAINER_KEYS = frozenset({
    "max_epochs", "min_epochs", "batch_size", "check_val_every_n_epoch", "limit_train_batches",
    "limit_val_batches", "num_threads", "enable_progress_bar", "gradient_clip_val", "precision",
    "deterministic", "early_stopping", "checkpoint",
})
#: The trainer keys only Lightning's Trainer has.
LIGHTNING_TRAINER_KEYS = frozenset({
    "accelerator", "devices", "strategy", "num_nodes", "num_sanity_val_steps", "flush_denormal",
    "batches_per_step",
})
