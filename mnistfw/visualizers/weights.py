"""First-layer weights drawn as images: what each first-layer unit responds to.

Uses :meth:`mnistfw.backends.base.Backend.first_layer_weights` (``(n_features, n_units)``);
each unit's column is reshaped to the image shape (28x28 for MNIST) and drawn with a diverging
colour map (red positive, blue negative). Backends without such weights are skipped.
``visualization.visualizers.first_layer_weights: {n: 64}`` writes ``first_layer_weights.png``.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from mnistfw.contract import RunArtifacts, Visualizer, save_figure
from mnistfw.visualizers._style import image_sheet

log = logging.getLogger(__name__)


class FirstLayerWeights(Visualizer):
    """The first ``n`` units' input weights, each as an image of the input's shape."""

    def __init__(self, n: int = 64) -> None:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        self.n = n

    def draw(self, run: RunArtifacts) -> list[Path]:
        weights = run.model.first_layer_weights() if run.model is not None else None
        if weights is None:
            log.info("first_layer_weights: the model has no dense first layer to draw, skipped")
            return []
        weights = np.asarray(weights, dtype=np.float32)
        shape = self._image_shape(run, weights.shape[0]) if weights.ndim == 2 else None
        if shape is None:
            log.info("first_layer_weights: weights of shape %s are not images, skipped", weights.shape)
            return []
        units = min(self.n, weights.shape[1])
        # A linear model's columns are the classes themselves (it says so): label them.
        labelled = (
            run.data is not None
            and run.model is not None
            and run.model.first_layer_is_output
            and weights.shape[1] == run.data.info.n_classes
        )
        tiles = weights[:, :units].T.reshape(units, *shape)
        scale = np.abs(tiles).reshape(units, -1).max(axis=1)
        tiles = tiles / np.where(scale > 0, scale, 1.0)[:, None, None]  # each unit on its own scale
        captions = [run.data.info.class_names[u] if labelled else f"unit {u}" for u in range(units)]  # type: ignore[union-attr]
        fig = image_sheet(
            tiles, captions,
            f"First-layer weights: {units} of {weights.shape[1]} units ({run.model.name}); red +, blue −",  # type: ignore[union-attr]
            cmap="RdBu_r", limits=(-1.0, 1.0),
        )
        return [save_figure(fig, run.plots_dir / "first_layer_weights.png")]

    @staticmethod
    def _image_shape(run: RunArtifacts, n_features: int) -> tuple[int, int] | None:
        if run.data is not None:
            h, w = run.data.info.image_shape
            if h * w == n_features:
                return int(h), int(w)
        side = math.isqrt(n_features)
        return (side, side) if side * side == n_features else None
