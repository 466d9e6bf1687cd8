"""The ``model`` section of ``model=lightning_mlp`` (``configs/model/lightning_mlp.yaml``); no torch import here.

Only the network is described here; how it is trained comes from the shared
``trainer``/``optimizer``/``scheduler`` groups.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from mnistfw.config.validation import Checked, Constraints, Each, Interval, Options
from mnistfw.config.vocabulary import AugmentSettings

ACTIVATIONS = ("relu", "selu", "tanh", "gelu", "sigmoid", "leaky_relu")


@dataclass
class LightningMLPSettings(Checked):
    """``model`` for ``model=lightning_mlp``."""

    backend: str
    #: Hidden layer sizes; the input and output sizes come from the data.
    hidden: list[int]
    activation: str
    batch_norm: bool
    #: Dropout after each hidden layer (AlphaDropout for selu); 0 disables it.
    dropout: float
    augment: AugmentSettings

    constraints: ClassVar[Constraints] = {
        "backend": Options("lightning_mlp"),
        "hidden": Each(Interval(1, None, integer=True), min_len=1),
        "activation": Options(*ACTIVATIONS),
        "dropout": Interval(0, 1, open_high=True),
    }
