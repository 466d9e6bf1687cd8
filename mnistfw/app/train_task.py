"""One training run, as data flowing through::

    run spec -> dataset -> backend.fit(on_epoch_end) -> record (predictions, evaluators,
    metrics.json) -> saved model -> plots -> the objective value

``on_epoch_end`` is composed here from the run's own callbacks (NaN guard, log line, early
stopping) and the ones handed in by the caller (an Optuna sweep's pruning callback, a
tracker): the core run knows nothing of sweeps.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mnistfw import __version__
from mnistfw.app import heap
from mnistfw.app.processes import is_primary_process
from mnistfw.app.recording import Recorder, log_metrics, objective_value
from mnistfw.app.run_spec import RunSpec
from mnistfw.backends.base import EpochCallback, save_model

log = logging.getLogger("mnistfw")


def _rank() -> str:
    import os

    return os.environ.get("RANK") or os.environ.get("LOCAL_RANK") or "?"


def compose_callbacks(*callbacks: EpochCallback | None) -> EpochCallback:
    """One ``on_epoch_end`` that calls each non-None callback in order."""
    active = [cb for cb in callbacks if cb is not None]

    def on_epoch_end(epoch: int, metrics: Mapping[str, float]) -> None:
        for cb in active:
            cb(epoch, metrics)

    return on_epoch_end


def log_epoch(epoch: int, metrics: Mapping[str, float]) -> None:
    """The per-epoch log line."""
    shown = "  ".join(f"{k}={v:.4f}" for k, v in metrics.items() if k != "lr" and isinstance(v, float))
    log.info("epoch %d  %s", epoch, shown)


def nan_guard(epoch: int, metrics: Mapping[str, float]) -> None:
    """Stop a run whose training loss is no longer a number."""
    from mnistfw.errors import TrainingError

    loss = metrics.get("train/loss")
    if loss is not None and not math.isfinite(loss):
        raise TrainingError(f"training loss is {loss} at epoch {epoch}: training diverged; lower optimizer.lr "
                            "(or set trainer.gradient_clip_val)")


def prepare_plotting() -> None:
    """Import matplotlib in the background while the model trains (it takes most of a second)."""
    import threading

    from mnistfw.visualizers._style import pyplot

    threading.Thread(target=pyplot, name="import-matplotlib", daemon=True).start()


def run_callbacks(spec: RunSpec) -> list[EpochCallback]:
    """The callbacks every training run has: NaN guard, log line, early stopping when configured."""
    from mnistfw.backends.monitoring import EarlyStopping

    callbacks: list[EpochCallback] = [nan_guard, log_epoch]
    training = spec.context.training
    if training is not None and training.trainer.early_stopping.patience:
        callbacks.append(EarlyStopping(training.trainer.early_stopping, training.trainer.min_epochs))
    return callbacks


def train(spec: RunSpec, run_dir: Path, callbacks: Sequence[EpochCallback] = ()) -> float | list[float]:
    """Run one training job into ``run_dir``; return the objective value(s)."""
    from mnistfw.data.loading import load_dataset

    t_start = time.perf_counter()
    run_dir = Path(run_dir)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    importing = spec.backend_cls.warm_up()
    data = load_dataset(spec.data, seed=spec.context.seed)
    timings["load_s"] = round(time.perf_counter() - start, 3)
    log.info("data: %s from %s  train/val/test = %d/%d/%d", data.info.name, data.info.source,
             len(data.train), len(data.val), len(data.test))
    recorder = Recorder(run_dir, spec.evaluators, spec.visualizers, spec.config)
    if importing is not None:  # the fit would wait for it anyway
        importing.join()
    heap.settle()
    if spec.visualizers:  # after the backend's imports, not competing with them for the interpreter
        prepare_plotting()
    primary = is_primary_process()  # in a multi-process (DDP) run, only rank 0 records and writes
    trackers = Trackers(spec, run_dir) if primary else Trackers.none(spec, run_dir)
    with spec.make_backend() as backend, trackers:
        start = time.perf_counter()
        history = backend.fit(data, compose_callbacks(*run_callbacks(spec), *trackers.callbacks, *callbacks))
        timings["fit_s"] = round(time.perf_counter() - start, 3)
        if not primary:
            log.info("rank %s finished its part of the training; rank 0 records the run", _rank())
            return float("nan")
        metrics = recorder.measure(backend, data, spec.evaluation.splits)
        result = objective_value(spec.objective, metrics)
        if spec.save_model:
            start = time.perf_counter()
            save_model(backend, run_dir / "model", data.info, data.preprocessing)
            timings["save_s"] = round(time.perf_counter() - start, 3)
        summary: dict[str, Any] = {
            "objective": {"name": list(spec.objective) if len(spec.objective) > 1 else spec.objective[0],
                          "value": result},
            "data": data.info.to_dict(),
            "model": {"backend": backend.name, "n_parameters": backend.n_parameters(),
                      "details": backend.fit_details()},
            "history": history,
            "seed": spec.context.seed,
            "mnistfw_version": __version__,
        }
        recorder.timings = {**timings, **recorder.timings}
        recorder.write(summary)
        plots = recorder.draw(backend, data, history)
        recorder.timings["total_s"] = round(time.perf_counter() - t_start, 3)
        recorder.write(summary)
        trackers.finished(metrics, [run_dir / "metrics.json", *plots])
    log_metrics({k: v for k, v in metrics.items() if isinstance(v, float)})
    log.info("timings: %s", "  ".join(f"{k}={v:.1f}s" for k, v in recorder.timings.items()))
    log.info("run folder: %s", run_dir)
    return result


class Trackers:
    """The run's trackers: started before the fit, fed each epoch, finished with how the run ended.

    As a context manager it marks the trackers' runs FAILED (an error) or KILLED (Ctrl-C, a pruned
    trial) when the block ends by an exception before :meth:`finished`.
    """

    def __init__(self, spec: RunSpec, run_dir: Path, trackers: Sequence[Any] | None = None) -> None:
        from mnistfw.trackers.tracker import TrackedRun

        self.trackers = list(spec.trackers if trackers is None else trackers)
        # "numpy_net 2026-12-02_14-40-12", or "numpy_net 2026-12-02_14-40-12/3" for trial 3 of a sweep.
        where = run_dir.name if run_dir.parent.name == "runs" else f"{run_dir.parent.name}/{run_dir.name}"
        name = f"{spec.backend_cls.name} {where}"
        self.run = TrackedRun(name=name, run_dir=run_dir, backend=spec.backend_cls.name, config=spec.config)
        self.done = False

    @classmethod
    def none(cls, spec: RunSpec, run_dir: Path) -> Trackers:
        """No trackers (a process other than rank 0 of a multi-process run)."""
        return cls(spec, run_dir, trackers=[])

    @property
    def callbacks(self) -> list[EpochCallback]:
        return list(self.trackers)

    def __enter__(self) -> Trackers:
        for tracker in self.trackers:
            tracker.start(self.run)
        return self

    def finished(self, metrics: Mapping[str, Any], files: Sequence[Path]) -> None:
        numbers = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        self._finish(numbers, files, "FINISHED")
        self.done = True

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if self.done or kind is None:
            return
        interrupted = issubclass(kind, KeyboardInterrupt) or kind.__name__ == "TrialPruned"
        self._finish({}, [], "KILLED" if interrupted else "FAILED")

    def _finish(self, metrics: Mapping[str, float], files: Sequence[Path], status: str) -> None:
        for tracker in self.trackers:
            try:
                tracker.finish(metrics, [f for f in files if f.is_file()], status)
            except Exception as exc:  # noqa: BLE001 - the run's own files are written already
                log.warning("tracker %s could not record the end of the run: %s: %s", tracker.name,
                            type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
