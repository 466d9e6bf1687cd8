"""Lightning callbacks used by the backend."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

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


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written through :func:`mnistfw.io.atomic_path` in their own folder.

    Lightning's default writes to the system's temporary folder and then copies across
    filesystems, which leaves a torn ``.ckpt`` behind when the disk fills up mid-copy.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        from mnistfw.io import write_bytes

        write_bytes(Path(path), torch_bytes(checkpoint))


def torch_bytes(obj: Any) -> bytes:
    """``torch.save`` into memory: written with :func:`mnistfw.io.write_bytes`, a full disk is a plain
    OSError (torch's own file writer turns it into an unrelated C++ error)."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()
