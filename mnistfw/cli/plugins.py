"""``mnistfw-plugins``: every backend, evaluator and visualizer installed, and whether it loads.

::

    mnistfw-plugins              # table: kind, name, package, version, status (imports each one)
    mnistfw-plugins --no-load    # list only, import nothing
    mnistfw-plugins --json       # the same as JSON

The exit status is 1 when a plugin fails to load (its reason is shown), else 0.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from typing import Any

from mnistfw import registry
from mnistfw.errors import PluginError


@dataclass
class Row:
    """One line of the listing."""

    kind: str
    name: str
    target: str
    distribution: str
    version: str
    status: str  #: ok | FAILED | CONFLICT | not loaded
    reason: str = ""
    load_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _entries(kind: str) -> tuple[list[registry.PluginEntry], dict[str, list[registry.PluginEntry]]]:
    """All entries of one kind (doubly registered names listed once per package) and the conflicts."""
    unique, conflicts = registry.discover(kind)
    entries = list(unique.values()) + [e for claims in conflicts.values() for e in claims]
    return sorted(entries, key=lambda e: (e.name, e.distribution)), conflicts


def collect(load: bool = True) -> list[Row]:
    """List every entry point of the three groups; with ``load``, import each and record the outcome."""
    rows: list[Row] = []
    for kind in registry.GROUPS:
        entries, conflicts = _entries(kind)
        for entry in entries:
            row = Row(kind, entry.name, entry.value, entry.distribution, entry.version, "not loaded")
            if entry.name in conflicts:
                packages = " and ".join(f"'{e.distribution}'" for e in conflicts[entry.name])
                row.status = "CONFLICT"
                row.reason = f"'{entry.name}' is registered by both {packages}; runs that select it stop"
            elif load:
                start = time.perf_counter()
                try:
                    entry.load()
                    row.status = "ok"
                except PluginError as exc:
                    row.status, row.reason = "FAILED", str(exc)
                row.load_s = round(time.perf_counter() - start, 3)
            rows.append(row)
    return rows


def format_table(rows: list[Row]) -> str:
    """Rows as an aligned text table, reasons on their own indented line."""
    head = ("KIND", "NAME", "PACKAGE", "VERSION", "STATUS", "TARGET")
    cells = [head] + [(r.kind, r.name, r.distribution, r.version, r.status, r.target) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    lines = []
    for cell, row in zip(cells, [None, *rows]):
        lines.append("  ".join(v.ljust(w) for v, w in zip(cell, widths)).rstrip())
        if row is not None and row.reason:
            lines.append(f"    reason: {row.reason}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mnistfw-plugins`` console script."""
    parser = argparse.ArgumentParser(
        prog="mnistfw-plugins",
        description="List the mnistfw backends, evaluators and visualizers installed (entry points) "
        "with their package and version, and whether each one loads.",
    )
    parser.add_argument("--no-load", action="store_true", help="only list the entry points, import nothing")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    rows = collect(load=not args.no_load)
    if args.json:
        print(json.dumps([r.to_dict() for r in rows], indent=2))
    else:
        print(format_table(rows))
        bad = [r for r in rows if r.status in ("FAILED", "CONFLICT")]
        counts = {k: sum(r.kind == k for r in rows) for k in registry.GROUPS}
        summary = ", ".join(f"{n} {k}s" for k, n in counts.items())
        print(f"\n{summary}; {len(bad)} failing" if bad else f"\n{summary}; all load" if not args.no_load
              else f"\n{summary} (not loaded)")
    return 1 if any(r.status in ("FAILED", "CONFLICT") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
