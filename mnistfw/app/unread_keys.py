"""No silent ignores: find the keys the user set, and refuse those the selected backend does not read.

"Set by the user" means: given on the command line (``trainer.accelerator=gpu``,
``spark=cluster``), or different from what the selected model's own defaults compose to —
which covers experiment, debug and sweep configs and the user's own config files. A group's
defaults are never "set by the user": ``model=numpy_net`` alone composes a ``trainer`` section
whose Lightning-only keys numpy_net simply does not read.

The defaults are found by composing the same config with nothing but ``model=<the choice>``,
so no list of defaults is kept anywhere but the YAML files.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from mnistfw.errors import ConfigError

#: Top-level keys every backend reads (their contents are checked by their own schemas).
ALWAYS_READ = frozenset({"task_name", "seed", "objective", "save_model", "paths", "data", "model", "evaluation",
                         "visualization", "logger", "hydra"})
TRAINING_GROUPS = ("trainer", "optimizer", "scheduler")


def user_set_keys(cfg: DictConfig) -> set[str]:
    """Dotted keys the user set in this run (empty when not run by Hydra, e.g. from Python)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return set()
    hc = HydraConfig.get()
    # Command-line keys of this config (group choices such as debug=default or experiment=x
    # select whole setups and are not keys of it; what they set shows up as differences below).
    overridden = [_override_key(o) for o in hc.overrides.task]
    keys = {k for k in overridden if k.split(".", 1)[0] in cfg}
    choice = hc.runtime.choices.get("model")
    # Only a group choice other than the model (experiment=, debug=, a user's own config group)
    # can set keys the command line does not name; without one the reference composes to this
    # very config, so the second compose (a quarter of a second) is skipped.
    other_groups = set(hc.runtime.choices) - {"model"}
    chosen = any(k in other_groups for k in overridden)
    reference = _reference(hc.job.config_name, choice) if choice and chosen else None
    if reference is not None:
        keys |= set(_differences(_plain(cfg), _plain(reference)))
    return {k for k in keys if k and k.split(".", 1)[0] not in ALWAYS_READ}


def refuse_unread(backend_cls: Any, keys: set[str]) -> None:
    """Raise one :class:`ConfigError` line for the first key ``backend_cls`` does not read."""
    for key in sorted(keys):
        if not reads_key(backend_cls, key):
            raise ConfigError(_message(key, backend_cls))


def reads_key(backend_cls: Any, key: str) -> bool:
    """Whether ``backend_cls`` reads the dotted config ``key`` (by its :class:`~mnistfw.config.vocabulary.Reads`)."""
    reads = backend_cls.reads
    top, _, rest = key.partition(".")
    if top in ALWAYS_READ:
        return True
    if top == "trainer":
        return rest.split(".", 1)[0] in reads.trainer if rest else bool(reads.trainer)
    if top in ("optimizer", "scheduler"):
        return bool(reads.optimizers)
    return top in reads.sections


def _message(key: str, backend_cls: Any) -> str:
    name, reads = backend_cls.name, backend_cls.reads
    top = key.split(".", 1)[0]
    readers = _readers(key)
    hint = f" (it is read by {', '.join('model=' + r for r in readers)})" if readers else ""
    if top == "trainer":
        what = (f" {name} reads these trainer keys: {', '.join(sorted(reads.trainer))}" if reads.trainer
                else f" {name} does not train in epochs.")
    elif top in TRAINING_GROUPS:
        what = f" {name} has no optimiser or learning-rate schedule."
    else:
        what = ""
    return f"{key}: model={name} does not read this key{hint}; remove it or choose another model.{what}"


def _readers(key: str) -> list[str]:
    """Names of the installed backends that read ``key`` (for the hint)."""
    from mnistfw import registry
    from mnistfw.errors import PluginError

    found = []
    for name in registry.available("backend"):
        try:
            if reads_key(registry.load("backend", name), key):
                found.append(name)
        except PluginError:
            continue
    return found


def _override_key(override: str) -> str:
    """``trainer.max_epochs=3`` -> ``trainer.max_epochs``; ``+spark.conf.x=1`` -> ``spark.conf.x``."""
    key = override.split("=", 1)[0].lstrip("+~")
    return key.split("@", 1)[0]


def _plain(cfg: Any) -> Any:
    return OmegaConf.to_container(cfg, resolve=False) if OmegaConf.is_config(cfg) else cfg


def _reference(config_name: str | None, model_choice: str) -> DictConfig | None:
    """What ``model=<choice>`` alone composes to, or None when Hydra cannot compose here."""
    from hydra import compose
    from hydra.core.global_hydra import GlobalHydra

    if not config_name or not GlobalHydra.instance().is_initialized():
        return None
    return compose(config_name=config_name, overrides=[f"model={model_choice}"])


def _differences(mine: Any, base: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two plain configs (keys only one of them has included)."""
    if isinstance(mine, dict) and isinstance(base, dict):
        out: list[str] = []
        for key in set(mine) | set(base):
            if key == "hydra" and not prefix:
                continue
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in mine or key not in base:
                out.append(path)
            else:
                out.extend(_differences(mine[key], base[key], path))
        return out
    return [] if mine == base else [prefix]
