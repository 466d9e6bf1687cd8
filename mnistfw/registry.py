"""Entry-point discovery for backends, evaluators and visualizers.

Listing never imports a plugin; a plugin is imported only when a config names it. A plugin
that fails to import raises :class:`PluginError` naming the plugin and its package, and the
other plugins keep working.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from mnistfw.errors import PluginError

GROUPS: dict[str, str] = {
    "backend": "mnistfw.backends",
    "evaluator": "mnistfw.evaluators",
    "visualizer": "mnistfw.visualizers",
}


@dataclass(frozen=True)
class PluginEntry:
    """One discovered entry point, not yet imported."""

    kind: str
    name: str
    value: str
    distribution: str
    version: str
    entry_point: EntryPoint

    def load(self) -> Any:
        """Import the plugin object, wrapping any failure in a :class:`PluginError`."""
        try:
            return self.entry_point.load()
        except Exception as exc:  # noqa: BLE001 - any import failure is reported the same way
            raise PluginError(
                f"{self.kind} plugin '{self.name}' ({self.value}) from package "
                f"'{self.distribution} {self.version}' failed to load: {type(exc).__name__}: {exc}; "
                f"reinstall or fix that package, or remove '{self.name}' from the config"
            ) from exc


def available(kind: str) -> dict[str, PluginEntry]:
    """All entry points of one kind (``backend``, ``evaluator``, ``visualizer``), by name.

    Duplicates (the same distribution seen twice on ``sys.path``) are dropped; the result is
    sorted by name so listings are deterministic.
    """
    group = GROUPS[kind]
    found: dict[str, PluginEntry] = {}
    for ep in entry_points(group=group):
        dist = getattr(ep, "dist", None)
        dist_name = dist.metadata["Name"] if dist is not None else "?"
        version = dist.version if dist is not None else "?"
        entry = PluginEntry(kind, ep.name, ep.value, dist_name, version, ep)
        previous = found.get(ep.name)
        if previous is not None and previous.distribution != dist_name:
            raise PluginError(
                f"{kind} plugin name '{ep.name}' is registered by both '{previous.distribution}' and "
                f"'{dist_name}'; uninstall one of them"
            )
        found[ep.name] = entry
    return dict(sorted(found.items()))


def get(kind: str, name: str) -> PluginEntry:
    """The entry point called ``name``; an unknown name lists the available ones."""
    entries = available(kind)
    if name not in entries:
        names = ", ".join(entries) or "(none installed)"
        raise PluginError(
            f"unknown {kind} '{name}'; available: {names} "
            f"(install a package that registers it under the '{GROUPS[kind]}' entry-point group)"
        )
    return entries[name]


def load(kind: str, name: str) -> Any:
    """Import and return the object registered as ``name``."""
    return get(kind, name).load()
