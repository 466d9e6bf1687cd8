"""``mnistfw-eval``: re-evaluate a saved model of any backend and draw its plots, into a new folder.

The data config (and seed) come from the run's ``.hydra/config.yaml``, so the same splits are
rebuilt; ``data=<option>`` (with ``data.key=value``) replaces it and ``seed=`` overrides the
seed. The model is fed the preprocessing it was trained with. ``metrics.json``, ``plots/``
and the log go to a new folder; the run folder is only read.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from mnistfw.errors import ConfigError, ModelFormatError

log = logging.getLogger("mnistfw.eval")


@dataclass
class EvalSpec:
    """A composed ``eval.yaml``, validated before the model or the data is loaded."""

    model_dir: Path
    run_dir: Path | None
    data: Any  # DataConfig
    data_from: str
    seed: int
    splits: list[str]
    evaluators: dict[str, Any]
    visualizers: dict[str, Any]
    sections: dict[str, Any]
    recorded: dict[str, Any]
    config: dict[str, Any]


def _run_config(run_dir: Path | None) -> DictConfig | None:
    """The composed config a run was trained with (``.hydra/config.yaml``), if there is one."""
    if run_dir is None:
        return None
    path = run_dir / ".hydra" / "config.yaml"
    if not path.is_file():
        return None
    try:
        loaded = OmegaConf.load(path)
    except Exception as exc:  # noqa: BLE001 - any YAML problem is reported the same way
        raise ConfigError(f"{path} cannot be read ({type(exc).__name__}: {exc}); pass data=<option>") from None
    return loaded if isinstance(loaded, DictConfig) else None


def _run_summary(run_dir: Path | None) -> dict[str, Any]:
    """The run's own ``metrics.json`` (for its history and recorded metrics), or {}."""
    path = run_dir / "metrics.json" if run_dir is not None else None
    if path is None or not path.is_file():
        return {}
    try:
        summary = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        summary = None
    if not isinstance(summary, dict):
        log.warning("%s is unreadable; learning curves and the comparison are left out", path)
        return {}
    return summary


def _data_section(cfg: DictConfig, run_cfg: DictConfig | None, model_dir: Path) -> tuple[Any, str]:
    """Put the data config to use into ``cfg.data`` and say where it came from."""
    if cfg.get("data") is not None:
        return cfg.data, "data= given on the command line"
    if run_cfg is None or run_cfg.get("data") is None:
        raise ConfigError(
            f"data: {model_dir} has no run config (.hydra/config.yaml) beside it to take the data from; "
            "pass data=<option>, e.g. data=mnist or data=mnist_sample"
        )
    with open_dict(cfg):
        # Attached to this app's config, the run's ${paths...} interpolations resolve here.
        cfg.data = OmegaConf.to_container(run_cfg.data, resolve=False)
    return cfg.data, "the run's config"


def build_eval_spec(cfg: DictConfig) -> EvalSpec:
    """Validate ``eval.yaml``: model folder, data, seed, plugins — before anything slow."""
    from mnistfw.app.predict_task import resolve_model_dir
    from mnistfw.app.run_spec import EvaluationSettings, VisualizationSettings, make_plugins
    from mnistfw.backends.spark_mlp.spark_settings import SparkConfig
    from mnistfw.config.validation import validate_section
    from mnistfw.data.data_settings import DataConfig

    model_dir, run_dir = resolve_model_dir(cfg.get("run_dir"), cfg.get("model_dir"))
    run_cfg = _run_config(run_dir)
    data_node, data_from = _data_section(cfg, run_cfg, model_dir)
    data = validate_section(data_node, DataConfig, "data", f"data={data_node.get('name', '?')}")
    seed = cfg.get("seed")
    if seed is None:
        seed = run_cfg.get("seed", 42) if run_cfg is not None else 42
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError(f"seed: must be an integer, got {seed!r}")
    evaluation = validate_section(cfg.evaluation, EvaluationSettings, "evaluation")
    visualization = validate_section(cfg.visualization, VisualizationSettings, "visualization")
    sections = {"spark": validate_section(cfg.spark, SparkConfig, "spark")} if cfg.get("spark") is not None else {}
    return EvalSpec(
        model_dir=model_dir, run_dir=run_dir, data=data, data_from=data_from, seed=int(seed),
        splits=list(evaluation.splits),
        evaluators=make_plugins("evaluator", "evaluation.evaluators", evaluation.evaluators),
        visualizers=(make_plugins("visualizer", "visualization.visualizers", visualization.visualizers)
                     if visualization.enabled else {}),
        sections=sections, recorded=_run_summary(run_dir),
        config=OmegaConf.to_container(cfg, resolve=True),  # type: ignore[arg-type]
    )


def evaluate(spec: EvalSpec, out_dir: Path) -> dict[str, Any]:
    """Reload the model, rebuild the data, record metrics and plots into ``out_dir``."""
    from mnistfw import __version__
    from mnistfw.app import heap
    from mnistfw.app.recording import Recorder, log_metrics
    from mnistfw.backends.base import load_model
    from mnistfw.data.loading import load_dataset

    t_start = time.perf_counter()
    start = time.perf_counter()
    loaded = load_model(spec.model_dir, **spec.sections)
    load_model_s = round(time.perf_counter() - start, 3)
    heap.settle()  # the backend's modules are imported: collect as usual from here on
    recorder = Recorder(out_dir, spec.evaluators, spec.visualizers, spec.config)
    with loaded.backend:
        start = time.perf_counter()
        data = load_dataset(spec.data, seed=spec.seed)
        recorder.timings.update(load_model_s=load_model_s, load_data_s=round(time.perf_counter() - start, 3))
        if data.info.n_features != loaded.info.n_features:
            raise ModelFormatError(
                f"the model expects {loaded.info.image_shape[0]}x{loaded.info.image_shape[1]} inputs but "
                f"data={data.info.name} has {data.info.image_shape[0]}x{data.info.image_shape[1]} images; "
                "pick a data config of the same image size"
            )
        trained_on = spec.recorded.get("data", {})
        if trained_on and (trained_on.get("source"), trained_on.get("sizes")) != (data.info.source, data.info.sizes):
            log.warning("the data differ from the run's: now %s %s, at training %s %s; the metrics are not comparable",
                        data.info.source, data.info.sizes, trained_on.get("source"), trained_on.get("sizes"))
        # Feed the model exactly the preprocessing it was trained with.
        prep = loaded.preprocessing
        data = replace(data, preprocessing=prep,
                       **{s: replace(data.split(s), x=prep.apply(data.split(s).images)) for s in spec.splits})
        log.info("model %s (%s) on data %s from %s (%s); splits %s", spec.model_dir, loaded.meta.backend,
                 data.info.name, data.info.source, spec.data_from,
                 ", ".join(f"{s}={len(data.split(s))}" for s in spec.splits))
        metrics = recorder.measure(loaded.backend, data, spec.splits)
        run_metrics = spec.recorded.get("metrics", {}) if isinstance(spec.recorded.get("metrics"), dict) else {}
        summary: dict[str, Any] = {
            "source": {"run_dir": str(spec.run_dir) if spec.run_dir else None, "model_dir": str(spec.model_dir),
                       "backend": loaded.meta.backend, "data_from": spec.data_from},
            "run_metrics": {k: run_metrics[k] for k in metrics if k in run_metrics},
            "data": data.info.to_dict(),
            "seed": spec.seed,
            "mnistfw_version": __version__,
        }
        recorder.write(summary)
        history = spec.recorded.get("history") if isinstance(spec.recorded.get("history"), list) else []
        recorder.draw(loaded.backend, data, history)
        recorder.timings["total_s"] = round(time.perf_counter() - t_start, 3)
        recorder.write(summary)
    log_metrics(metrics, run_metrics)
    log.info("eval folder: %s", out_dir)
    return {**summary, "metrics": metrics, "plots": recorder.plots, "timings": recorder.timings}
