"""The building blocks of the network: activations, weight initialisation, softmax + cross-entropy.

Every function works *in place* on arrays the caller owns, so that a training step allocates
nothing: ``forward_`` turns pre-activations ``z`` into activations ``a`` in the same buffer, and
``backward_`` turns ``dL/da`` into ``dL/dz`` in the same buffer. Backward passes only need the
activation *output* ``a`` (not ``z``), which is why the forward pass may overwrite ``z``.
"""

from __future__ import annotations

import math

import numpy as np

#: Activation names accepted in ``model.activation``.
ACTIVATIONS = ("relu", "leaky_relu", "tanh", "sigmoid", "selu")

# SELU's fixed constants (Klambauer et al. 2017).
SELU_ALPHA = 1.6732632423543772
SELU_SCALE = 1.0507009873554805


class Activation:
    """An element-wise non-linearity applied in place.

    ``scratch`` (float) and ``mask`` (bool) are caller-owned work buffers of the same shape,
    so no step allocates memory.
    """

    def __init__(self, name: str, leaky_slope: float = 0.01) -> None:
        if name not in ACTIVATIONS:
            raise ValueError(f"unknown activation {name!r}; use one of {', '.join(ACTIVATIONS)}")
        self.name = name
        self.slope = float(leaky_slope)

    def forward_(self, z: np.ndarray, scratch: np.ndarray) -> None:
        """``z <- f(z)``."""
        if self.name == "relu":
            np.maximum(z, 0, out=z)
        elif self.name == "leaky_relu":  # max(z, slope * z) for 0 < slope < 1
            np.multiply(z, self.slope, out=scratch)
            np.maximum(z, scratch, out=z)
        elif self.name == "tanh":
            np.tanh(z, out=z)
        elif self.name == "sigmoid":  # 1 / (1 + e^-z) == (1 + tanh(z / 2)) / 2, which never overflows
            z *= 0.5
            np.tanh(z, out=z)
            z += 1
            z *= 0.5
        else:  # selu: scale * (z if z > 0 else alpha * (e^z - 1))
            np.minimum(z, 0, out=scratch)
            np.expm1(scratch, out=scratch)
            scratch *= SELU_ALPHA
            np.maximum(z, 0, out=z)
            z += scratch
            z *= SELU_SCALE

    def backward_(self, grad: np.ndarray, a: np.ndarray, scratch: np.ndarray, mask: np.ndarray) -> None:
        """``grad <- grad * f'(z)``, with ``f'`` written in terms of the output ``a = f(z)``."""
        if self.name == "relu":  # f' = 1 where a > 0, else 0
            np.greater(a, 0, out=scratch)
        elif self.name == "leaky_relu":  # f' = 1 where a > 0, else slope
            np.greater(a, 0, out=scratch)
            scratch *= 1.0 - self.slope
            scratch += self.slope
        elif self.name == "tanh":  # f' = 1 - a^2
            np.multiply(a, a, out=scratch)
            np.subtract(1, scratch, out=scratch)
        elif self.name == "sigmoid":  # f' = a (1 - a)
            np.subtract(1, a, out=scratch)
            scratch *= a
        else:  # selu: f' = scale where a > 0, else scale * alpha * e^z = a + scale * alpha
            np.greater(a, 0, out=mask)
            np.add(a, SELU_SCALE * SELU_ALPHA, out=scratch)
            np.copyto(scratch, SELU_SCALE, where=mask)
        grad *= scratch


def init_layer(w: np.ndarray, b: np.ndarray, scheme: str, rng: np.random.Generator) -> None:
    """Fill a layer's ``w`` of shape ``(fan_in, fan_out)`` and its bias ``b`` in place (``model.init``).

    he: normal, var = 2 / fan_in; lecun: var = 1 / fan_in; xavier (Glorot): var = 2 / (fan_in +
    fan_out) — all with zero biases; torch: PyTorch's ``nn.Linear`` default, weights and biases
    uniform in +-1/sqrt(fan_in).
    """
    fan_in, fan_out = w.shape
    if scheme == "torch":
        bound = 1.0 / math.sqrt(fan_in)
        w[...] = rng.uniform(-bound, bound, w.shape)
        b[...] = rng.uniform(-bound, bound, b.shape)
        return
    var = {"he": 2.0 / fan_in, "lecun": 1.0 / fan_in, "xavier": 2.0 / (fan_in + fan_out)}[scheme]
    w[...] = rng.standard_normal(w.shape, dtype=np.float64) * math.sqrt(var)
    b[...] = 0


def softmax_cross_entropy_(logits: np.ndarray, y: np.ndarray, rows: np.ndarray) -> tuple[float, int]:
    """Turn ``logits`` into ``dL/dlogits`` in place, for the mean cross-entropy ``L`` over the batch.

    Computed stably: subtract each row's max before ``exp``, and take the loss as
    ``log(sum(exp(shifted))) - shifted[y]`` instead of ``-log(softmax)``.
    With ``p = softmax(logits)`` the gradient is ``(p - onehot(y)) / m``.
    ``rows`` is ``arange(m)``. Returns ``(sum of per-sample losses, number correct)``.
    """
    m = len(y)
    correct = int(np.count_nonzero(logits.argmax(axis=1) == y))
    logits -= logits.max(axis=1, keepdims=True)
    picked = logits[rows, y]  # shifted logit of the true class
    np.exp(logits, out=logits)
    sums = logits.sum(axis=1, keepdims=True)
    loss_sum = float(np.log(sums).sum() - picked.sum())
    logits /= sums  # softmax probabilities
    logits[rows, y] -= 1
    logits *= 1.0 / m
    return loss_sum, correct


def softmax_(logits: np.ndarray) -> None:
    """Softmax over each row, in place, stably."""
    logits -= logits.max(axis=1, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=1, keepdims=True)
