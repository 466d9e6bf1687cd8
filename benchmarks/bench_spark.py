"""Spark ML backend on full MNIST, local mode: data path, reporting chunks, and the default config.

    MNISTFW_DATA_DIR=../shared/data python benchmarks/bench_spark.py [--parts transfer,chunks,full]
        [--out results.json] [hydra overrides, e.g. trainer.max_epochs=100 "spark.master='local[2]'"]

Parts (all in one SparkSession, so the JVM start is paid once and reported separately):

* ``transfer``: 55,000 x 784 training rows from NumPy into Spark and turned into cached
  feature vectors (standardized when the config does): Arrow from memory vs Parquet (first
  run writes the cache file, second run reads it), and the classic per-pixel-column
  VectorAssembler layout.
* ``chunks``: the price of validating every ``trainer.check_val_every_n_epoch`` iterations (each
  chunk restarts L-BFGS from the previous weights) on 10,000 rows, hidden [64], 60 iterations:
  time and final loss / validation accuracy for one uninterrupted fit vs chunks of 20 and 10.
* ``full``: the default ``model=spark_mlp`` config (plus overrides) trained on the full
  training split and evaluated on the official test set: test accuracy and F1 (the common
  NumPy metrics on ``predict_proba`` and Spark's MulticlassClassificationEvaluator), fit time,
  time per L-BFGS iteration, the data-loading share of the run and which BLAS Spark used.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
log = logging.getLogger("bench_spark")


def run_spec(overrides: list[str]) -> Any:
    """The validated run spec of ``mnistfw-train model=spark_mlp <overrides>`` (nothing is run)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from mnistfw.app.run_spec import build_run_spec
    from mnistfw.config.location import config_dir

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = hydra_compose("train", overrides=["model=spark_mlp", "logger=none",
                                                f"paths.output_dir={tempfile.mkdtemp()}", *overrides])
    return build_run_spec(cfg, None)


def load_mnist(data_root: Path, seed: int) -> tuple[Any, float]:
    from mnistfw.data.data_settings import DataConfig
    from mnistfw.data.loading import load_dataset

    start = time.perf_counter()
    data = load_dataset(DataConfig(source="full", dir=str(data_root / "mnist"), download=False), seed=seed)
    return data, time.perf_counter() - start


def part_transfer(spark: Any, data: Any, standardize: bool) -> dict[str, Any]:
    from pyspark.ml import Pipeline

    from mnistfw.backends.spark_mlp.stages import expand_pixels, feature_stages
    from mnistfw.backends.spark_mlp.transfer import FEATURES, LABEL, to_spark

    x, y = data.train.x, data.train.y
    out: dict[str, Any] = {"rows": len(y), "standardize": standardize}

    def features(df: Any, kind: str = "array", rows: int = len(y)) -> float:
        start = time.perf_counter()
        if kind == "columns":
            df = expand_pixels(df, x.shape[1])
        model = Pipeline(stages=feature_stages(kind, x.shape[1], standardize, True, True)).fit(df)
        cached = model.transform(df).select(LABEL, FEATURES).cache()
        assert cached.count() == rows
        cached.unpersist()
        return time.perf_counter() - start

    # JIT warm-up on 5,000 rows, so that the first variant is not charged for it
    features(to_spark(spark, x[:5000], y[:5000]), rows=5000)
    with tempfile.TemporaryDirectory() as cache:
        runs = [("arrow", "arrow"), ("parquet_first", "parquet"), ("parquet_cached", "parquet")]
        for label, transfer in [*runs, ("arrow_again", "arrow")]:
            start = time.perf_counter()
            df = to_spark(spark, x, y, transfer=transfer, cache_dir=cache)
            send = time.perf_counter() - start
            prep = features(df)
            out[label] = {"send_s": round(send, 2), "features_s": round(prep, 2), "total_s": round(send + prep, 2)}
            log.info("transfer %-15s send %.2f s + features %.2f s", label, send, prep)
        start = time.perf_counter()
        df = to_spark(spark, x, y, transfer="arrow")
        send = time.perf_counter() - start
        prep = features(df, "columns")
        out["columns_vectorassembler"] = {"send_s": round(send, 2), "features_s": round(prep, 2)}
        log.info("transfer %-15s send %.2f s + features %.2f s", "columns+VA", send, prep)
    return out


def part_chunks(overrides: list[str], data: Any) -> dict[str, Any]:
    from mnistfw.data.dataset import Dataset, Split

    n = 10_000
    small = Dataset(
        Split(data.train.x[:n], data.train.y[:n], data.train.images[:n]), data.val, data.test, data.info,
        data.preprocessing,
    )  # fmt: skip
    out: dict[str, Any] = {"rows": n, "hidden": [64], "max_iter": 60}
    small_net = [*overrides, "model.hidden=[64]", "model.layers=null"]
    warm = run_spec([*small_net, "trainer.max_epochs=5", "trainer.check_val_every_n_epoch=5"]).make_backend()
    try:  # JIT warm-up, so the first variant is not charged for it
        warm.fit(small, lambda e, m: None)
    finally:
        warm.close()
    for every in (60, 20, 10):
        backend = run_spec([*small_net, "trainer.max_epochs=60", f"trainer.check_val_every_n_epoch={every}",
                            "trainer.checkpoint.monitor=null"]).make_backend()
        try:
            history = backend.fit(small, lambda e, m: None)
            t = backend.run_info["timings"]
            last = [h for h in history if "val/accuracy" in h][-1]
            out[f"check_val_every_n_epoch={every}"] = {
                "fit_s": round(t["fit_s"], 2),
                "step_metrics_s": round(t["step_metrics_s"], 2),
                "iterations": t["iterations"],
                "final_train_loss": round(history[-1]["train/loss"], 5),
                "val_accuracy": round(last["val/accuracy"], 4),
            }
            log.info("chunks of %s iterations: %s", every, out[f"check_val_every_n_epoch={every}"])
        finally:
            backend.close()
    return out


def part_full(spec: Any, data: Any, load_s: float, session_s: float) -> dict[str, Any]:
    from dataclasses import asdict

    from mnistfw.metrics import epoch_metrics

    backend = spec.make_backend()
    steps: list[dict[str, float]] = []
    try:
        history = backend.fit(data, lambda e, m: steps.append({"iteration": e, **m}))
        start = time.perf_counter()
        proba = backend.predict_proba(data.test.x)
        predict_s = time.perf_counter() - start
    finally:
        backend.close()
    ours = epoch_metrics("test", data.test.y, proba)
    step = spec.context.training.trainer.check_val_every_n_epoch
    t = backend.run_info["timings"]
    data_s = load_s + t["transfer_s"] + t["features_s"]
    total = load_s + session_s + t["total_s"] + predict_s
    result = {
        "config": {"model": asdict(spec.settings), "trainer.max_epochs": spec.context.training.trainer.max_epochs,
                   "trainer.check_val_every_n_epoch": step, "optimizer": spec.context.training.optimizer.name},
        "train_rows": len(data.train),
        "test_rows": len(data.test),
        "test_accuracy": ours["test/accuracy"],
        "test_f1_macro": ours["test/f1"],
        "test_loss": ours["test/loss"],
        "spark_metrics": backend.spark_scores,
        "blas": backend.run_info["blas"],
        "iterations": t["iterations"],
        "fit_s": round(t["fit_s"], 1),
        "s_per_iteration": round(t["s_per_iteration"], 3),
        # the first chunk also stacks the data into blocks and warms the JIT up
        "s_per_iteration_after_first_chunk": round(sum(t["chunk_s"][1:]) / max(t["iterations"] - step, 1), 3)
        if len(t["chunk_s"]) > 1
        else None,
        "chunk_s": t["chunk_s"],
        "step_metrics_s": round(t["step_metrics_s"], 1),
        "idx_load_s": round(load_s, 2),
        "session_s": round(session_s, 2),
        "transfer_s": round(t["transfer_s"], 2),
        "features_s": round(t["features_s"], 2),
        "predict_test_s": round(predict_s, 2),
        "total_s": round(total, 1),
        "data_share": round(data_s / total, 4),
        "steps": steps,
        "history_len": len(history),
    }
    log.info(
        "full: test accuracy %.4f, macro F1 %.4f (Spark: accuracy %.4f, weighted F1 %.4f), fit %.0f s, "
        "%.2f s/iteration, data %.1f%% of %.0f s, BLAS %s",
        result["test_accuracy"], result["test_f1_macro"], backend.spark_scores["test/spark_accuracy"],
        backend.spark_scores["test/spark_f1"], t["fit_s"], t["s_per_iteration"], 100 * result["data_share"],
        total, result["blas"],
    )  # fmt: skip
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="transfer,chunks,full", help="comma-separated: transfer, chunks, full")
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for the composed train config")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    data_root = Path(os.environ.get("MNISTFW_DATA_DIR", REPO.parent / "shared" / "data"))
    if not (data_root / "mnist").is_dir():
        print(f"full MNIST not found under {data_root}/mnist; set MNISTFW_DATA_DIR", file=sys.stderr)
        return 2
    os.environ.setdefault("MNISTFW_DATA_DIR", str(data_root))
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    spec = run_spec(args.overrides)

    from mnistfw.backends.spark_mlp.session import blas_name, start_session

    data, load_s = load_mnist(data_root, spec.context.seed)
    log.info("loaded full MNIST in %.2f s: train/val/test %d/%d/%d", load_s, len(data.train), len(data.val),
             len(data.test))  # fmt: skip
    start = time.perf_counter()
    handle = start_session(spec.sections["spark"])
    session_s = time.perf_counter() - start
    results: dict[str, Any] = {"session_s": round(session_s, 2), "blas": blas_name(handle.spark)}
    try:
        if "transfer" in parts:
            results["transfer"] = part_transfer(handle.spark, data, bool(spec.settings.standardize))
        if "chunks" in parts:
            results["chunks"] = part_chunks(args.overrides, data)
        if "full" in parts:
            results["full"] = part_full(spec, data, load_s, session_s)
    finally:
        handle.stop()
    text = json.dumps(results, indent=2, default=str)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
