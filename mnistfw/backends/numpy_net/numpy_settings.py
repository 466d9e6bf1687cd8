"""The ``model`` section of ``model=numpy_net`` (``configs/model/numpy_net.yaml``), checked.

Only the network is described here; how it is trained (epochs, batch size, optimiser,
schedule, early stopping) comes from the shared ``trainer``/``optimizer``/``scheduler`` groups.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from mnistfw.backends.numpy_net.layers import ACTIVATIONS, INITS
from mnistfw.config.validation import Checked, Constraints, Each, Interval, Options
from mnistfw.config.vocabulary import AugmentSettings


@dataclass
class NumpyNetSettings(Checked):
    """``model`` for ``model=numpy_net``."""

    backend: str
    #: Hidden layer sizes; the input and output sizes come from the data.
    hidden: list[int]
    activation: str
    #: Slope of leaky_relu below zero.
    leaky_slope: float
    #: auto (he for relu/leaky_relu, lecun for selu, xavier for tanh/sigmoid), he, xavier, lecun.
    init: str
    #: Dropout after each hidden layer; 0 disables it.
    dropout: float
    #: Reshuffle the training rows every epoch.
    shuffle: bool
    #: Max-norm constraint: after every step each hidden unit's incoming weights are scaled to
    #: L2 norm <= max_norm (Srivastava et al. 2014); null: off.
    max_norm: float | None
    #: Random shift, rotation and zoom of the training images (the same keys as lightning_mlp's).
    augment: AugmentSettings

    constraints: ClassVar[Constraints] = {
        "backend": Options("numpy_net"),
        "hidden": Each(Interval(1, None, integer=True), min_len=1),
        "activation": Options(*ACTIVATIONS),
        "leaky_slope": Interval(0, 1, open_low=True, open_high=True),
        "init": Options(*INITS),
        "dropout": Interval(0, 1, open_high=True),
        "max_norm": Interval(0, None, open_low=True, none_ok=True, meaning_of_none="off"),
    }
