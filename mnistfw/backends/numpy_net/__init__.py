"""A multi-layer perceptron written from scratch in NumPy (``model=numpy_net``).

Read it top to bottom:

- :mod:`.layers` — activations (forward and derivative), weight initialisation, softmax + cross-entropy;
- :mod:`.network` — the network: dense layers, forward pass, back-propagation, work buffers;
- :mod:`.optimizers` — SGD, momentum, Nesterov, Adam, and learning-rate schedules;
- :mod:`.augment` — random shifts, rotations and zooms of the training images (``model.augment``);
- :mod:`.training` — the epoch loop: batches, validation, checkpoints, early stopping;
- :mod:`.config` — the ``model`` config section and its checks;
- :mod:`.backend` — the adapter to mnistfw's backend protocol (fit, predict, save, load).
"""

from mnistfw.backends.numpy_net.numpy_backend import NumpyNetBackend

__all__ = ["NumpyNetBackend"]
