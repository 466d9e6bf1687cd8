"""The training loop: epochs of mini-batch (or full-batch) gradient descent on a :class:`Network`.

One epoch shuffles the row order, then for each batch: gather the rows into a reused buffer,
forward, backward, optimiser step. After each epoch the validation split is scored, the best
weights so far are kept (and checkpointed), ``on_epoch_end(epoch, metrics)`` is called (its
exceptions, e.g. ``optuna.TrialPruned``, propagate), and early stopping may end the run.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import numpy as np
from tqdm.auto import tqdm

from mnistfw.backends.base import EpochCallback, History, epoch_metrics
from mnistfw.backends.numpy_net.network import Network
from mnistfw.backends.numpy_net.numpy_settings import NumpyNetConfig
from mnistfw.backends.numpy_net.optimizers import make_optimizer, scheduled_lr

log = logging.getLogger(__name__)


class Trainer:
    """Trains ``net`` with the optimiser, schedule and early stopping of ``settings``."""

    def __init__(self, net: Network, settings: NumpyNetConfig, rng: np.random.Generator) -> None:
        self.net = net
        self.settings = settings
        self.rng = rng  # shuffles the rows each epoch
        opt = settings.optimizer
        self.optimizer = make_optimizer(opt.name, net.params, opt.momentum, tuple(opt.betas), opt.eps)
        self._batch: np.ndarray | None = None

    def lr_at(self, epoch: int) -> float:
        """Learning rate of the 0-based ``epoch``."""
        sch, opt = self.settings.scheduler, self.settings.optimizer
        return scheduled_lr(
            sch.name, opt.lr, epoch, self.settings.epochs, sch.step_size, sch.gamma, sch.min_lr, sch.warmup_epochs
        )

    def batch_size(self, n: int) -> int:
        """Rows per step for a training set of ``n`` rows (all of them when ``batch_size`` is null)."""
        bs = self.settings.batch_size
        return n if bs is None else min(bs, n)

    def run_epoch(self, x: np.ndarray, y: np.ndarray, lr: float, bar: tqdm | None = None) -> tuple[float, float]:
        """One pass over ``(x, y)``; returns the mean training loss and accuracy seen during it."""
        net, step = self.net, self.optimizer.step
        decay = self.settings.optimizer.weight_decay
        n = len(y)
        bs = self.batch_size(n)
        if bs == n:  # full batch: no shuffling or copying needed
            net.forward(x, training=True)
            loss_sum, correct = net.backward(y, decay)
            step(net.grads, lr)
            return loss_sum / n, correct / n
        if self._batch is None or self._batch.shape[0] < bs:
            self._batch = np.empty((bs, x.shape[1]), x.dtype)
        order = self.rng.permutation(n) if self.settings.shuffle else np.arange(n)
        loss_total, correct_total = 0.0, 0
        for k, start in enumerate(range(0, n, bs)):
            rows = order[start : start + bs]
            xb = np.take(x, rows, axis=0, out=self._batch[: len(rows)], mode="clip")
            net.forward(xb, training=True)
            loss_sum, correct = net.backward(y[rows], decay)
            step(net.grads, lr)
            loss_total += loss_sum
            correct_total += correct
            if bar is not None:
                bar.update()
                if k % 50 == 0:
                    seen = start + len(rows)
                    bar.set_postfix(loss=f"{loss_total / seen:.4f}", acc=f"{correct_total / seen:.4f}", refresh=False)
        return loss_total / n, correct_total / n

    def fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        x_val: np.ndarray,
        y_val: np.ndarray,
        on_epoch_end: EpochCallback,
        monitor: str | None,
        save_best: Callable[[int], None] | None = None,
    ) -> History:
        """Train for ``settings.epochs`` epochs (fewer with early stopping); return the history.

        ``monitor`` names the metric that decides the best epoch; ``save_best(epoch)`` is called
        whenever it improves.
        """
        s = self.settings
        stopper = s.early_stopping
        min_delta = stopper.min_delta if stopper else 0.0
        # stopper.mode is min or max; without a stopper, losses are minimised and the rest maximised
        lower_is_better = stopper.mode == "min" if stopper else bool(monitor) and monitor.endswith("loss")
        best_value: float | None = None
        best_epoch = 0
        best_params = np.empty_like(self.net.params) if stopper and stopper.restore_best else None
        steps = math.ceil(len(y) / self.batch_size(len(y)))
        show = None if s.progress else True  # None: tqdm shows a bar only on a terminal
        run_bar = tqdm(total=s.epochs, desc="full-batch GD", unit="it", disable=show) if steps == 1 else None
        history: History = []
        try:
            for epoch in range(1, s.epochs + 1):
                lr = self.lr_at(epoch - 1)
                bar = None
                if run_bar is None:
                    bar = tqdm(total=steps, desc=f"epoch {epoch}/{s.epochs}", unit="batch", disable=show)
                train_loss, train_acc = self.run_epoch(x, y, lr, bar)
                metrics = {"train/loss": train_loss, "train/accuracy": train_acc}
                if len(y_val):
                    metrics.update(epoch_metrics("val", y_val, self.net.predict_proba(x_val)))
                metrics["lr"] = lr
                if bar is not None:
                    _show_metrics(bar, metrics)
                    bar.close()
                elif run_bar is not None:
                    _show_metrics(run_bar, metrics)
                    run_bar.update()
                history.append({"epoch": epoch, **metrics})

                value = metrics.get(monitor) if monitor else None
                if (
                    value is not None
                    and math.isfinite(value)
                    and (
                        best_value is None
                        or (value < best_value - min_delta if lower_is_better else value > best_value + min_delta)
                    )
                ):
                    best_value, best_epoch = value, epoch
                    if best_params is not None:
                        np.copyto(best_params, self.net.params)
                    if save_best is not None:
                        save_best(epoch)
                on_epoch_end(epoch, metrics)

                if not math.isfinite(train_loss):
                    log.warning("training diverged (loss %s) at epoch %d; lower model.optimizer.lr", train_loss, epoch)
                    break
                if stopper and stopper.patience and best_epoch and epoch - best_epoch >= stopper.patience:
                    log.info(
                        "early stopping at epoch %d: %s has not improved for %d epochs (best %.4f at epoch %d)",
                        epoch,
                        monitor,
                        stopper.patience,
                        best_value,
                        best_epoch,
                    )
                    break
        finally:
            if run_bar is not None:
                run_bar.close()
        if best_params is not None and best_epoch and best_epoch != len(history):
            np.copyto(self.net.params, best_params)
            log.info("restored the weights of epoch %d (%s = %.4f)", best_epoch, monitor, best_value)
        return history


def _show_metrics(bar: tqdm, metrics: dict[str, float]) -> None:
    shown = {"loss": metrics["train/loss"], "acc": metrics["train/accuracy"]}
    if "val/accuracy" in metrics:
        shown["val_acc"] = metrics["val/accuracy"]
    bar.set_postfix({k: f"{v:.4f}" for k, v in shown.items()}, refresh=False)
