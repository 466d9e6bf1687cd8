"""The README's experiment tables in one command: the founding setups (and the showcase runs).

    MNISTFW_DATA_DIR=../shared/data python benchmarks/bench_founding.py                  # the founding setups
    MNISTFW_DATA_DIR=../shared/data python benchmarks/bench_founding.py --experiments best_mlp,best_numpy

Runs ``mnistfw-train experiment=<name>`` for each experiment, one after the other, into
``--out`` (default: a new temporary folder), then prints one row per run (a multirun
experiment such as ``tf_lifecycle`` gives one row per run of it) with its validation and test
accuracy, test F1, fit time and the command's wall time, and writes ``mnistfw-compare``'s
table and figures of all the runs into ``<out>/comparison``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FOUNDING = ("numpy_founding", "keras_selu", "keras_tuner_ann", "keras_tuner_dnn", "spark_founding", "tf_lifecycle")


def train(experiment: str, out: Path) -> float:
    """Run one experiment into ``out / experiment``; return its wall time (exits on failure)."""
    script = Path(sys.executable).parent / "mnistfw-train"
    # (no trainer.enable_progress_bar: a baseline in a multirun experiment does not read it, and
    # the progress bar is drawn only on a terminal anyway)
    cmd = [str(script), f"experiment={experiment}", f"paths.log_dir={out / experiment}"]
    start = time.perf_counter()
    with (out / f"{experiment}.log").open("w") as log:
        code = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=False).returncode
    if code != 0:
        sys.exit(f"experiment={experiment} failed (exit {code}); see {out / f'{experiment}.log'}")
    return time.perf_counter() - start


def percent(metrics: dict, key: str) -> str:
    return f"{100 * metrics[key]:.2f} %" if key in metrics else "-"


def rows(experiment: str, out: Path, wall: float) -> list[str]:
    """Markdown rows of the runs ``experiment`` wrote."""
    lines = []
    for path in sorted((out / experiment).rglob("metrics.json")):
        summary = json.loads(path.read_text())
        m, timings = summary["metrics"], summary.get("timings", {})
        name = experiment if path.parent.parent.name == "runs" else f"{experiment} / {summary['model']['backend']}"
        lines.append(f"| {name} | {percent(m, 'val/accuracy')} | {percent(m, 'test/accuracy')} "
                     f"| {m.get('test/f1', float('nan')):.4f} | {timings.get('fit_s', float('nan')):.0f} s "
                     f"| {wall:.0f} s |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiments", default=",".join(FOUNDING), help="comma-separated experiment names")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    data_root = Path(os.environ.get("MNISTFW_DATA_DIR", REPO.parent / "shared" / "data"))
    if not (data_root / "mnist").is_dir():
        sys.exit(f"full MNIST not found in {data_root / 'mnist'}; set MNISTFW_DATA_DIR")
    os.environ["MNISTFW_DATA_DIR"] = str(data_root)
    out = args.out or Path(tempfile.mkdtemp(prefix="mnistfw-founding-"))
    out.mkdir(parents=True, exist_ok=True)
    print(f"runs in {out}; load average before: {os.getloadavg()[0]:.2f}")
    table = ["| experiment | val accuracy | test accuracy | test F1 (macro) | fit | wall |",
             "| --- | --- | --- | --- | --- | --- |"]
    for experiment in args.experiments.split(","):
        wall = train(experiment, out)
        new = rows(experiment, out, wall)
        print("\n".join(new), flush=True)
        table += new
    print(f"\nload average after: {os.getloadavg()[0]:.2f}\n")
    print("\n".join(table))
    from mnistfw.compare.comparison import compare

    comparison = compare([out / e for e in args.experiments.split(",")], out / "comparison")
    print(f"\nmnistfw-compare's table and figures: {comparison.markdown_path.parent}")


if __name__ == "__main__":
    main()
