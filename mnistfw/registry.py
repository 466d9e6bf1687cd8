"""Entry-point discovery for backends, evaluators and visualizers.

Listing never imports a plugin; a plugin is imported only when a config names it. A plugin
that fails to import raises :class:`PluginError` naming the plugin and its package, and the
other plugins keep working. A name that two packages both register stops only the runs that
select that name.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from functools import cached_property
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
    entry_point: EntryPoint

    # Read from the package's metadata only when asked (a listing, an error, two packages
    # claiming one name): parsing every package's METADATA on each lookup cost a run spec 0.08 s.
    @cached_property
    def distribution(self) -> str:
        """The name of the package that registers this entry point."""
        dist = getattr(self.entry_point, "dist", None)
        return dist.metadata["Name"] if dist is not None else "?"

    @cached_property
    def version(self) -> str:
        """That package's version."""
        dist = getattr(self.entry_point, "dist", None)
        return dist.version if dist is not None else "?"

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


def discover(kind: str) -> tuple[dict[str, PluginEntry], dict[str, list[PluginEntry]]]:
    """Entry points of one kind by name, and the names that several packages claim.

    The same distribution seen twice on ``sys.path`` is not a conflict. Sorted by name, so
    listings are deterministic.
    """
    found: dict[str, list[PluginEntry]] = {}
    for ep in entry_points(group=GROUPS[kind]):
        entry = PluginEntry(kind, ep.name, ep.value, ep)
        claims = found.setdefault(ep.name, [])
        if all(e.distribution != entry.distribution for e in claims):
            claims.append(entry)
    unique = {name: claims[0] for name, claims in sorted(found.items()) if len(claims) == 1}
    conflicts = {name: claims for name, claims in sorted(found.items()) if len(claims) > 1}
    return unique, conflicts


def available(kind: str) -> dict[str, PluginEntry]:
    """The usable entry points of one kind (``backend``, ``evaluator``, ``visualizer``), by name."""
    return discover(kind)[0]


def get(kind: str, name: str) -> PluginEntry:
    """The entry point called ``name``; an unknown or doubly registered name is a :class:`PluginError`."""
    entries, conflicts = discover(kind)
    if name in conflicts:
        packages = " and ".join(f"'{e.distribution}'" for e in conflicts[name])
        raise PluginError(
            f"{kind} plugin name '{name}' is registered by both {packages}; uninstall one of them "
            f"(runs that do not use '{name}' are not affected)"
        )
    if name not in entries:
        names = ", ".join(sorted([*entries, *conflicts])) or "(none installed)"
        raise PluginError(
            f"unknown {kind} '{name}'; available: {names} "
            f"(install a package that registers it under the '{GROUPS[kind]}' entry-point group)"
        )
    return entries[name]


def load(kind: str, name: str) -> Any:
    """Import and return the object registered as ``name``."""
    return get(kind, name).load()


def create(kind: str, name: str, options: dict[str, Any], where: str) -> Any:
    """Load plugin ``name`` and construct it with ``options``; a bad option lists the accepted ones.

    ``where`` is the config key the options came from (``evaluation.evaluators.f1``).
    """
    cls = load(kind, name)
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        params = {}
    takes_any = any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params.values())
    accepted = [p for p, spec in params.items() if spec.kind in (spec.POSITIONAL_OR_KEYWORD, spec.KEYWORD_ONLY)]
    if not takes_any:
        for key in options:
            if key not in accepted:
                from mnistfw.errors import ConfigError

                raise ConfigError(
                    f"{where}.{key}: {kind} '{name}' has no option '{key}'; "
                    f"it accepts: {', '.join(accepted) or 'no options'}"
                )
    try:
        return cls(**options)
    except (TypeError, ValueError) as exc:
        from mnistfw.errors import ConfigError

        raise ConfigError(f"{where}: {exc}") from None
