"""The comparison's figures (PNG), in the style of the run plots (``mnistfw.visualizers``).

* ``compare_metrics.png`` - accuracy, F1 and log loss per run, test bars with val beside them;
* ``compare_learning_curves.png`` - val/accuracy and train/loss per epoch, runs overlaid
  (Spark's "epochs" are solver iterations, drawn on the same axis and marked in the legend);
* ``compare_per_class_f1.png`` - runs x classes heatmap of test F1 per class, computed from each
  run's stored ``test/confusion_matrix`` (runs without one are left out, with a note);
* ``compare_accuracy_vs_time.png`` - test accuracy against fit time, one labelled point per run.

matplotlib is imported only when drawing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mnistfw.compare.table import Table
from mnistfw.contract import save_figure

log = logging.getLogger("mnistfw.compare")

#: Runs drawn with a legend; more runs are drawn without one.
LEGEND_MAX = 20


def draw_figures(table: Table, out_dir: Path) -> tuple[list[Path], list[str]]:
    """Draw every figure into ``out_dir``; return the files and notes (runs left out, figures not drawn)."""
    figures: list[tuple[str, Callable[[Table, Path], tuple[Path | None, list[str]]]]] = [
        ("compare_metrics.png", metrics_bars),
        ("compare_learning_curves.png", learning_curves),
        ("compare_per_class_f1.png", per_class_f1),
        ("compare_accuracy_vs_time.png", accuracy_vs_time),
    ]
    files: list[Path] = []
    notes: list[str] = []
    plt = _pyplot()
    for name, draw in figures:
        try:
            # matplotlib's defaults, as the run plots: an Optuna sweep leaves its ggplot style set in this process
            with plt.style.context("default"):
                path, more = draw(table, out_dir / name)
        except Exception as exc:  # noqa: BLE001 - one figure must not lose the table
            log.warning("%s not drawn: %s: %s", name, type(exc).__name__, exc)
            notes.append(f"{name} not drawn: {type(exc).__name__}: {exc}")
            continue
        notes += more
        if path is not None:
            files.append(path)
    return files, notes


def _colors(n: int) -> list[Any]:
    """One colour per run, the same in every figure."""
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20" if n <= 20 else "viridis"]
    return [cmap(i) for i in range(n)] if n <= 20 else [cmap(i / max(n - 1, 1)) for i in range(n)]


def _pyplot() -> Any:
    from mnistfw.visualizers._style import pyplot

    return pyplot()


def metrics_bars(table: Table, path: Path) -> tuple[Path | None, list[str]]:
    """Horizontal grouped bars: per run a test bar and a val bar, one panel per metric."""
    plt = _pyplot()
    n = len(table.runs)
    fig, axes = plt.subplots(1, 3, figsize=(13, max(2.6, 0.5 * n + 1.4)), sharey=True)
    y = np.arange(n)
    height = 0.38
    for ax, metric in zip(axes, ("accuracy", "f1", "loss")):
        for offset, split, color in ((-height / 2, "test", "C0"), (height / 2, "val", "C1")):
            values = [run.metric(f"{split}/{metric}") for run in table.runs]
            shown = [np.nan if v is None else v for v in values]
            bars = ax.barh(y + offset, shown, height, color=color, label=split)
            if n <= 30:
                ax.bar_label(bars, labels=["" if v is None else f"{v:.3f}" for v in values], fontsize=7, padding=2)
        ax.set_title("log loss (lower is better)" if metric == "loss" else f"{metric} (higher is better)")
        ax.set_xlabel(metric)
        ax.grid(axis="x", alpha=0.3)
        ax.margins(x=0.18)
        if metric != "loss":
            ax.set_xlim(0, 1.15)
        _group_lines(ax, table.group_labels)
    axes[0].set_yticks(y, [table.label(i) for i in range(n)])
    axes[0].invert_yaxis()  # rank 1 at the top
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.0, 0.9), fontsize=8)
    fig.suptitle(f"test and val metrics per run (sorted by {table.ranking.metric})")
    fig.tight_layout()
    return save_figure(fig, path), []


def _group_lines(ax: Any, row_groups: list[str], color: str = "grey") -> None:
    """A dashed line between rows of different data groups (rows are in group order)."""
    for k in range(1, len(row_groups)):
        if row_groups[k] != row_groups[k - 1]:
            ax.axhline(k - 0.5, color=color, linestyle="--", linewidth=1.5)


def learning_curves(table: Table, path: Path) -> tuple[Path | None, list[str]]:
    """val/accuracy and train/loss per epoch, one line per run."""
    runs = [(i, [h for h in run.history if "epoch" in h]) for i, run in enumerate(table.runs)]
    runs = [(i, history) for i, history in runs if history]
    missing = [run.name for run in table.runs if not any("epoch" in h for h in run.history)]
    notes = [f"compare_learning_curves.png leaves out runs without a history: {', '.join(missing)}"] if missing else []
    if not runs:
        return None, notes
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    colors = _colors(len(table.runs))
    spark = any(table.runs[i].backend == "spark_mlp" for i, _ in runs)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, key in zip(axes, ("val/accuracy", "train/loss")):
        for i, history in runs:
            points = [(h["epoch"], h[key]) for h in history if isinstance(h.get(key), (int, float))]
            if not points:
                continue
            xs, ys = zip(*points)
            iterations = " (iterations)" if table.runs[i].backend == "spark_mlp" else ""
            ax.plot(xs, ys, "-o", markersize=3, color=colors[i], label=f"{table.label(i)}{iterations}")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch (spark_mlp: solver iteration)" if spark else "epoch")
        ax.set_ylabel(key)
        ax.set_title(key)
        ax.grid(alpha=0.3)
    if len(runs) <= LEGEND_MAX:
        handles, labels = axes[0].get_legend_handles_labels()
        if not handles:
            handles, labels = axes[1].get_legend_handles_labels()
        fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    fig.suptitle("learning curves")
    fig.tight_layout()
    return save_figure(fig, path), notes


def _f1_rows(table: Table) -> tuple[list[int], np.ndarray, list[str]]:
    """Runs with a square ``test/confusion_matrix``, their per-class F1 (NaN: class absent), and the rest."""
    from mnistfw.metrics import per_class_scores

    kept, rows, left_out = [], [], []
    for i, run in enumerate(table.runs):
        cm = run.metrics.get("test/confusion_matrix")
        try:
            matrix = np.asarray(cm, dtype=np.float64)
        except (TypeError, ValueError):
            matrix = np.zeros((0,))
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.size == 0:
            left_out.append(run.name)
            continue
        scores = per_class_scores(matrix)
        kept.append(i)
        rows.append(np.where(scores["present"], scores["f1"], np.nan))
    width = max((len(r) for r in rows), default=0)
    padded = np.full((len(rows), width), np.nan)
    for k, row in enumerate(rows):
        padded[k, : len(row)] = row
    return kept, padded, left_out


def per_class_f1(table: Table, path: Path) -> tuple[Path | None, list[str]]:
    """Heatmap runs x classes of test F1 per class."""
    kept, f1, left_out = _f1_rows(table)
    notes = ([f"compare_per_class_f1.png leaves out runs without a test/confusion_matrix: {', '.join(left_out)}"]
             if left_out else [])
    if not kept:
        return None, notes
    names_seen = {tuple(table.runs[i].data.get("class_names") or []) for i in kept}
    n_classes = f1.shape[1]
    names = list(next(iter(names_seen))) if len(names_seen) == 1 else []
    by_number = len(names) != n_classes  # the runs name their classes differently (or not at all)
    if by_number:
        names = [str(c) for c in range(n_classes)]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * n_classes + 3), max(2.5, 0.45 * len(kept) + 1.5)))
    cmap = plt.get_cmap("Blues").copy()
    cmap.set_bad("lightgrey")
    im = ax.imshow(np.ma.masked_invalid(f1), cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto")
    fig.colorbar(im, ax=ax, fraction=0.046, label="F1")
    if f1.size <= 400:
        for r in range(f1.shape[0]):
            for c in range(n_classes):
                value = f1[r, c]
                ax.text(c, r, "n/a" if np.isnan(value) else f"{value:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if not np.isnan(value) and value > 0.5 else "black")
    ax.set_xticks(range(n_classes), names, rotation=45 if max(map(len, names)) > 2 else 0)
    ax.set_yticks(range(len(kept)), [table.label(i) for i in kept])
    _group_lines(ax, [table.group_labels[i] for i in kept], color="black")
    ax.set_xlabel("class")
    ax.set_title("per-class F1 on the test split" + (" (classes by number)" if by_number else ""))
    fig.tight_layout()
    return save_figure(fig, path), notes


def accuracy_vs_time(table: Table, path: Path) -> tuple[Path | None, list[str]]:
    """Test accuracy against fit time, one labelled point per run, coloured by data group."""
    points = [(i, run.fit_s, run.metric("test/accuracy")) for i, run in enumerate(table.runs)]
    drawn = [(i, max(t, 1e-3), a) for i, t, a in points if t is not None and a is not None]
    missing = [table.runs[i].name for i, t, a in points if t is None or a is None]
    notes = ([f"compare_accuracy_vs_time.png leaves out runs without fit time or test accuracy: "
              f"{', '.join(missing)}"] if missing else [])
    if not drawn:
        return None, notes
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    for g, group in enumerate(table.groups):
        mine = [(t, a, table.runs[i].name) for i, t, a in drawn if table.group_labels[i] == group.label]
        if not mine:
            continue
        xs, ys, names = zip(*mine)
        label = f"data {group.label}: {group.name} {group.sizes_text()}" if table.several_groups else None
        ax.scatter(xs, ys, s=40, color=f"C{g % 10}", label=label, zorder=3)
        for x, y_, name in mine:
            ax.annotate(name, (x, y_), textcoords="offset points", xytext=(5, 4), fontsize=8)
    times = [t for _, t, _ in drawn]
    ax.margins(x=0.15, y=0.12)
    if max(times) / min(times) > 30:
        ax.set_xscale("log")
    else:
        ax.set_xlim(0, max(times) * 1.2)  # times in proportion, room for the labels
    ax.set_xlabel("fit time (s)" + (", log scale" if ax.get_xscale() == "log" else ""))
    ax.set_ylabel("test accuracy")
    ax.set_title("test accuracy vs fit time")
    ax.grid(alpha=0.3)
    if table.several_groups:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path), notes
