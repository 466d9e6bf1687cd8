"""Entry-point discovery: built-ins, unknown names, and a broken third-party plugin."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mnistfw import registry
from mnistfw.contract import Evaluator, Visualizer
from mnistfw.errors import PluginError


def test_builtins_are_registered_through_entry_points() -> None:
    evaluators = registry.available("evaluator")
    assert {"accuracy", "f1", "precision", "recall", "confusion_matrix"} <= set(evaluators)
    assert all(e.distribution == "mnistfw" for n, e in evaluators.items() if n in {"accuracy", "f1"})
    assert {"prediction_grid", "learning_curves", "confusion_matrix"} <= set(registry.available("visualizer"))
    assert {"lightning_mlp"} <= set(registry.available("backend"))
    assert list(evaluators) == sorted(evaluators)


def test_builtins_load_and_follow_the_contract() -> None:
    for name in ("accuracy", "f1", "precision", "recall", "confusion_matrix"):
        assert issubclass(registry.load("evaluator", name), Evaluator)
    for name in ("prediction_grid", "learning_curves", "confusion_matrix"):
        assert issubclass(registry.load("visualizer", name), Visualizer)


def test_unknown_name_lists_the_available_ones() -> None:
    with pytest.raises(PluginError) as info:
        registry.load("evaluator", "nope")
    assert "unknown evaluator 'nope'" in str(info.value)
    assert "accuracy" in str(info.value) and "f1" in str(info.value)


@pytest.fixture
def broken_distribution(tmp_path: Path):
    """A real installed-distribution layout (dist-info on sys.path) whose plugin cannot import."""
    dist = tmp_path / "broken_metrics-0.3.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-metrics\nVersion: 0.3\n")
    (dist / "entry_points.txt").write_text("[mnistfw.evaluators]\nbroken = broken_metrics_missing.module:Broken\n")
    sys.path.insert(0, str(tmp_path))
    yield
    sys.path.remove(str(tmp_path))


def test_broken_plugin_names_itself_and_its_package(broken_distribution) -> None:
    assert "broken" in registry.available("evaluator")
    with pytest.raises(PluginError) as info:
        registry.load("evaluator", "broken")
    message = str(info.value)
    assert "'broken'" in message and "broken-metrics 0.3" in message and "ModuleNotFoundError" in message
    assert "\n" not in message
    # the others keep working
    assert registry.load("evaluator", "accuracy") is not None
