"""Optimisers: SGD (with momentum and Nesterov), Adam, AdamW and RMSprop.

All parameters of the network live in one flat array (the layers hold views into it), and so
do their gradients, so an optimiser step is a handful of in-place vector operations whatever
the depth of the network. The update rules follow PyTorch's conventions, so ``optimizer=...``
means the same for this backend as for the Lightning one. Learning-rate schedules are shared
by all backends: :mod:`mnistfw.backends.schedules`.
"""

from __future__ import annotations

import math

import numpy as np

from mnistfw.config.vocabulary import OptimizerSettings

#: The ``optimizer`` options this backend implements.
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")


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
    """SGD with heavy-ball momentum: ``v <- mu v + g``; ``p <- p - lr v``.

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


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019), as torch's ``AdamW``:
    ``W <- W (1 - lr * weight_decay)`` on the weight matrices, then the Adam step."""

    def __init__(self, params: np.ndarray, betas: tuple[float, float], eps: float, weight_decay: float,
                 n_weights: int) -> None:
        super().__init__(params, betas, eps)
        self.weight_decay = float(weight_decay)
        self.weights = params[:n_weights]  # the weights come first in the flat array; biases are not decayed

    def step(self, grads: np.ndarray, lr: float) -> None:
        if self.weight_decay:
            self.weights *= 1.0 - lr * self.weight_decay
        super().step(grads, lr)


class RMSprop(Optimizer):
    """RMSprop as torch's: ``s <- a s + (1 - a) g^2``; step ``g / (sqrt(s) + eps)``, with optional momentum."""

    def __init__(self, params: np.ndarray, alpha: float, eps: float, momentum: float) -> None:
        super().__init__(params)
        self.alpha, self.eps, self.mu = float(alpha), float(eps), float(momentum)
        self.square_avg = np.zeros_like(params)
        self.buffer = np.zeros_like(params) if self.mu else None

    def step(self, grads: np.ndarray, lr: float) -> None:
        s, tmp = self.square_avg, self.tmp
        s *= self.alpha
        np.multiply(grads, grads, out=tmp)
        tmp *= 1.0 - self.alpha
        s += tmp
        np.sqrt(s, out=tmp)
        tmp += self.eps
        np.divide(grads, tmp, out=tmp)
        if self.buffer is not None:
            self.buffer *= self.mu
            self.buffer += tmp
            np.multiply(self.buffer, lr, out=tmp)
        else:
            tmp *= lr
        self.params -= tmp


def make_optimizer(settings: OptimizerSettings, params: np.ndarray, n_weights: int) -> Optimizer:
    """The optimiser ``settings`` describe, over the flat ``params`` (weights first, ``n_weights`` of them)."""
    name = settings.name
    if name == "sgd":
        if settings.momentum:
            return Momentum(params, float(settings.momentum), nesterov=bool(settings.nesterov))
        return SGD(params)
    if name == "adam":
        return Adam(params, tuple(settings.betas), float(settings.eps))  # type: ignore[arg-type]
    if name == "adamw":
        return AdamW(params, tuple(settings.betas), float(settings.eps),  # type: ignore[arg-type]
                     float(settings.weight_decay or 0.0), n_weights)
    if name == "rmsprop":
        return RMSprop(params, float(settings.alpha), float(settings.eps), float(settings.momentum or 0.0))
    raise ValueError(f"unknown optimizer {name!r}; use one of {', '.join(OPTIMIZERS)}")


def coupled_weight_decay(settings: OptimizerSettings) -> float:
    """The L2 penalty to add to the weights' gradients (AdamW decays them itself instead)."""
    return 0.0 if settings.name == "adamw" else float(settings.weight_decay or 0.0)
