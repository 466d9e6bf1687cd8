"""The founding Keras / Keras-Tuner / TensorFlow-lifecycle setups as ``experiment=`` configs.

Each composes to the founding setup and runs for one tiny epoch on the bundled sample; the
full-MNIST figures are measured by the benchmark runs recorded in the README.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import png_ok, run_cli

from mnistfw.app.run_spec import build_run_spec


def validate_config(cfg):  # noqa: ANN001, ANN201 - the run spec of a composed config
    return build_run_spec(cfg, None)

KERAS = ("keras_selu", "keras_tuner_ann", "keras_tuner_dnn")
# One tiny epoch on the bundled sample (its 5,000 images cannot hold the 5,000/10,000-image val splits).
TINY = [
    "data=mnist_sample", "data.split.val=0.1", "trainer.max_epochs=1", "trainer.limit_train_batches=3",
    "trainer.limit_val_batches=2", "trainer.enable_progress_bar=false",
    "visualization.visualizers.prediction_grid=null", "visualization.visualizers.confusion_matrix=null",
]
# The same for a multirun that includes baseline_majority, which does not train in epochs.
TINY_DATA = ["data=mnist_sample", "data.split.val=0.1", "data.limit_train=500",
             "visualization.visualizers.prediction_grid=null", "visualization.visualizers.confusion_matrix=null"]


def test_keras_selu_is_the_founding_setup(compose) -> None:  # noqa: ANN001 - fixture
    cfg = compose(["experiment=keras_selu"])
    m, o = cfg.model, cfg.optimizer
    assert cfg.task_name == "keras_selu" and m.backend == "lightning_mlp"
    assert list(m.hidden) == [300, 100] and m.activation == "selu" and not m.batch_norm and m.dropout == 0
    assert (o.name, o.lr, o.momentum, cfg.trainer.batch_size) == ("sgd", 0.01, 0.0, 32)
    assert cfg.scheduler.name == "none" and cfg.trainer.max_epochs == 30
    assert (cfg.data.split.train, cfg.data.split.val, cfg.data.split.test) == (None, 5000, None)  # 55k/5k/10k
    assert "first_layer_weights" in cfg.visualization.visualizers and "learning_curves" in cfg.visualization.visualizers
    validate_config(cfg)


def test_keras_tuner_networks(compose) -> None:  # noqa: ANN001 - fixture
    ann = compose(["experiment=keras_tuner_ann"])
    assert list(ann.model.hidden) == [128] and ann.model.activation == "relu" and not ann.model.batch_norm
    assert ann.model.augment.shift == 2 and ann.trainer.max_epochs == 40
    dnn = compose(["experiment=keras_tuner_dnn"])
    assert list(dnn.model.hidden) == [128, 128, 64, 64] and dnn.model.batch_norm
    for cfg in (ann, dnn):
        assert cfg.optimizer.name == "adam" and cfg.optimizer.lr == 1e-3 and cfg.trainer.batch_size == 64
        validate_config(cfg)


def test_tf_lifecycle_runs_baselines_then_the_network(compose) -> None:  # noqa: ANN001 - fixture
    cfg = compose(["experiment=tf_lifecycle"], hydra_config=True)
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    assert cfg.hydra.sweeper.params.model == "baseline_majority,baseline_logreg,lightning_mlp"
    assert {"data_distribution", "confusion_matrix", "learning_curves"} <= set(cfg.visualization.visualizers)
    tune = compose(["experiment=tf_lifecycle_tune"], hydra_config=True)
    assert "mnistfw_optuna" in tune.hydra.sweeper._target_.lower() or "Optuna" in tune.hydra.sweeper._target_
    assert "model.activation" in tune.hydra.sweeper.params and "model" not in tune.hydra.sweeper.params
    assert "optimizer" in tune.hydra.sweeper.params and "trainer.batch_size" in tune.hydra.sweeper.params
    assert tune.task_name == "tf_lifecycle_tune" and tune.data.split.val == 10000
    validate_config(compose(["experiment=tf_lifecycle"]))
    validate_config(compose(["experiment=tf_lifecycle_tune"]))


def test_keras_experiments_run_one_tiny_epoch(tmp_path: Path) -> None:
    result = run_cli(
        "mnistfw-train", "-m", f"experiment={','.join(KERAS)}", *TINY, "hydra.sweep.dir=sweep", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for job, name in enumerate(KERAS):
        run = tmp_path / "sweep" / str(job)
        summary = json.loads((run / "metrics.json").read_text())
        assert summary["model"]["backend"] == "lightning_mlp", name
        assert len(summary["history"]) == 1 and 0 < summary["metrics"]["test/accuracy"] <= 1
        assert (run / "model").is_dir()
    selu = tmp_path / "sweep" / "0"
    assert png_ok(selu / "plots" / "first_layer_weights.png") and png_ok(selu / "plots" / "learning_curves.png")


def test_tf_lifecycle_is_a_multirun_of_the_baselines(tmp_path: Path) -> None:
    # The network job is the Lightning MLP exercised above; here the sweep runs the two baselines.
    result = run_cli(
        "mnistfw-train", "experiment=tf_lifecycle", *TINY_DATA,
        "hydra.sweeper.params.model='baseline_majority,baseline_logreg'",
        "hydra.sweep.dir=lifecycle", cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summaries = [json.loads((tmp_path / "lifecycle" / str(job) / "metrics.json").read_text()) for job in range(2)]
    assert [s["model"]["backend"] for s in summaries] == ["baseline_majority", "baseline_logreg"]
    assert summaries[0]["metrics"]["test/accuracy"] < 0.2 < summaries[1]["metrics"]["test/accuracy"]
    for job, summary in enumerate(summaries):
        assert {"test/f1", "test/confusion_matrix", "val/accuracy"} <= set(summary["metrics"])
        assert (tmp_path / "lifecycle" / str(job) / "model" / "mnistfw_model.json").is_file()
        assert png_ok(tmp_path / "lifecycle" / str(job) / "plots" / "class_distribution.png")
        assert png_ok(tmp_path / "lifecycle" / str(job) / "plots" / "misclassified_test.png")


@pytest.mark.slow
def test_tf_lifecycle_tune_runs_a_small_search(tmp_path: Path) -> None:
    result = run_cli(
        "mnistfw-train", "experiment=tf_lifecycle_tune", *TINY, "hydra.sweeper.n_trials=2",
        "hydra.sweep.dir=tune", cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    finished = [p for p in (tmp_path / "tune").iterdir() if (p / "metrics.json").is_file()]
    assert len(finished) == 2


def test_numpy_founding_runs_a_few_full_batch_iterations(tmp_path: Path) -> None:
    result = run_cli("mnistfw-train", "experiment=numpy_founding", "data=mnist_sample", "trainer.max_epochs=3",
                     "visualization=none", "hydra.run.dir=founding", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "founding" / "metrics.json").read_text())
    assert summary["model"]["backend"] == "numpy_net" and len(summary["history"]) == 3
    assert summary["data"]["sizes"] == {"train": 3000, "val": 1000, "test": 1000}  # 80/20, the sample's own test
