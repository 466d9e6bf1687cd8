"""``logger=tensorboard``: scalars per epoch, the config as text, the plots as images."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from mnistfw.trackers.tracker import TrackedRun, Tracker


class TensorBoardTracker(Tracker):
    """Event files in ``save_dir`` (``tensorboard --logdir <run>/tensorboard``)."""

    requires: ClassVar[dict[str, str]] = {"tensorboard": "mnistfw[tensorboard]"}

    def __init__(self, save_dir: str) -> None:
        super().__init__()
        self.save_dir = Path(save_dir)
        self.writer: Any = None
        self.last_step = 0

    def start(self, run: TrackedRun) -> None:
        import yaml
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(self.save_dir))
        self.writer.add_text("config", "```\n" + yaml.safe_dump(dict(run.config), sort_keys=False) + "\n```", 0)
        self.writer.add_text("backend", run.backend, 0)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)
        self.last_step = step
        self.writer.flush()

    def finish(self, metrics: Mapping[str, float], files: Sequence[Path], status: str) -> None:
        if self.writer is None:
            return
        for key, value in metrics.items():
            self.writer.add_scalar(f"final/{key}", value, self.last_step)
        for path in files:
            if path.suffix == ".png":
                self._add_png(path)
            elif path.suffix == ".json":
                self.writer.add_text(path.name, "```\n" + json.dumps(json.loads(path.read_text()), indent=1)[:60000]
                                     + "\n```", self.last_step)
        self.writer.add_text("status", status, self.last_step)
        self.writer.close()

    def _add_png(self, path: Path) -> None:
        import numpy as np
        from PIL import Image

        with Image.open(path) as img:
            pixels = np.asarray(img.convert("RGB"))
        self.writer.add_image(f"plots/{path.stem}", pixels, self.last_step, dataformats="HWC")
