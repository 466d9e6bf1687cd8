"""The run spec: a composed ``train.yaml`` validated once into typed objects, before any work.

This module is the only place that reads a run's raw Hydra config. Every section is checked
against its schema (``data`` -> :class:`~mnistfw.data.data_settings.DataConfig`, ``model`` ->
the backend's ``settings_schema``, ``trainer``/``optimizer``/``scheduler`` -> the shared
vocabulary, the backend's own sections such as ``spark``), the evaluator and visualizer
plugins are created, and then the cross-checks run: keys the user set that the backend does
not read (:mod:`mnistfw.app.unread_keys`), the objective against the metrics the run will
compute, the checkpoint to resume from. Any problem is one :class:`ConfigError` line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from omegaconf import DictConfig, OmegaConf

from mnistfw.backends.base import Backend, RunContext
from mnistfw.config.validation import Checked, Constraints, Each, Options, require, validate_section
from mnistfw.config.vocabulary import OptimizerSettings, SchedulerSettings, TrainerSettings, Training
from mnistfw.errors import ConfigError

TOP_LEVEL_KEYS = {
    "task_name", "seed", "objective", "ckpt_path", "save_model",
    "paths", "data", "model", "trainer", "optimizer", "scheduler", "spark", "logger", "evaluation", "visualization",
}
SPLITS = ("train", "val", "test")


@dataclass
class EvaluationSettings(Checked):
    """The ``evaluation`` group: which splits to score and the evaluator plugins, with their options."""

    splits: list[str]
    evaluators: dict[str, Any]

    constraints: ClassVar[Constraints] = {"splits": Each(Options(*SPLITS), min_len=1)}


@dataclass
class VisualizationSettings(Checked):
    """The ``visualization`` group: the visualizer plugins, with their options."""

    enabled: bool
    visualizers: dict[str, Any]


@dataclass
class RunSpec:
    """Everything a training run needs, validated; built by :func:`build_run_spec`."""

    data: Any  # mnistfw.data.data_settings.DataConfig
    backend_cls: type[Backend]
    settings: Any
    sections: dict[str, Any]
    context: RunContext
    evaluation: EvaluationSettings
    evaluators: dict[str, Any]
    visualizers: dict[str, Any]
    save_model: bool
    #: The composed config as plain data (for plugins and the trackers).
    config: dict[str, Any]
    #: The trackers of the ``logger`` section, not started yet.
    trackers: list[Any]

    @property
    def objective(self) -> tuple[str, ...]:
        return self.context.objective

    def make_backend(self) -> Backend:
        """A fresh, untrained backend of this run."""
        return self.backend_cls(self.settings, self.context, **self.sections)


def make_plugins(kind: str, key: str, specs: dict[str, Any]) -> dict[str, Any]:
    """Create each named plugin with its options (``null`` options switch one off)."""
    from mnistfw import registry

    plugins: dict[str, Any] = {}
    for name, options in specs.items():
        if options is None:
            continue
        require(isinstance(options, dict), f"{key}.{name}",
                f"options must be a mapping ({{}} for none), got {options!r}")
        plugins[str(name)] = registry.create(kind, str(name), dict(options), f"{key}.{name}")
    return plugins


def objectives_of(cfg: DictConfig) -> tuple[str, ...]:
    """``objective`` as a tuple of ``<split>/<metric>`` names, checked for shape."""
    raw = cfg.get("objective")
    names = tuple(OmegaConf.to_container(raw)) if OmegaConf.is_list(raw) else (raw,)  # type: ignore[arg-type]
    for name in names:
        require(
            isinstance(name, str) and "/" in name and name.split("/", 1)[0] in ("val", "test"),
            "objective",
            f"'{name}' must be <split>/<metric> with split val or test, e.g. val/accuracy or val/f1",
        )
    return names  # type: ignore[return-value]


def build_training(cfg: DictConfig) -> Training:
    """The ``trainer``, ``optimizer`` and ``scheduler`` sections as one validated :class:`Training`."""
    return Training(
        trainer=validate_section(cfg.trainer, TrainerSettings, "trainer"),
        optimizer=validate_section(cfg.optimizer, OptimizerSettings, "optimizer", f"optimizer={cfg.optimizer.name}"),
        scheduler=validate_section(cfg.scheduler, SchedulerSettings, "scheduler", f"scheduler={cfg.scheduler.name}"),
    )


def build_sections(cfg: DictConfig, backend_cls: type[Backend], required: bool = True) -> dict[str, Any]:
    """The backend's own top-level sections (``spark``, ``logger``), validated."""
    out: dict[str, Any] = {}
    for name, schema in backend_cls.section_schemas.items():
        node = cfg.get(name)
        if node is None:
            require(not required, name, f"model={backend_cls.name} needs the {name} config group")
            continue
        if schema is dict:
            out[name] = OmegaConf.to_container(node, resolve=True)
        else:
            out[name] = validate_section(node, schema, name, f"model={backend_cls.name}")
    return out


def build_run_spec(cfg: DictConfig, run_dir: Path | None, user_keys: set[str] | None = None) -> RunSpec:
    """Validate a composed ``train.yaml`` into a :class:`RunSpec`; raise a one-line :class:`ConfigError`.

    ``user_keys``: the dotted keys the user set (see :func:`mnistfw.app.unread_keys.user_set_keys`);
    those the selected backend does not read are refused.
    """
    from mnistfw import registry
    from mnistfw.app.unread_keys import refuse_unread
    from mnistfw.data.data_settings import DataConfig
    from mnistfw.trackers.tracker import build_trackers

    unknown = sorted(set(cfg.keys()) - TOP_LEVEL_KEYS - {"hydra"})
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown top-level key; allowed: {', '.join(sorted(TOP_LEVEL_KEYS))}")
    seed = cfg.get("seed")
    require(isinstance(seed, int) and not isinstance(seed, bool), "seed", f"must be an integer, got {seed!r}")
    objective = objectives_of(cfg)
    backend_name = cfg.model.get("backend")
    if not backend_name:
        raise ConfigError("model.backend: missing; choose a model with model=<name> (see configs/model/)")
    backend_cls: type[Backend] = registry.load("backend", str(backend_name))
    backend_cls.check_installed()
    if user_keys:
        refuse_unread(backend_cls, user_keys)
    data = validate_section(cfg.data, DataConfig, "data", f"data={cfg.data.get('name', '?')}")
    settings = validate_section(cfg.model, backend_cls.settings_schema, "model", f"model={backend_name}")
    training = build_training(cfg) if backend_cls.reads.optimizers else None
    if training is not None:
        _check_supported(backend_cls, training)
        backend_cls.check_training(training)
    sections = build_sections(cfg, backend_cls)
    evaluation = validate_section(cfg.evaluation, EvaluationSettings, "evaluation")
    visualization = validate_section(cfg.visualization, VisualizationSettings, "visualization")
    evaluators = make_plugins("evaluator", "evaluation.evaluators", evaluation.evaluators)
    visualizers = (make_plugins("visualizer", "visualization.visualizers", visualization.visualizers)
                   if visualization.enabled else {})
    _check_objective(objective, evaluation, evaluators, backend_cls.extra_metric_names(settings))
    resume = _resume_path(cfg, backend_cls)
    trackers = build_trackers(OmegaConf.to_container(cfg.logger, resolve=True) if cfg.get("logger") else None)
    context = RunContext(seed=int(seed), run_dir=run_dir, objective=objective, training=training, resume_from=resume)
    return RunSpec(
        data=data, backend_cls=backend_cls, settings=settings, sections=sections, context=context,
        evaluation=evaluation, evaluators=evaluators, visualizers=visualizers,
        save_model=bool(cfg.get("save_model", True)),
        config=OmegaConf.to_container(cfg, resolve=True),  # type: ignore[arg-type]
        trackers=trackers,
    )


def _check_supported(backend_cls: type[Backend], training: Training) -> None:
    reads, name = backend_cls.reads, backend_cls.name
    require(training.optimizer.name in reads.optimizers, "optimizer",
            f"model={name} does not implement optimizer={training.optimizer.name}; "
            f"it implements {', '.join(reads.optimizers)}")
    require(training.scheduler.name in reads.schedulers, "scheduler",
            f"model={name} does not implement scheduler={training.scheduler.name}; "
            f"it implements {', '.join(reads.schedulers)}")


def _check_objective(objective: tuple[str, ...], evaluation: EvaluationSettings, evaluators: dict[str, Any],
                     extra: tuple[str, ...]) -> None:
    """The objective must name a metric the run computes: checked before training, not after."""
    names: set[str] = set()
    complete = True
    for plugin in evaluators.values():
        provided = plugin.metric_names() if hasattr(plugin, "metric_names") else None
        if provided is None:
            complete = False
            continue
        names.update(provided)
    for obj in objective:
        split, metric = obj.split("/", 1)
        require(split in evaluation.splits, "objective",
                f"'{obj}' needs split '{split}' in evaluation.splits {evaluation.splits}")
        if complete and obj not in extra:
            available = sorted({f"{s}/{n}" for s in evaluation.splits for n in names} | set(extra))
            require(metric in names, "objective",
                    f"'{obj}' is not computed by the selected evaluators; available: {', '.join(available)}")


def _resume_path(cfg: DictConfig, backend_cls: type[Backend]) -> Path | None:
    raw = cfg.get("ckpt_path")
    if not raw:
        return None
    require("ckpt_path" in backend_cls.reads.sections, "ckpt_path",
            f"model={backend_cls.name} cannot resume from a checkpoint; remove ckpt_path")
    path = Path(str(raw)).expanduser()
    require(path.is_file(), "ckpt_path",
            f"{path} {'is a folder' if path.is_dir() else 'does not exist'}; "
            "use <run>/checkpoints/last.ckpt of an earlier run")
    return path
