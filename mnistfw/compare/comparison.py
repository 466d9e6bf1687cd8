"""``compare(folders, out_dir)``: the one implementation behind ``mnistfw-compare`` and the multirun callback.

Writes into ``out_dir``: ``comparison.csv`` (one row per run, full precision),
``comparison.md`` (the same table rounded, with the notes under it: sorting, data groups,
folders skipped, figures) and the ``compare_*.png`` figures (:mod:`mnistfw.compare.figures`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mnistfw.compare.runs import CompareError, RunRecord, Skipped, find_runs
from mnistfw.compare.table import Table, build_table, table_notes, to_csv, to_markdown

log = logging.getLogger("mnistfw.compare")

CSV_NAME = "comparison.csv"
MARKDOWN_NAME = "comparison.md"


@dataclass
class Comparison:
    """What :func:`compare` found and wrote."""

    table: Table
    skipped: list[Skipped]
    out_dir: Path
    figures: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  #: runs left out of figures, figures not drawn
    markdown: str = ""  #: the table and the notes under it, as written to comparison.md

    @property
    def runs(self) -> list[RunRecord]:
        """The runs in table order."""
        return self.table.runs

    @property
    def csv_path(self) -> Path:
        return self.out_dir / CSV_NAME

    @property
    def markdown_path(self) -> Path:
        return self.out_dir / MARKDOWN_NAME

    @property
    def files(self) -> list[Path]:
        return [self.csv_path, self.markdown_path, *self.figures]


def compare(folders: Sequence[Path | str], out_dir: Path | str) -> Comparison:
    """Compare the runs in ``folders`` (run, multirun or sweep folders); write the table and figures into ``out_dir``.

    Folders that hold no finished training run are logged as warnings and skipped; raises
    :class:`CompareError` when no run is left.
    """
    from mnistfw.compare.figures import draw_figures
    from mnistfw.io import write_text

    runs, skipped = find_runs(folders)
    for item in skipped:
        log.warning("skipped %s", item.line())
    if not runs:
        shown = ", ".join(str(f) for f in folders) or "(no folder given)"
        raise CompareError(f"nothing to compare: no finished training run (a folder with metrics.json) in {shown}")
    out_dir = Path(out_dir)
    table = build_table(runs)
    comparison = Comparison(table=table, skipped=skipped, out_dir=out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text(comparison.csv_path, to_csv(table))
    comparison.figures, comparison.notes = draw_figures(table, out_dir)
    comparison.markdown = render_markdown(comparison)
    write_text(comparison.markdown_path, f"# Comparison of {len(runs)} run(s)\n\n{comparison.markdown}\n")
    return comparison


def render_markdown(comparison: Comparison) -> str:
    """The Markdown table followed by its notes, the folders skipped and the figures."""
    lines = table_notes(comparison.table)
    if comparison.skipped:
        lines += ["Skipped:"] + [f"- {item.line()}" for item in comparison.skipped]
    lines += comparison.notes
    if comparison.figures:
        lines.append("Figures: " + ", ".join(p.name for p in comparison.figures))
    return to_markdown(comparison.table) + "".join(_joined(lines))


def _joined(lines: list[str]) -> list[str]:
    """Each note its own paragraph; a list item stays under the line before it."""
    out = []
    for line in lines:
        out.append(("\n" if line.startswith("- ") else "\n\n") + line)
    return out
