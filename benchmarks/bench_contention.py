"""Thread counts under contention: training alone and beside a busy process; 1- vs 2-worker sweeps.

    MNISTFW_DATA_DIR=../shared/data python benchmarks/bench_contention.py [--rounds 3] [--skip-sweep]

Part 1 trains the default MLP on full MNIST for a few epochs with ``trainer.num_threads`` set to
one thread per core (torch's own default, what mnistfw used before ``auto``), to 1, and to
``auto``; each once with the machine otherwise idle and once beside one busy single-threaded
process (``python -c "while True: pass"``). Every run is a fresh process; the settings alternate
within each round and the median seconds per epoch over the rounds is printed, for the Lightning
and the NumPy backend. Part 2 runs the same small Optuna sweep with ``hydra.sweeper.n_jobs=1``
and ``n_jobs=2`` and prints both wall times. The checks printed at the end are the targets:
``auto`` beside a busy process at most 1.5x its idle time, ``auto`` idle within 10 % of one
thread per core idle, and the 2-worker sweep sooner than the 1-worker one.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def epoch_worker(model: str, threads: str, epochs: int) -> None:
    """Child process: train ``model`` with ``trainer.num_threads=threads``; print per-epoch seconds as JSON."""
    from hydra import compose, initialize_config_dir

    from mnistfw.app.run_spec import build_run_spec
    from mnistfw.config.location import config_dir
    from mnistfw.data.loading import load_dataset

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("train", overrides=[
            f"model={model}", "data=mnist", "data.source=full", "logger=none", "scheduler=none",
            "trainer.enable_progress_bar=false", f"trainer.max_epochs={epochs}", f"trainer.num_threads={threads}",
            f"paths.output_dir={tempfile.mkdtemp()}",
        ])
    spec = build_run_spec(cfg, None)
    data = load_dataset(spec.data, seed=42)
    stamps = [time.perf_counter()]
    chosen: list[int] = []

    def on_epoch_end(epoch: int, metrics: Any) -> None:
        stamps.append(time.perf_counter())

    class Chosen(logging.Handler):
        """Collects the counts of the log's ``threads: 2 (...)`` and ``threads: 2 -> 1 (...)`` lines."""

        def emit(self, record: logging.LogRecord) -> None:
            match = re.match(r"threads: (?:\d+ -> )?(\d+)", record.getMessage())
            if match:
                chosen.append(int(match.group(1)))

    logging.getLogger("mnistfw.backends.threads").addHandler(Chosen())
    logging.getLogger("mnistfw.backends.threads").setLevel(logging.INFO)
    spec.make_backend().fit(data, on_epoch_end)
    times = [b - a for a, b in zip(stamps, stamps[1:])]
    print(json.dumps({"epoch_s": times, "threads": chosen}))


@contextmanager
def busy_process(enabled: bool):  # type: ignore[no-untyped-def]
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if enabled else None
    try:
        if proc:
            time.sleep(0.5)
        yield
    finally:
        if proc:
            proc.kill()
            proc.wait()


def timed_epochs(model: str, threads: str, epochs: int, busy: bool) -> tuple[float, list[int]]:
    """Median seconds per epoch after the first (which pays start-up costs) and the thread counts used."""
    with busy_process(busy):
        out = subprocess.run([sys.executable, __file__, "--epoch-worker", model, threads, str(epochs)],
                             capture_output=True, text=True, check=False)
    if out.returncode != 0:
        sys.exit(f"training run failed ({model}, threads={threads}):\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return statistics.median(result["epoch_s"][1:]), result["threads"]


def sweep_seconds(n_jobs: int, n_trials: int, out: Path) -> float:
    script = Path(sys.executable).parent / "mnistfw-train"
    cmd = [str(script), "-m", "hparams_search=lightning_optuna", f"hydra.sweeper.n_trials={n_trials}",
           f"hydra.sweeper.n_jobs={n_jobs}", "hydra.sweeper.pruner=null", "trainer.max_epochs=2",
           "data=mnist", "data.source=full", "data.limit_train=20000", "logger=none", "visualization=none",
           "trainer.enable_progress_bar=false", f"hydra.sweep.dir={out}", "hydra.sweeper.storage=memory"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"sweep with n_jobs={n_jobs} failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run (the first is not timed)")
    parser.add_argument("--models", default="lightning_mlp,numpy_net")
    parser.add_argument("--skip-sweep", action="store_true")
    parser.add_argument("--sweep-trials", type=int, default=6)
    parser.add_argument("--epoch-worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.epoch_worker:
        model, threads, epochs = args.epoch_worker
        epoch_worker(model, threads, int(epochs))
        return
    data_root = Path(os.environ.get("MNISTFW_DATA_DIR", REPO.parent / "shared" / "data"))
    if not (data_root / "mnist").is_dir():
        sys.exit(f"full MNIST not found in {data_root / 'mnist'}; set MNISTFW_DATA_DIR")
    os.environ["MNISTFW_DATA_DIR"] = str(data_root)
    from mnistfw.backends.threads import usable_cores

    cores = usable_cores()
    settings = [str(cores), "1", "auto"]
    print(f"{cores} usable cores; load average before: {os.getloadavg()[0]:.2f}; "
          f"{args.rounds} rounds of {args.epochs} epochs (median of epochs 2..{args.epochs})")
    checks: list[tuple[str, bool]] = []
    for model in args.models.split(","):
        results: dict[tuple[str, bool], list[float]] = {}
        used: dict[tuple[str, bool], set[int]] = {}
        for _ in range(args.rounds):
            for busy in (False, True):
                for threads in settings:
                    seconds, chosen = timed_epochs(model, threads, args.epochs, busy)
                    results.setdefault((threads, busy), []).append(seconds)
                    used.setdefault((threads, busy), set()).update(chosen)
        print(f"\n{model}: seconds per epoch (median of {args.rounds} rounds)")
        print(f"{'num_threads':>14s}{'idle':>9s}{'beside 1 busy':>15s}{'slowdown':>10s}  threads used")
        med = {key: statistics.median(v) for key, v in results.items()}
        for threads in settings:
            idle, busy = med[(threads, False)], med[(threads, True)]
            label = f"{threads} (per core)" if threads == str(cores) else threads
            counts = f"idle {sorted(used[(threads, False)])}, busy {sorted(used[(threads, True)])}"
            print(f"{label:>14s}{idle:9.3f}{busy:15.3f}{busy / idle:9.2f}x  {counts}")
        auto_idle, auto_busy, old_idle = med[("auto", False)], med[("auto", True)], med[(str(cores), False)]
        checks.append((f"{model}: auto beside a busy process {auto_busy / auto_idle:.2f}x its idle time (<= 1.5)",
                       auto_busy / auto_idle <= 1.5))
        checks.append((f"{model}: auto idle {auto_idle / old_idle:.2f}x one thread per core idle (<= 1.10)",
                       auto_idle / old_idle <= 1.10))
    if not args.skip_sweep:
        with tempfile.TemporaryDirectory() as tmp:
            one, two = [], []
            for r in range(2):
                one.append(sweep_seconds(1, args.sweep_trials, Path(tmp) / f"one{r}"))
                two.append(sweep_seconds(2, args.sweep_trials, Path(tmp) / f"two{r}"))
        print(f"\nsweep of {args.sweep_trials} trials (2 epochs on 20,000 rows each): "
              f"n_jobs=1 {statistics.median(one):.1f} s, n_jobs=2 {statistics.median(two):.1f} s "
              f"(rounds: {', '.join(f'{a:.1f}/{b:.1f}' for a, b in zip(one, two))})")
        ratio = statistics.median(two) / statistics.median(one)
        checks.append((f"2-worker sweep {ratio:.2f}x the 1-worker sweep (< 1)", ratio < 1))
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    for text, ok in checks:
        print(f"{'ok  ' if ok else 'MISS'} {text}")


if __name__ == "__main__":
    main()
