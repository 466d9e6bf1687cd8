"""The example plugin package ``plugins/mnistfw-extras``: installed for real, selected by name in a run.

It is installed with pip into a private target folder put on PYTHONPATH for the commands
(the shared virtual environment is left untouched, so concurrent test runs are not affected):
entry points are discovered from its installed ``.dist-info`` exactly as after ``pip install``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, png_ok, run_cli

PACKAGE = REPO / "plugins" / "mnistfw-extras"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    target = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(target), str(PACKAGE)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (target / "mnistfw_extras-0.1.0.dist-info" / "entry_points.txt").is_file()
    sys.path.insert(0, str(target))
    yield target
    sys.path.remove(str(target))
    for name in [m for m in sys.modules if m.startswith("mnistfw_extras")]:
        del sys.modules[name]


def test_training_selects_the_plugins_by_name(installed: Path, tmp_path: Path) -> None:
    env = {"PYTHONPATH": str(installed)}
    result = run_cli(
        "mnistfw-train", "data=mnist_sample", "model=baseline_logreg", "trainer.max_epochs=2", "hydra.run.dir=run",
        "+evaluation.evaluators.top_k_accuracy.k=3", "+evaluation.evaluators.balanced_accuracy={}",
        "visualization=none", "visualization.enabled=true", "+visualization.visualizers.reliability_diagram={}",
        cwd=tmp_path, env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())["metrics"]
    for split in ("val", "test"):
        assert metrics[f"{split}/accuracy"] <= metrics[f"{split}/top_3_accuracy"] <= 1.0
        assert 0.5 < metrics[f"{split}/balanced_accuracy"] <= 1.0
    assert metrics["test/top_3_accuracy"] > metrics["test/accuracy"]  # some second/third guesses are right
    assert png_ok(tmp_path / "run" / "plots" / "reliability_test.png")

    listed = run_cli("mnistfw-plugins", "--json", cwd=tmp_path, env=env)
    rows = {(r["kind"], r["name"]): r for r in json.loads(listed.stdout)}
    for key in (("evaluator", "top_k_accuracy"), ("evaluator", "balanced_accuracy"),
                ("visualizer", "reliability_diagram")):
        assert rows[key]["distribution"] == "mnistfw-extras" and rows[key]["version"] == "0.1.0"
        assert rows[key]["status"] == "ok"


def test_without_the_package_the_name_is_unknown(tmp_path: Path) -> None:
    result = run_cli(
        "mnistfw-train", "data=mnist_sample", "model=baseline_majority", "+evaluation.evaluators.top_k_accuracy.k=3",
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "top_k_accuracy" in result.stderr and "available:" in result.stderr and "accuracy" in result.stderr


def test_evaluators_against_reference_implementations(installed: Path) -> None:
    from mnistfw_extras.evaluators import BalancedAccuracy, TopKAccuracy
    from sklearn.metrics import balanced_accuracy_score, top_k_accuracy_score

    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.ones(10), size=500)
    y_true = rng.integers(0, 10, size=500)
    y_true[:40] = 3  # unbalanced classes, so balanced accuracy differs from accuracy
    y_pred = proba.argmax(axis=1)
    y_pred[:30] = 3
    for k in (1, 3, 5):
        got = TopKAccuracy(k=k).evaluate(y_true, y_pred, proba)[f"top_{k}_accuracy"]
        assert got == pytest.approx(top_k_accuracy_score(y_true, proba, k=k, labels=range(10)))
    got = BalancedAccuracy().evaluate(y_true, y_pred, proba)["balanced_accuracy"]
    assert got == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    with pytest.raises(ValueError, match="k must be"):
        TopKAccuracy(k=0)


def test_reliability_bins(installed: Path) -> None:
    from mnistfw_extras.visualizers import calibration_bins

    rng = np.random.default_rng(1)
    n = 20000
    conf = rng.uniform(0.5, 1.0, size=n)
    proba = np.stack([conf, 1 - conf], axis=1)  # class 0 is always the most likely
    # A calibrated model: right with probability equal to its confidence.
    y_true = np.where(rng.uniform(size=n) < conf, 0, 1)
    *_, ece = calibration_bins(y_true, proba, 10)
    assert ece < 0.02
    overconfident = np.stack([np.full(n, 0.99), np.full(n, 0.01)], axis=1)
    *_, ece_bad = calibration_bins(rng.integers(0, 2, size=n), overconfident, 10)
    assert ece_bad > 0.4
