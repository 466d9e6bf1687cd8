"""Confusion-matrix heatmap with counts in the cells."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mnistfw.contract import RunArtifacts, Visualizer, save_figure
from mnistfw.metrics import confusion_matrix
from mnistfw.visualizers._style import pyplot


class ConfusionMatrixHeatmap(Visualizer):
    """Rows are true classes, columns predictions; ``normalize=true`` shows row fractions."""

    def __init__(self, split: str = "test", normalize: bool = False) -> None:
        self.split, self.normalize = split, normalize

    def draw(self, run: RunArtifacts) -> list[Path]:
        pred = run.predictions.get(self.split)
        if pred is None:
            return []
        n = pred.proba.shape[1]
        cm = confusion_matrix(pred.y_true, pred.y_pred, n).astype(float)
        shown = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1) if self.normalize else cm
        names = run.data.info.class_names if run.data is not None else [str(i) for i in range(n)]
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(7, 6))
        im = ax.imshow(shown, cmap="Blues")
        fig.colorbar(im, ax=ax, fraction=0.046)
        threshold = shown.max() / 2 if shown.max() > 0 else 1
        for i in range(n):
            for j in range(n):
                text = f"{shown[i, j]:.2f}" if self.normalize else f"{int(cm[i, j])}"
                ax.text(j, i, text, ha="center", va="center", fontsize=7,
                        color="white" if shown[i, j] > threshold else "black")
        ax.set_xticks(range(n), names, rotation=45 if max(map(len, names)) > 2 else 0)
        ax.set_yticks(range(n), names)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        acc = np.trace(cm) / max(cm.sum(), 1)
        ax.set_title(f"confusion matrix ({self.split}, accuracy {acc:.2%})")
        return [save_figure(fig, run.plots_dir / f"confusion_matrix_{self.split}.png")]
