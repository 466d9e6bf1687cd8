"""Finding and reading run folders.

A *run folder* holds ``metrics.json`` (and ``.hydra/config.yaml``, ``hydra.yaml``,
``overrides.yaml``) as ``mnistfw-train`` writes it. Any other folder is searched for run
folders a few levels down: a multirun or Optuna sweep folder (``0/``, ``1/`` ...), or a folder
of such folders. What cannot be compared is returned as :class:`Skipped` with the reason: a
given folder holding no run, a job folder without ``metrics.json`` (a failed or pruned trial),
an evaluation folder written by ``mnistfw-eval`` (it has no training history or settings of
its own: compare the training run it evaluated), an unreadable ``metrics.json``.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mnistfw.errors import MnistfwError

#: How many folder levels below a given folder are searched for run folders
#: (``outputs/`` -> ``train/multiruns/<date>_<time>/<job>``).
MAX_DEPTH = 4


class CompareError(MnistfwError):
    """Nothing to compare, or the comparison cannot be written."""


@dataclass
class Skipped:
    """A folder left out of the comparison, and why."""

    path: Path
    reason: str

    def line(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class RunRecord:
    """One finished training run: its ``metrics.json`` summary and its Hydra config."""

    name: str  #: the folder relative to what was given (``0``, ``sweep/3``, ``2026-01-01_10-00-00``)
    path: Path
    summary: dict[str, Any]
    config: dict[str, Any] | None = None  #: ``.hydra/config.yaml`` as plain data, None when absent
    choices: dict[str, Any] = field(default_factory=dict)  #: config group -> option (``model: numpy_net``)
    overridden: frozenset[str] = frozenset()  #: keys set on the command line (``.hydra/overrides.yaml``)

    @property
    def metrics(self) -> dict[str, Any]:
        metrics = self.summary.get("metrics")
        return metrics if isinstance(metrics, dict) else {}

    def metric(self, key: str) -> float | None:
        """A numeric metric, or None when the run has none (or it is not a finite number)."""
        value = self.metrics.get(key)
        return _number(value)

    @property
    def backend(self) -> str:
        model = self.summary.get("model")
        return str(model.get("backend", "?")) if isinstance(model, dict) else "?"

    @property
    def n_parameters(self) -> int | None:
        model = self.summary.get("model")
        value = model.get("n_parameters") if isinstance(model, dict) else None
        return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    @property
    def fit_s(self) -> float | None:
        timings = self.summary.get("timings")
        return _number(timings.get("fit_s")) if isinstance(timings, dict) else None

    @property
    def data(self) -> dict[str, Any]:
        data = self.summary.get("data")
        return data if isinstance(data, dict) else {}

    @property
    def history(self) -> list[dict[str, Any]]:
        history = self.summary.get("history")
        return [h for h in history if isinstance(h, dict)] if isinstance(history, list) else []

    @property
    def objective_name(self) -> str | None:
        """The run's objective when it is one metric (a multi-objective run has none here)."""
        objective = self.summary.get("objective")
        name = objective.get("name") if isinstance(objective, dict) else None
        return name if isinstance(name, str) else None

    def objective_value(self) -> float | None:
        name = self.objective_name
        if name is None:
            return None
        value = self.metric(name)
        if value is None:
            objective = self.summary.get("objective")
            value = _number(objective.get("value")) if isinstance(objective, dict) else None
        return value

    def data_key(self) -> tuple[str, str, str]:
        """What makes two runs' metrics comparable: data name, source and split sizes."""
        data = self.data
        sizes = data.get("sizes")
        return (str(data.get("name", "?")), str(data.get("source", "?")),
                json.dumps(sizes if isinstance(sizes, dict) else {}, sort_keys=True))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def find_runs(folders: Sequence[Path | str]) -> tuple[list[RunRecord], list[Skipped]]:
    """Every run folder in or among ``folders`` (each once, in the order given) and what was skipped."""
    runs: list[RunRecord] = []
    skipped: list[Skipped] = []
    seen: set[Path] = set()
    prefix = len(folders) > 1
    for given in map(Path, folders):
        if not given.is_dir():
            skipped.append(Skipped(given, "does not exist" if not given.exists() else "not a folder"))
            continue
        found, lost = _search(given, 0)
        if not found and not lost:
            skipped.append(Skipped(given, "neither a run folder (no metrics.json) nor a folder holding runs"))
        skipped.extend(lost)
        for path, summary in found:
            if path.resolve() in seen:
                continue
            seen.add(path.resolve())
            config, choices, overridden = read_settings(path)
            runs.append(RunRecord(_run_name(given, path, prefix), path, summary, config, choices, overridden))
    _make_names_unique(runs)
    return runs, skipped


def _search(folder: Path, depth: int) -> tuple[list[tuple[Path, dict[str, Any]]], list[Skipped]]:
    """Run folders at or below ``folder`` (with their summaries) and the job folders left out."""
    if (folder / "metrics.json").is_file():
        summary, problem = read_summary(folder / "metrics.json")
        return ([(folder, summary)], []) if summary is not None else ([], [Skipped(folder, str(problem))])
    if (folder / ".hydra").is_dir():
        return [], [Skipped(folder, missing_metrics_reason(folder))]
    found: list[tuple[Path, dict[str, Any]]] = []
    lost: list[Skipped] = []
    if depth < MAX_DEPTH:
        for child in _subfolders(folder):
            more, less = _search(child, depth + 1)
            found += more
            lost += less
    return found, lost


def _subfolders(folder: Path) -> Iterator[Path]:
    """Visible sub-folders, numbered job folders in numeric order (``2`` before ``10``)."""
    try:
        children = [c for c in folder.iterdir() if c.is_dir() and not c.name.startswith(".")]
    except OSError:
        return iter(())
    return iter(sorted(children, key=lambda c: (0, int(c.name), "") if c.name.isdigit() else (1, 0, c.name)))


def read_summary(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """``metrics.json`` of a training run, or None and why it cannot be compared."""
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"metrics.json cannot be read ({type(exc).__name__}: {exc})"
    if not isinstance(summary, dict) or not isinstance(summary.get("metrics"), dict):
        return None, "metrics.json holds no metrics"
    if "source" in summary and not summary.get("history"):
        source = summary.get("source")
        trained = source.get("run_dir") if isinstance(source, dict) else None
        where = f" ({trained})" if trained else ""
        return None, f"an evaluation folder (mnistfw-eval), not a training run; compare the run it evaluated{where}"
    return summary, None


def missing_metrics_reason(folder: Path) -> str:
    """Why a job folder has no ``metrics.json``: its Optuna trial's state and error, or its error.txt."""
    trial = _trial_row(folder)
    error = (trial or {}).get("error") or _last_line(folder / "error.txt")
    if trial is not None:
        state = trial.get("state") or "?"
        return f"no metrics.json: trial {trial.get('number', '?')} ended {state}" + (f" ({error})" if error else "")
    if error:
        return f"no metrics.json: the job failed ({error})"
    return "no metrics.json: the job failed or did not finish (see its log)"


def _trial_row(folder: Path) -> dict[str, str] | None:
    """The row of the sweep's ``trials.csv`` whose run folder is ``folder``."""
    table = folder.parent / "trials.csv"
    if not table.is_file():
        return None
    try:
        with table.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error):
        return None
    here = folder.resolve()
    for row in rows:
        if row.get("run_dir") and Path(row["run_dir"]).resolve() == here:
            return row
    return next((row for row in rows if row.get("number") == folder.name), None)


def _last_line(path: Path) -> str:
    try:
        lines = [ln.strip() for ln in path.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


def read_settings(folder: Path) -> tuple[dict[str, Any] | None, dict[str, Any], frozenset[str]]:
    """The run's composed config (``.hydra/config.yaml``, unresolved), its config-group choices and
    the keys its command line set (``.hydra/overrides.yaml``)."""
    config = _load_yaml(folder / ".hydra" / "config.yaml")
    config = config if isinstance(config, dict) else None
    overrides = _load_yaml(folder / ".hydra" / "overrides.yaml")
    overrides = [str(o) for o in overrides] if isinstance(overrides, list) else []
    hydra_cfg = _load_yaml(folder / ".hydra" / "hydra.yaml")
    choices: Any = None
    if isinstance(hydra_cfg, dict):
        choices = ((hydra_cfg.get("hydra") or {}).get("runtime") or {}).get("choices")
    if not isinstance(choices, dict) and config is not None:
        choices = _choices_from_overrides(overrides, config)
    overridden = frozenset(o.partition("=")[0].lstrip("+~") for o in overrides if "=" in o)
    return config, dict(choices) if isinstance(choices, dict) else {}, overridden


def _load_yaml(path: Path) -> Any:
    """A YAML file's content, or None when it is missing or unreadable."""
    import yaml

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None


def _choices_from_overrides(overrides: list[str], config: Mapping[str, Any]) -> dict[str, str]:
    """``group=option`` overrides (the groups only), used when ``hydra.yaml`` is missing."""
    choices: dict[str, str] = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if sep and key.isidentifier() and isinstance(config.get(key), dict):
            choices[key] = value
    return choices


def _run_name(given: Path, path: Path, prefix: bool) -> str:
    """``path`` relative to the folder given; prefixed with that folder's name when several were given."""
    rel = path.relative_to(given).as_posix() if path != given else ""
    base = given.resolve().name or str(given)
    if not rel:
        return base
    return f"{base}/{rel}" if prefix else rel


def _make_names_unique(runs: list[RunRecord]) -> None:
    """Runs whose names collide are named by their full path instead."""
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.name] = counts.get(run.name, 0) + 1
    for run in runs:
        if counts[run.name] > 1:
            run.name = str(run.path)
