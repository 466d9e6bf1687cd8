"""A grid of images with predicted and true labels; mistakes are marked in red."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mnistfw.contract import RunArtifacts, Visualizer, save_figure
from mnistfw.visualizers._style import pyplot


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
        cols = int(np.ceil(np.sqrt(len(idx))))
        rows = int(np.ceil(len(idx) / cols))
        plt = pyplot()
        fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.5 * rows))
        names = run.data.info.class_names
        for ax, i in zip(np.atleast_1d(axes).ravel(), idx):
            ok = pred.y_pred[i] == pred.y_true[i]
            ax.imshow(images[i], cmap="gray_r")
            conf = pred.proba[i, pred.y_pred[i]]
            ax.set_title(
                f"{names[pred.y_pred[i]]} ({names[pred.y_true[i]]}) {conf:.0%}",
                fontsize=8, color="black" if ok else "red",
            )
            if not ok:
                for spine in ax.spines.values():
                    spine.set_edgecolor("red")
                    spine.set_linewidth(2)
            ax.set_xticks([])
            ax.set_yticks([])
        for ax in np.atleast_1d(axes).ravel()[len(idx):]:
            ax.axis("off")
        n_wrong = int(np.sum(pred.y_pred[idx] != pred.y_true[idx]))
        fig.suptitle(f"{self.split} predictions: predicted (true) confidence — {n_wrong} wrong in red", fontsize=10)
        return [save_figure(fig, run.plots_dir / f"prediction_grid_{self.split}.png")]
