"""Learning curves: loss and accuracy per epoch, train and validation."""

from __future__ import annotations

from pathlib import Path

from mnistfw.contract import RunArtifacts, Visualizer, save_figure
from mnistfw.visualizers._style import pyplot


class LearningCurves(Visualizer):
    """Two panels (loss, accuracy) with a train and a val line each, from the run's history."""

    def draw(self, run: RunArtifacts) -> list[Path]:
        history = [h for h in run.history if "epoch" in h]
        if not history:
            return []
        plt = pyplot()
        from matplotlib.ticker import MaxNLocator
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        epochs = [h["epoch"] for h in history]
        step_label = "iteration" if run.model is not None and run.model.name == "spark_mlp" else "epoch"
        for ax, metric in zip(axes, ("loss", "accuracy")):
            for split, style in (("train", "-o"), ("val", "-s")):
                key = f"{split}/{metric}"
                points = [(e, h[key]) for e, h in zip(epochs, history) if key in h]
                if points:
                    xs, ys = zip(*points)
                    ax.plot(xs, ys, style, markersize=3, label=split)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel(step_label)
            ax.set_ylabel(metric)
            ax.set_title(metric)
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend()
        fig.suptitle("learning curves")
        fig.tight_layout()
        return [save_figure(fig, run.plots_dir / "learning_curves.png")]
