"""Misclassified gallery: the images a model got wrong, most confident mistakes first.

``visualization.visualizers.misclassified: {split: test, n: 36, order: confidence}`` writes
``misclassified_<split>.png``; each tile is titled ``true -> predicted (confidence)``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from mnistfw.contract import RunArtifacts, Visualizer, save_figure
from mnistfw.visualizers._style import image_sheet

log = logging.getLogger(__name__)

ORDERS = ("confidence", "index", "random")


class MisclassifiedGallery(Visualizer):
    """Up to ``n`` misclassified images of ``split``, ordered by ``order``."""

    def __init__(self, split: str = "test", n: int = 36, order: str = "confidence", seed: int = 0) -> None:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        if order not in ORDERS:
            raise ValueError(f"order must be one of {', '.join(ORDERS)}, got {order!r}")
        self.split, self.n, self.order, self.seed = split, n, order, seed

    def draw(self, run: RunArtifacts) -> list[Path]:
        pred = run.predictions.get(self.split)
        if pred is None or run.data is None:
            return []
        wrong = np.flatnonzero(pred.y_pred != pred.y_true)
        if len(wrong) == 0:
            log.info("misclassified: no mistakes on %s, nothing to draw", self.split)
            return []
        if self.order == "confidence":
            wrong = wrong[np.argsort(-pred.proba[wrong, pred.y_pred[wrong]], kind="stable")]
        elif self.order == "random":
            wrong = np.random.default_rng(self.seed).permutation(wrong)
        shown = wrong[: self.n]
        images = run.data.split(self.split).images
        names = run.data.info.class_names
        captions = [f"{names[pred.y_true[i]]}→{names[pred.y_pred[i]]} {pred.proba[i, pred.y_pred[i]]:.0%}"
                    for i in shown]
        total = len(pred.y_true)
        fig = image_sheet(
            images[shown], captions,
            f"{self.split}: {len(wrong)} of {total:,} misclassified ({len(wrong) / total:.2%}); "
            f"true→predicted, {'most confident first' if self.order == 'confidence' else self.order}",
            colors=["red"] * len(shown),
        )
        return [save_figure(fig, run.plots_dir / f"misclassified_{self.split}.png")]
