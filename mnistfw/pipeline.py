"""One training run, as data flowing through::

    validated config -> dataset -> backend.fit(on_epoch_end) -> predictions -> evaluators
    -> metrics.json -> saved model -> visualizers -> the objective value

The functions below are also used by ``mnistfw-eval`` (evaluate/draw a reloaded model).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from mnistfw import __version__
from mnistfw.backends.base import Backend, EpochCallback, save_model
from mnistfw.config.schema import RunSpec, validate_run_config
from mnistfw.contract import RunArtifacts, SplitPredictions
from mnistfw.data.dataset import Dataset
from mnistfw.errors import ConfigError, PluginError
from mnistfw.io import write_json

log = logging.getLogger("mnistfw")


def validate_config(cfg: DictConfig) -> RunSpec:
    """Validate a composed run config (see :mod:`mnistfw.config.schema`)."""
    return validate_run_config(cfg)


@contextmanager
def _timed(timings: dict[str, float], key: str):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[key] = round(time.perf_counter() - start, 3)


def compose_callbacks(*callbacks: EpochCallback | None) -> EpochCallback:
    """One ``on_epoch_end`` that calls each non-None callback in order."""
    active = [cb for cb in callbacks if cb is not None]

    def on_epoch_end(epoch: int, metrics: Mapping[str, float]) -> None:
        for cb in active:
            cb(epoch, metrics)

    return on_epoch_end


def _log_epoch(epoch: int, metrics: Mapping[str, float]) -> None:
    shown = "  ".join(f"{k}={v:.4f}" for k, v in metrics.items() if k != "lr" and isinstance(v, float))
    log.info("epoch %d  %s", epoch, shown)


def _nan_guard(epoch: int, metrics: Mapping[str, float]) -> None:
    loss = metrics.get("train/loss")
    if loss is not None and not math.isfinite(loss):
        raise FloatingPointError(f"training loss is {loss} at epoch {epoch}; lower the learning rate")


def predict_splits(backend: Backend, data: Dataset, splits: list[str]) -> dict[str, SplitPredictions]:
    """The backend's probabilities and labels on each named split."""
    out: dict[str, SplitPredictions] = {}
    for name in splits:
        split = data.split(name)
        if len(split) == 0:
            continue
        proba = np.asarray(backend.predict_proba(split.x))
        out[name] = SplitPredictions(y_true=split.y, y_pred=proba.argmax(axis=1), proba=proba)
    return out


def evaluate_predictions(
    predictions: Mapping[str, SplitPredictions], evaluators: Mapping[str, Any]
) -> dict[str, Any]:
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


def objective_value(cfg: DictConfig, metrics: Mapping[str, Any]) -> float | list[float]:
    """The metric(s) named by ``cfg.objective``."""
    names = list(cfg.objective) if OmegaConf.is_list(cfg.objective) else [cfg.objective]
    values = []
    for name in names:
        if name not in metrics or not isinstance(metrics[name], (int, float)):
            numeric = sorted(k for k, v in metrics.items() if isinstance(v, (int, float)))
            raise ConfigError(f"objective: '{name}' was not computed; available: {', '.join(numeric)}")
        values.append(float(metrics[name]))
    return values[0] if len(values) == 1 else values


def train(cfg: DictConfig, run_dir: Path, extra_callback: EpochCallback | None = None) -> float | list[float]:
    """Run one training job described by ``cfg`` into ``run_dir``; return the objective."""
    from mnistfw.data.loading import load_dataset
    from mnistfw.sweeps.trial import pruning_hook

    t_start = time.perf_counter()
    spec = validate_config(cfg)
    run_dir = Path(run_dir)
    timings: dict[str, float] = {}
    with _timed(timings, "load_s"):
        data = load_dataset(spec.data, seed=int(cfg.seed))
    log.info(
        "data: %s from %s  train/val/test = %d/%d/%d",
        data.info.name, data.info.source, len(data.train), len(data.val), len(data.test),
    )
    objective = cfg.objective if isinstance(cfg.objective, str) else cfg.objective[0]
    backend: Backend = spec.backend_cls(cfg, run_dir)
    try:
        with _timed(timings, "fit_s"):
            history = backend.fit(
                data, compose_callbacks(_nan_guard, _log_epoch, extra_callback, pruning_hook(objective))
            )
        with _timed(timings, "eval_s"):
            predictions = predict_splits(backend, data, spec.evaluation.splits)
            metrics = evaluate_predictions(predictions, spec.evaluators)
            metrics.update(getattr(backend, "extra_metrics", {}) or {})
        result = objective_value(cfg, metrics)
        if cfg.get("save_model", True):
            with _timed(timings, "save_s"):
                save_model(backend, run_dir / "model", data.info, data.preprocessing)
        summary: dict[str, Any] = {
            "objective": {"name": OmegaConf.to_container(cfg.objective) if OmegaConf.is_list(cfg.objective)
                          else cfg.objective, "value": result},
            "metrics": metrics,
            "data": data.info.to_dict(),
            "model": {"backend": backend.name, "details": getattr(backend, "fit_details", {})},
            "timings": timings,
            "history": history,
            "seed": int(cfg.seed),
            "mnistfw_version": __version__,
        }
        write_json(run_dir / "metrics.json", summary)
        if spec.visualizers:
            artifacts = RunArtifacts(
                run_dir=run_dir, plots_dir=run_dir / "plots", data=data, predictions=predictions,
                history=history, model=backend, metrics=metrics,
                config=OmegaConf.to_container(cfg, resolve=True),  # type: ignore[arg-type]
            )
            with _timed(timings, "plot_s"):
                plots = draw_plots(artifacts, spec.visualizers)
            summary["plots"] = [str(p.relative_to(run_dir)) for p in plots]
        timings["total_s"] = round(time.perf_counter() - t_start, 3)
        write_json(run_dir / "metrics.json", summary)
    finally:
        backend.close()
    _log_summary(metrics, timings, run_dir, cfg)
    return result


def _log_summary(metrics: Mapping[str, Any], timings: Mapping[str, float], run_dir: Path, cfg: DictConfig) -> None:
    shown = {k: v for k, v in metrics.items() if isinstance(v, float)}
    for key in sorted(shown):
        log.info("%-22s %.4f", key, shown[key])
    log.info("timings: %s", "  ".join(f"{k}={v:.1f}s" for k, v in timings.items()))
    log.info("run folder: %s", run_dir)


RunFunction = Callable[[DictConfig, Path], Any]
