"""The training loop: epochs of mini-batch (or full-batch) gradient descent on a :class:`Network`.

One epoch shuffles the row order, then for each batch: gather the rows into a reused buffer,
distort them (``model.augment``), forward, backward, clip the gradient, optimiser step, and
bound the hidden units' weight norms (``model.max_norm``). After each validating epoch the
validation split is scored and the best weights so far are kept (``trainer.checkpoint``);
then ``on_epoch_end(epoch, metrics)`` is called: it may raise ``StopTraining`` (early stopping:
the loop ends normally) or anything else (``optuna.TrialPruned``: it propagates).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import numpy as np
from tqdm.auto import tqdm

from mnistfw.backends.base import EVAL_BATCH_SIZE, EpochCallback, History, StopTraining, limited_rows
from mnistfw.backends.monitoring import BestEpoch
from mnistfw.backends.numpy_net.augment import RandomAffine
from mnistfw.backends.numpy_net.network import Network
from mnistfw.backends.numpy_net.optimizers import coupled_weight_decay, make_optimizer
from mnistfw.backends.schedules import Plateau, epoch_lr
from mnistfw.config.vocabulary import Training
from mnistfw.metrics import epoch_metrics

log = logging.getLogger(__name__)


class Trainer:
    """Trains ``net`` as the shared ``trainer``/``optimizer``/``scheduler`` settings say."""

    def __init__(
        self,
        net: Network,
        training: Training,
        rng: np.random.Generator,
        shuffle: bool = True,
        *,
        augment: RandomAffine | None = None,
        max_norm: float | None = None,
    ) -> None:
        self.net = net
        self.training = training
        self.rng = rng  # shuffles the rows each epoch
        self.shuffle = shuffle
        self.augment = augment  # distorts each training batch (None: the rows as they are)
        self.max_norm = max_norm  # bound on each hidden unit's incoming weight norm (None: off)
        opt = training.optimizer
        self.optimizer = make_optimizer(opt, net.params, net.n_weights)
        self.weight_decay = coupled_weight_decay(opt)
        self.base_lr = float(opt.lr)  # type: ignore[arg-type]
        self.plateau = Plateau(training.scheduler, self.base_lr) if training.scheduler.name == "plateau" else None
        self._batch: np.ndarray | None = None

    def lr_at(self, epoch: int) -> float:
        """Learning rate of the 0-based ``epoch`` (plateau: the rate it has reached)."""
        if self.plateau is not None:
            return self.plateau.lr
        return epoch_lr(self.training.scheduler, self.base_lr, epoch, self.training.trainer.max_epochs)

    def batch_size(self, n: int) -> int:
        """Rows per step for a training set of ``n`` rows (all of them when ``batch_size`` is null)."""
        bs = self.training.trainer.batch_size
        return n if bs is None else min(bs, n)

    def _clip(self) -> None:
        limit = self.training.trainer.gradient_clip_val
        if limit:
            norm = float(np.sqrt(np.dot(self.net.grads, self.net.grads)))
            if norm > limit:
                self.net.grads *= limit / norm

    def _step(self, lr: float) -> None:
        """Clip the gradient, update the parameters, then apply the max-norm constraint."""
        self._clip()
        self.optimizer.step(self.net.grads, lr)
        if self.max_norm is not None:
            self.net.limit_norms(self.max_norm)

    def run_epoch(self, x: np.ndarray, y: np.ndarray, lr: float, bar: tqdm | None = None) -> tuple[float, float]:
        """One pass over ``(x, y)`` (or the batches ``limit_train_batches`` allows); mean loss and accuracy."""
        net, decay = self.net, self.weight_decay
        n = len(y)
        bs = self.batch_size(n)
        if bs == n:  # full batch: no shuffling, and no copying unless the rows are distorted
            if self.augment is not None:
                x = x.copy()
                self.augment(x)
            net.forward(x, training=True)
            loss_sum, correct = net.backward(y, decay)
            self._step(lr)
            return loss_sum / n, correct / n
        if self._batch is None or self._batch.shape[0] < bs:
            self._batch = np.empty((bs, x.shape[1]), x.dtype)
        order = self.rng.permutation(n) if self.shuffle else np.arange(n)
        rows_used = limited_rows(self.training.trainer.limit_train_batches, n, bs)
        loss_total, correct_total, seen = 0.0, 0, 0
        for k, start in enumerate(range(0, rows_used, bs)):
            rows = order[start : min(start + bs, rows_used)]
            xb = np.take(x, rows, axis=0, out=self._batch[: len(rows)], mode="clip")
            if self.augment is not None:
                self.augment(xb)
            net.forward(xb, training=True)
            loss_sum, correct = net.backward(y[rows], decay)
            self._step(lr)
            loss_total += loss_sum
            correct_total += correct
            seen += len(rows)
            if bar is not None:
                bar.update()
                if k % 50 == 0:
                    bar.set_postfix(loss=f"{loss_total / seen:.4f}", acc=f"{correct_total / seen:.4f}", refresh=False)
        return loss_total / max(seen, 1), correct_total / max(seen, 1)

    def fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        x_val: np.ndarray,
        y_val: np.ndarray,
        on_epoch_end: EpochCallback,
        save_best: Callable[[int], None] | None = None,
    ) -> History:
        """Train for ``trainer.max_epochs`` epochs (fewer when stopped early); return the history.

        ``save_best(epoch)`` is called whenever ``trainer.checkpoint.monitor`` improves; the best
        epoch's weights are restored at the end.
        """
        t = self.training.trainer
        best = BestEpoch(t.checkpoint.monitor, t.checkpoint.mode) if t.checkpoint.monitor else None  # type: ignore[arg-type]
        best_params = np.empty_like(self.net.params) if best is not None else None
        val_rows = limited_rows(t.limit_val_batches, len(y_val), EVAL_BATCH_SIZE)
        batch = self.batch_size(len(y))
        steps = math.ceil(limited_rows(t.limit_train_batches, len(y), batch) / batch)
        hide = None if t.enable_progress_bar else True  # None: tqdm shows a bar only on a terminal
        run_bar = tqdm(total=t.max_epochs, desc="full-batch GD", unit="it", disable=hide) if batch == len(y) else None
        history: History = []
        try:
            for epoch in range(1, t.max_epochs + 1):
                lr = self.lr_at(epoch - 1)
                bar = None if run_bar else tqdm(total=steps, desc=f"epoch {epoch}/{t.max_epochs}", unit="batch",
                                                disable=hide)
                train_loss, train_acc = self.run_epoch(x, y, lr, bar)
                metrics = {"train/loss": train_loss, "train/accuracy": train_acc}
                if val_rows and (epoch % t.check_val_every_n_epoch == 0 or epoch == t.max_epochs):
                    metrics.update(epoch_metrics("val", y_val[:val_rows], self.net.predict_proba(x_val[:val_rows])))
                metrics["lr"] = lr
                _show(bar or run_bar, metrics)
                if bar is not None:
                    bar.close()
                elif run_bar is not None:
                    run_bar.update()
                history.append({"epoch": epoch, **metrics})
                if best is not None and best.update(epoch, metrics):
                    np.copyto(best_params, self.net.params)  # type: ignore[arg-type]
                    if save_best is not None:
                        save_best(epoch)
                if self.plateau is not None:
                    self.plateau.step(epoch, metrics)
                try:
                    on_epoch_end(epoch, metrics)
                except StopTraining:
                    break
        finally:
            if run_bar is not None:
                run_bar.close()
        if best is not None and best.epoch and best.epoch != len(history):
            np.copyto(self.net.params, best_params)  # type: ignore[arg-type]
            log.info("restored the weights of epoch %d (%s = %.4f)", best.epoch, best.monitor, best.value)
        return history


def _show(bar: tqdm | None, metrics: dict[str, float]) -> None:
    if bar is None:
        return
    shown = {"loss": metrics["train/loss"], "acc": metrics["train/accuracy"]}
    if "val/accuracy" in metrics:
        shown["val_acc"] = metrics["val/accuracy"]
    bar.set_postfix({k: f"{v:.4f}" for k, v in shown.items()}, refresh=False)
