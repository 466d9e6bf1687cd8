"""Lightning callbacks used by the backend."""

from __future__ import annotations

import logging
from pathlib import Path

import pytorch_lightning as pl

log = logging.getLogger(__name__)


class SaveOnInterrupt(pl.Callback):
    """On Ctrl-C, write a last checkpoint so ``ckpt_path=<it>`` resumes the run."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        #: Set when Ctrl-C stopped the fit (Lightning then exits with status 1 instead of raising).
        self.interrupted = False

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, KeyboardInterrupt):
            self.interrupted = True
            self.path.parent.mkdir(parents=True, exist_ok=True)
            trainer.save_checkpoint(self.path)
            log.warning("interrupted: saved %s; resume with ckpt_path=%s", self.path, self.path)
