"""Optimisers and learning-rate schedules.

All parameters of the network live in one flat array (the layers hold views into it), and so
do their gradients, so an optimiser step is a handful of in-place vector operations whatever
the depth of the network. The update rules follow PyTorch's conventions.
"""

from __future__ import annotations

import math

import numpy as np

#: Optimiser names accepted in ``model.optimizer``, with the learning rate each gets by default.
DEFAULT_LR = {"sgd": 0.1, "momentum": 0.05, "nesterov": 0.05, "adam": 0.001}


class Optimizer:
    """Updates ``params`` in place from ``grads`` (both flat arrays of the same shape)."""

    def __init__(self, params: np.ndarray) -> None:
        self.params = params
        self.tmp = np.empty_like(params)

    def step(self, grads: np.ndarray, lr: float) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """Plain gradient descent: ``p <- p - lr * g``."""

    def step(self, grads: np.ndarray, lr: float) -> None:
        np.multiply(grads, lr, out=self.tmp)
        self.params -= self.tmp


class Momentum(Optimizer):
    """Heavy-ball momentum: ``v <- mu v + g``; ``p <- p - lr v``.

    Nesterov's variant steps along ``g + mu v`` instead of ``v``.
    """

    def __init__(self, params: np.ndarray, momentum: float = 0.9, nesterov: bool = False) -> None:
        super().__init__(params)
        self.mu = float(momentum)
        self.nesterov = nesterov
        self.velocity = np.zeros_like(params)

    def step(self, grads: np.ndarray, lr: float) -> None:
        v = self.velocity
        v *= self.mu
        v += grads
        if self.nesterov:
            np.multiply(v, self.mu, out=self.tmp)
            self.tmp += grads
            self.tmp *= lr
        else:
            np.multiply(v, lr, out=self.tmp)
        self.params -= self.tmp


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015): running means of ``g`` and ``g^2`` with bias correction, as in PyTorch::

        m <- b1 m + (1 - b1) g          v <- b2 v + (1 - b2) g^2
        p <- p - lr / (1 - b1^t) * m / (sqrt(v / (1 - b2^t)) + eps)

    To save passes over memory it stores ``M = m / (1 - b1)`` and ``V = v / (1 - b2)``, whose
    updates ``M <- b1 M + g`` and ``V <- b2 V + g^2`` need no extra multiplication; the constant
    factors move into two scalars. With ``r = sqrt((1 - b2) / (1 - b2^t))`` the step above is
    exactly ``p <- p - [lr (1 - b1) / ((1 - b1^t) r)] * M / (sqrt(V) + eps / r)``.
    """

    def __init__(self, params: np.ndarray, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        super().__init__(params)
        self.b1, self.b2 = float(betas[0]), float(betas[1])
        self.eps = float(eps)
        self.m_scaled = np.zeros_like(params)  # M = m / (1 - b1)
        self.v_scaled = np.zeros_like(params)  # V = v / (1 - b2)
        self.t = 0

    def step(self, grads: np.ndarray, lr: float) -> None:
        self.t += 1
        b1, b2 = self.b1, self.b2
        r = math.sqrt((1.0 - b2) / (1.0 - b2**self.t))
        step_size = lr * (1.0 - b1) / ((1.0 - b1**self.t) * r)
        m, v, tmp = self.m_scaled, self.v_scaled, self.tmp
        m *= b1
        m += grads
        np.multiply(grads, grads, out=tmp)
        v *= b2
        v += tmp
        np.sqrt(v, out=tmp)
        tmp += self.eps / r
        np.divide(m, tmp, out=tmp)
        tmp *= step_size
        self.params -= tmp


def make_optimizer(name: str, params: np.ndarray, momentum: float, betas: tuple[float, float], eps: float) -> Optimizer:
    """Build the optimiser called ``name`` (sgd, momentum, nesterov, adam) over ``params``."""
    if name == "sgd":
        return SGD(params)
    if name in ("momentum", "nesterov"):
        return Momentum(params, momentum, nesterov=name == "nesterov")
    if name == "adam":
        return Adam(params, betas, eps)
    raise ValueError(f"unknown optimizer {name!r}; use one of {', '.join(DEFAULT_LR)}")


#: Schedule names accepted in ``model.scheduler``.
SCHEDULES = ("none", "step", "exponential", "cosine")


def scheduled_lr(
    name: str,
    base_lr: float,
    epoch: int,
    epochs: int,
    step_size: int = 10,
    gamma: float = 0.1,
    min_lr: float = 0.0,
    warmup_epochs: int = 0,
) -> float:
    """Learning rate for 0-based ``epoch`` of ``epochs``.

    step: ``lr * gamma^(epoch // step_size)``; exponential: ``lr * gamma^epoch``;
    cosine: from ``lr`` towards ``min_lr`` along half a cosine over the run (PyTorch's
    ``CosineAnnealingLR`` with ``T_max = epochs``).
    ``warmup_epochs`` first ramps linearly up to the scheduled value.
    """
    if name == "step":
        lr = base_lr * gamma ** (epoch // step_size)
    elif name == "exponential":
        lr = base_lr * gamma**epoch
    elif name == "cosine":
        span = max(epochs, 1)
        lr = min_lr + 0.5 * (base_lr - min_lr) * (1.0 + math.cos(math.pi * min(epoch, span) / span))
    else:
        lr = base_lr
    if epoch < warmup_epochs:
        lr *= (epoch + 1) / (warmup_epochs + 1)
    return float(lr)
