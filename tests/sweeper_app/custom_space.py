"""``custom_search_space`` functions for the sweeper tests (``hydra.sweeper.custom_search_space``)."""

from __future__ import annotations

from typing import Any


def layers(cfg: Any, trial: Any) -> dict[str, Any]:
    """Keras-Tuner style: a number of layers, then the units of each; returns the override it builds."""
    n = trial.suggest_int("n_layers", 1, 3)
    return {"hidden": [trial.suggest_categorical(f"units_{i}", [8, 16]) for i in range(n)]}


def published_style(cfg: Any, trial: Any) -> None:
    """The published sweeper's convention: suggest config keys directly, return None."""
    trial.suggest_float("sleep", 0.0, 0.01)
