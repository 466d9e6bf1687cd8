"""A tiny Hydra app swept by the mnistfw Optuna sweeper in the tests (no training, fast).

Its task mimics a training run: for ``epochs`` steps it reports a score through the same
epoch-callback seam as mnistfw's training run (the sweeper hands it a pruning callback),
then returns it. ``fail_if`` makes chosen trials raise and
``sleep`` keeps a trial running long enough to be killed; ``multi`` returns two objectives.
Each job writes ``job.json`` into its run folder: the process that ran it, the GPUs it saw and its CPU thread cap.
Like mnistfw's console scripts, it prints a :class:`~mnistfw.errors.MnistfwError` raised by
the sweep as one ``error:`` line and exits with status 2.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig


def score(cfg: DictConfig, epoch: int) -> float:
    """A smooth function of the parameters that grows with the epoch."""
    x, y = float(cfg.x), float(cfg.y)
    width = sum(cfg.hidden) / 1000.0
    base = 1.0 - (x - 0.3) ** 2 - (y - 2) ** 2 / 10 + 0.05 * width + (0.02 if cfg.act == "relu" else 0.0)
    return base * (1 - math.exp(-(epoch + 1) / 2))


class Task:
    """The task Hydra calls; ``with_epoch_callback`` lets the sweeper hand it a pruning callback."""

    def __init__(self, callbacks: tuple[Any, ...] = ()) -> None:
        self.callbacks = callbacks
        self.__module__ = __name__

    def with_epoch_callback(self, callback: Any) -> Task:
        return Task((*self.callbacks, callback))

    def __call__(self, cfg: DictConfig) -> Any:
        return run(cfg, self.callbacks)


def run(cfg: DictConfig, callbacks: tuple[Any, ...]) -> Any:
    from hydra.core.hydra_config import HydraConfig

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    (run_dir / "job.json").write_text(json.dumps({"pid": os.getpid(), "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"),
                                                  "max_threads": os.environ.get("MNISTFW_MAX_THREADS")}))
    if cfg.fail_if is not None and str(cfg.act) == str(cfg.fail_if):
        raise ValueError(f"act={cfg.act} is a bad combination")
    value = 0.0
    for epoch in range(int(cfg.epochs)):
        value = score(cfg, epoch)
        with (run_dir / "epochs.txt").open("a") as fh:
            fh.write(f"{epoch}\n")
        if cfg.sleep:
            time.sleep(float(cfg.sleep))
        for callback in callbacks:
            callback(epoch, {"val/score": value})
    if cfg.nan:
        return float("nan")
    if cfg.multi:
        return [value, float(cfg.x)]
    return value


main = hydra.main(version_base="1.3", config_path=str(Path(__file__).resolve().parent / "conf"),
                  config_name="config")(Task())


if __name__ == "__main__":
    from mnistfw.errors import MnistfwError

    os.environ.setdefault("HYDRA_FULL_ERROR", "1")  # let the sweep's error reach this handler
    try:
        main()
    except MnistfwError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
