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
    #: Max-norm constraint: after every step each hidden unit's incoming weights are scaled to
    #: L2 norm <= max_norm (Srivastava et al. 2014); 0 or null: off.
    max_norm: float | None
    augment: AugmentSettings

    constraints: ClassVar[Constraints] = {
        "backend": Options("lightning_mlp"),
        "hidden": Each(Interval(1, None, integer=True), min_len=1),
        "activation": Options(*ACTIVATIONS),
        "dropout": Interval(0, 1, open_high=True),
        "max_norm": Interval(0, None, none_ok=True, meaning_of_none="off"),
    }
