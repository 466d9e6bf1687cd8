"""Data-distribution, misclassified-gallery and first-layer-weight visualizers draw real PNGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import backend_from, png_ok
from PIL import Image

from mnistfw.app.recording import predict_splits
from mnistfw.backends.baselines import LogRegBackend, MajorityBackend
from mnistfw.contract import RunArtifacts, SplitPredictions
from mnistfw.data.data_settings import DataConfig, SplitConfig
from mnistfw.data.dataset import Dataset
from mnistfw.data.loading import load_dataset
from mnistfw.visualizers.distribution import DataDistribution
from mnistfw.visualizers.gallery import MisclassifiedGallery
from mnistfw.visualizers.weights import FirstLayerWeights


@pytest.fixture(scope="module")
def trained() -> tuple[Dataset, LogRegBackend]:
    data = load_dataset(DataConfig(source="sample", split=SplitConfig(val=0.1, test=0.2)), seed=0)
    backend = backend_from(["model=baseline_logreg", "trainer.max_epochs=2", "trainer.enable_progress_bar=false"])
    backend.fit(data, lambda e, m: None)
    return data, backend


def _run(tmp_path: Path, data: Dataset, backend: object) -> RunArtifacts:
    return RunArtifacts(
        run_dir=tmp_path, plots_dir=tmp_path / "plots", data=data,
        predictions=predict_splits(backend, data, ["val", "test"]), model=backend,  # type: ignore[arg-type]
    )


def test_data_distribution(tmp_path: Path, trained: tuple[Dataset, LogRegBackend]) -> None:
    data, backend = trained
    paths = DataDistribution(samples_per_class=8).draw(_run(tmp_path, data, backend))
    assert [p.name for p in paths] == ["class_distribution.png", "class_samples.png"]
    assert all(p.parent == tmp_path / "plots" and png_ok(p) for p in paths)
    with Image.open(paths[1]) as img:
        assert img.size[1] > 300  # ten rows of digits
    assert DataDistribution().draw(RunArtifacts(run_dir=tmp_path, plots_dir=tmp_path / "p2")) == []
    with pytest.raises(ValueError, match="split"):
        DataDistribution(split="holdout")


def test_misclassified_gallery(tmp_path: Path, trained: tuple[Dataset, LogRegBackend]) -> None:
    data, backend = trained
    run = _run(tmp_path, data, backend)
    wrong = int(np.sum(run.predictions["test"].y_pred != run.predictions["test"].y_true))
    assert wrong > 0
    paths = MisclassifiedGallery(split="test", n=16).draw(run)
    assert [p.name for p in paths] == ["misclassified_test.png"] and png_ok(paths[0])
    # A perfect model has nothing to show: no file, no error.
    y = data.test.y
    perfect = RunArtifacts(
        run_dir=tmp_path, plots_dir=tmp_path / "perfect", data=data,
        predictions={"test": SplitPredictions(y, y, np.eye(10)[y])},
    )
    assert MisclassifiedGallery().draw(perfect) == []
    assert not (tmp_path / "perfect").exists()
    with pytest.raises(ValueError, match="order"):
        MisclassifiedGallery(order="worst")


def test_first_layer_weights(tmp_path: Path, trained: tuple[Dataset, LogRegBackend]) -> None:
    data, backend = trained
    paths = FirstLayerWeights().draw(_run(tmp_path, data, backend))
    assert [p.name for p in paths] == ["first_layer_weights.png"] and png_ok(paths[0])
    # The logistic-regression "7" template must look like a 7: weights differ between pixels.
    w = backend.first_layer_weights()
    assert w is not None and w[:, 7].std() > 0


def test_first_layer_weights_skips_backends_without_them(
    tmp_path: Path, trained: tuple[Dataset, LogRegBackend]
) -> None:
    data, _ = trained
    majority = backend_from(["model=baseline_majority"])
    assert isinstance(majority, MajorityBackend)
    majority.fit(data, lambda e, m: None)
    assert FirstLayerWeights().draw(_run(tmp_path, data, majority)) == []
    assert FirstLayerWeights().draw(RunArtifacts(run_dir=tmp_path, plots_dir=tmp_path / "plots")) == []
    assert not (tmp_path / "plots").exists()
