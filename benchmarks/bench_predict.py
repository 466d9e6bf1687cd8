"""``mnistfw-predict`` on 100 photo-like PNG files, for the Lightning and NumPy backends.

    python benchmarks/bench_predict.py [--n 100] [--run-dir <a trained run>]

Trains a small model of each backend on the bundled sample (or uses ``--run-dir``), writes
``--n`` PNG files that look like photographed digits (dark ink on a light, slightly noisy
200x200 background, so the MNIST-style conversion has to invert, crop, scale and centre),
runs ``mnistfw-predict`` on the folder and prints its own timings from ``predictions.json``:
reading + converting the pictures, predicting, writing CSV/JSON and the picture sheet, and
all of that together ("after load"; target under 5 s) beside the model-loading time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

TRAIN = {
    "lightning_mlp": ["model=lightning_mlp", "trainer.max_epochs=2", "trainer.enable_progress_bar=false"],
    "numpy_net": ["model=numpy_net", "trainer.max_epochs=2", "trainer.enable_progress_bar=false"],
}


def script(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def write_photos(folder: Path, n: int) -> np.ndarray:
    """``n`` PNGs of sample digits, dark on light, upscaled to 200x200 with noise; returns labels."""
    from PIL import Image

    from mnistfw.data.sample import load_sample

    images, labels = load_sample()
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for i in range(n):
        big = np.asarray(Image.fromarray(images[i]).resize((200, 200), Image.BILINEAR), dtype=np.float32)
        photo = 235 - 0.8 * big + rng.normal(0, 6, big.shape)
        Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8)).save(folder / f"digit_{i:03d}.png")
    return labels[:n]


def run(args: list[str], cwd: Path) -> None:
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(args[:2])} failed:\n{proc.stderr[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100, help="number of PNG files")
    parser.add_argument("--run-dir", type=Path, default=None, help="predict with this run instead of training")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        labels = write_photos(work / "photos", opts.n)
        runs = {"given": opts.run_dir.resolve()} if opts.run_dir else {}
        for backend, overrides in ([] if opts.run_dir else TRAIN.items()):
            run([script("mnistfw-train"), "data=mnist_sample", "visualization=none", "logger=none",
                 f"hydra.run.dir={work / backend}", *overrides], work)
            runs[backend] = work / backend
        print(f"{opts.n} PNG files (200x200, dark on light) -> mnistfw-predict, timings from predictions.json")
        print(f"{'model':15}{'load model s':>13}{'read s':>8}{'predict s':>10}{'write s':>8}"
              f"{'after load s':>13}{'correct':>9}")
        for name, run_dir in runs.items():
            out = work / f"predict_{name}"
            run([script("mnistfw-predict"), f"run_dir={run_dir}", f"inputs={work / 'photos'}",
                 f"hydra.run.dir={out}"], work)
            report = json.loads((out / "predictions.json").read_text())
            t = report["timings"]
            predicted = {p["input"]: p["label"] for p in report["predictions"]}
            correct = sum(predicted.get(f"digit_{i:03d}.png") == int(y) for i, y in enumerate(labels))
            print(f"{name:15}{t['load_model_s']:13.2f}{t['read_s']:8.2f}{t['predict_s']:10.3f}{t['write_s']:8.2f}"
                  f"{t['after_load_s']:13.2f}{correct:>6}/{opts.n}")
        print("target: after load < 5 s for 100 files")


if __name__ == "__main__":
    main()
