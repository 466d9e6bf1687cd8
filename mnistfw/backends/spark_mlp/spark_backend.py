"""``model=spark_mlp``: Spark ML's MultilayerPerceptronClassifier in a ``pyspark.ml`` Pipeline.

Pipeline: feature assembly (``ArrayToVector`` on one array column, or ``VectorAssembler`` over
one column per pixel with ``features=columns``) -> optional ``StandardScaler`` ->
``MultilayerPerceptronClassifier`` (sigmoid hidden layers, softmax output).

The work is split by concern: :mod:`.session` starts and stops the SparkSession,
:mod:`.transfer` moves arrays in and out of Spark, :mod:`.chunked_fit` trains with progress
reports, :mod:`.tuning` runs Spark's own ``CrossValidator``/``TrainValidationSplit``, and
:mod:`.spark_evaluation` scores with Spark's evaluator. This class wires them to the
backend protocol.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from mnistfw.backends.base import Backend, EpochCallback, History, RunContext
from mnistfw.backends.spark_mlp.session import SessionHandle, active_session, blas_name, start_session
from mnistfw.backends.spark_mlp.spark_settings import SparkConfig, SparkMLPConfig
from mnistfw.config.validation import require
from mnistfw.config.vocabulary import Reads, Training
from mnistfw.data.dataset import Dataset
from mnistfw.errors import ModelFormatError

log = logging.getLogger(__name__)

MODEL_SUBDIR = "spark_model"
MODEL_FORMAT = "spark_pipeline_model"


class SparkMLPBackend(Backend):
    """Spark ML multilayer perceptron; see the module docstring."""

    name: ClassVar[str] = "spark_mlp"
    settings_schema: ClassVar[type] = SparkMLPConfig
    reads: ClassVar[Reads] = Reads(
        trainer=frozenset({"max_epochs", "min_epochs", "check_val_every_n_epoch", "early_stopping", "checkpoint",
                           "enable_progress_bar"}),
        optimizers=("lbfgs", "sgd"),
        schedulers=("none",),
        sections=frozenset({"spark"}),
    )
    section_schemas: ClassVar[dict[str, type]] = {"spark": SparkConfig}
    requires: ClassVar[dict[str, str]] = {"pyspark": "mnistfw[spark]"}

    def __init__(self, settings: SparkMLPConfig, context: RunContext, spark: SparkConfig | None = None,
                 **sections: Any) -> None:
        super().__init__(settings, context, **sections)
        if spark is None:
            raise ModelFormatError("the Spark backend needs the spark config group (spark=local or spark=cluster)")
        self.session_settings = spark
        self._session: SessionHandle | None = None
        self._frames: Any = None  # transfer.Frames, once the session runs
        self._model: Any = None  # pyspark.ml.PipelineModel
        self.layers: list[int] = []
        self.n_classes = 0
        #: Spark's MulticlassClassificationEvaluator on val/test: ``{"test/spark_f1": ...}``.
        self.spark_scores: dict[str, float] = {}
        #: What the run did: timings, iterations, BLAS, data transfer, tuning result.
        self.run_info: dict[str, Any] = {}

    @classmethod
    def check_training(cls, training: Training) -> None:
        opt = training.optimizer
        if opt.name == "sgd":
            require(not opt.momentum and not opt.nesterov, "optimizer.momentum",
                    "spark_mlp's gradient descent has no momentum; set optimizer.momentum=0")
            require(not opt.weight_decay, "optimizer.weight_decay",
                    "Spark's MultilayerPerceptronClassifier has no weight decay; set optimizer.weight_decay=0")

    @classmethod
    def extra_metric_names(cls, settings: Any) -> tuple[str, ...]:
        return tuple(f"{s}/spark_{m}" for s in ("val", "test") for m in ("f1", "accuracy", "f1_macro"))

    def extra_metrics(self) -> dict[str, float]:
        """Spark's own evaluator on val/test, beside the common evaluators' numbers."""
        return dict(self.spark_scores)

    def fit_details(self) -> dict[str, Any]:
        return dict(self.run_info)

    # -- session ---------------------------------------------------------------------------
    @property
    def spark(self) -> Any:
        """The run's SparkSession, started on first use.

        Training joins a session of the same master already running in this process; a model
        loaded to predict joins any running session.
        """
        if self._session is None or self._session.spark is None:
            running = active_session() if self.context.training is None else None
            self._session = SessionHandle(running, owned=False) if running is not None \
                else start_session(self.session_settings)
        return self._session.spark

    @property
    def frames(self) -> Any:
        from mnistfw.backends.spark_mlp.transfer import Frames

        if self._frames is None:
            self._frames = Frames(self.spark, self.session_settings, self.settings.features)
        return self._frames

    def close(self) -> None:
        """Unpersist cached data and stop the session this backend started. Safe to call twice."""
        if self._frames is not None:
            self._frames.release()
            self._frames = None
        if self._session is not None:
            self._session.stop()
            self._session = None

    # -- training --------------------------------------------------------------------------
    def fit(self, data: Dataset, on_epoch_end: EpochCallback) -> History:
        """Train on ``data.train``, reporting every ``trainer.check_val_every_n_epoch`` iterations."""
        from mnistfw.backends.spark_mlp.chunked_fit import fit_in_chunks, solver
        from mnistfw.backends.spark_mlp.spark_evaluation import spark_metrics
        from mnistfw.backends.spark_mlp.tuning import fit_tuned, layer_list

        s, training = self.settings, self.context.train
        self.n_classes = int(data.info.n_classes)
        self.layers = layer_list(data.info.n_features, self.n_classes, s.layers, s.hidden)
        for layers in s.param_grid.get("layers", []):
            layer_list(data.info.n_features, self.n_classes, list(layers), [])
        t_start = time.perf_counter()
        spark = self.spark
        t_session = time.perf_counter() - t_start
        self.run_info = {"spark_version": spark.version, "master": spark.sparkContext.master,
                         "blas": blas_name(spark), "layers": self.layers, "solver": solver(training),
                         "transfer": "data_path" if self.session_settings.data_path.train else
                         self.session_settings.transfer}
        t0 = time.perf_counter()
        frames = {name: self.frames.split(data, name) for name in ("train", "val", "test")}
        t_transfer = time.perf_counter() - t0
        log.info("Spark MLP: layers %s, %d training rows, solver %s, %d iterations (data sent to Spark in %.1f s)",
                 self.layers, len(data.train), solver(training), training.trainer.max_epochs, t_transfer)
        fit = fit_in_chunks if s.tuning == "none" else fit_tuned
        result = fit(self.frames, data, s, training, self.layers, self.context.seed, frames["train"], frames["val"],
                     on_epoch_end)
        self._model = result.model
        self.layers = result.details.pop("layers", self.layers)
        t1 = time.perf_counter()
        self.spark_scores = {}
        for split in ("val", "test"):
            if frames[split] is not None:
                self.spark_scores.update(spark_metrics(self._model, frames[split], split, self.n_classes))
        if self.spark_scores:
            log.info("Spark evaluator: %s", ", ".join(f"{k}={v:.4f}" for k, v in sorted(self.spark_scores.items())))
        timings = dict(result.timings, session_s=t_session, transfer_s=t_transfer,
                       spark_eval_s=time.perf_counter() - t1, total_s=time.perf_counter() - t_start)
        timings["data_share"] = (timings["transfer_s"] + timings["features_s"]) / max(timings["total_s"], 1e-9)
        self.run_info.update(result.details, timings=timings, spark_metrics=dict(self.spark_scores))
        per_iteration = timings["s_per_iteration"]
        log.info("Spark MLP: fit %.1f s%s, data %.0f%% of the run, BLAS %s", timings["fit_s"],
                 f" for {timings['iterations']} iterations ({per_iteration:.2f} s/iteration)"
                 if per_iteration is not None else f" ({s.tuning} over {timings.get('candidates', 1)} candidates)",
                 100 * timings["data_share"], self.run_info["blas"])
        return result.history

    # -- inference -------------------------------------------------------------------------
    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Probabilities ``(n, n_classes)`` for preprocessed inputs, computed by the PipelineModel."""
        from mnistfw.backends.spark_mlp.transfer import collect_proba

        if self._model is None:
            raise ModelFormatError("the Spark model is not trained or loaded yet; call fit or load first")
        x = np.asarray(x, dtype=np.float32)
        if len(x) == 0:
            return np.zeros((0, self.n_classes))
        df = self.frames.from_arrays(x.reshape(len(x), -1), None, "arrow")
        try:
            return collect_proba(self._model.transform(df), self.n_classes)
        finally:
            self.frames.uncache(df)

    def first_layer_weights(self) -> np.ndarray | None:
        """First layer weights ``(n_features, n_units)`` (acting on the scaled features)."""
        if self._model is None or not self.layers:
            return None
        n_in, n_out = self.layers[0], self.layers[1]
        w = self._model.stages[-1].weights.toArray()
        # Spark stores each affine layer as a column-major (n_out, n_in) matrix, then the bias.
        return w[: n_in * n_out].reshape((n_out, n_in), order="F").T.copy()

    def n_parameters(self) -> int | None:
        """Weights and biases of the MLP: the sum over layers of (inputs + 1) x outputs."""
        if not self.layers:
            return None
        return sum((a + 1) * b for a, b in zip(self.layers[:-1], self.layers[1:]))

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
        arch: dict[str, Any] = {"format": MODEL_FORMAT, "path": MODEL_SUBDIR, "layers": self.layers,
                                "n_classes": self.n_classes, "activation": "sigmoid",
                                "spark_version": self.run_info.get("spark_version"),
                                "solver": self.run_info.get("solver"), "iterations": self.run_info.get("iterations")}
        if "tuning" in self.run_info:
            arch["tuning"] = {k: self.run_info["tuning"][k] for k in ("method", "metric", "chosen")}
        return arch

    def restore(self, directory: Path, architecture: dict[str, Any]) -> None:
        """Read the ``PipelineModel`` of a folder written by :meth:`save` (starting a local session if needed)."""
        from pyspark.ml import PipelineModel

        path = Path(directory) / str(architecture.get("path", MODEL_SUBDIR))
        if architecture.get("format") != MODEL_FORMAT or not (path / "metadata").is_dir():
            raise ModelFormatError(
                f"{directory} is not an mnistfw Spark model (no {MODEL_SUBDIR}/ PipelineModel); "
                "pass the 'model' folder of a run trained with model=spark_mlp"
            )
        _ = self.spark  # starts a local session (with the Java check) when none is running
        try:
            self._model = PipelineModel.load(path.resolve().as_uri())
        except Exception as exc:  # noqa: BLE001 - any Spark/py4j error reading it
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelFormatError(f"{path} is not a readable Spark PipelineModel ({first[:200]}); re-train") from None
        try:
            self.layers = [int(n) for n in architecture["layers"]]
            self.n_classes = int(architecture.get("n_classes") or self.layers[-1])
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ModelFormatError(f"{directory}/mnistfw_model.json: the Spark architecture is incomplete "
                                   f"({exc!r}); re-train or restore the run") from None
