"""``model=spark_mlp``: Spark ML's MultilayerPerceptronClassifier in a ``pyspark.ml`` Pipeline.

Pipeline: feature assembly (``ArrayToVector`` on one array column, or ``VectorAssembler`` over
one column per pixel with ``features=columns``) -> optional ``StandardScaler`` ->
``MultilayerPerceptronClassifier`` (sigmoid hidden layers, softmax output).

Spark trains the MLP in one call, so to report progress (and let Optuna prune) the backend
trains in chunks of ``report_every`` L-BFGS iterations, each chunk starting from the previous
chunk's weights (``initialWeights``); after each chunk it measures the validation split and
calls ``on_epoch_end(iteration, metrics)``. The per-iteration objective of every chunk
(``summary().objectiveHistory``) goes into the returned history as ``train/loss``. The weights
of the best-scoring report are kept (``keep_best``); ``patience`` stops early.

With ``tuning`` set, Spark's ``CrossValidator`` / ``TrainValidationSplit`` fits the whole
Pipeline over ``param_grid`` instead (one report at the end, chosen parameters in ``run_info``).
Spark's ``MulticlassClassificationEvaluator`` scores val/test at the end (``spark_metrics``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mnistfw.backends.base import Backend, EpochCallback, History, epoch_metrics
from mnistfw.backends.spark_mlp.session import SessionHandle, active_session, blas_name, start_session
from mnistfw.backends.spark_mlp.spark_settings import GRID_PARAMS, SparkConfig, SparkMLPConfig
from mnistfw.backends.spark_mlp.transfer import FEATURES, LABEL, collect_proba, read_files, to_spark
from mnistfw.config.validation import validate_section
from mnistfw.data.dataset import Dataset
from mnistfw.errors import ConfigError, ModelFormatError

log = logging.getLogger(__name__)

MODEL_SUBDIR = "spark_model"
MODEL_FORMAT = "spark_pipeline_model"


class SparkMLPBackend(Backend):
    """Spark ML multilayer perceptron; see the module docstring."""

    name = "spark_mlp"
    config_schema = SparkMLPConfig

    def __init__(self, cfg: Any, run_dir: Path | None = None) -> None:
        super().__init__(cfg, run_dir)
        self.model_cfg: SparkMLPConfig | None = None
        self.spark_cfg = SparkConfig()
        self.seed = 0
        if cfg is not None:
            self.model_cfg = validate_section(cfg.model, SparkMLPConfig, "model", "model=spark_mlp")
            spark_section = cfg.get("spark") if hasattr(cfg, "get") else None
            self.spark_cfg = validate_section(spark_section or {}, SparkConfig, "spark", "model=spark_mlp")
            self.seed = int(cfg.get("seed", 0) or 0)
        self._session: SessionHandle | None = None
        self._model: Any = None  # pyspark.ml.PipelineModel
        self._cached: list[Any] = []
        self.layers: list[int] = []
        self.n_classes = 0
        self.features = self.model_cfg.features if self.model_cfg else "array"
        #: Spark's MulticlassClassificationEvaluator on val/test: ``{"test/spark_f1": ...}``.
        self.spark_metrics: dict[str, float] = {}
        #: What the run did: timings, iterations, BLAS, data transfer, tuning result.
        self.run_info: dict[str, Any] = {}

    @property
    def extra_metrics(self) -> dict[str, float]:
        """Metrics the pipeline adds to ``metrics.json``: Spark's own evaluator on val/test."""
        return dict(self.spark_metrics)

    @property
    def fit_details(self) -> dict[str, Any]:
        """What the pipeline records as ``model.details`` in ``metrics.json`` (see :attr:`run_info`)."""
        return dict(self.run_info)

    # -- session ---------------------------------------------------------------------------
    @property
    def spark(self) -> Any:
        """The run's SparkSession, started on first use."""
        if self._session is None or self._session.spark is None:
            self._session = start_session(self.spark_cfg)
        return self._session.spark

    def close(self) -> None:
        """Unpersist cached data and stop the session this backend started. Safe to call twice."""
        for df in self._cached:
            with contextlib.suppress(Exception):  # the session may already be gone
                df.unpersist()
        self._cached = []
        if self._session is not None:
            self._session.stop()
            self._session = None

    def _cache(self, df: Any) -> Any:
        df = df.cache()
        self._cached.append(df)
        return df

    def _uncache(self, df: Any) -> None:
        """Unpersist ``df`` now if :meth:`_cache` holds it (``close`` unpersists the rest)."""
        if any(df is cached for cached in self._cached):
            self._cached = [cached for cached in self._cached if cached is not df]
            df.unpersist()

    @contextlib.contextmanager
    def _progress(self, label: str, every_s: float = 30.0) -> Iterator[None]:
        """Every ``every_s`` seconds, log how many Spark jobs (one per loss/gradient evaluation
        of L-BFGS) the fit inside this block has run so far."""
        sc = self.spark.sparkContext
        tracker = sc.statusTracker()
        group = f"mnistfw-{id(self)}-{time.monotonic_ns()}"
        sc.setJobGroup(group, label)
        stop = threading.Event()
        start = time.perf_counter()

        def watch() -> None:
            while not stop.wait(every_s):
                try:
                    jobs = len(tracker.getJobIdsForGroup(group))
                except Exception:  # noqa: BLE001 - the session is going away
                    return
                log.info("Spark MLP: %s: %d Spark jobs so far (%.0f s)", label, jobs, time.perf_counter() - start)

        thread = threading.Thread(target=watch, name="spark-mlp-progress", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=5)
            with contextlib.suppress(Exception):
                sc.setLocalProperty("spark.jobGroup.id", None)
                sc.setLocalProperty("spark.job.description", None)

    # -- data ------------------------------------------------------------------------------
    def _frame(self, x: np.ndarray, y: np.ndarray | None, transfer: str | None = None) -> Any:
        """A Spark DataFrame of the inputs, in the layout the pipeline's first stage reads."""
        cfg = self.spark_cfg
        df = to_spark(
            self.spark,
            x,
            y,
            transfer=transfer or cfg.transfer,
            cache_dir=cfg.cache_dir,
            partitions=cfg.partitions,
        )
        return self._expanded(df, x.shape[1])

    def _expanded(self, df: Any, n_features: int) -> Any:
        """``df`` with one column per pixel when the pipeline reads columns, cached.

        Left lazy, the 784 array lookups are inlined into every later stage's expressions and
        recomputed there: a prediction over per-pixel columns ran about 40x slower."""
        from mnistfw.backends.spark_mlp.stages import expand_pixels

        return self._cache(expand_pixels(df, n_features)) if self.features == "columns" else df

    def _split_frame(self, data: Dataset, split: str) -> Any:
        """``split`` of ``data``, or of ``spark.data_path`` when that names a file for it."""
        path = getattr(self.spark_cfg.data_path, split)
        part = data.split(split)
        if path:
            dp = self.spark_cfg.data_path
            df = read_files(self.spark, path, dp.format, dp.label_column, data.preprocessing)
            if self.spark_cfg.partitions:
                df = df.repartition(self.spark_cfg.partitions)
            return self._expanded(df, data.info.n_features)
        if len(part) == 0:
            return None
        return self._frame(part.x, part.y)

    def _layers(self, n_features: int, n_classes: int, layers: list[int] | None, hidden: list[int]) -> list[int]:
        if layers is not None:
            if layers[0] != n_features or layers[-1] != n_classes:
                raise ConfigError(
                    f"model.layers: {list(layers)} must start with the {n_features} input pixels and end "
                    f"with the {n_classes} classes of this data, e.g. [{n_features}, 128, {n_classes}]; "
                    "or set model.hidden instead"
                )
            return list(layers)
        return [n_features, *hidden, n_classes]

    # -- training --------------------------------------------------------------------------
    def fit(self, data: Dataset, on_epoch_end: EpochCallback) -> History:
        """Train on ``data.train``; report each chunk of ``report_every`` iterations; see the module doc."""
        cfg = self.model_cfg
        if cfg is None:
            raise ConfigError("this Spark model was loaded from a folder; train a new one with mnistfw-train")
        self.n_classes = int(data.info.n_classes)
        self.layers = self._layers(data.info.n_features, self.n_classes, cfg.layers, cfg.hidden)
        if "hidden" in cfg.param_grid and "layers" in cfg.param_grid:
            raise ConfigError("model.param_grid: give either hidden or layers candidates, not both")
        for layers in cfg.param_grid.get("layers", []):
            self._layers(data.info.n_features, self.n_classes, list(layers), [])
        t_start = time.perf_counter()
        spark = self.spark
        t_session = time.perf_counter() - t_start
        self.run_info = {
            "spark_version": spark.version,
            "master": spark.sparkContext.master,
            "blas": blas_name(spark),
            "layers": self.layers,
            "transfer": "data_path" if self.spark_cfg.data_path.train else self.spark_cfg.transfer,
        }
        t0 = time.perf_counter()
        train_df = self._split_frame(data, "train")
        val_df = self._split_frame(data, "val")
        test_df = self._split_frame(data, "test")
        t_transfer = time.perf_counter() - t0
        log.info(
            "Spark MLP: layers %s, %d training rows, solver %s, max_iter %d (data sent to Spark in %.1f s)",
            self.layers,
            len(data.train),
            cfg.solver,
            cfg.max_iter,
            t_transfer,
        )
        if cfg.tuning == "none":
            history, timings = self._fit_chunked(data, train_df, val_df, on_epoch_end)
        else:
            history, timings = self._fit_tuned(data, train_df, val_df, on_epoch_end)
        t1 = time.perf_counter()
        self.spark_metrics = {}
        for split, df in (("val", val_df), ("test", test_df)):
            if df is not None:
                self.spark_metrics.update(self._spark_evaluate(df, split))
        if self.spark_metrics:
            log.info("Spark evaluator: %s", ", ".join(f"{k}={v:.4f}" for k, v in sorted(self.spark_metrics.items())))
        timings.update(
            session_s=t_session,
            transfer_s=t_transfer,
            spark_eval_s=time.perf_counter() - t1,
            total_s=time.perf_counter() - t_start,
        )
        timings["data_share"] = (timings["transfer_s"] + timings.get("features_s", 0.0)) / max(timings["total_s"], 1e-9)
        self.run_info["timings"] = timings
        self.run_info["spark_metrics"] = dict(self.spark_metrics)
        per_iteration = timings["s_per_iteration"]
        log.info(
            "Spark MLP: fit %.1f s%s, data %.0f%% of the run, BLAS %s",
            timings["fit_s"],
            f" for {timings['iterations']} iterations ({per_iteration:.2f} s/iteration)"
            if per_iteration is not None
            else f" ({cfg.tuning} over {timings.get('candidates', 1)} candidates and the refit)",
            100 * timings["data_share"],
            self.run_info["blas"],
        )
        return history

    def _mlp(self, layers: list[int], max_iter: int) -> Any:
        from pyspark.ml.classification import MultilayerPerceptronClassifier

        cfg = self.model_cfg
        assert cfg is not None
        return MultilayerPerceptronClassifier(
            featuresCol=FEATURES,
            labelCol=LABEL,
            layers=layers,
            maxIter=max_iter,
            tol=cfg.tol,
            blockSize=cfg.block_size,
            stepSize=cfg.step_size,
            solver=cfg.solver,
            seed=self.seed,
        )

    def _feature_stages(self, n_features: int) -> list[Any]:
        from mnistfw.backends.spark_mlp.stages import feature_stages

        cfg = self.model_cfg
        assert cfg is not None
        return feature_stages(cfg.features, n_features, cfg.standardize, cfg.with_mean, cfg.with_std)

    def _step_metrics(
        self, model: Any, train_eval: Any, y_train_eval: np.ndarray, val: Any, loss: float | None
    ) -> dict[str, float]:
        """train/loss, train/accuracy (on the first ``train_eval_rows`` rows) and val/* of one step."""
        metrics: dict[str, float] = {} if loss is None else {"train/loss": float(loss)}
        if train_eval is not None:
            proba = collect_proba(model.transform(train_eval), self.n_classes)
            metrics["train/accuracy"] = epoch_metrics("train", y_train_eval, proba)["train/accuracy"]
        if val is not None:
            proba, y_val = collect_proba(model.transform(val), self.n_classes, with_labels=True)
            metrics.update(epoch_metrics("val", y_val, proba))
        return metrics

    def _fit_chunked(self, data: Dataset, train_df: Any, val_df: Any, on_epoch_end: EpochCallback) -> tuple:
        from pyspark.ml import Pipeline, PipelineModel

        cfg = self.model_cfg
        assert cfg is not None
        t0 = time.perf_counter()
        features = Pipeline(stages=self._feature_stages(data.info.n_features)).fit(train_df)
        train = self._cache(features.transform(train_df).select(LABEL, FEATURES))
        n_train = train.count()
        val = self._cache(features.transform(val_df)) if val_df is not None else None
        train_eval, y_train_eval = None, np.zeros(0)
        k = min(cfg.train_eval_rows, len(data.train))
        if k > 0:
            y_train_eval = data.train.y[:k]
            train_eval = self._cache(features.transform(self._frame(data.train.x[:k], y_train_eval, "arrow")))
        t_features = time.perf_counter() - t0
        log.info("Spark MLP: features ready for %d rows in %.1f s", n_train, t_features)

        step = cfg.report_every or cfg.max_iter
        history: History = []
        done, chunks, weights, model = 0, 0, None, None
        best: tuple[float, int, Any] | None = None  # (val/accuracy, iteration, model)
        chunk_times: list[float] = []
        stale = 0
        t_fit = t_measure = 0.0
        while done < cfg.max_iter:
            want = min(step, cfg.max_iter - done)
            mlp = self._mlp(self.layers, want)
            if weights is not None:
                mlp.setInitialWeights(weights)
            t1 = time.perf_counter()
            with self._progress(f"iterations {done + 1}-{done + want} of {cfg.max_iter}"):
                model = mlp.fit(train)
            dt = time.perf_counter() - t1
            t_fit += dt
            chunks += 1
            chunk_times.append(dt)
            objective = list(model.summary().objectiveHistory)
            # l-bfgs records the starting loss first; gd records one loss per iteration.
            losses = objective[1:] if cfg.solver == "l-bfgs" and len(objective) > 1 else objective
            losses = losses or objective[-1:]
            weights = model.weights
            for i, loss in enumerate(losses, start=done + 1):
                history.append({"epoch": float(i), "train/loss": float(loss)})
            done += len(losses)
            t2 = time.perf_counter()
            metrics = self._step_metrics(model, train_eval, y_train_eval, val, losses[-1])
            t_measure += time.perf_counter() - t2
            history[-1].update(metrics)
            log.info(
                "Spark MLP: iteration %d/%d  %s  (%.1f s, %.2f s/iteration)",
                done,
                cfg.max_iter,
                "  ".join(f"{k}={v:.4f}" for k, v in metrics.items()),
                dt,
                dt / max(len(losses), 1),
            )
            on_epoch_end(done, metrics)
            score = metrics.get("val/accuracy")
            if score is not None:
                if best is None or score > best[0]:
                    best, stale = (score, done, model), 0
                else:
                    stale += 1
            if len(losses) < want:
                log.info("Spark MLP: converged after %d iterations (tol=%g)", done, cfg.tol)
                break
            if cfg.patience is not None and stale >= cfg.patience:
                log.info("Spark MLP: stopping at iteration %d: no better val/accuracy for %d reports", done, stale)
                break
        kept = done
        if cfg.keep_best and best is not None and best[2] is not model:
            kept, model = best[1], best[2]
            log.info("Spark MLP: keeping the model of iteration %d (best val/accuracy %.4f)", kept, best[0])
        self._model = PipelineModel(stages=[*features.stages, model])
        self.run_info["kept_iteration"] = kept
        timings = {
            "features_s": t_features,
            "fit_s": t_fit,
            "step_metrics_s": t_measure,
            "iterations": done,
            "chunks": chunks,
            "s_per_iteration": t_fit / max(done, 1),
            "chunk_s": [round(t, 3) for t in chunk_times],
        }
        self.run_info["iterations"] = done
        return history, timings

    def _param_grid(self, mlp: Any, n_features: int) -> list[dict]:
        from pyspark.ml.tuning import ParamGridBuilder

        cfg = self.model_cfg
        assert cfg is not None
        grid = dict(cfg.param_grid)
        builder = ParamGridBuilder()
        for key, values in grid.items():
            if key == "hidden":
                values = [self._layers(n_features, self.n_classes, None, list(h)) for h in values]
            elif key == "layers":
                values = [self._layers(n_features, self.n_classes, list(v), []) for v in values]
            builder = builder.addGrid(getattr(mlp, GRID_PARAMS[key]), values)
        return builder.build()

    def _fit_tuned(self, data: Dataset, train_df: Any, val_df: Any, on_epoch_end: EpochCallback) -> tuple:
        from pyspark.ml import Pipeline
        from pyspark.ml.evaluation import MulticlassClassificationEvaluator
        from pyspark.ml.tuning import CrossValidator, TrainValidationSplit

        cfg = self.model_cfg
        assert cfg is not None
        mlp = self._mlp(self.layers, cfg.max_iter)
        estimator = Pipeline(stages=[*self._feature_stages(data.info.n_features), mlp])
        grid = self._param_grid(mlp, data.info.n_features)
        evaluator = MulticlassClassificationEvaluator(labelCol=LABEL, metricName=cfg.tuning_metric)
        common = {
            "estimator": estimator,
            "estimatorParamMaps": grid,
            "evaluator": evaluator,
            "parallelism": cfg.parallelism,
            "seed": self.seed,
        }
        if cfg.tuning == "cross_validator":
            tuner: Any = CrossValidator(numFolds=cfg.num_folds, **common)
        else:
            tuner = TrainValidationSplit(trainRatio=cfg.train_ratio, **common)
        log.info("Spark MLP: %s over %d candidate(s) by %s", cfg.tuning, len(grid), cfg.tuning_metric)
        train_df = self._cache(train_df)
        t0 = time.perf_counter()
        with self._progress(f"{cfg.tuning} over {len(grid)} candidate(s)"):
            tuned = tuner.fit(train_df)
        t_fit = time.perf_counter() - t0
        scores = list(tuned.avgMetrics if cfg.tuning == "cross_validator" else tuned.validationMetrics)
        candidates = [{"params": self._describe(pm), cfg.tuning_metric: float(s)} for pm, s in zip(grid, scores)]
        best = int(np.argmax(scores)) if evaluator.isLargerBetter() else int(np.argmin(scores))
        chosen = candidates[best]["params"] if candidates else {}
        for c in candidates:
            log.info("Spark tuning: %s -> %s=%.4f", c["params"], cfg.tuning_metric, c[cfg.tuning_metric])
        log.info("Spark tuning: chose %s", chosen)
        self._model = tuned.bestModel
        mlp_model = self._model.stages[-1]
        self.layers = list(mlp_model.getLayers())
        self.run_info["tuning"] = {
            "method": cfg.tuning,
            "metric": cfg.tuning_metric,
            "chosen": chosen,
            "candidates": candidates,
        }
        history: History = []
        objective = list(mlp_model.summary().objectiveHistory) if mlp_model.hasSummary else []
        losses = objective[1:] if cfg.solver == "l-bfgs" and len(objective) > 1 else objective
        for i, loss in enumerate(losses, start=1):
            history.append({"epoch": float(i), "train/loss": float(loss)})
        k = min(cfg.train_eval_rows, len(data.train))
        train_eval = self._frame(data.train.x[:k], data.train.y[:k], "arrow") if k else None
        val = self._cache(val_df) if val_df is not None else None
        metrics = self._step_metrics(self._model, train_eval, data.train.y[:k], val, losses[-1] if losses else None)
        if history:
            history[-1].update(metrics)
        else:
            history.append({"epoch": 1.0, **metrics})
        on_epoch_end(len(history), metrics)
        timings = {
            "features_s": 0.0,
            "fit_s": t_fit,
            "iterations": len(losses),
            "chunks": 1,
            "s_per_iteration": None,  # several fits of different sizes: no single figure
            "candidates": len(grid),
        }
        return history, timings

    def _describe(self, param_map: dict) -> dict[str, Any]:
        """A tuning candidate as config-style keys: ``{"hidden": [256], "max_iter": 100}``."""
        names = {v: k for k, v in GRID_PARAMS.items() if k != "layers"}
        out: dict[str, Any] = {}
        for param, value in param_map.items():
            key = names.get(param.name, param.name)
            if key == "hidden":
                value = list(value)[1:-1]
            out[key] = value
        return out

    def _spark_evaluate(self, df: Any, split: str) -> dict[str, float]:
        """Spark's MulticlassClassificationEvaluator: weighted F1 (Spark's ``f1``), accuracy, macro F1."""
        from pyspark.ml.evaluation import MulticlassClassificationEvaluator

        pred = self._model.transform(df).select(LABEL, "prediction").cache()
        try:

            def ev(metric: str, **kw: Any) -> float:
                return float(MulticlassClassificationEvaluator(labelCol=LABEL, metricName=metric, **kw).evaluate(pred))

            out = {f"{split}/spark_f1": ev("f1"), f"{split}/spark_accuracy": ev("accuracy")}
            # Spark's "f1" is class-weighted; the macro F1 comes from the confusion counts of
            # Spark's predictions, collected through Arrow (two numbers per row).
            k = self.n_classes
            table = pred.select(LABEL, "prediction").toArrow()
            cell = table.column(LABEL).to_numpy() * k + table.column("prediction").to_numpy()
            cm = np.bincount(cell.astype(np.int64), minlength=k * k)[: k * k].reshape(k, k).astype(np.float64)
            denom = cm.sum(axis=0) + cm.sum(axis=1)
            present = denom > 0
            f1 = 2 * np.diag(cm)[present] / denom[present]
            out[f"{split}/spark_f1_macro"] = float(f1.mean()) if present.any() else 0.0
            return out
        finally:
            pred.unpersist()

    # -- inference -------------------------------------------------------------------------
    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Probabilities ``(n, n_classes)`` for preprocessed inputs, computed by the PipelineModel."""
        if self._model is None:
            raise ModelFormatError("the Spark model is not trained or loaded yet; call fit or load first")
        x = np.asarray(x, dtype=np.float32)
        if len(x) == 0:
            return np.zeros((0, self.n_classes))
        x = x.reshape(len(x), -1)
        df = self._frame(x, None, "arrow")
        try:
            return collect_proba(self._model.transform(df), self.n_classes)
        finally:
            self._uncache(df)

    def first_layer_weights(self) -> np.ndarray | None:
        """First layer weights ``(n_features, n_units)`` (acting on the scaled features)."""
        if self._model is None or not self.layers:
            return None
        n_in, n_out = self.layers[0], self.layers[1]
        w = self._model.stages[-1].weights.toArray()
        # Spark stores each affine layer as a column-major (n_out, n_in) matrix, then the bias.
        return w[: n_in * n_out].reshape((n_out, n_in), order="F").T.copy()

    # -- persistence -----------------------------------------------------------------------
    def save(self, directory: Path) -> dict[str, Any]:
        """Write the ``PipelineModel`` into ``directory/spark_model``; return the architecture."""
        if self._model is None:
            raise ModelFormatError("nothing to save: the Spark model is not trained")
        path = Path(directory) / MODEL_SUBDIR
        self._model.write().overwrite().save(path.resolve().as_uri())
        if not (path / "metadata").is_dir() or not (path / "stages").is_dir():
            raise ModelFormatError(
                f"Spark wrote the model where this machine cannot see it ({path} is incomplete); on a "
                "cluster, put the run folder on storage the executors share (MNISTFW_OUTPUT_DIR)"
            )
        arch: dict[str, Any] = {
            "format": MODEL_FORMAT,
            "path": MODEL_SUBDIR,
            "layers": self.layers,
            "n_classes": self.n_classes,
            "features": self.features,
            "activation": "sigmoid",
            "spark_version": self.run_info.get("spark_version"),
        }
        if self.model_cfg is not None:
            arch.update(
                solver=self.model_cfg.solver,
                standardize=self.model_cfg.standardize,
                iterations=self.run_info.get("iterations"),
            )
        if "tuning" in self.run_info:
            arch["tuning"] = {k: self.run_info["tuning"][k] for k in ("method", "metric", "chosen")}
        return arch

    @classmethod
    def load(cls, directory: Path, meta: dict[str, Any]) -> SparkMLPBackend:
        """Read a folder written by :meth:`save`, starting a local SparkSession if none is running."""
        from pyspark.ml import PipelineModel

        directory = Path(directory)
        arch = meta.get("architecture") or {}
        path = directory / str(arch.get("path", MODEL_SUBDIR))
        if meta.get("backend") != cls.name or arch.get("format") != MODEL_FORMAT or not (path / "metadata").is_dir():
            raise ModelFormatError(
                f"{directory} is not an mnistfw Spark model (no {MODEL_SUBDIR}/ PipelineModel); "
                "pass the 'model' folder of a run trained with model=spark_mlp"
            )
        backend = cls(None)
        running = active_session()
        backend._session = SessionHandle(running, owned=False) if running is not None else None
        _ = backend.spark  # starts a local session (with the Java check) when none is running
        try:
            backend._model = PipelineModel.load(path.resolve().as_uri())
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelFormatError(f"{path} is not a readable Spark PipelineModel ({first[:200]}); re-train") from exc
        backend.layers = [int(n) for n in arch.get("layers", [])]
        backend.n_classes = int(arch.get("n_classes") or (backend.layers[-1] if backend.layers else 0))
        backend.features = str(arch.get("features", "array"))
        return backend
