"""Data-distribution plots: class counts per split, and sample images of each class.

``visualization.visualizers.data_distribution: {samples_per_class: 10, split: train}``
writes ``class_distribution.png`` (grouped bars, one group per class, one bar per split) and
``class_samples.png`` (a grid: one row per class, ``samples_per_class`` images of it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mnistfw.contract import RunArtifacts, Visualizer, save_figure
from mnistfw.visualizers._style import pyplot

SPLITS = ("train", "val", "test")


class DataDistribution(Visualizer):
    """Class counts per split as bars, and a grid of sample images per class."""

    def __init__(self, samples_per_class: int = 10, split: str = "train", seed: int = 0) -> None:
        if samples_per_class < 1:
            raise ValueError(f"samples_per_class must be >= 1, got {samples_per_class}")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        self.samples_per_class = samples_per_class
        self.split = split
        self.seed = seed

    def draw(self, run: RunArtifacts) -> list[Path]:
        if run.data is None:
            return []
        return [p for p in (self._counts(run), self._samples(run)) if p is not None]

    def _counts(self, run: RunArtifacts) -> Path | None:
        plt = pyplot()
        info = run.data.info
        splits = [s for s in SPLITS if len(run.data.split(s))]
        if not splits:
            return None
        counts = {s: np.bincount(run.data.split(s).y, minlength=info.n_classes) for s in splits}
        x = np.arange(info.n_classes)
        width = 0.8 / len(splits)
        fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * info.n_classes), 4.0))
        for i, s in enumerate(splits):
            offset = (i - (len(splits) - 1) / 2) * width
            bars = ax.bar(x + offset, counts[s], width, label=f"{s} (n={counts[s].sum():,})")
            if info.n_classes <= 20:
                ax.bar_label(bars, fontsize=6, rotation=90, padding=2)
        ax.set_xticks(x, info.class_names, rotation=45 if max(map(len, info.class_names)) > 3 else 0)
        ax.set_xlabel("class")
        ax.set_ylabel("images")
        ax.set_title(f"Class distribution per split — {info.name} ({info.source})")
        ax.margins(y=0.15)
        ax.legend()
        return save_figure(fig, run.plots_dir / "class_distribution.png")

    def _samples(self, run: RunArtifacts) -> Path | None:
        plt = pyplot()
        split = run.data.split(self.split)
        if len(split) == 0:
            return None
        info = run.data.info
        rng = np.random.default_rng(self.seed)
        k = self.samples_per_class
        h, w = split.images.shape[1:3]
        # One mosaic image (class rows x sample columns) drawn with a single imshow: fast.
        mosaic = np.zeros((info.n_classes * (h + 2), k * (w + 2)), dtype=np.uint8)
        for c in range(info.n_classes):
            idx = np.flatnonzero(split.y == c)
            if len(idx) == 0:
                continue
            chosen = rng.choice(idx, size=min(k, len(idx)), replace=False)
            for j, i in enumerate(chosen):
                mosaic[c * (h + 2) + 1 : c * (h + 2) + 1 + h, j * (w + 2) + 1 : j * (w + 2) + 1 + w] = split.images[i]
        fig, ax = plt.subplots(figsize=(0.55 * k + 1.2, 0.55 * info.n_classes + 0.6))
        ax.imshow(mosaic, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_yticks([c * (h + 2) + 1 + h / 2 for c in range(info.n_classes)], info.class_names)
        ax.set_xticks([])
        ax.set_title(f"{k} random {self.split} images per class")
        return save_figure(fig, run.plots_dir / "class_samples.png")
