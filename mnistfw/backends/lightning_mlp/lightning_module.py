"""The network, the LightningModule and the in-memory batch iterator (imports torch)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn
from torch.nn import functional as F

from mnistfw.backends.base import EpochCallback, StopTraining, limited_rows
from mnistfw.backends.schedules import EPOCH_SCHEDULES, Plateau, epoch_lr
from mnistfw.config.vocabulary import OptimizerSettings, SchedulerSettings, initial_scheme
from mnistfw.metrics import epoch_metrics

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "selu": nn.SELU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "sigmoid": nn.Sigmoid,
    "leaky_relu": nn.LeakyReLU,
}


def build_mlp(
    n_features: int, n_classes: int, hidden: list[int], activation: str, batch_norm: bool, dropout: float, init: str
) -> nn.Sequential:
    """``Linear -> [BatchNorm] -> activation -> [Dropout]`` per hidden layer, then a linear output.

    Every linear layer is initialised by ``init`` (``model.init``, the NumPy network's schemes);
    SELU layers use AlphaDropout.
    """
    scheme = initial_scheme(init, activation)
    layers: list[nn.Module] = []
    width = n_features
    for units in hidden:
        linear = nn.Linear(width, units)
        init_linear(linear, scheme)
        layers.append(linear)
        if batch_norm:
            layers.append(nn.BatchNorm1d(units))
        layers.append(_ACTIVATIONS[activation]())
        if dropout > 0:
            layers.append(nn.AlphaDropout(dropout) if activation == "selu" else nn.Dropout(dropout))
        width = units
    output = nn.Linear(width, n_classes)
    init_linear(output, scheme)
    layers.append(output)
    return nn.Sequential(*layers)


def init_linear(linear: nn.Linear, scheme: str) -> None:
    """Initialise one layer by ``scheme`` (he, lecun, xavier: normal weights, zero biases; torch:
    ``nn.Linear``'s own uniform +-1/sqrt(fan_in), left as constructed)."""
    if scheme == "torch":
        return
    if scheme == "xavier":
        nn.init.xavier_normal_(linear.weight)
    else:
        nn.init.kaiming_normal_(linear.weight, nonlinearity="relu" if scheme == "he" else "linear")
    nn.init.zeros_(linear.bias)


def process_group() -> tuple[int, int]:
    """``(rank, world size)`` of the running DistributedDataParallel group, ``(0, 1)`` outside one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class TensorBatches:
    """Whole batches sliced from in-memory tensors, reshuffled each epoch (no per-sample Dataset).

    Under DistributedDataParallel (``trainer=ddp``) every rank draws the same seeded permutation
    for the epoch and takes its own shard of it (``order[rank::world_size]``, padded by wrapping
    around to equal lengths, as ``DistributedSampler`` does), so the shards are disjoint, cover the
    training split, and change every epoch. ``shard=False`` (validation) gives every rank all rows.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, shuffle: bool, seed: int = 0,
                 shard: bool = True, limit: Any = None) -> None:
        self.x, self.y, self.batch_size, self.shuffle, self.shard = x, y, batch_size, shuffle, shard
        #: ``trainer.limit_train_batches``: an int (batches), a share of them, or None (all).
        self.limit = limit
        self.generator = torch.Generator().manual_seed(seed)

    def rows(self) -> int:
        """Rows this process sees per epoch (after ``limit``)."""
        rank, world = process_group() if self.shard else (0, 1)
        return limited_rows(self.limit, -(-len(self.y) // world), self.batch_size)

    def __len__(self) -> int:
        return -(-self.rows() // self.batch_size)

    def order(self) -> torch.Tensor:
        """This process's row indices for the next epoch (advances the shared generator)."""
        n = len(self.y)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        rank, world = process_group() if self.shard else (0, 1)
        if world == 1:
            return order
        per_rank = -(-n // world)
        padded = torch.cat([order, order[: per_rank * world - n]])
        return padded[rank::world]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        x, y, size, n = self.x, self.y, self.batch_size, self.rows()
        order = self.order() if self.shuffle or self.shard else None
        if order is None or (not self.shuffle and len(order) == len(y)):
            for start in range(0, n, size):  # in stored order: views, no copies
                stop = min(start + size, n)
                yield x[start:stop], y[start:stop]
            return
        # Gather each batch's rows when it is due: a shuffled copy of the whole split would touch
        # ~170 MB of fresh memory per MNIST epoch, the batch-sized gather reuses cache-hot memory.
        for start in range(0, n, size):
            rows = order[start : min(start + size, n)]
            yield x.index_select(0, rows), y.index_select(0, rows)


class StepBatches:
    """``batches`` handed to Lightning ``per_step`` at a time: each training step trains that many
    mini-batches, one optimiser step each (``trainer.batches_per_step``).

    Lightning's loop costs about 0.4 ms per training step on a CPU (progress tracking, hooks,
    the data fetcher), a tenth of a small MLP's step at batch 128; several batches per step
    spread it, as Keras' ``steps_per_execution`` does. The batches, their order and the
    optimiser steps are the same for any ``per_step``; per-batch callback hooks and the progress
    bar count training steps.
    """

    def __init__(self, batches: TensorBatches, per_step: int) -> None:
        self.batches, self.per_step = batches, per_step  # >= 1: trainer.batches_per_step is validated

    def __len__(self) -> int:
        return -(-len(self.batches) // self.per_step)

    def __iter__(self) -> Iterator[list[tuple[torch.Tensor, torch.Tensor]]]:
        step: list[tuple[torch.Tensor, torch.Tensor]] = []
        for batch in self.batches:
            step.append(batch)
            if len(step) == self.per_step:
                yield step
                step = []
        if step:
            yield step


class RandomAffine:
    """Per-image random shift, rotation and zoom of a batch of flattened images.

    Works on pixel intensities (``x * std + mean`` when the inputs were standardised), pads
    with background (0), and maps the result back to the model's input space. Draws from
    torch's global generator, so ``seed`` makes it reproducible.
    """

    def __init__(
        self,
        image_shape: tuple[int, int],
        shift: float,
        rotation: float,
        scale: float,
        mean: list[float] | None = None,
        std: list[float] | None = None,
    ) -> None:
        self.h, self.w = image_shape
        self.shift, self.rotation, self.scale = float(shift), float(rotation), float(scale)
        self.mean = None if mean is None else torch.tensor(mean, dtype=torch.float32).view(1, 1, self.h, self.w)
        self.std = None if std is None else torch.tensor(std, dtype=torch.float32).view(1, 1, self.h, self.w)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n = len(x)
        images = x.reshape(n, 1, self.h, self.w)
        if self.mean is not None and self.std is not None:
            mean, std = self.mean.to(x.device), self.std.to(x.device)
            images = images * std + mean

        def uniform(limit: float) -> torch.Tensor:
            return (torch.rand(n, device=x.device) * 2 - 1) * limit

        angle = uniform(self.rotation * torch.pi / 180)
        zoom = 1 + uniform(self.scale)
        # affine_grid maps output to input coordinates in [-1, 1]: one pixel is 2 / size.
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        theta = torch.stack(
            [
                torch.stack([cos, -sin, uniform(self.shift * 2 / self.w)], dim=1),
                torch.stack([sin, cos, uniform(self.shift * 2 / self.h)], dim=1),
            ],
            dim=1,
        )
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        out = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        if self.mean is not None and self.std is not None:
            out = (out - mean) / std
        return out.reshape(n, -1)


class MLPModule(pl.LightningModule):
    """An MLP classifier trained by manual optimisation; reports per-epoch metrics through ``epoch_callback``.

    ``optimizer`` and ``scheduler`` are the shared vocabulary's settings as plain dicts (so
    Lightning can store them as hyperparameters in checkpoints).
    """

    def __init__(
        self,
        n_features: int,
        n_classes: int,
        hidden: list[int],
        activation: str,
        batch_norm: bool,
        dropout: float,
        optimizer: dict[str, Any],
        scheduler: dict[str, Any],
        init: str,
        max_epochs: int = 1,
        steps_per_epoch: int = 1,
        gradient_clip_val: float | None = None,
        max_norm: float | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        # One optimiser step per batch, written out: Lightning's automatic-optimisation closure
        # costs about a millisecond per step, which is a large share of a small MLP's step.
        self.automatic_optimization = False
        # Read once here rather than from self.hparams on every step.
        self._clip_norm = gradient_clip_val or None
        self._optimizer = OptimizerSettings(**optimizer)
        self._scheduler = SchedulerSettings(**scheduler)
        self._plateau: Plateau | None = None
        self._schedule_per_step = self._scheduler.name == "onecycle"
        self.net = build_mlp(n_features, n_classes, list(hidden), activation, batch_norm, dropout, init)
        self._max_norm = max_norm
        #: The weights max_norm bounds: every layer's but the output layer's.
        self._hidden_weights = [m.weight for m in self.net if isinstance(m, nn.Linear)][:-1]
        self.loss_fn = nn.CrossEntropyLoss()
        self.epoch_callback: EpochCallback | None = None
        self.augment: RandomAffine | None = None
        self.history: list[dict[str, float]] = []
        self._reset_train_sums()
        #: Whether backward and the optimiser step may skip Lightning's wrappers (set at fit start).
        self._plain_steps = False
        self._val_proba: list[torch.Tensor] = []
        self._val_true: list[torch.Tensor] = []
        self._val_metrics: dict[str, float] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        # Batches are already CPU tensors: skip Lightning's generic (and per-step costly) traversal.
        if device.type == "cpu":
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def _reset_train_sums(self) -> None:
        # A plain dict: assigning nn.Module attributes on every step is measurably slow.
        self._sums = {"loss": torch.zeros(()), "correct": torch.zeros((), dtype=torch.long), "seen": 0}

    def on_train_start(self) -> None:
        self._plain_steps = plain_steps_suffice(self)

    def on_train_epoch_start(self) -> None:
        self._reset_train_sums()

    def training_step(self, batch: list[tuple[torch.Tensor, torch.Tensor]], batch_idx: int) -> torch.Tensor:
        """Train on each of the step's mini-batches (see :class:`StepBatches`); return the last loss."""
        loss = None
        for x, y in batch:
            loss = self._train_batch(x, y)
        assert loss is not None, "a training step without batches"
        return loss

    def _train_batch(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One optimiser step on one mini-batch."""
        if self.augment is not None:
            x = self.augment(x)
        opt = self.optimizers()
        logits = self(x)
        loss = self.loss_fn(logits, y)
        opt.zero_grad(set_to_none=True)
        if self._plain_steps:
            loss.backward()
        else:
            self.manual_backward(loss)
        if self._clip_norm:
            self.clip_gradients(opt, gradient_clip_val=self._clip_norm, gradient_clip_algorithm="norm")
        if self._plain_steps:
            # What LightningOptimizer.step does once its hooks have nothing to call: count the
            # step (trainer.global_step, which checkpoints and loggers read) around the update.
            opt._on_before_step()
            opt.optimizer.step()
            opt._on_after_step()
        else:
            opt.step()
        if self._max_norm:
            with torch.no_grad():
                for weight in self._hidden_weights:  # rows are the units' incoming weight vectors
                    weight.renorm_(2, 0, self._max_norm)
        if self._schedule_per_step:
            self.lr_schedulers().step()
        sums = self._sums
        with torch.no_grad():
            sums["loss"] = sums["loss"].to(loss.device) + loss.detach() * len(y)
            sums["correct"] = sums["correct"].to(loss.device) + (logits.argmax(1) == y).sum()
            sums["seen"] += len(y)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        self._val_proba.append(torch.softmax(self(x).float(), dim=1).cpu())
        self._val_true.append(y.cpu())

    def on_validation_epoch_end(self) -> None:
        if not self._val_true:
            return
        proba = torch.cat(self._val_proba).numpy()
        y = torch.cat(self._val_true).numpy()
        self._val_proba, self._val_true = [], []
        if self.trainer.sanity_checking:
            return
        self._val_metrics = epoch_metrics("val", y, proba)
        self.log_dict(self._val_metrics, prog_bar=True)

    def on_train_epoch_end(self) -> None:
        if self.trainer.world_size > 1:  # every rank trained on its own shard: add them up
            strategy = self.trainer.strategy
            for key in ("loss", "correct"):
                self._sums[key] = strategy.reduce(self._sums[key].float(), reduce_op="sum")
            self._sums["seen"] = int(strategy.reduce(torch.tensor(float(self._sums["seen"])), reduce_op="sum"))
        seen = max(self._sums["seen"], 1)
        optimizer = self.trainer.optimizers[0]
        metrics = {
            "train/loss": float(self._sums["loss"]) / seen,
            "train/accuracy": float(self._sums["correct"]) / seen,
            **self._val_metrics,
            "lr": float(optimizer.param_groups[0]["lr"]),
        }
        self._val_metrics = {}  # an epoch that does not validate reports train/* only
        self.log_dict({"train/loss": metrics["train/loss"], "train/accuracy": metrics["train/accuracy"]})
        epoch = self.current_epoch + 1
        self.history.append({"epoch": epoch, **metrics})
        self._step_epoch_scheduler(optimizer, epoch, metrics)
        if self.epoch_callback is not None:
            try:
                self.epoch_callback(epoch, metrics)
            except StopTraining:
                self.trainer.should_stop = True

    def _step_epoch_scheduler(self, optimizer: Any, epoch: int, metrics: dict[str, float]) -> None:
        name = self._scheduler.name
        if name == "plateau":
            if self._plateau is None:
                self._plateau = Plateau(self._scheduler, float(self._optimizer.lr))  # type: ignore[arg-type]
            lr = self._plateau.step(epoch, metrics)
            for group in optimizer.param_groups:
                group["lr"] = lr
        elif name in EPOCH_SCHEDULES and name != "none":
            self.lr_schedulers().step()

    def configure_optimizers(self) -> Any:
        opt = make_optimizer(self._optimizer, self.net)
        sched = self._scheduler
        if sched.name in ("none", "plateau"):
            return opt
        if sched.name == "onecycle":
            base = float(self._optimizer.lr)  # type: ignore[arg-type]
            one_cycle = torch.optim.lr_scheduler.OneCycleLR(
                opt, max_lr=base, epochs=max(int(self.hparams.max_epochs), 1),
                steps_per_epoch=max(int(self.hparams.steps_per_epoch), 1), pct_start=float(sched.pct_start),
                div_factor=float(sched.div_factor), final_div_factor=float(sched.final_div_factor),
            )
            return {"optimizer": opt, "lr_scheduler": {"scheduler": one_cycle, "interval": "step"}}
        base, epochs = float(self._optimizer.lr), max(int(self.hparams.max_epochs), 1)  # type: ignore[arg-type]
        lam = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: epoch_lr(sched, base, e, epochs) / base)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": lam, "interval": "epoch"}}


#: The hooks Lightning calls around backward and the optimiser step of a manual step.
_STEP_HOOKS = ("on_before_backward", "on_after_backward", "on_before_optimizer_step")


def plain_steps_suffice(module: pl.LightningModule) -> bool:
    """Whether ``loss.backward()`` and the bare optimiser step do all that Lightning's
    ``manual_backward`` and ``LightningOptimizer.step`` would: one process on one device, float32,
    no profiler, and no callback or module code in the hooks around backward and the step.

    Lightning's wrappers dispatch those hooks on every step; with nothing to dispatch to they cost
    about 0.2 ms per step, a tenth of a small MLP's step at batch 128 on a CPU.
    """
    from pytorch_lightning.callbacks import Callback
    from pytorch_lightning.plugins.precision import Precision
    from pytorch_lightning.profilers import PassThroughProfiler
    from pytorch_lightning.strategies import SingleDeviceStrategy
    from pytorch_lightning.utilities.model_helpers import is_overridden

    trainer = module.trainer
    return (
        type(trainer.strategy) is SingleDeviceStrategy
        and type(trainer.precision_plugin) is Precision
        and isinstance(trainer.profiler, PassThroughProfiler)
        and not any(is_overridden(hook, module, pl.LightningModule) for hook in (*_STEP_HOOKS, "backward"))
        and not any(is_overridden(hook, cb, Callback) for cb in trainer.callbacks for hook in _STEP_HOOKS)
    )


_OPTIMIZERS: dict[str, tuple[type[torch.optim.Optimizer], tuple[str, ...]]] = {
    "sgd": (torch.optim.SGD, ("momentum", "nesterov")),
    "adam": (torch.optim.Adam, ("betas", "eps")),
    "adamw": (torch.optim.AdamW, ("betas", "eps")),
    "rmsprop": (torch.optim.RMSprop, ("alpha", "eps", "momentum")),
}


def make_optimizer(settings: OptimizerSettings, net: nn.Module) -> torch.optim.Optimizer:
    """The torch optimiser ``settings`` name, with weight decay on the weight matrices only (not
    biases or batch-norm parameters), as the NumPy backend does."""
    cls, keys = _OPTIMIZERS[settings.name]
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k in keys if (v := getattr(settings, k)) is not None}
    decay = float(settings.weight_decay or 0.0)
    if not decay:  # one parameter group: a second one costs about 0.2 ms per step on a CPU
        return cls(net.parameters(), lr=float(settings.lr), weight_decay=0.0, **kwargs)  # type: ignore[arg-type]
    groups = [{"params": [p for p in net.parameters() if p.ndim >= 2], "weight_decay": decay},
              {"params": [p for p in net.parameters() if p.ndim < 2], "weight_decay": 0.0}]
    return cls(groups, lr=float(settings.lr), **kwargs)  # type: ignore[arg-type]


def predict_proba(net: nn.Module, x: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """Softmax probabilities of ``net`` for float32 inputs ``x``, batched, on the CPU."""
    net.eval()
    out = []
    with torch.inference_mode():
        xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        for start in range(0, len(xt), batch_size):
            out.append(torch.softmax(net(xt[start : start + batch_size]), dim=1))
    return torch.cat(out).numpy() if out else np.zeros((0, 0), dtype=np.float32)
