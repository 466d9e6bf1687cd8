"""The ``model`` section of ``model=lightning_mlp`` (``configs/model/lightning_mlp.yaml``); no torch import here.

Only the network is described here; how it is trained comes from the shared
``trainer``/``optimizer``/``scheduler`` groups.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from mnistfw.config.validation import Constraints, Options
from mnistfw.config.vocabulary import MLPSettings

ACTIVATIONS = ("relu", "selu", "tanh", "gelu", "sigmoid", "leaky_relu")


@dataclass
class LightningMLPSettings(MLPSettings):
    """``model`` for ``model=lightning_mlp``: the shared MLP keys (dropout is AlphaDropout for selu)
    plus batch norm."""

    batch_norm: bool

    constraints: ClassVar[Constraints] = {
        **MLPSettings.constraints,
        "backend": Options("lightning_mlp"),
        "activation": Options(*ACTIVATIONS),
    }
