"""``mnistfw-eval``: re-evaluate a saved model of any backend and draw its plots, into a new folder.

::

    mnistfw-eval run_dir=outputs/train/runs/<date>_<time>
    mnistfw-eval run_dir=... evaluation=minimal +visualization.visualizers.data_distribution={}
    mnistfw-eval model_dir=<run>/model data=mnist_sample          # another data config
    mnistfw-eval run_dir=... evaluation.splits=[val,test]

The data config (and seed) come from the run's ``.hydra/config.yaml``, so the same splits are
rebuilt; ``data=<option>`` (with ``data.key=value``) replaces it and ``seed=`` overrides the
seed. The model is fed the preprocessing it was trained with. ``metrics.json``, ``plots/``
and the log go to ``outputs/eval/runs/<date>_<time>/``; the run folder is only read.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from mnistfw.errors import ConfigError, ModelFormatError

log = logging.getLogger("mnistfw.eval")


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
    if run_dir is None or not (run_dir / "metrics.json").is_file():
        return {}
    try:
        return json.loads((run_dir / "metrics.json").read_text())
    except (OSError, json.JSONDecodeError):
        log.warning("%s is unreadable; learning curves and the comparison are left out", run_dir / "metrics.json")
        return {}


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


def evaluate(cfg: DictConfig, out_dir: Path) -> dict[str, Any]:
    """Reload the model, rebuild the data, compute metrics and plots into ``out_dir``."""
    from mnistfw import __version__
    from mnistfw.backends.base import load_model
    from mnistfw.cli.predict import resolve_model_dir
    from mnistfw.config.schema import EvaluationConfig, VisualizationConfig, instantiate_plugins
    from mnistfw.config.validation import validate_section
    from mnistfw.contract import RunArtifacts
    from mnistfw.data.data_settings import DataConfig
    from mnistfw.data.loading import load_dataset
    from mnistfw.io import write_json
    from mnistfw.pipeline import draw_plots, evaluate_predictions, predict_splits

    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    model_dir, run_dir = resolve_model_dir(cfg.get("run_dir"), cfg.get("model_dir"))
    run_cfg = _run_config(run_dir)
    summary = _run_summary(run_dir)

    # Validate everything before the slow parts.
    data_node, data_from = _data_section(cfg, run_cfg, model_dir)
    data_cfg = validate_section(data_node, DataConfig, "data", f"data={data_node.get('name', '?')}")
    seed = cfg.get("seed")
    if seed is None:
        seed = run_cfg.get("seed", 42) if run_cfg is not None else 42
    if not isinstance(seed, int):
        raise ConfigError(f"seed: must be an integer, got {seed!r}")
    evaluation = validate_section(cfg.evaluation, EvaluationConfig, "evaluation")
    visualization = validate_section(cfg.visualization, VisualizationConfig, "visualization")
    evaluators = instantiate_plugins("evaluator", "evaluation.evaluators", evaluation.evaluators)
    visualizers = (
        instantiate_plugins("visualizer", "visualization.visualizers", visualization.visualizers)
        if visualization.enabled
        else {}
    )

    start = time.perf_counter()
    loaded = load_model(model_dir)
    timings["load_model_s"] = round(time.perf_counter() - start, 3)
    try:
        start = time.perf_counter()
        data = load_dataset(data_cfg, seed=int(seed))
        timings["load_data_s"] = round(time.perf_counter() - start, 3)
        if data.info.n_features != loaded.info.n_features:
            raise ModelFormatError(
                f"the model expects {loaded.info.image_shape[0]}x{loaded.info.image_shape[1]} inputs but "
                f"data={data.info.name} has {data.info.image_shape[0]}x{data.info.image_shape[1]} images; "
                "pick a data config of the same image size"
            )
        recorded = summary.get("data", {})
        if recorded and (recorded.get("source"), recorded.get("sizes")) != (data.info.source, data.info.sizes):
            log.warning(
                "the data differ from the run's: now %s %s, at training %s %s; the metrics are not comparable",
                data.info.source, data.info.sizes, recorded.get("source"), recorded.get("sizes"),
            )
        # Feed the model exactly the preprocessing it was trained with.
        prep = loaded.preprocessing
        data = replace(
            data,
            preprocessing=prep,
            **{s: replace(data.split(s), x=prep.apply(data.split(s).images)) for s in evaluation.splits},
        )
        log.info(
            "model %s (%s) on data %s from %s (%s); splits %s",
            model_dir, loaded.meta.get("backend"), data.info.name, data.info.source, data_from,
            ", ".join(f"{s}={len(data.split(s))}" for s in evaluation.splits),
        )
        start = time.perf_counter()
        predictions = predict_splits(loaded.backend, data, list(evaluation.splits))
        metrics = evaluate_predictions(predictions, evaluators)
        timings["eval_s"] = round(time.perf_counter() - start, 3)
        run_metrics = summary.get("metrics", {})
        result: dict[str, Any] = {
            "metrics": metrics,
            "source": {
                "run_dir": str(run_dir) if run_dir else None,
                "model_dir": str(model_dir),
                "backend": loaded.meta.get("backend"),
                "data_from": data_from,
            },
            "run_metrics": {k: run_metrics[k] for k in metrics if k in run_metrics},
            "data": data.info.to_dict(),
            "seed": int(seed),
            "timings": timings,
            "mnistfw_version": __version__,
        }
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json(out_dir / "metrics.json", result)
        if visualizers:
            artifacts = RunArtifacts(
                run_dir=out_dir, plots_dir=out_dir / "plots", data=data, predictions=predictions,
                history=list(summary.get("history") or []), model=loaded.backend, metrics=metrics,
                config=OmegaConf.to_container(cfg, resolve=True),  # type: ignore[arg-type]
            )
            start = time.perf_counter()
            plots = draw_plots(artifacts, visualizers)
            timings["plot_s"] = round(time.perf_counter() - start, 3)
            result["plots"] = [str(p.relative_to(out_dir)) for p in plots]
        timings["total_s"] = round(time.perf_counter() - t_start, 3)
        write_json(out_dir / "metrics.json", result)
    finally:
        loaded.backend.close()
    for key in sorted(k for k, v in metrics.items() if isinstance(v, (float, int)) and not isinstance(v, bool)):
        before = run_metrics.get(key)
        was = f"   (run: {before:.4f})" if isinstance(before, (int, float)) else ""
        log.info("%-24s %.4f%s", key, metrics[key], was)
    log.info("eval folder: %s", out_dir)
    return result


def _evaluate(cfg: Any, out_dir: Path) -> None:
    evaluate(cfg, out_dir)


def main() -> Any:
    """Entry point of the ``mnistfw-eval`` console script."""
    from mnistfw.cli.hydra_app import hydra_entry

    return hydra_entry("eval", _evaluate)()


if __name__ == "__main__":
    main()
