"""``mnistfw-plugins`` through the installed console script, with a real broken plugin package."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from conftest import run_cli

BUILTIN = {
    "backend": {"lightning_mlp", "numpy_net", "spark_mlp", "baseline_majority", "baseline_logreg"},
    "evaluator": {"accuracy", "f1", "precision", "recall", "confusion_matrix", "log_loss"},
    "visualizer": {"prediction_grid", "learning_curves", "confusion_matrix"},
}


@pytest.fixture
def broken_package(tmp_path: Path) -> dict[str, str]:
    """A really installed (dist-info on sys.path) package whose plugins cannot load or clash."""
    site = tmp_path / "site"
    dist = site / "broken_plugins-0.3.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugins\nVersion: 0.3\n")
    (dist / "entry_points.txt").write_text(
        "[mnistfw.evaluators]\n"
        "needs_libfoo = broken_plugins_mod:Metric\n"
        "[mnistfw.visualizers]\n"
        "gone = no_such_module_here:Plot\n"
    )
    (site / "broken_plugins_mod.py").write_text('raise ImportError("libfoo is not installed")\n')
    return {"PYTHONPATH": str(site) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def test_lists_every_builtin_with_package_and_version(tmp_path: Path) -> None:
    start = time.perf_counter()
    result = run_cli("mnistfw-plugins", "--json", cwd=tmp_path)
    elapsed = time.perf_counter() - start
    rows = json.loads(result.stdout)
    for kind, names in BUILTIN.items():
        found = {r["name"] for r in rows if r["kind"] == kind}
        assert names <= found, (kind, names - found)
    ours = [r for r in rows if r["distribution"] == "mnistfw"]
    assert ours and all(r["version"] == "0.1.0" and ":" in r["target"] for r in ours)
    assert all(r["status"] in ("ok", "FAILED") for r in rows)
    for r in rows:
        if r["kind"] != "backend":  # the evaluators and visualizers are pure mnistfw code: they must load
            assert r["status"] == "ok", r
    assert elapsed < 15, elapsed  # imports every plugin module, but no torch/lightning/pyspark at import


def test_table_output(tmp_path: Path) -> None:
    result = run_cli("mnistfw-plugins", cwd=tmp_path)
    lines = result.stdout.splitlines()
    assert lines[0].split()[:5] == ["KIND", "NAME", "PACKAGE", "VERSION", "STATUS"]
    assert any(line.split()[:5] == ["evaluator", "f1", "mnistfw", "0.1.0", "ok"] for line in lines)
    assert "evaluators" in lines[-1] and "visualizers" in lines[-1]


def test_a_broken_plugin_is_marked_with_its_reason_and_the_others_still_load(
    tmp_path: Path, broken_package: dict[str, str]
) -> None:
    result = run_cli("mnistfw-plugins", cwd=tmp_path, env=broken_package)
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    row = next(line for line in out.splitlines() if line.split()[:2] == ["evaluator", "needs_libfoo"])
    assert row.split()[2:5] == ["broken-plugins", "0.3", "FAILED"]
    assert "libfoo is not installed" in out and "no_such_module_here" in out
    assert any(line.split()[:2] == ["evaluator", "accuracy"] and "ok" in line.split() for line in out.splitlines())
    assert sum("broken-plugins" in line and "FAILED" in line for line in out.splitlines()) == 2
    assert "failing" in out.splitlines()[-1]

    listed = run_cli("mnistfw-plugins", "--no-load", "--json", cwd=tmp_path, env=broken_package)
    assert listed.returncode == 0
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    assert rows["needs_libfoo"]["status"] == "not loaded" and rows["needs_libfoo"]["distribution"] == "broken-plugins"


def test_a_name_claimed_by_two_packages_is_reported(tmp_path: Path, broken_package: dict[str, str]) -> None:
    site = Path(broken_package["PYTHONPATH"].split(os.pathsep)[0])
    entry_points = site / "broken_plugins-0.3.dist-info" / "entry_points.txt"
    entry_points.write_text(entry_points.read_text().replace("needs_libfoo", "accuracy"))
    result = run_cli("mnistfw-plugins", cwd=tmp_path, env=broken_package)
    assert result.returncode == 1
    conflict = [line for line in result.stdout.splitlines() if line.split()[:2] == ["evaluator", "accuracy"]]
    assert len(conflict) == 2 and all("CONFLICT" in line for line in conflict)
    assert "registered by both" in result.stdout
    assert any(line.split()[:2] == ["evaluator", "f1"] and "ok" in line for line in result.stdout.splitlines())
