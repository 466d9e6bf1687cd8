"""The comparison table: data groups, ranking, and its CSV and Markdown forms.

Runs are grouped by their data (``data.name``, ``data.source`` and split sizes): metrics of runs
on different data or splits are not comparable, so each group is ranked on its own and the
groups are listed under the table. Within a group runs are sorted by the runs' objective when
they share one (higher is better unless its name says loss or error), else by test accuracy.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mnistfw.compare.differences import differing_settings, format_setting, raw_setting
from mnistfw.compare.runs import RunRecord

#: The metrics every table shows, in this order.
METRIC_COLUMNS = ("val/accuracy", "test/accuracy", "val/f1", "test/f1", "val/loss", "test/loss")
SPLITS = ("train", "val", "test")


@dataclass
class DataGroup:
    """Runs trained and measured on the same data and splits."""

    label: str  #: A, B, ...
    name: str
    source: str
    sizes: dict[str, Any]
    runs: list[str]

    def sizes_text(self) -> str:
        return "/".join(str(self.sizes.get(s, "?")) for s in SPLITS)

    def describe(self) -> str:
        shown = ", ".join(self.runs[:8]) + (f", ... ({len(self.runs)} runs)" if len(self.runs) > 8 else "")
        return f"{self.label}: {self.name} from {self.source}, train/val/test {self.sizes_text()} - {shown}"


@dataclass
class Ranking:
    """The metric runs are sorted by."""

    metric: str
    higher_is_better: bool
    objective: bool  #: True: the runs' shared objective; False: test accuracy (no shared objective)

    def describe(self) -> str:
        why = "the runs' objective" if self.objective else "the runs do not share one objective"
        return f"{self.metric} ({'higher' if self.higher_is_better else 'lower'} is better; {why})"


@dataclass
class Table:
    """The runs in table order with everything a row shows."""

    runs: list[RunRecord]
    ranks: list[int]
    group_labels: list[str]
    groups: list[DataGroup]
    setting_columns: list[str]
    settings: list[dict[str, Any]]
    metric_columns: list[str]
    ranking: Ranking

    @property
    def several_groups(self) -> bool:
        return len(self.groups) > 1

    @property
    def columns(self) -> list[str]:
        head = ["rank", "run", "backend"] + (["data_group"] if self.several_groups else [])
        return [*head, *self.setting_columns, *self.metric_columns, "fit_s", "n_parameters", "data_source",
                *(f"n_{s}" for s in SPLITS)]

    def label(self, i: int) -> str:
        """A run's name for figures, with its backend when the runs' backends differ and its data
        group when there are several."""
        name = self.runs[i].name
        if len({run.backend for run in self.runs}) > 1:
            name = f"{name} {self.runs[i].backend}"
        return f"{name} [{self.group_labels[i]}]" if self.several_groups else name

    def rows(self) -> list[dict[str, Any]]:
        """One dict per run, the raw values under :attr:`columns`."""
        out = []
        for i, run in enumerate(self.runs):
            row: dict[str, Any] = {"rank": self.ranks[i], "run": run.name, "backend": run.backend}
            if self.several_groups:
                row["data_group"] = self.group_labels[i]
            row.update({c: self.settings[i].get(c) for c in self.setting_columns})
            row.update({m: run.metric(m) for m in self.metric_columns})
            sizes = run.data.get("sizes") if isinstance(run.data.get("sizes"), dict) else {}
            row.update({"fit_s": run.fit_s, "n_parameters": run.n_parameters,
                        "data_source": run.data.get("source"), **{f"n_{s}": sizes.get(s) for s in SPLITS}})
            out.append(row)
        return out


def choose_ranking(runs: Sequence[RunRecord]) -> Ranking:
    """The shared objective when every run has the same one, else test accuracy."""
    names = {run.objective_name for run in runs}
    if len(names) == 1 and None not in names:
        name = str(names.pop())
        return Ranking(name, not any(word in name.lower() for word in ("loss", "error")), True)
    return Ranking("test/accuracy", True, False)


def _data_groups(runs: Sequence[RunRecord]) -> tuple[list[DataGroup], list[int]]:
    """The data groups in order of first appearance, and each run's group index."""
    keys: dict[tuple[str, str, str], int] = {}
    groups: list[DataGroup] = []
    index: list[int] = []
    for run in runs:
        key = run.data_key()
        if key not in keys:
            keys[key] = len(groups)
            label = chr(ord("A") + len(groups)) if len(groups) < 26 else f"G{len(groups) + 1}"
            groups.append(DataGroup(label, key[0], key[1], json.loads(key[2]), []))
        index.append(keys[key])
    return groups, index


def build_table(runs: Sequence[RunRecord]) -> Table:
    """Group the runs by data, rank each group, find the differing settings."""
    groups, group_of = _data_groups(runs)
    ranking = choose_ranking(runs)
    columns, settings = differing_settings(runs)

    def score(i: int) -> float:
        value = runs[i].objective_value() if ranking.objective else runs[i].metric(ranking.metric)
        if value is None:
            return float("inf")  # no value: last
        return -value if ranking.higher_is_better else value

    order = sorted(range(len(runs)), key=lambda i: (group_of[i], score(i)))
    ranks, seen = [], [0] * len(groups)
    for i in order:
        seen[group_of[i]] += 1
        ranks.append(seen[group_of[i]])
    for i in order:
        groups[group_of[i]].runs.append(runs[i].name)
    metrics = list(METRIC_COLUMNS) if ranking.metric in METRIC_COLUMNS else [ranking.metric, *METRIC_COLUMNS]
    return Table(runs=[runs[i] for i in order], ranks=ranks, group_labels=[groups[group_of[i]].label for i in order],
                 groups=groups, setting_columns=columns, settings=[settings[i] for i in order],
                 metric_columns=metrics, ranking=ranking)


def to_csv(table: Table) -> str:
    """The table as CSV: full precision, empty cells where a run has no value."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(table.columns)
    for row in table.rows():
        writer.writerow([raw_setting(row[c]) if c in table.setting_columns else _raw(row[c]) for c in table.columns])
    return buffer.getvalue()


def _raw(value: Any) -> str:
    return "" if value is None else str(value)


def to_markdown(table: Table) -> str:
    """The table as a Markdown table (numbers rounded for reading)."""
    align = ["---:" if c in _NUMERIC or c in table.metric_columns else "---" for c in table.columns]
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "|".join(align) + "|"]
    for row in table.rows():
        cells = [_cell(c, row[c], table) for c in table.columns]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines)


_NUMERIC = ("rank", "fit_s", "n_parameters", "n_train", "n_val", "n_test")


def _cell(column: str, value: Any, table: Table) -> str:
    if column in table.setting_columns:
        return format_setting(value)
    if value is None:
        return "-"
    if column in table.metric_columns:
        return f"{value:.4f}"
    if column == "fit_s":
        return f"{value:.3f}" if value < 10 else f"{value:.1f}"
    if column == "n_parameters":
        return f"{value:,}"
    return str(value)


def table_notes(table: Table) -> list[str]:
    """The lines under the table: how it is sorted, the data groups, the settings compared."""
    notes = [f"Sorted by {table.ranking.describe()}"
             + (", ranked within each data group." if table.several_groups else ".")]
    if table.several_groups:
        notes.append("**Runs on different data or splits** (column data_group): their metrics are not comparable, "
                     "so each group is ranked on its own:")
        notes += [f"- {group.describe()}" for group in table.groups]
    else:
        group = table.groups[0]
        notes.append(f"All runs on the same data: {group.name} from {group.source}, "
                     f"train/val/test {group.sizes_text()}.")
    if table.setting_columns:
        notes.append("Settings that differ between the runs: " + ", ".join(table.setting_columns) + ".")
    elif sum(run.config is not None for run in table.runs) > 1:
        notes.append("The runs' settings do not differ.")
    unknown = [run.name for run in table.runs if run.config is None]
    if unknown:
        notes.append("No .hydra/config.yaml (settings not compared): " + ", ".join(unknown) + ".")
    return notes
