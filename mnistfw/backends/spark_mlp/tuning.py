"""Spark-native hyperparameter tuning: ``CrossValidator`` / ``TrainValidationSplit`` over
``model.param_grid``, scored by ``MulticlassClassificationEvaluator`` (``model.tuning``)."""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

import numpy as np

from mnistfw.backends.base import EpochCallback, History, StopTraining
from mnistfw.backends.spark_mlp.chunked_fit import SparkFit, losses_of, make_mlp, step_metrics
from mnistfw.backends.spark_mlp.session import job_progress
from mnistfw.backends.spark_mlp.spark_settings import GRID_PARAMS, SparkMLPConfig
from mnistfw.backends.spark_mlp.stages import feature_stages
from mnistfw.backends.spark_mlp.transfer import LABEL, Frames
from mnistfw.config.vocabulary import Training
from mnistfw.data.dataset import Dataset

log = logging.getLogger(__name__)


def layer_list(n_features: int, n_classes: int, layers: list[int] | None, hidden: list[int]) -> list[int]:
    """The full layers list ``[inputs, hidden..., classes]``; a given ``layers`` must fit the data."""
    from mnistfw.errors import ConfigError

    if layers is not None:
        if layers[0] != n_features or layers[-1] != n_classes:
            raise ConfigError(
                f"model.layers: {list(layers)} must start with the {n_features} input pixels and end "
                f"with the {n_classes} classes of this data, e.g. [{n_features}, 128, {n_classes}]; "
                "or set model.hidden instead"
            )
        return list(layers)
    return [n_features, *hidden, n_classes]


def _grid(mlp: Any, settings: SparkMLPConfig, n_features: int, n_classes: int) -> list[dict]:
    from pyspark.ml.tuning import ParamGridBuilder

    builder = ParamGridBuilder()
    for key, values in settings.param_grid.items():
        if key == "hidden":
            values = [layer_list(n_features, n_classes, None, list(h)) for h in values]
        elif key == "layers":
            values = [layer_list(n_features, n_classes, list(v), []) for v in values]
        builder = builder.addGrid(getattr(mlp, GRID_PARAMS[key]), values)
    return builder.build()


def _describe(param_map: dict) -> dict[str, Any]:
    """A tuning candidate as config-style keys: ``{"hidden": [256], "max_iter": 100}``."""
    names = {v: k for k, v in GRID_PARAMS.items() if k != "layers"}
    out: dict[str, Any] = {}
    for param, value in param_map.items():
        key = names.get(param.name, param.name)
        out[key] = list(value)[1:-1] if key == "hidden" else value
    return out


def fit_tuned(frames: Frames, data: Dataset, settings: SparkMLPConfig, training: Training, layers: list[int],
              seed: int, train_df: Any, val_df: Any, on_epoch_end: EpochCallback) -> SparkFit:
    """Fit every candidate of ``param_grid`` with Spark's tuner, keep the best; one report at the end."""
    from pyspark.ml import Pipeline
    from pyspark.ml.evaluation import MulticlassClassificationEvaluator
    from pyspark.ml.tuning import CrossValidator, TrainValidationSplit

    n_features, n_classes = data.info.n_features, layers[-1]
    mlp = make_mlp(settings, training, layers, training.trainer.max_epochs, seed)
    stages = feature_stages(settings.features, n_features, settings.standardize, settings.with_mean, settings.with_std)
    estimator = Pipeline(stages=[*stages, mlp])
    grid = _grid(mlp, settings, n_features, n_classes)
    evaluator = MulticlassClassificationEvaluator(labelCol=LABEL, metricName=settings.tuning_metric)
    common = {"estimator": estimator, "estimatorParamMaps": grid, "evaluator": evaluator,
              "parallelism": settings.parallelism, "seed": seed}
    if settings.tuning == "cross_validator":
        tuner: Any = CrossValidator(numFolds=settings.num_folds, **common)
    else:
        tuner = TrainValidationSplit(trainRatio=settings.train_ratio, **common)
    log.info("Spark MLP: %s over %d candidate(s) by %s", settings.tuning, len(grid), settings.tuning_metric)
    train_df = frames.cache(train_df)
    t0 = time.perf_counter()
    with job_progress(frames.spark, f"{settings.tuning} over {len(grid)} candidate(s)",
                      training.trainer.enable_progress_bar):
        tuned = tuner.fit(train_df)
    t_fit = time.perf_counter() - t0
    scores = list(tuned.avgMetrics if settings.tuning == "cross_validator" else tuned.validationMetrics)
    candidates = [{"params": _describe(pm), settings.tuning_metric: float(s)} for pm, s in zip(grid, scores)]
    best = int(np.argmax(scores)) if evaluator.isLargerBetter() else int(np.argmin(scores))
    chosen = candidates[best]["params"] if candidates else {}
    for c in candidates:
        log.info("Spark tuning: %s -> %s=%.4f", c["params"], settings.tuning_metric, c[settings.tuning_metric])
    log.info("Spark tuning: chose %s", chosen)
    model = tuned.bestModel
    mlp_model = model.stages[-1]
    losses = losses_of(mlp_model, training)
    history: History = [{"epoch": i, "train/loss": loss} for i, loss in enumerate(losses, start=1)]
    k = min(settings.train_eval_rows, len(data.train))
    train_eval = frames.from_arrays(data.train.x[:k], data.train.y[:k], "arrow") if k else None
    val = frames.cache(val_df) if val_df is not None else None
    metrics = step_metrics(model, train_eval, data.train.y[:k], val, n_classes, losses[-1] if losses else None)
    if history:
        history[-1].update(metrics)
    else:
        history.append({"epoch": 1, **metrics})
    with contextlib.suppress(StopTraining):  # nothing left to stop: the tuner has finished
        on_epoch_end(int(history[-1]["epoch"]), metrics)
    timings = {"features_s": 0.0, "fit_s": t_fit, "iterations": len(losses), "chunks": 1,
               "s_per_iteration": None, "candidates": len(grid)}  # several fits of different sizes: no single figure
    tuning = {"method": settings.tuning, "metric": settings.tuning_metric, "chosen": chosen, "candidates": candidates}
    return SparkFit(model, history, timings, {"iterations": len(losses), "tuning": tuning,
                                              "layers": list(mlp_model.getLayers())})
