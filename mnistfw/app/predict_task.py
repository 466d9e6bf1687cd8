"""``mnistfw-predict``: label real-world digit pictures (or arrays) with a saved model.

::

    mnistfw-predict run_dir=outputs/train/runs/<date>_<time> inputs=my_digits/
    mnistfw-predict model_dir=<run>/model inputs=[a.png,b.jpg,more/,batch.npy,t10k-images-idx3-ubyte.gz]

Inputs: picture files (PNG, JPG, ... anything Pillow reads) or folders of them (searched
recursively, hidden files ignored), IDX image files, ``.npy`` arrays ``(n, 28, 28)``,
``(n, 784)`` or ``(28, 28)``. Pictures are converted MNIST-style (:mod:`mnistfw.imaging`);
IDX and ``.npy`` inputs are taken as MNIST-style already. A file that cannot be read as a
picture is reported by name with a WARNING and skipped. Written into the predict folder
(``outputs/predict/runs/<date>_<time>/``): ``predictions.csv``, ``predictions.json`` and
``predictions.png`` (a sheet of the inputs as the model saw them, with label and confidence).
"""

from __future__ import annotations

import csv
import io
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from mnistfw.errors import ConfigError, DataError, ModelFormatError
from mnistfw.io import write_text

log = logging.getLogger("mnistfw.predict")


@dataclass
class PredictSpec:
    """A composed ``predict.yaml``, validated before the model is loaded."""

    inputs: list[str]
    model_dir: Path
    run_dir: Path | None
    batch_size: int
    sheet_max: int
    sections: dict[str, Any]


def build_predict_spec(cfg: DictConfig) -> PredictSpec:
    """Validate ``predict.yaml``: inputs, model folder, batch size, sheet size."""
    from mnistfw.backends.spark_mlp.spark_settings import SparkConfig
    from mnistfw.config.validation import Interval, require, validate_section

    specs = cfg.inputs
    if specs is None or (isinstance(specs, str) and not specs.strip()):
        raise ConfigError("inputs: missing; pass inputs=<picture, folder, .npy or IDX file> or inputs=[a.png,b/]")
    specs = [str(s) for s in OmegaConf.to_container(specs)] if OmegaConf.is_list(specs) else [str(specs)]
    require(bool(specs), "inputs", "the list is empty; name at least one file or folder")
    for key, rule in (("batch_size", Interval(1, None, integer=True)), ("sheet_max", Interval(0, None, integer=True))):
        problem = rule.check(cfg.get(key))
        require(problem is None, key, problem or "")
    model_dir, run_dir = resolve_model_dir(cfg.get("run_dir"), cfg.get("model_dir"))
    sections = {"spark": validate_section(cfg.spark, SparkConfig, "spark")} if cfg.get("spark") is not None else {}
    return PredictSpec(specs, model_dir, run_dir, int(cfg.batch_size), int(cfg.sheet_max), sections)


def resolve_model_dir(run_dir: str | None, model_dir: str | None) -> tuple[Path, Path | None]:
    """The model folder to load and the run folder it belongs to (None when unknown).

    Accepts a run folder (``run_dir=``) holding ``model/``, or a model folder (``model_dir=``);
    either one pointing at the other kind is understood too.
    """
    from mnistfw.backends.base import MODEL_META_FILE

    if not run_dir and not model_dir:
        raise ConfigError(
            "run_dir: missing; pass run_dir=<run folder> (e.g. outputs/train/runs/<date>_<time>) "
            "or model_dir=<its model folder>"
        )
    if run_dir and model_dir:
        raise ConfigError("run_dir/model_dir: pass only one of them")
    given = Path(str(run_dir or model_dir)).expanduser()
    key = "run_dir" if run_dir else "model_dir"
    if not given.exists():
        raise ModelFormatError(f"{key}: {given} does not exist; pass the folder of a finished mnistfw-train run")
    if not given.is_dir():
        raise ModelFormatError(f"{key}: {given} is a file; pass the run folder (the one holding model/)")
    if (given / MODEL_META_FILE).is_file():
        parent = given.parent
        return given, parent if (parent / ".hydra" / "config.yaml").is_file() else None
    if (given / "model").is_dir():
        return given / "model", given
    jobs = sorted(p.name for p in given.iterdir() if (p / "model" / MODEL_META_FILE).is_file())
    if jobs:
        raise ModelFormatError(
            f"{key}: {given} is a sweep folder; pick one job's run folder, e.g. {given / jobs[0]} "
            f"(jobs with a model: {', '.join(jobs[:10])})"
        )
    raise ModelFormatError(
        f"{key}: {given} holds no saved model (no model/ folder): the run was trained with "
        "save_model=false or did not finish; re-run mnistfw-train and pass its run folder"
    )


def write_csv(path: Path, names: list[str], proba: np.ndarray, class_names: list[str]) -> None:
    """``input,label,class_name,confidence,p_0..p_<k-1>`` per input, written atomically."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["input", "label", "class_name", "confidence", *(f"p_{i}" for i in range(proba.shape[1]))])
    labels = proba.argmax(axis=1)
    for name, label, row in zip(names, labels, proba):
        writer.writerow([name, int(label), class_names[label], f"{row[label]:.6f}", *(f"{p:.6f}" for p in row)])
    write_text(path, buf.getvalue())


def draw_sheet(
    path: Path, names: list[str], images: np.ndarray, proba: np.ndarray, class_names: list[str], columns: int = 10
) -> Path:
    """One PNG: the inputs as the model saw them, each titled with its label and confidence."""
    from mnistfw.contract import save_figure
    from mnistfw.visualizers._style import pyplot

    n = len(images)
    h, w = images.shape[1:3]
    cols = min(columns, n)
    rows = -(-n // cols)
    pad_x, pad_top = 6, 14  # pixels between tiles; room for the label above each tile
    cell_w, cell_h = w + pad_x, h + pad_top
    mosaic = np.full((rows * cell_h, cols * cell_w), 0.0, dtype=np.float32)
    labels = proba.argmax(axis=1)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(cols * 1.1, rows * 1.35 + 0.3))
    for i in range(n):
        r, c = divmod(i, cols)
        y0, x0 = r * cell_h + pad_top, c * cell_w + pad_x // 2
        mosaic[y0 : y0 + h, x0 : x0 + w] = images[i]
    ax.imshow(mosaic, cmap="gray_r", vmin=0, vmax=255, interpolation="nearest")
    for i in range(n):
        r, c = divmod(i, cols)
        conf = proba[i, labels[i]]
        short = names[i] if len(names[i]) <= 14 else "…" + names[i][-13:]
        ax.text(
            c * cell_w + cell_w / 2, r * cell_h + pad_top - 1.5, f"{class_names[labels[i]]} {conf:.0%}\n{short}",
            ha="center", va="bottom", fontsize=6, color="black" if conf >= 0.5 else "tab:red",
        )
    ax.set_axis_off()
    ax.set_title(f"{n} input(s): predicted label and confidence (red: below 50 %)", fontsize=8)
    return save_figure(fig, path, dpi=130)


def predict(spec: PredictSpec, out_dir: Path) -> dict[str, Any]:
    """Load the model, read the inputs, predict, write CSV/JSON/PNG into ``out_dir``."""
    from mnistfw.app import heap
    from mnistfw.app.recording import predict_proba
    from mnistfw.backends.base import load_model
    from mnistfw.io import write_json
    from mnistfw.predict_inputs import gather_inputs

    timings: dict[str, float] = {}
    start = time.perf_counter()
    loaded = load_model(spec.model_dir, **spec.sections)
    timings["load_model_s"] = round(time.perf_counter() - start, 3)
    heap.settle()  # the backend's modules are imported: collect as usual from here on
    with loaded.backend:
        t0 = time.perf_counter()
        shape = tuple(loaded.info.image_shape)
        inputs = gather_inputs(spec.inputs, shape)  # type: ignore[arg-type]
        images = inputs.array(shape)  # type: ignore[arg-type]
        timings["read_s"] = round(time.perf_counter() - t0, 3)
        if len(images) == 0:
            what = f"{len(inputs.skipped)} file(s) could not be read" if inputs.skipped else "no input files found"
            raise DataError(f"inputs: nothing to predict ({what} in {', '.join(spec.inputs)})")
        t1 = time.perf_counter()
        proba = predict_proba(loaded.backend, loaded.model_inputs(images), spec.batch_size)
        timings["predict_s"] = round(time.perf_counter() - t1, 3)
    t2 = time.perf_counter()
    names, class_names = inputs.names, loaded.info.class_names
    files = _write_outputs(spec, out_dir, names, images, proba, class_names)
    timings["write_s"] = round(time.perf_counter() - t2, 3)
    timings["after_load_s"] = round(time.perf_counter() - t0, 3)
    result = {
        "model_dir": str(spec.model_dir),
        "run_dir": str(spec.run_dir) if spec.run_dir else None,
        "backend": loaded.meta.backend,
        "n_predicted": len(names),
        "predictions": _prediction_records(names, proba, class_names),
        "skipped": inputs.skipped,
        "timings": timings,
        "files": files,
    }
    write_json(out_dir / "predictions.json", result)
    _log_predictions(names, proba, class_names)
    log.info(
        "predicted %d input(s)%s in %.2f s after the model was loaded (model load %.2f s)",
        len(names), f", skipped {len(inputs.skipped)}" if inputs.skipped else "", timings["after_load_s"],
        timings["load_model_s"],
    )
    log.info("predict folder: %s", out_dir)
    return result


def _write_outputs(spec: PredictSpec, out_dir: Path, names: list[str], images: np.ndarray, proba: np.ndarray,
                   class_names: list[str]) -> list[str]:
    """``predictions.csv`` and the sheet ``predictions.png``; the names of the files the folder will hold."""
    write_csv(out_dir / "predictions.csv", names, proba, class_names)
    files = ["predictions.csv", "predictions.json"]
    if spec.sheet_max > 0:
        n = spec.sheet_max
        draw_sheet(out_dir / "predictions.png", names[:n], images[:n], proba[:n], class_names)
        files.append("predictions.png")
        if len(names) > n:
            log.info("the sheet shows the first %d of %d inputs (sheet_max=%d)", n, len(names), n)
    return files


def _prediction_records(names: list[str], proba: np.ndarray, class_names: list[str]) -> list[dict[str, Any]]:
    """One record per input for ``predictions.json``."""
    return [
        {
            "input": name,
            "label": int(label),
            "class_name": class_names[label],
            "confidence": round(float(p[label]), 6),
            "probabilities": [round(float(v), 6) for v in p],
        }
        for name, label, p in zip(names, proba.argmax(axis=1), proba)
    ]


def _log_predictions(names: list[str], proba: np.ndarray, class_names: list[str], shown: int = 20) -> None:
    """The first ``shown`` predictions in the log."""
    labels = proba.argmax(axis=1)
    for name, label, p in list(zip(names, labels, proba))[:shown]:
        log.info("%-30s -> %s (%.1f %%)", name, class_names[label], 100 * p[label])
    if len(names) > shown:
        log.info("... %d more in predictions.csv", len(names) - shown)
