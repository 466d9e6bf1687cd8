"""Validation of a whole composed run config, before any work is done.

Each section has its own schema: ``data`` -> :class:`mnistfw.data.data_settings.DataConfig`,
``model`` -> the backend's ``config_schema``, ``evaluation``/``visualization`` below (their
plugins are looked up and instantiated here, so an unknown name or a bad option stops the
run at once). ``trainer``/``logger``/``spark`` are checked by the backends that use them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mnistfw.config.validation import require, validate_section
from mnistfw.errors import ConfigError

TOP_LEVEL_KEYS = {
    "task_name", "seed", "objective", "ckpt_path", "save_model",
    "paths", "data", "model", "trainer", "spark", "logger", "evaluation", "visualization",
}
SPLITS = ("train", "val", "test")


@dataclass
class EvaluationConfig:
    splits: list[str] = field(default_factory=lambda: ["val", "test"])
    evaluators: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for s in self.splits:
            require(s in SPLITS, "splits", f"'{s}' is not one of {', '.join(SPLITS)}")


@dataclass
class VisualizationConfig:
    enabled: bool = True
    visualizers: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunSpec:
    """The validated pieces of a run config that the pipeline needs."""

    data: Any
    model: Any
    backend_cls: type
    evaluation: EvaluationConfig
    evaluators: dict[str, Any]
    visualization: VisualizationConfig
    visualizers: dict[str, Any]


def instantiate_plugins(kind: str, section: str, specs: dict[str, Any]) -> dict[str, Any]:
    """Load and construct each named plugin with its options; errors name the config key."""
    from mnistfw import registry

    plugins: dict[str, Any] = {}
    for name, options in specs.items():
        if options is None:
            continue  # `evaluation.evaluators.f1=null` switches a plugin off
        cls = registry.load(kind, str(name))
        opts = dict(options) if isinstance(options, dict) else {}
        try:
            plugins[str(name)] = cls(**opts)
        except TypeError as exc:
            raise ConfigError(f"{section}.{name}: bad options {opts} ({exc})") from None
        except ValueError as exc:
            raise ConfigError(f"{section}.{name}: {exc}") from None
    return plugins


def validate_run_config(cfg: DictConfig) -> RunSpec:
    """Check every section of a composed ``train.yaml``; raise a one-line :class:`ConfigError`."""
    from mnistfw import registry
    from mnistfw.data.data_settings import DataConfig

    unknown = sorted(set(cfg.keys()) - TOP_LEVEL_KEYS - {"hydra"})
    if unknown:
        raise ConfigError(
            f"{unknown[0]}: unknown top-level key; allowed: {', '.join(sorted(TOP_LEVEL_KEYS))}"
        )
    require(isinstance(cfg.get("seed"), int), "seed", f"must be an integer, got {cfg.get('seed')!r}")
    objective = cfg.get("objective")
    objectives = list(objective) if OmegaConf.is_list(objective) else [objective]
    for obj in objectives:
        require(
            isinstance(obj, str) and obj.split("/", 1)[0] in ("val", "test") and "/" in obj,
            "objective",
            f"'{obj}' must be <split>/<metric> with split val or test, e.g. val/accuracy or val/f1",
        )
    data = validate_section(cfg.data, DataConfig, "data", f"data={cfg.data.get('name', '?')}")
    backend_name = cfg.model.get("backend")
    if not backend_name:
        raise ConfigError("model.backend: missing; choose a model with model=<name> (see configs/model/)")
    backend_cls = registry.load("backend", str(backend_name))
    model = validate_section(cfg.model, backend_cls.config_schema, "model", f"model={backend_name}")
    evaluation = validate_section(cfg.evaluation, EvaluationConfig, "evaluation")
    visualization = validate_section(cfg.visualization, VisualizationConfig, "visualization")
    for obj in objectives:
        require(
            obj.split("/", 1)[0] in evaluation.splits, "objective",
            f"'{obj}' needs split '{obj.split('/', 1)[0]}' in evaluation.splits {evaluation.splits}",
        )
    evaluators = instantiate_plugins("evaluator", "evaluation.evaluators", evaluation.evaluators)
    visualizers = (
        instantiate_plugins("visualizer", "visualization.visualizers", visualization.visualizers)
        if visualization.enabled
        else {}
    )
    return RunSpec(data, model, backend_cls, evaluation, evaluators, visualization, visualizers)
