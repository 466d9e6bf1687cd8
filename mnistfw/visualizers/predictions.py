"""A grid of images with predicted and true labels; mistakes are marked in red."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mnistfw.contract import RunArtifacts, Visualizer, save_figure
from mnistfw.visualizers._style import image_sheet


class PredictionGrid(Visualizer):
    """``n`` images from ``split`` (random, seeded), titled ``pred (true)``; wrong ones in red."""

    def __init__(self, split: str = "test", n: int = 36, seed: int = 0, mistakes_first: bool = False) -> None:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        self.split, self.n, self.seed, self.mistakes_first = split, n, seed, mistakes_first

    def draw(self, run: RunArtifacts) -> list[Path]:
        pred = run.predictions.get(self.split)
        if pred is None or run.data is None:
            return []
        images = run.data.split(self.split).images
        rng = np.random.default_rng(self.seed)
        idx = rng.permutation(len(pred.y_true))
        if self.mistakes_first:
            wrong = idx[pred.y_pred[idx] != pred.y_true[idx]]
            idx = np.concatenate([wrong, idx[pred.y_pred[idx] == pred.y_true[idx]]])
        idx = idx[: self.n]
        names = run.data.info.class_names
        ok = pred.y_pred[idx] == pred.y_true[idx]
        captions = [f"{names[pred.y_pred[i]]} ({names[pred.y_true[i]]}) {pred.proba[i, pred.y_pred[i]]:.0%}"
                    for i in idx]
        fig = image_sheet(
            images[idx], captions,
            f"{self.split} predictions: predicted (true) confidence — {int((~ok).sum())} wrong in red",
            colors=["black" if good else "red" for good in ok], framed=[not good for good in ok],
        )
        return [save_figure(fig, run.plots_dir / f"prediction_grid_{self.split}.png")]
