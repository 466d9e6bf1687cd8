"""The settings that differ between runs.

Each run's ``.hydra/config.yaml`` is flattened to dotted keys (``optimizer.lr``). Left out:
``hydra.*``, ``paths.*``, what changes neither the model nor its metrics (``logger.*``,
``visualization.*``, ``task_name``, ``save_model``, the progress bar) and run-specific values
(output folders, checkpoint paths, values built from ``${hydra:...}`` or ``${now:...}``).

A config group whose option differs between the runs (``model=numpy_net`` vs
``model=baseline_logreg``) is one column named by the group; the keys below it are listed only
where they also differ between runs of the same option or were set on a run's command line (an
Optuna sweep's searched ``optimizer.lr`` beside its searched ``optimizer``), so the dozen keys a
different model brings do not each get a column. Lists stay whole values.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from mnistfw.compare.runs import RunRecord

#: Top-level config sections (and config groups) that change neither the model nor its metrics.
IGNORED_SECTIONS = ("hydra", "paths", "logger", "visualization")
#: Single keys of that kind.
IGNORED_KEYS = frozenset({"task_name", "save_model", "trainer.enable_progress_bar"})
#: Keys (their last part) whose values are paths of this one run.
RUN_SPECIFIC_KEYS = frozenset({"output_dir", "save_dir", "log_dir", "run_dir", "model_dir", "ckpt_path",
                               "tracking_uri", "artifact_location"})
#: Interpolations that resolve to something of this one run.
RUN_SPECIFIC_MARKERS = ("${hydra:", "${now:", "${paths.output_dir", "${paths.log_dir")


class _Unset:
    """A key the run's config does not have."""

    def __repr__(self) -> str:
        return "unset"


UNSET: Any = _Unset()


class _NotRead:
    """A key the run's backend does not read (the majority baseline's ``optimizer``)."""

    def __repr__(self) -> str:
        return "not read"


NOT_READ: Any = _NotRead()


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists and empty mappings are leaves."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def training_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The flattened config without Hydra's own, path and run-specific keys."""
    kept: dict[str, Any] = {}
    for key, value in flatten(config).items():
        if (key in IGNORED_KEYS or key.split(".", 1)[0] in IGNORED_SECTIONS
                or key.rsplit(".", 1)[-1] in RUN_SPECIFIC_KEYS):
            continue
        if isinstance(value, str) and any(marker in value for marker in RUN_SPECIFIC_MARKERS):
            continue
        kept[key] = value
    return kept


def group_choices(choices: Mapping[str, Any]) -> dict[str, str]:
    """Config-group options without Hydra's own groups and the ignored sections; ``None`` reads ``null``."""
    return {str(group): "null" if option is None else str(option) for group, option in choices.items()
            if group not in IGNORED_SECTIONS and not str(group).startswith("hydra/")}


def _same(values: Sequence[Any]) -> bool:
    return len({_canonical(v) for v in values}) <= 1


def _canonical(value: Any) -> str:
    return "<unset>" if value is UNSET else json.dumps(value, sort_keys=True, default=str)


def differing_settings(runs: Sequence[RunRecord]) -> tuple[list[str], list[dict[str, Any]]]:
    """The columns (differing groups and keys, in config order) and each run's value of each.

    Runs without a config get no values (they are not compared); a key one run lacks reads
    :data:`UNSET` for it.
    """
    known = [i for i, run in enumerate(runs) if run.config is not None]
    settings = {i: training_settings(runs[i].config or {}) for i in known}
    order: dict[str, int] = {}
    for i in known:
        for key in settings[i]:
            order.setdefault(key, len(order))
    chosen = [i for i in known if runs[i].choices]
    choices = {i: group_choices(runs[i].choices) for i in chosen}
    groups = sorted({g for i in chosen for g in choices[i]})
    groups = [g for g in groups if not _same([choices[i].get(g, "null") for i in chosen])]
    keys = [k for k in order if not _same([settings[i].get(k, UNSET) for i in known])]
    overridden = frozenset().union(*(run.overridden for run in runs))
    keys = [k for k in keys if k in overridden or not _explained_by_group(k, groups, chosen, choices, settings)]

    def position(column: str) -> tuple[int, int, str]:
        if column in groups:  # just before the group's first key
            prefix = column.replace("/", ".") + "."
            spots = [n for key, n in order.items() if key.startswith(prefix)]
            return (min(spots) if spots else len(order)), 0, column
        return order[column], 1, column

    columns = sorted([*groups, *keys], key=position)
    values: list[dict[str, Any]] = []
    for i in range(len(runs)):
        if i not in settings:
            values.append({})
            continue
        row = {g: choices[i].get(g, "null") if i in choices else UNSET for g in groups}
        row.update({k: settings[i].get(k, UNSET) for k in keys})
        values.append(_mark_unread(row, runs[i].backend))
    return _without_model_column(columns, values, runs), values


def _mark_unread(row: dict[str, Any], backend: str) -> dict[str, Any]:
    """``row`` with :data:`NOT_READ` for the keys ``backend`` does not read (as mnistfw-train judges them)."""
    from mnistfw import registry
    from mnistfw.app.unread_keys import reads_key

    try:
        backend_cls = registry.load("backend", backend)
    except Exception:  # noqa: BLE001 - an unknown or uninstalled backend: show its values as they are
        return row
    return {key: value if reads_key(backend_cls, key.replace("/", ".")) else NOT_READ for key, value in row.items()}


def _without_model_column(columns: list[str], values: list[dict[str, Any]], runs: Sequence[RunRecord]) -> list[str]:
    """Drop the ``model`` group column when it only repeats each run's backend."""
    if "model" in columns and all(row.get("model") in (run.backend, None) for row, run in zip(values, runs)):
        return [c for c in columns if c != "model"]
    return columns


def _explained_by_group(key: str, groups: Sequence[str], chosen: Sequence[int],
                        choices: Mapping[int, Mapping[str, str]], settings: Mapping[int, Mapping[str, Any]]) -> bool:
    """True when ``key`` lies under a differing group and is the same among runs of each option."""
    for group in groups:
        if not key.startswith(group.replace("/", ".") + "."):
            continue
        by_option: dict[str, list[Any]] = {}
        for i in chosen:
            by_option.setdefault(choices[i].get(group, "null"), []).append(settings[i].get(key, UNSET))
        if all(_same(vals) for vals in by_option.values()):
            return True
    return False


def format_setting(value: Any) -> str:
    """A setting as a short cell: floats with 4 significant digits, lists as ``[512, 256]``."""
    if value is UNSET:
        return "-"
    if value is NOT_READ:
        return "n/a"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=str)
    return str(value)


def raw_setting(value: Any) -> str:
    """A setting as a CSV cell: full precision, lists as JSON, unset or not read as empty."""
    if value is UNSET or value is NOT_READ:
        return ""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=str)
    return str(value)
