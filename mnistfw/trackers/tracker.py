"""The tracker protocol, and building the trackers of a run from the ``logger`` config section.

A run calls, in order: :meth:`Tracker.start` (the composed config as parameters), the tracker as
an epoch callback (``tracker(epoch, metrics)``), and :meth:`Tracker.finish` (the final metrics,
``metrics.json`` and the plots, and how the run ended). A tracker's required packages are checked
when the run spec is built, before any work.
"""

from __future__ import annotations

import importlib.util
import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from mnistfw.errors import ConfigError

log = logging.getLogger("mnistfw")


@dataclass(frozen=True)
class TrackedRun:
    """What a tracker knows of the run it records."""

    name: str
    run_dir: Path
    backend: str
    #: The composed config as plain, resolved data.
    config: Mapping[str, Any]


class Tracker(ABC):
    """Records one run somewhere (a file, TensorBoard, an MLflow server, ...)."""

    #: Python packages the tracker needs, with the pip extra that installs them.
    requires: ClassVar[dict[str, str]] = {}

    def __init__(self) -> None:
        self.name = type(self).__name__
        self._broken = False

    @abstractmethod
    def start(self, run: TrackedRun) -> None:
        """Open the run and record its configuration."""

    @abstractmethod
    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Record one epoch's numbers."""

    @abstractmethod
    def finish(self, metrics: Mapping[str, float], files: Sequence[Path], status: str) -> None:
        """Record the final numbers and files; ``status`` is FINISHED, FAILED or KILLED."""

    def __call__(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """The epoch callback: numbers only, and a failing tracker never stops the training."""
        if self._broken:
            return
        numbers = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        try:
            self.log_metrics(numbers, epoch)
        except Exception as exc:  # noqa: BLE001 - the run goes on; the log says what was lost
            self._broken = True
            log.warning("tracker %s stopped recording at epoch %d: %s: %s", self.name, epoch, type(exc).__name__,
                        str(exc).splitlines()[0] if str(exc) else "")


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"hidden": [1]}}`` -> ``{"model.hidden": [1]}`` (what trackers record as parameters)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, name))
        else:
            out[name] = value
    return out


def build_trackers(section: Mapping[str, Any] | None) -> list[Tracker]:
    """One tracker per entry of the ``logger`` section (``null`` entries switch one off).

    A tracker whose packages are missing is one :class:`ConfigError` line saying what to install.
    """
    from hydra.utils import get_class, instantiate

    trackers: list[Tracker] = []
    for name, spec in (section or {}).items():
        if spec is None:
            continue
        if not isinstance(spec, Mapping) or "_target_" not in spec:
            raise ConfigError(f"logger.{name}: needs _target_, the tracker's class (see configs/logger/)")
        try:
            cls = get_class(str(spec["_target_"]))
        except Exception as exc:  # noqa: BLE001 - an unimportable target is a config mistake
            raise ConfigError(f"logger.{name}._target_: cannot import {spec['_target_']} ({exc})") from None
        needed = {**getattr(cls, "requires", {}), **dict(spec.get("requires") or {})}
        for package, extra in needed.items():
            if importlib.util.find_spec(package) is None:
                raise ConfigError(f"logger={name} needs the '{package}' package; pip install '{extra}'")
        try:
            tracker = instantiate(dict(spec), _convert_="all")
        except Exception as exc:  # noqa: BLE001 - bad options
            cause = exc.__cause__ or exc
            raise ConfigError(f"logger.{name}: {str(cause).splitlines()[0]}") from None
        if not isinstance(tracker, Tracker):
            raise ConfigError(f"logger.{name}: {spec['_target_']} is not an mnistfw tracker; wrap a Lightning "
                              "logger with mnistfw.trackers.lightning_logger.LightningLoggerTracker")
        tracker.name = str(name)
        trackers.append(tracker)
    return trackers
