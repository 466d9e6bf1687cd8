"""The recording step shared by training, ``mnistfw-eval`` and ``mnistfw-predict``.

After any fit or reload the same things happen, in this order and by this code: predict the
splits (:func:`predict_proba`), run the evaluators, write ``metrics.json``, draw the plots
(:class:`Recorder`). Predicting on user inputs uses the same batched prediction.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mnistfw.backends.base import EVAL_BATCH_SIZE, Backend
from mnistfw.contract import RunArtifacts, SplitPredictions
from mnistfw.data.dataset import Dataset
from mnistfw.errors import PluginError
from mnistfw.io import write_json

log = logging.getLogger("mnistfw")


def predict_proba(backend: Backend, x: np.ndarray, batch_size: int = 4 * EVAL_BATCH_SIZE) -> np.ndarray:
    """The backend's probabilities for ``x``, in batches (float64 ``(n, n_classes)``)."""
    parts = [np.asarray(backend.predict_proba(x[i : i + batch_size]), dtype=np.float64)
             for i in range(0, len(x), batch_size)]
    return np.concatenate(parts) if parts else np.zeros((0, 0))


def predict_splits(backend: Backend, data: Dataset, splits: list[str]) -> dict[str, SplitPredictions]:
    """The backend's probabilities and labels on each named, non-empty split."""
    out: dict[str, SplitPredictions] = {}
    for name in splits:
        split = data.split(name)
        if len(split) == 0:
            continue
        proba = predict_proba(backend, split.x)
        out[name] = SplitPredictions(y_true=split.y, y_pred=proba.argmax(axis=1), proba=proba)
    return out


def evaluate_predictions(predictions: Mapping[str, SplitPredictions], evaluators: Mapping[str, Any]) -> dict[str, Any]:
    """Run each evaluator on each split; keys are ``<split>/<metric>``."""
    metrics: dict[str, Any] = {}
    for split, pred in predictions.items():
        for name, evaluator in evaluators.items():
            try:
                values = evaluator.evaluate(pred.y_true, pred.y_pred, pred.proba)
            except Exception as exc:
                raise PluginError(f"evaluator '{name}' failed on split '{split}': {type(exc).__name__}: {exc}") from exc
            for key, value in values.items():
                metrics[f"{split}/{key}"] = value
    return metrics


def draw_plots(run: RunArtifacts, visualizers: Mapping[str, Any]) -> list[Path]:
    """Run each visualizer; a failing one is logged and the others still draw."""
    written: list[Path] = []
    for name, visualizer in visualizers.items():
        try:
            written.extend(visualizer.draw(run))
        except Exception as exc:  # noqa: BLE001 - one broken plot must not lose the run
            log.error("visualizer '%s' failed: %s: %s", name, type(exc).__name__, exc)
    return written


class Recorder:
    """Measures a trained or reloaded model, writes ``metrics.json`` and draws the plots into ``out_dir``."""

    def __init__(self, out_dir: Path, evaluators: Mapping[str, Any], visualizers: Mapping[str, Any],
                 config: Mapping[str, Any]) -> None:
        self.out_dir = Path(out_dir)
        self.evaluators, self.visualizers, self.config = evaluators, visualizers, config
        self.predictions: dict[str, SplitPredictions] = {}
        self.metrics: dict[str, Any] = {}
        self.plots: list[str] = []
        self.timings: dict[str, float] = {}

    def measure(self, backend: Backend, data: Dataset, splits: list[str]) -> dict[str, Any]:
        """Predict ``splits``, run the evaluators, add the backend's own metrics; return the metrics."""
        start = time.perf_counter()
        self.predictions = predict_splits(backend, data, splits)
        self.metrics = evaluate_predictions(self.predictions, self.evaluators)
        self.metrics.update(backend.extra_metrics())
        self.timings["eval_s"] = round(time.perf_counter() - start, 3)
        return self.metrics

    def write(self, summary: Mapping[str, Any]) -> Path:
        """Write ``metrics.json``: ``summary`` plus the metrics, plots and timings so far (atomically)."""
        return write_json(self.out_dir / "metrics.json",
                          {**summary, "metrics": self.metrics, "plots": self.plots, "timings": self.timings})

    def draw(self, backend: Backend, data: Dataset, history: list[dict[str, float]]) -> list[Path]:
        """Draw every visualizer into ``out_dir/plots``."""
        if not self.visualizers:
            return []
        start = time.perf_counter()
        artifacts = RunArtifacts(run_dir=self.out_dir, plots_dir=self.out_dir / "plots", data=data,
                                 predictions=self.predictions, history=history, model=backend, metrics=self.metrics,
                                 config=self.config)
        written = draw_plots(artifacts, self.visualizers)
        self.plots = [str(p.relative_to(self.out_dir)) for p in written]
        self.timings["plot_s"] = round(time.perf_counter() - start, 3)
        return written


def objective_value(objective: tuple[str, ...], metrics: Mapping[str, Any]) -> float | list[float]:
    """The metric(s) named by the run's objective."""
    from mnistfw.errors import ConfigError

    values = []
    for name in objective:
        value = metrics.get(name)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            numeric = sorted(k for k, v in metrics.items() if isinstance(v, (int, float)))
            raise ConfigError(f"objective: '{name}' was not computed; available: {', '.join(numeric)}")
        values.append(float(value))
    return values[0] if len(values) == 1 else values


def log_metrics(metrics: Mapping[str, Any], before: Mapping[str, Any] | None = None) -> None:
    """One line per numeric metric (with the run's recorded value beside it, when given)."""
    for key in sorted(k for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)):
        was = (before or {}).get(key)
        shown = f"   (run: {was:.4f})" if isinstance(was, (int, float)) else ""
        log.info("%-22s %.4f%s", key, metrics[key], shown)
