"""``mnistfw-eval`` and ``mnistfw-predict`` through the installed console scripts, good and bad inputs."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import png_ok, run_cli
from PIL import Image

from mnistfw.backends.base import MODEL_META_FILE, load_model
from mnistfw.data import idx
from mnistfw.data.sample import load_sample

N_PICTURES = 100


def _tree_digest(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (and the set of paths): a byte-for-byte snapshot."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _train(workdir: Path, name: str, *overrides: str) -> Path:
    result = run_cli(
        "mnistfw-train", "data=mnist_sample", f"hydra.run.dir=runs/{name}", *overrides, cwd=workdir
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir / "runs" / name


def _cli(workdir: Path, command: str, out: str, *args: str) -> tuple[object, Path]:
    """Run ``command`` with its output folder pinned to ``<workdir>/<out>`` (names are unique per test)."""
    result = run_cli(command, *args, f"hydra.run.dir={out}", cwd=workdir)
    return result, workdir / out


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("evalpredict")


@pytest.fixture(scope="module")
def logreg_run(workdir: Path) -> Path:
    return _train(workdir, "logreg", "model=baseline_logreg", "visualization=none")


@pytest.fixture(scope="module")
def pictures(workdir: Path) -> Path:
    """100 'photos' of sample digits (dark ink on grey paper, larger, off-centre), label in the name."""
    images, labels = load_sample()
    images = images.reshape(-1, 28, 28).astype(np.uint8)
    rng = np.random.default_rng(7)
    folder = workdir / "my_digits"
    (folder / "more").mkdir(parents=True)
    for n, i in enumerate(rng.choice(len(images), N_PICTURES, replace=False)):
        big = np.asarray(Image.fromarray(images[i]).resize((96, 96), Image.Resampling.BILINEAR), dtype=np.float32)
        paper = np.full((160, 130), 215.0, dtype=np.float32)
        y, x = rng.integers(0, 60), rng.integers(0, 30)
        paper[y : y + 96, x : x + 96] -= big * 0.75
        photo = Image.fromarray(np.clip(paper + rng.normal(0, 3, paper.shape), 0, 255).astype(np.uint8))
        sub = folder / "more" if n % 4 == 0 else folder  # folders are searched recursively
        if n % 2:
            photo.convert("RGB").save(sub / f"{n:03d}_label{labels[i]}.jpg", quality=92)
        else:
            photo.save(sub / f"{n:03d}_label{labels[i]}.png")
    return folder


# --------------------------------------------------------------------------- mnistfw-eval


def test_eval_writes_metrics_and_plots_into_a_new_folder_and_leaves_the_run_untouched(
    workdir: Path, logreg_run: Path
) -> None:
    before = _tree_digest(logreg_run)
    result = run_cli(
        "mnistfw-eval", f"run_dir={logreg_run}", "+visualization.visualizers.data_distribution={}", cwd=workdir,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert _tree_digest(logreg_run) == before  # byte-identical, nothing added
    folders = list((workdir / "outputs" / "eval" / "runs").iterdir())  # its own folder, outputs/eval/runs/<time>
    assert len(folders) == 1
    out = folders[0]
    summary = json.loads((out / "metrics.json").read_text())
    run = json.loads((logreg_run / "metrics.json").read_text())
    for key in ("test/accuracy", "test/f1", "test/loss"):
        assert summary["metrics"][key] == pytest.approx(run["metrics"][key], abs=1e-9), key
    assert summary["metrics"]["test/confusion_matrix"] == run["metrics"]["test/confusion_matrix"]
    assert not any(k.startswith("val/") for k in summary["metrics"])  # test split only by default
    assert summary["source"]["backend"] == "baseline_logreg" and summary["source"]["data_from"] == "the run's config"
    expected = {
        "learning_curves.png", "confusion_matrix_test.png", "prediction_grid_test.png", "class_distribution.png",
        "class_samples.png", "misclassified_test.png", "first_layer_weights.png",
    }
    written = {p.name for p in (out / "plots").iterdir()}
    assert expected <= written, expected - written
    assert all(png_ok(out / "plots" / name) for name in expected)
    assert (out / "eval.log").is_file() and (out / ".hydra" / "config.yaml").is_file()


def test_eval_from_a_model_folder_with_the_validation_split(workdir: Path, logreg_run: Path) -> None:
    result, out = _cli(
        workdir, "mnistfw-eval", "evals/model_dir", f"model_dir={logreg_run / 'model'}", "evaluation=minimal",
        "evaluation.splits=[val,test]", "visualization=none",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    run = json.loads((logreg_run / "metrics.json").read_text())["metrics"]
    assert set(metrics) == {"val/accuracy", "val/f1", "test/accuracy", "test/f1"}
    assert metrics["val/accuracy"] == pytest.approx(run["val/accuracy"], abs=1e-9)


def test_eval_with_other_data(workdir: Path, logreg_run: Path) -> None:
    result, out = _cli(
        workdir, "mnistfw-eval", "evals/other_data", f"run_dir={logreg_run}", "data=mnist_sample",
        "data.split.test=0.5", "visualization=none",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["data"]["sizes"]["test"] == 2500
    assert summary["metrics"]["test/accuracy"] > 0.8


def test_eval_errors(workdir: Path, logreg_run: Path, tmp_path: Path) -> None:
    no_model = tmp_path / "no_model"
    shutil.copytree(logreg_run, no_model, ignore=shutil.ignore_patterns("model"))
    newer = tmp_path / "newer"
    shutil.copytree(logreg_run, newer)
    meta = json.loads((newer / "model" / MODEL_META_FILE).read_text())
    meta["format_version"] = 99
    (newer / "model" / MODEL_META_FILE).write_text(json.dumps(meta))
    lone_model = tmp_path / "lone" / "model"
    shutil.copytree(logreg_run / "model", lone_model)
    cases = [
        ([f"run_dir={no_model}"], "holds no saved model"),
        ([f"run_dir={tmp_path / 'missing'}"], "does not exist"),
        ([f"run_dir={newer}"], "newer than this mnistfw"),
        ([f"model_dir={lone_model}"], "pass data=<option>"),
        ([], "run_dir: missing"),
        ([f"run_dir={logreg_run}", "evaluation.splits=[holdout]"], "evaluation.splits"),
        ([f"run_dir={logreg_run}", "+evaluation.evaluators.nope={}"], "unknown evaluator 'nope'"),
    ]
    for n, (args, message) in enumerate(cases):
        result, _ = _cli(workdir, "mnistfw-eval", f"evals/error{n}", *args)
        assert result.returncode == 2, (args, result.stderr[-2000:])
        lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(lines) == 1 and message in lines[0], (args, result.stderr[-2000:])
        assert "Traceback" not in result.stderr


class _Payload:
    """Unpickling this runs ``touch <marker>``: a model file must never be unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        import os

        return (os.system, (f"touch {self.marker}",))


def _plant_payload(weights: Path, marker: Path) -> None:
    """Replace a model's weights file by one that executes code when unpickled."""
    if weights.suffix == ".npz":
        with open(weights, "wb") as fh:
            np.savez(fh, **{k: np.array([_Payload(marker)], dtype=object) for k in ("format", "layers", "W0")})
    else:
        import torch

        torch.save({"state": _Payload(marker)}, weights)


def test_model_files_are_loaded_without_running_pickled_code(workdir: Path, logreg_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "tampered"
    shutil.copytree(logreg_run, run)
    marker = tmp_path / "pwned"
    _plant_payload(run / "model" / "weights.npz", marker)
    for command, extra in (("mnistfw-eval", []), ("mnistfw-predict", [f"inputs={tmp_path}"])):
        result, _ = _cli(workdir, command, f"tampered/{command}", f"run_dir={run}", *extra)
        assert result.returncode == 2 and "weights.npz" in result.stderr, result.stderr[-2000:]
    assert not marker.exists()


# --------------------------------------------------------------------------- mnistfw-predict


def test_predict_a_folder_of_pictures_skipping_unreadable_files(
    workdir: Path, logreg_run: Path, pictures: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "inputs"
    shutil.copytree(pictures, folder)
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(200)))
    (folder / "notes.txt").write_text("shopping list")
    (folder / ".DS_Store").write_bytes(b"\x00\x01")  # hidden files are ignored silently
    result, out = _cli(workdir, "mnistfw-predict", "predicts/pictures", f"run_dir={logreg_run}", f"inputs={folder}")
    assert result.returncode == 0, result.stderr[-3000:]
    warnings = [line for line in result.stdout.splitlines() + result.stderr.splitlines() if "WARNING" in line]
    assert any("corrupt.png" in w for w in warnings) and any("notes.txt" in w for w in warnings)
    report = json.loads((out / "predictions.json").read_text())
    assert sorted(s["input"] for s in report["skipped"]) == ["corrupt.png", "notes.txt"]
    assert report["n_predicted"] == N_PICTURES
    with open(out / "predictions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == N_PICTURES and {"input", "label", "confidence", "p_0", "p_9"} <= set(rows[0])
    assert any(r["input"].startswith("more/") for r in rows)
    for row in rows[:10]:
        probs = [float(row[f"p_{k}"]) for k in range(10)]
        assert abs(sum(probs) - 1) < 1e-4 and int(row["label"]) == int(np.argmax(probs))
    right = sum(int(re.search(r"label(\d)", r["input"]).group(1)) == int(r["label"]) for r in rows)
    assert right >= 0.75 * N_PICTURES, right  # the photos are converted MNIST-style, so the model reads them
    assert png_ok(out / "predictions.png")
    # Target: 100 pictures in under 5 s once the model is loaded (read, convert, predict, write, draw).
    assert report["timings"]["after_load_s"] < 5.0, report["timings"]


def test_predict_arrays_and_idx_match_the_model(workdir: Path, logreg_run: Path, tmp_path: Path) -> None:
    images, _ = load_sample()
    images = images.reshape(-1, 28, 28).astype(np.uint8)[:30]
    np.save(tmp_path / "rows.npy", images[:10].reshape(10, 784))
    np.save(tmp_path / "one.npy", images[10])
    idx.write_images(tmp_path / "digits-idx3-ubyte.gz", images[11:30])
    inputs = f"inputs=[{tmp_path / 'rows.npy'},{tmp_path / 'one.npy'},{tmp_path / 'digits-idx3-ubyte.gz'}]"
    result, out = _cli(
        workdir, "mnistfw-predict", "predicts/arrays", f"model_dir={logreg_run / 'model'}", inputs, "sheet_max=0"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((out / "predictions.json").read_text())
    names = [p["input"] for p in report["predictions"]]
    assert names[:2] == ["rows.npy[0]", "rows.npy[1]"] and names[10] == "one.npy[0]"
    assert names[-1] == "digits-idx3-ubyte.gz[18]" and len(names) == 30
    loaded = load_model(logreg_run / "model")
    expected = loaded.backend.predict_proba(loaded.model_inputs(images))
    got = np.array([p["probabilities"] for p in report["predictions"]])
    assert np.allclose(got, expected, atol=1e-5)
    assert not (out / "predictions.png").exists()


def test_predict_bad_inputs(workdir: Path, logreg_run: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "only_bad").mkdir()
    (tmp_path / "only_bad" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnope")
    np.save(tmp_path / "wrong.npy", np.zeros((4, 27, 27)))
    no_model = tmp_path / "run_without_model"
    shutil.copytree(logreg_run, no_model, ignore=shutil.ignore_patterns("model"))
    run = f"run_dir={logreg_run}"
    cases = [
        ([run, f"inputs={tmp_path / 'empty'}"], "nothing to predict (no input files found"),
        ([run, f"inputs={tmp_path / 'only_bad'}"], "1 file(s) could not be read"),
        ([run, f"inputs={tmp_path / 'wrong.npy'}"], "1 file(s) could not be read"),  # named in a WARNING, skipped
        ([run, f"inputs={tmp_path / 'nowhere.png'}"], "1 file(s) could not be read"),
        ([run], "inputs: missing"),
        ([f"run_dir={no_model}", f"inputs={tmp_path / 'wrong.npy'}"], "holds no saved model"),
    ]
    for n, (args, message) in enumerate(cases):
        result, out = _cli(workdir, "mnistfw-predict", f"predicts/error{n}", *args)
        assert result.returncode == 2, (args, result.stderr[-2000:])
        lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(lines) == 1 and message in lines[0], (args, result.stderr[-2000:])
        assert not out.exists(), f"{args}: a failed run left {sorted(p.name for p in out.iterdir())}"


# --------------------------------------------------------------------------- every backend

TINY = {
    "numpy_net": ["model=numpy_net", "trainer.max_epochs=2", "model.hidden=[64]"],
    "lightning_mlp": ["model=lightning_mlp", "trainer.max_epochs=1", "model.hidden=[64]"],
    "spark_mlp": ["model=spark_mlp", "model.hidden=[32]", "trainer.max_epochs=10", "trainer.check_val_every_n_epoch=5"],
}


@pytest.mark.parametrize(
    "backend",
    [
        "numpy_net",
        pytest.param("lightning_mlp", marks=pytest.mark.slow),
        pytest.param("spark_mlp", marks=pytest.mark.slow),
    ],
)
def test_eval_and_predict_work_for_every_backend(backend: str, workdir: Path, pictures: Path) -> None:
    run = _train(workdir, backend, *TINY[backend], "visualization=none")
    before = _tree_digest(run)
    result, out = _cli(
        workdir, "mnistfw-eval", f"evals/{backend}", f"run_dir={run}", "visualization.visualizers.prediction_grid=null"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    recorded = json.loads((run / "metrics.json").read_text())["metrics"]
    assert metrics["test/accuracy"] == pytest.approx(recorded["test/accuracy"], abs=1e-6)
    assert png_ok(out / "plots" / "confusion_matrix_test.png") and png_ok(out / "plots" / "misclassified_test.png")
    if backend != "spark_mlp":  # Spark ML does not have to expose its weights
        assert png_ok(out / "plots" / "first_layer_weights.png")
    result, out = _cli(workdir, "mnistfw-predict", f"predicts/{backend}", f"run_dir={run}", f"inputs={pictures}")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((out / "predictions.json").read_text())
    assert report["n_predicted"] == N_PICTURES and report["backend"] == backend
    if backend != "spark_mlp":  # the 5 s target is for the in-process backends; Spark goes through a DataFrame
        assert report["timings"]["after_load_s"] < 5.0, report["timings"]
    assert _tree_digest(run) == before

    # The backend's own weights file, replaced by one that runs code when unpickled, is refused.
    tampered = workdir / "runs" / f"{backend}_tampered"
    shutil.copytree(run, tampered)
    weights = [p for p in (tampered / "model").iterdir() if p.suffix in (".npz", ".pt", ".ckpt")]
    marker = workdir / f"pwned_{backend}"
    if weights:
        _plant_payload(weights[0], marker)
        result, _ = _cli(workdir, "mnistfw-eval", f"evals/{backend}_tampered", f"run_dir={tampered}")
        assert result.returncode == 2 and weights[0].name in result.stderr, result.stderr[-2000:]
        assert not marker.exists()


def test_failed_run_keeps_the_working_folder(tmp_path: Path) -> None:
    # A failed run removes a run folder holding only Hydra's bookkeeping, but never the folder
    # the command runs in (hydra.run.dir=.).
    here = tmp_path / "here"
    here.mkdir()
    result = run_cli("mnistfw-predict", f"run_dir={tmp_path / 'missing'}", "inputs=x.png", "hydra.run.dir=.", cwd=here)
    assert result.returncode == 2 and "error: run_dir:" in result.stderr
    assert here.is_dir() and (here / ".hydra").is_dir()


def test_eval_takes_config_dir_anywhere_on_its_command_line(workdir: Path, logreg_run: Path, tmp_path: Path) -> None:
    """--config-dir (the user's own config options) before or after the overrides, as mnistfw-train takes it."""
    mine = tmp_path / "my_configs" / "evaluation"
    mine.mkdir(parents=True)
    (mine / "accuracy_only.yaml").write_text("splits: [test]\nevaluators:\n  accuracy: {}\n")
    for n, args in enumerate((["--config-dir", str(mine.parent), f"run_dir={logreg_run}", "evaluation=accuracy_only"],
                              [f"run_dir={logreg_run}", "evaluation=accuracy_only", "--config-dir", str(mine.parent)])):
        result, out = _cli(workdir, "mnistfw-eval", f"evals/config_dir{n}", *args, "visualization=none")
        assert result.returncode == 0, result.stderr[-2000:]
        metrics = json.loads((out / "metrics.json").read_text())["metrics"]
        assert set(metrics) == {"test/accuracy"}
    result, _ = _cli(workdir, "mnistfw-eval", "evals/config_dir_missing", f"run_dir={logreg_run}",
                     "evaluation=accuracy_only")
    assert result.returncode == 2 and "evaluation=accuracy_only: no such option" in result.stderr
