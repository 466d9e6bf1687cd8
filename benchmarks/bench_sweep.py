"""Optuna sweep with and without pruning: epochs spent, wall time, best validation accuracy.

    MNISTFW_DATA_DIR=../shared/data python benchmarks/bench_sweep.py            # the full benchmark
    MNISTFW_DATA_DIR=../shared/data python benchmarks/bench_sweep.py --n-trials 6 --max-epochs 4 \\
        --limit-train 10000                                                         # a quick check

Runs ``mnistfw-train -m hparams_search=lightning_optuna`` twice on full MNIST with the same
sampler seed: once with the config's pruner (Hyperband) and once with
``hydra.sweeper.pruner=null``. For each it reads the sweep folder's
``optimization_results.json`` (epochs reported, best val/accuracy, best trial) and the wall
time, then prints the epochs saved by pruning and whether the pruned sweep's best is at
least as good. ``--rerun-best`` re-runs the pruned sweep's ``best_config.yaml`` (the
ready-to-run config of the best trial) and reports its test accuracy. Everything goes to
``--out`` (default: a new temporary folder); a summary is written to ``<out>/summary.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def train_command() -> list[str]:
    script = Path(sys.executable).parent / "mnistfw-train"
    return [str(script)] if script.exists() else [sys.executable, "-m", "mnistfw.cli.train"]


def run(args: list[str], log: Path) -> float:
    """Run ``mnistfw-train`` with ``args``; return its wall time (exits on failure)."""
    start = time.perf_counter()
    with log.open("w") as fh:
        proc = subprocess.run([*train_command(), *args], stdout=fh, stderr=subprocess.STDOUT, cwd=REPO)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        print(f"failed (exit {proc.returncode}); see {log}:\n" + log.read_text()[-3000:], file=sys.stderr)
        sys.exit(1)
    return elapsed


def sweep(name: str, out: Path, opts: argparse.Namespace, extra: list[str]) -> dict:
    sweep_dir = out / name
    args = [
        "-m", "hparams_search=lightning_optuna",
        f"data={opts.data}", "data.source=" + ("sample" if opts.data == "mnist_sample" else "full"),
        f"hydra.sweep.dir={sweep_dir}", f"paths.log_dir={out / 'logs'}",
        f"hydra.sweeper.n_trials={opts.n_trials}", f"hydra.sweeper.sampler.seed={opts.seed}",
        f"trainer.max_epochs={opts.max_epochs}", "visualization=none", "save_model=false", "logger=none",
        "hydra.sweeper.plots=true",
        # a study of its own for each arm, so that neither continues the other's
        f"hydra.sweeper.storage=sqlite:///{out / name}.db", f"hydra.sweeper.study_name=bench-{name}",
    ]
    if opts.limit_train:
        args.append(f"data.limit_train={opts.limit_train}")
    args += extra + opts.overrides
    print(f"[{name}] mnistfw-train {' '.join(args)}", flush=True)
    wall = run(args, out / f"{name}.log")
    res = json.loads((sweep_dir / "optimization_results.json").read_text())
    summary = {
        "wall_s": round(wall, 1),
        "epochs": res["epochs_reported"],
        "trials": res["trials"],
        "best_val_accuracy": res["best_value"],
        "best_trial": res["best_trial"],
        "best_params": res["best_params"],
        "sweep_dir": str(sweep_dir),
    }
    best_metrics = Path(res["best_run_dir"]) / "metrics.json"
    if best_metrics.is_file():
        summary["best_trial_test_accuracy"] = json.loads(best_metrics.read_text())["metrics"].get("test/accuracy")
    print(f"[{name}] {summary['epochs']} epochs, {summary['wall_s']} s, best val/accuracy "
          f"{summary['best_val_accuracy']:.4f} (trial {summary['best_trial']}), trials {summary['trials']}", flush=True)
    return summary


def rerun_best(sweep_dir: Path, out: Path) -> float | None:
    """Re-run ``best_config.yaml`` of a sweep; return the run's test accuracy."""
    log_dir = out / "rerun"
    wall = run(["--config-path", str(sweep_dir), "--config-name", "best_config", f"paths.log_dir={log_dir}",
                "save_model=false"], out / "rerun.log")
    found = sorted(log_dir.glob("*/runs/*/metrics.json"))
    if not found:
        return None
    acc = json.loads(found[-1].read_text())["metrics"].get("test/accuracy")
    print(f"[rerun best] test/accuracy {acc:.4f} in {wall:.0f} s ({found[-1].parent})", flush=True)
    return acc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-trials", type=int, default=20)
    parser.add_argument("--max-epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=42, help="sampler seed, the same in both sweeps")
    parser.add_argument("--limit-train", type=int, default=None, help="training rows (data.limit_train)")
    parser.add_argument("--data", default="mnist", help="data config (mnist_sample for a smoke test)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--rerun-best", action="store_true", help="re-run the pruned sweep's best_config.yaml")
    parser.add_argument("--keep", action="store_true", help="keep --out when it is a temporary folder")
    parser.add_argument("overrides", nargs="*", help="extra mnistfw-train overrides for both sweeps")
    opts = parser.parse_args()

    if opts.data != "mnist_sample" and not os.environ.get("MNISTFW_DATA_DIR"):
        print("set MNISTFW_DATA_DIR to the folder holding mnist/ (e.g. ../shared/data)", file=sys.stderr)
        sys.exit(2)
    temporary = opts.out is None
    # Absolute: Hydra reads a relative --config-path (the re-run) as a Python module path.
    out = (opts.out or Path(tempfile.mkdtemp(prefix="mnistfw-bench-sweep-"))).resolve()
    out.mkdir(parents=True, exist_ok=True)
    try:
        pruned = sweep("pruned", out, opts, [])
        unpruned = sweep("unpruned", out, opts, ["hydra.sweeper.pruner=null"])
        saved = 1 - pruned["epochs"] / unpruned["epochs"] if unpruned["epochs"] else 0.0
        summary = {
            "n_trials": opts.n_trials, "max_epochs": opts.max_epochs, "seed": opts.seed,
            "limit_train": opts.limit_train, "data": opts.data,
            "pruned": pruned, "unpruned": unpruned,
            "epochs_saved": round(saved, 3),
            "wall_saved": round(1 - pruned["wall_s"] / unpruned["wall_s"], 3),
            "best_val_delta": round(pruned["best_val_accuracy"] - unpruned["best_val_accuracy"], 4),
        }
        if opts.rerun_best:
            summary["rerun_best_test_accuracy"] = rerun_best(Path(pruned["sweep_dir"]), out)
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        print()
        print(f"{'':10} {'epochs':>7} {'wall s':>8} {'best val acc':>13} {'its test acc':>13}")
        for name in ("unpruned", "pruned"):
            s = summary[name]
            test = s.get("best_trial_test_accuracy")
            print(f"{name:10} {s['epochs']:>7} {s['wall_s']:>8.0f} {s['best_val_accuracy']:>13.4f} "
                  f"{test if test is None else f'{test:.4f}':>13}")
        print(f"pruning saved {saved:.0%} of the epochs ({summary['wall_saved']:.0%} of the wall time); "
              f"best val accuracy {'+' if summary['best_val_delta'] >= 0 else ''}{summary['best_val_delta']:.4f} "
              f"(target: >= 40% saved at an equal-or-better best)")
        if "rerun_best_test_accuracy" in summary:
            print(f"best config re-run: test accuracy {summary['rerun_best_test_accuracy']} (target >= 0.983)")
        print(f"details: {out / 'summary.json'}")
    finally:
        if temporary and not opts.keep:
            print(f"(removing {out}; pass --keep or --out to keep it)")
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
