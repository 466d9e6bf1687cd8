"""A reliability (calibration) diagram, written against :mod:`mnistfw.contract`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mnistfw.contract import RunArtifacts, Visualizer, save_figure


def calibration_bins(
    y_true: np.ndarray, proba: np.ndarray, n_bins: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Per confidence bin: mean confidence, accuracy and count; plus the expected calibration error."""
    conf = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == y_true).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    counts = np.bincount(which, minlength=n_bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(which, weights=conf, minlength=n_bins) / counts
        accuracy = np.bincount(which, weights=correct, minlength=n_bins) / counts
    filled = counts > 0
    ece = float(np.sum(counts[filled] * np.abs(accuracy[filled] - mean_conf[filled])) / max(counts.sum(), 1))
    return mean_conf, accuracy, counts, ece


class ReliabilityDiagram(Visualizer):
    """Accuracy against confidence per bin (a calibrated model follows the diagonal).

    Config: ``visualization.visualizers.reliability_diagram: {split: test, n_bins: 15}``
    -> ``plots/reliability_<split>.png``, titled with the expected calibration error (ECE).
    """

    def __init__(self, split: str = "test", n_bins: int = 15) -> None:
        if int(n_bins) < 2:
            raise ValueError(f"n_bins must be >= 2, got {n_bins}")
        self.split, self.n_bins = split, int(n_bins)

    def draw(self, run: RunArtifacts) -> list[Path]:
        pred = run.predictions.get(self.split)
        if pred is None or len(pred.y_true) == 0:
            return []  # the run has no predictions on that split: nothing to draw
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt

        mean_conf, accuracy, counts, ece = calibration_bins(
            np.asarray(pred.y_true), np.asarray(pred.proba, dtype=np.float64), self.n_bins
        )
        width = 1.0 / self.n_bins
        centers = (np.arange(self.n_bins) + 0.5) * width
        filled = counts > 0
        fig, (ax, hist) = plt.subplots(
            2, 1, figsize=(5, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
        )
        ax.bar(centers[filled], accuracy[filled], width=width, edgecolor="black", label="accuracy")
        gap_low = np.minimum(mean_conf, accuracy)[filled]
        ax.bar(
            centers[filled], np.abs(mean_conf - accuracy)[filled], bottom=gap_low, width=width,
            facecolor=(0.84, 0.15, 0.16, 0.25), edgecolor="tab:red", hatch="//", label="gap to mean confidence",
        )
        ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
        ax.set(ylabel="accuracy", xlim=(0, 1), ylim=(0, 1))
        ax.set_title(f"Reliability diagram — {self.split}, ECE = {ece:.4f}")
        ax.legend(loc="upper left", fontsize=8)
        hist.bar(centers, counts, width=width, color="gray", edgecolor="black")
        hist.set(xlabel="confidence (max class probability)", ylabel="samples")
        hist.set_yscale("log" if counts.max() > 100 * max(counts[filled].min(), 1) else "linear")
        return [save_figure(fig, run.plots_dir / f"reliability_{self.split}.png")]
