"""``logger=mlflow``: one MLflow run per mnistfw run, through MLflow's own client."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from mnistfw.errors import ConfigError
from mnistfw.trackers.tracker import TrackedRun, Tracker, flatten

#: MLflow's limits: parameter values are cut to this many characters; batches hold this many items.
_PARAM_CHARS = 6000
_BATCH = 100
#: The experiment tag that makes MLflow's UI open an experiment in its "Model training" view.
_EXPERIMENT_KIND = "mlflow.experimentKind"


class MLflowTracker(Tracker):
    """Parameters (the composed config, flattened), metrics per epoch, final metrics, artifacts.

    ``tracking_uri``: a database (``sqlite:///outputs/mlflow.db``) or an MLflow server
    (``http://host:5000``); ``artifact_location``: where a new experiment keeps its files.
    """

    requires: ClassVar[dict[str, str]] = {"mlflow": "mnistfw[mlflow]"}

    def __init__(self, tracking_uri: str, experiment_name: str, artifact_location: str | None = None,
                 run_name: str | None = None, tags: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self.tracking_uri, self.experiment_name = tracking_uri, experiment_name
        self.artifact_location, self.run_name = artifact_location, run_name
        self.tags = dict(tags or {})
        self.client: Any = None
        self.run_id: str | None = None

    def start(self, run: TrackedRun) -> None:
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        try:
            self.client = MlflowClient(tracking_uri=self.tracking_uri)
            experiment = self.client.get_experiment_by_name(self.experiment_name)
            experiment_id = experiment.experiment_id if experiment is not None else self.client.create_experiment(
                self.experiment_name, artifact_location=self.artifact_location,
                tags={_EXPERIMENT_KIND: "custom_model_development"})
            tags = {"backend": run.backend, "run_dir": str(run.run_dir), **self.tags}
            created = self.client.create_run(experiment_id, run_name=self.run_name or run.name, tags=tags)
        except Exception as exc:  # noqa: BLE001 - any store or server problem, before the training starts
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"logger.mlflow: cannot open MLflow at {self.tracking_uri} ({first[:200]}); "
                              "fix logger.mlflow.tracking_uri or start the server") from None
        self.run_id = created.info.run_id
        params = [Param(key, str(value)[:_PARAM_CHARS]) for key, value in flatten(run.config).items()]
        for i in range(0, len(params), _BATCH):
            self.client.log_batch(self.run_id, params=params[i : i + _BATCH])

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        batch = [Metric(key, value, stamp, step) for key, value in metrics.items()]
        for i in range(0, len(batch), _BATCH):
            self.client.log_batch(self.run_id, metrics=batch[i : i + _BATCH])

    def finish(self, metrics: Mapping[str, float], files: Sequence[Path], status: str) -> None:
        if self.client is None or self.run_id is None:
            return
        self.log_metrics(metrics, 0)
        for path in files:
            self.client.log_artifact(self.run_id, str(path), "plots" if path.suffix == ".png" else None)
        self.client.set_terminated(self.run_id, status)
