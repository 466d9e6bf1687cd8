"""The ``model`` section of ``model=numpy_net`` (``configs/model/numpy_net.yaml``), checked.

Only the network is described here; how it is trained (epochs, batch size, optimiser,
schedule, early stopping) comes from the shared ``trainer``/``optimizer``/``scheduler`` groups.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from mnistfw.backends.numpy_net.layers import ACTIVATIONS
from mnistfw.config.validation import Constraints, Interval, Options
from mnistfw.config.vocabulary import MLPSettings


@dataclass
class NumpyNetSettings(MLPSettings):
    """``model`` for ``model=numpy_net``: the shared MLP keys plus leaky_relu's slope and shuffling."""

    #: Slope of leaky_relu below zero.
    leaky_slope: float
    #: Reshuffle the training rows every epoch.
    shuffle: bool

    constraints: ClassVar[Constraints] = {
        **MLPSettings.constraints,
        "backend": Options("numpy_net"),
        "activation": Options(*ACTIVATIONS),
        "leaky_slope": Interval(0, 1, open_low=True, open_high=True),
    }
