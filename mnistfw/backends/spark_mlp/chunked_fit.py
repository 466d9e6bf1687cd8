"""Training Spark's MLP with progress: chunks of ``trainer.check_val_every_n_epoch`` iterations.

Spark trains a ``MultilayerPerceptronClassifier`` in one call, so to validate, report (epoch
callback: logging, early stopping, pruning) and keep the best model, the fit runs in chunks,
each starting from the previous chunk's weights (``initialWeights``). One epoch is one
iteration of the full-batch solver; the per-iteration objective of every chunk
(``summary().objectiveHistory``) goes into the history as ``train/loss``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mnistfw.backends.base import EpochCallback, History, StopTraining
from mnistfw.backends.monitoring import BestEpoch
from mnistfw.backends.spark_mlp.session import job_progress
from mnistfw.backends.spark_mlp.spark_settings import SparkMLPConfig
from mnistfw.backends.spark_mlp.transfer import FEATURES, LABEL, Frames, collect_proba
from mnistfw.config.vocabulary import Training
from mnistfw.data.dataset import Dataset
from mnistfw.metrics import accuracy, epoch_metrics

log = logging.getLogger(__name__)


@dataclass
class SparkFit:
    """A fitted pipeline and what the fit did."""

    model: Any  # pyspark.ml.PipelineModel
    history: History
    timings: dict[str, Any]
    details: dict[str, Any] = field(default_factory=dict)


def solver(training: Training) -> str:
    """Spark's solver for ``optimizer=lbfgs`` (l-bfgs) or ``optimizer=sgd`` (gd, full batch)."""
    return "l-bfgs" if training.optimizer.name == "lbfgs" else "gd"


def make_mlp(settings: SparkMLPConfig, training: Training, layers: list[int], max_iter: int, seed: int) -> Any:
    """A ``MultilayerPerceptronClassifier`` for ``layers``, run for at most ``max_iter`` iterations."""
    from pyspark.ml.classification import MultilayerPerceptronClassifier

    kwargs: dict[str, Any] = {}
    if training.optimizer.name == "sgd":
        kwargs["stepSize"] = float(training.optimizer.lr)  # type: ignore[arg-type]
    return MultilayerPerceptronClassifier(
        featuresCol=FEATURES, labelCol=LABEL, layers=layers, maxIter=max_iter, tol=settings.tol,
        blockSize=settings.block_size, solver=solver(training), seed=seed, **kwargs,
    )


def losses_of(mlp_model: Any, training: Training) -> list[float]:
    """Per-iteration training losses of a fitted MLP (l-bfgs records the starting loss first)."""
    objective = [float(v) for v in mlp_model.summary().objectiveHistory] if mlp_model.hasSummary else []
    return objective[1:] if solver(training) == "l-bfgs" and len(objective) > 1 else objective


def step_metrics(model: Any, train_eval: Any, y_train_eval: np.ndarray, val: Any, n_classes: int,
                 loss: float | None) -> dict[str, float]:
    """train/loss, train/accuracy (on the first ``train_eval_rows`` rows) and val/* of one report."""
    metrics: dict[str, float] = {} if loss is None else {"train/loss": float(loss)}
    if train_eval is not None:
        proba = collect_proba(model.transform(train_eval), n_classes)
        metrics["train/accuracy"] = accuracy(y_train_eval, proba.argmax(axis=1))
    if val is not None:
        proba, y_val = collect_proba(model.transform(val), n_classes, with_labels=True)
        metrics.update(epoch_metrics("val", y_val, proba))
    return metrics


@dataclass
class _Features:
    """The fitted feature stages and the cached frames the chunks train and report on."""

    model: Any  #: PipelineModel of the feature stages
    train: Any
    val: Any
    train_eval: Any  #: the first ``train_eval_rows`` training rows, for train/accuracy
    y_train_eval: np.ndarray
    seconds: float


def _prepare_features(frames: Frames, data: Dataset, settings: SparkMLPConfig, train_df: Any,
                      val_df: Any) -> _Features:
    """Fit the feature stages on the training frame and cache what the chunks read."""
    from pyspark.ml import Pipeline

    from mnistfw.backends.spark_mlp.stages import feature_stages

    t0 = time.perf_counter()
    stages = feature_stages(settings.features, data.info.n_features, settings.standardize, settings.with_mean,
                            settings.with_std)
    features = Pipeline(stages=stages).fit(train_df)
    train = frames.cache(features.transform(train_df).select(LABEL, FEATURES))
    n_train = train.count()
    val = frames.cache(features.transform(val_df)) if val_df is not None else None
    train_eval, y_train_eval = None, np.zeros(0)
    k = min(settings.train_eval_rows, len(data.train))
    if k > 0:
        y_train_eval = data.train.y[:k]
        train_eval = frames.cache(features.transform(frames.from_arrays(data.train.x[:k], y_train_eval, "arrow")))
    seconds = time.perf_counter() - t0
    log.info("Spark MLP: features ready for %d rows in %.1f s", n_train, seconds)
    return _Features(features, train, val, train_eval, y_train_eval, seconds)


def fit_in_chunks(frames: Frames, data: Dataset, settings: SparkMLPConfig, training: Training, layers: list[int],
                  seed: int, train_df: Any, val_df: Any, on_epoch_end: EpochCallback) -> SparkFit:
    """Fit the pipeline in chunks, reporting after each; see the module docstring."""
    from pyspark.ml import PipelineModel

    t = training.trainer
    feats = _prepare_features(frames, data, settings, train_df, val_df)
    best = BestEpoch(t.checkpoint.monitor, t.checkpoint.mode) if t.checkpoint.monitor else None  # type: ignore[arg-type]
    best_model: Any = None
    history: History = []
    done, weights, model = 0, None, None
    chunk_times: list[float] = []
    t_measure = 0.0
    while done < t.max_epochs:
        want = min(t.check_val_every_n_epoch, t.max_epochs - done)
        mlp = make_mlp(settings, training, layers, want, seed)
        if weights is not None:
            mlp.setInitialWeights(weights)
        t1 = time.perf_counter()
        with job_progress(frames.spark, f"iterations {done + 1}-{done + want} of {t.max_epochs}",
                          t.enable_progress_bar):
            model = mlp.fit(feats.train)
        chunk_times.append(time.perf_counter() - t1)
        losses = losses_of(model, training) or [float("nan")]
        weights = model.weights
        history += [{"epoch": i, "train/loss": loss} for i, loss in enumerate(losses, start=done + 1)]
        done += len(losses)
        t2 = time.perf_counter()
        metrics = step_metrics(model, feats.train_eval, feats.y_train_eval, feats.val, layers[-1], losses[-1])
        t_measure += time.perf_counter() - t2
        history[-1].update(metrics)
        log.info("Spark MLP: iteration %d/%d  %s  (%.1f s, %.2f s/iteration)", done, t.max_epochs,
                 "  ".join(f"{k}={v:.4f}" for k, v in metrics.items()), chunk_times[-1],
                 chunk_times[-1] / max(len(losses), 1))
        if best is not None and best.update(done, metrics):
            best_model = model
        try:
            on_epoch_end(done, metrics)
        except StopTraining:
            break
        if len(losses) < want:
            log.info("Spark MLP: converged after %d iterations (tol=%g)", done, settings.tol)
            break
    kept = done
    if best_model is not None and best_model is not model:
        kept, model = best.epoch, best_model  # type: ignore[union-attr]
        log.info("Spark MLP: keeping the model of iteration %d (best %s %.4f)", kept, best.monitor, best.value)  # type: ignore[union-attr]
    t_fit = sum(chunk_times)
    timings = {
        "features_s": feats.seconds,
        "fit_s": t_fit,
        "step_metrics_s": t_measure,
        "iterations": done,
        "chunks": len(chunk_times),
        "s_per_iteration": t_fit / max(done, 1),
        "chunk_s": [round(x, 3) for x in chunk_times],
    }
    pipeline = PipelineModel(stages=[*feats.model.stages, model])
    return SparkFit(pipeline, history, timings, {"iterations": done, "kept_iteration": kept})
