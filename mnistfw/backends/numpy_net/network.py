"""A fully connected network: dense layers, one hidden activation, softmax output.

Shapes, for a batch of ``m`` rows and layer sizes ``[n_0, n_1, ..., n_L]``::

    a_0 = x                               (m, n_0)
    z_i = a_{i-1} @ W_i + b_i             (m, n_i)     W_i: (n_{i-1}, n_i), b_i: (n_i,)
    a_i = dropout(f(z_i))                 hidden layers
    p   = softmax(z_L)                    the output layer
    L   = mean cross-entropy(p, y) + weight_decay / 2 * sum ||W_i||^2

Back-propagation, from ``dz_L = (p - onehot(y)) / m``::

    dW_i = a_{i-1}.T @ dz_i + weight_decay * W_i
    db_i = sum over rows of dz_i
    dz_{i-1} = (dz_i @ W_i.T) * dropout mask * f'(z_{i-1})

All weights and biases live in one flat array ``params`` (``weights[i]`` and ``biases[i]`` are
views into it) and all gradients in ``grads``, so the optimiser updates everything with a few
vector operations. Per-layer work buffers are allocated once for the largest batch and reused.
"""

from __future__ import annotations

import numpy as np

from mnistfw.backends.numpy_net.layers import Activation, init_layer, softmax_, softmax_cross_entropy_


class Network:
    """A multi-layer perceptron over ``sizes = [n_inputs, *hidden, n_classes]``."""

    def __init__(
        self,
        sizes: list[int],
        activation: str = "relu",
        *,
        leaky_slope: float = 0.01,
        dropout: float = 0.0,
        dtype: str | np.dtype = "float32",
    ) -> None:
        self.sizes = [int(s) for s in sizes]
        self.activation = Activation(activation, leaky_slope)
        self.dropout = float(dropout)
        self.dtype = np.dtype(dtype)
        shapes = list(zip(self.sizes[:-1], self.sizes[1:]))
        n_weights = sum(a * b for a, b in shapes)
        n_biases = sum(b for _, b in shapes)
        self.n_weights = n_weights
        self.params = np.zeros(n_weights + n_biases, self.dtype)
        self.grads = np.zeros_like(self.params)
        self.weights, self.biases = _views(self.params, shapes)
        self.dweights, self.dbiases = _views(self.grads, shapes)
        #: Random source of the dropout masks (the trainer gives it its own seeded stream).
        self.rng = np.random.default_rng(0)
        self._decay = np.empty(n_weights, self.dtype)
        self._capacity = 0
        self._inputs: list[np.ndarray] = []  # what each layer saw in the last training forward pass
        self._dropout_on = False

    @property
    def n_layers(self) -> int:
        return len(self.weights)

    def initialize(self, scheme: str, rng: np.random.Generator) -> None:
        """Random weights and biases by ``scheme`` (he, xavier, lecun, torch; see ``init_layer``)."""
        for w, b in zip(self.weights, self.biases, strict=True):
            init_layer(w, b, scheme, rng)

    # -- work buffers ----------------------------------------------------------------------
    def reserve(self, rows: int) -> None:
        """Make sure the work buffers hold ``rows`` rows (they only ever grow)."""
        if rows <= self._capacity:
            return
        dt, sizes = self.dtype, self.sizes[1:]
        self._z = [np.empty((rows, n), dt) for n in sizes]  # z_i, then f(z_i) in place (hidden layers)
        hidden = sizes[:-1]
        self._scratch = [np.empty((rows, n), dt) for n in hidden]
        self._mask = [np.empty((rows, n), bool) for n in hidden]
        self._dz = [np.empty((rows, n), dt) for n in hidden]
        self._keep = [np.empty((rows, n), dt) for n in hidden] if self.dropout > 0 else []
        self._dropped = [np.empty((rows, n), dt) for n in hidden] if self.dropout > 0 else []
        self._rows = np.arange(rows)
        self._capacity = rows

    # -- forward / backward -----------------------------------------------------------------
    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """Logits ``z_L`` for ``x`` (a view into a work buffer, valid until the next call).

        With ``training=True`` dropout is applied and the layer inputs are kept for :meth:`backward`.
        """
        m = len(x)
        self.reserve(m)
        drop = training and self.dropout > 0
        a = x
        inputs = [x]
        last = self.n_layers - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            z = np.matmul(a, w, out=self._z[i][:m])
            z += b
            if i == last:
                break
            self.activation.forward_(z, self._scratch[i][:m])
            if drop:  # inverted dropout: keep with probability 1 - p, scale kept units by 1 / (1 - p)
                keep = self._keep[i][:m]
                self.rng.random(out=keep, dtype=self.dtype)
                np.greater_equal(keep, self.dropout, out=keep)
                keep *= 1.0 / (1.0 - self.dropout)
                a = np.multiply(z, keep, out=self._dropped[i][:m])
            else:
                a = z
            inputs.append(a)
        self._inputs = inputs
        self._dropout_on = drop
        return z

    def backward(self, y: np.ndarray, weight_decay: float = 0.0) -> tuple[float, int]:
        """Fill :attr:`grads` for the batch of the last ``forward(x, training=True)`` with labels ``y``.

        Returns ``(sum of per-sample cross-entropies, number of correct predictions)``.
        """
        m = len(y)
        dz = self._z[-1][:m]
        loss_sum, correct = softmax_cross_entropy_(dz, y, self._rows[:m])
        for i in reversed(range(self.n_layers)):
            np.matmul(self._inputs[i].T, dz, out=self.dweights[i])
            np.sum(dz, axis=0, out=self.dbiases[i])
            if i == 0:
                break
            da = np.matmul(dz, self.weights[i].T, out=self._dz[i - 1][:m])
            if self._dropout_on:
                da *= self._keep[i - 1][:m]
            self.activation.backward_(da, self._z[i - 1][:m], self._scratch[i - 1][:m], self._mask[i - 1][:m])
            dz = da
        if weight_decay:  # L2 penalty on the weights (they come first in the flat arrays), not the biases
            np.multiply(self.params[: self.n_weights], weight_decay, out=self._decay)
            self.grads[: self.n_weights] += self._decay
        return loss_sum, correct

    def limit_norms(self, max_norm: float) -> None:
        """Max-norm constraint (Srivastava et al. 2014): scale each hidden unit's incoming weight
        vector (a column of ``W_i``; the output layer is left alone) down to L2 norm ``max_norm``
        where it is longer."""
        for w in self.weights[:-1]:
            norms = np.sqrt(np.einsum("ij,ij->j", w, w))
            if norms.max(initial=0.0) > max_norm:
                w *= (max_norm / np.maximum(norms, max_norm)).astype(w.dtype)  # 1 where short enough

    def predict_proba(self, x: np.ndarray, chunk: int = 2048) -> np.ndarray:
        """Softmax probabilities ``(n, n_classes)`` for ``x``, computed in chunks, no dropout."""
        x = np.asarray(x, dtype=self.dtype)
        out = np.empty((len(x), self.sizes[-1]), self.dtype)
        step = max(chunk, self._capacity)
        for start in range(0, len(x), step):
            logits = self.forward(x[start : start + step])
            softmax_(logits)
            out[start : start + len(logits)] = logits
        return out

    # -- state ------------------------------------------------------------------------------
    def state(self) -> dict[str, np.ndarray]:
        """Weights and biases as ``{"W0": ..., "b0": ..., "W1": ...}`` (copies)."""
        arrays: dict[str, np.ndarray] = {}
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            arrays[f"W{i}"] = w.copy()
            arrays[f"b{i}"] = b.copy()
        return arrays

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Copy arrays shaped like :meth:`state`'s into the network (shapes must match)."""
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            w[...] = arrays[f"W{i}"]
            b[...] = arrays[f"b{i}"]


def _views(flat: np.ndarray, shapes: list[tuple[int, int]]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Carve ``flat`` into weight matrices (all first) and bias vectors (after them)."""
    weights, biases, pos = [], [], 0
    for a, b in shapes:
        weights.append(flat[pos : pos + a * b].reshape(a, b))
        pos += a * b
    for _, b in shapes:
        biases.append(flat[pos : pos + b])
        pos += b
    return weights, biases
