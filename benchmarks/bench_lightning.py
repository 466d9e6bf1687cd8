"""Lightning backend vs a hand-written PyTorch loop, and the default config end to end.

    MNISTFW_DATA_DIR=../shared/data python benchmarks/bench_lightning.py [--epochs 3] [--skip-cli]

Part 1 trains the same MLP (the default config's layers, batch size and optimiser) on full
MNIST with (a) a plain PyTorch loop over batches gathered from a per-epoch permutation and
(b) mnistfw's Lightning backend, validating once per epoch in both; both keep per-epoch training loss and
accuracy sums, as any loop that reports them must. It does so in several alternating
rounds and prints each round's median seconds per epoch and ratio, then the median ratio:
on a shared machine one round can be hit by another job's burst of load. Part 2 runs
``mnistfw-train`` with the default config end to end (start-up, data, fit with validation,
evaluation, saving, plots) and, alternating with it, the hand-written loop for the same number of
epochs; it prints both wall times, their median ratio and the run's test accuracy from
``metrics.json``. Targets (issue 13): Lightning within 1.05x of the loop at batch 256 and 1.10x
at 128; the default run >= 98.5 % test within 1.25x of the loop's epochs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def load_full_mnist(data_root: Path):  # type: ignore[no-untyped-def]
    from mnistfw.data.data_settings import DataConfig
    from mnistfw.data.loading import load_dataset

    return load_dataset(DataConfig(source="full", dir=str(data_root / "mnist"), download=False), seed=42)


def default_config(*overrides: str):  # type: ignore[no-untyped-def]
    """The default run spec (logging and progress bar off), validated as mnistfw-train validates it."""
    from hydra import compose, initialize_config_dir

    from mnistfw.app.run_spec import build_run_spec
    from mnistfw.config.location import config_dir

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("train", overrides=["logger=none", "trainer.enable_progress_bar=false",
                                          f"paths.output_dir={tempfile.mkdtemp()}", *overrides])
    return build_run_spec(cfg, None)


def hand_loop_epochs(data, spec, epochs: int) -> tuple[list[float], float]:  # type: ignore[no-untyped-def]
    import torch

    from mnistfw.backends.lightning_mlp.lightning_module import build_mlp

    torch.manual_seed(0)
    m, t = spec.settings, spec.context.training
    net = build_mlp(data.info.n_features, 10, list(m.hidden), m.activation, m.batch_norm, m.dropout, m.init)
    opt = torch.optim.Adam(net.parameters(), lr=t.optimizer.lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    x, y = torch.from_numpy(data.train.x), torch.from_numpy(data.train.y)
    xv, yv = torch.from_numpy(data.val.x), torch.from_numpy(data.val.y)
    bs = int(t.trainer.batch_size)
    times, acc = [], 0.0
    for _ in range(epochs):
        start = time.perf_counter()
        net.train()
        order = torch.randperm(len(y))
        # The same per-epoch training loss/accuracy sums the backend keeps for its logs.
        loss_sum, correct = torch.zeros(()), torch.zeros((), dtype=torch.long)
        for i in range(0, len(y), bs):
            rows = order[i : i + bs]  # gathered per batch, as the backend does (no shuffled copy)
            yb = y.index_select(0, rows)
            logits = net(x.index_select(0, rows))
            loss = loss_fn(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                loss_sum += loss.detach() * len(yb)
                correct += (logits.argmax(1) == yb).sum()
        float(loss_sum), int(correct)
        net.eval()
        with torch.inference_mode():
            acc = float((torch.cat([net(xv[i : i + 1024]) for i in range(0, len(yv), 1024)]).argmax(1) == yv)
                        .float().mean())
        times.append(time.perf_counter() - start)
    return times, acc


def lightning_epochs(data, batch_size: int, epochs: int) -> tuple[list[float], float]:  # type: ignore[no-untyped-def]
    import torch

    spec = default_config(f"trainer.max_epochs={epochs}", f"trainer.num_threads={torch.get_num_threads()}",
                          "scheduler=none", f"trainer.batch_size={batch_size}")
    stamps: list[float] = []
    start = [0.0]

    def on_epoch_end(epoch, metrics):  # type: ignore[no-untyped-def]
        stamps.append(time.perf_counter())

    backend = spec.make_backend()
    start[0] = time.perf_counter()
    history = backend.fit(data, on_epoch_end)
    times = [b - a for a, b in zip([start[0], *stamps[:-1]], stamps)]
    return times, history[-1]["val/accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per side and round")
    parser.add_argument("--rounds", type=int, default=5, help="hand-loop/Lightning rounds")
    parser.add_argument("--skip-cli", action="store_true", help="only the per-epoch comparison")
    parser.add_argument("--e2e-rounds", type=int, default=3, help="end-to-end run / hand-loop rounds")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="batch size for both sides of part 1 (default: the default config's)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for both sides (default: torch's own, one per core)")
    args = parser.parse_args()
    data_root = Path(os.environ.get("MNISTFW_DATA_DIR", REPO.parent / "shared" / "data"))
    if not (data_root / "mnist").is_dir():
        sys.exit(f"full MNIST not found in {data_root / 'mnist'}; set MNISTFW_DATA_DIR")

    import torch

    # Both sides flush denormal floats to zero, as the default config does (trainer.flush_denormal):
    # set before torch's first parallel region so that its worker threads inherit it.
    torch.set_flush_denormal(True)
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_full_mnist(data_root)
    spec = default_config(*([f"trainer.batch_size={args.batch_size}"] if args.batch_size else []))
    batch = int(spec.context.training.trainer.batch_size)
    print(f"data: train {len(data.train)} val {len(data.val)} test {len(data.test)}; "
          f"model {list(spec.settings.hidden)} {spec.settings.activation} batch {batch}; "
          f"torch {torch.__version__} threads {torch.get_num_threads()}")
    # Warm-up so neither side pays first-touch costs. Then several rounds, each a hand-loop run
    # followed by a Lightning run, so that a burst of load from other jobs on this shared machine
    # spoils one round's ratio rather than the whole comparison; the median round is reported.
    hand_loop_epochs(data, spec, 1)
    print(f"{'round':>5s}{'hand s/epoch':>14s}{'Lightning s/epoch':>19s}{'ratio':>8s}")
    ratios, hand_all, light_all, hand_acc, light_acc = [], [], [], 0.0, 0.0
    for r in range(args.rounds):
        hand_t, hand_acc = hand_loop_epochs(data, spec, args.epochs)
        light_t, light_acc = lightning_epochs(data, batch, args.epochs + 1)
        light_t = light_t[1:]  # the first epoch includes Trainer start-up
        hand_med, light_med = statistics.median(hand_t), statistics.median(light_t)
        ratios.append(light_med / hand_med)
        hand_all += hand_t
        light_all += light_t
        print(f"{r + 1:5d}{hand_med:14.3f}{light_med:19.3f}{ratios[-1]:8.3f}")
    print(f"{'':28s}{'s/epoch (median)':>18s}{'epochs':>8s}{'val acc':>9s}")
    print(f"{'hand-written PyTorch loop':28s}{statistics.median(hand_all):18.3f}{len(hand_all):8d}{hand_acc:9.4f}")
    print(f"{'mnistfw Lightning backend':28s}{statistics.median(light_all):18.3f}{len(light_all):8d}{light_acc:9.4f}")
    target = 1.05 if batch >= 256 else 1.10
    print(f"ratio Lightning / hand loop: {statistics.median(ratios):.3f} (median of {len(ratios)} rounds; "
          f"range {min(ratios):.3f}-{max(ratios):.3f}; target <= {target:.2f} at batch {batch})")
    if not args.skip_cli:
        end_to_end(data, data_root, args.e2e_rounds)


def end_to_end(data, data_root: Path, rounds: int) -> None:  # type: ignore[no-untyped-def]
    """``mnistfw-train`` with the default config, whole wall time, against the loop's epochs."""
    spec = default_config()
    epochs = int(spec.context.training.trainer.max_epochs)
    walls, loops, ratios, summary = [], [], [], {}
    for _ in range(rounds):
        loops.append(sum(hand_loop_epochs(data, spec, epochs)[0]))
        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, "MNISTFW_DATA_DIR": str(data_root)}
            start = time.perf_counter()
            proc = subprocess.run(
                [str(Path(sys.executable).parent / "mnistfw-train"), f"paths.log_dir={tmp}",
                 "trainer.enable_progress_bar=false"],
                env=env, capture_output=True, text=True,
            )
            walls.append(time.perf_counter() - start)
            if proc.returncode != 0:
                sys.exit(proc.stderr[-3000:])
            summary = json.loads(next(Path(tmp).rglob("metrics.json")).read_text())
        ratios.append(walls[-1] / loops[-1])
        t = summary["timings"]
        print(f"default run end to end {walls[-1]:.1f} s (load {t['load_s']:.1f} s, fit {t['fit_s']:.1f} s, "
              f"eval {t['eval_s']:.1f} s, plots {t['plot_s']:.1f} s); hand loop, {epochs} epochs "
              f"{loops[-1]:.1f} s; ratio {ratios[-1]:.3f}")
    m = summary["metrics"]
    print(f"default config via mnistfw-train: {epochs} epochs, test accuracy {m['test/accuracy']:.4f}, "
          f"test f1 {m['test/f1']:.4f} (target >= 0.985); end to end / hand loop {statistics.median(ratios):.3f}x "
          f"(median of {rounds}; target <= 1.25)")

if __name__ == "__main__":
    main()
