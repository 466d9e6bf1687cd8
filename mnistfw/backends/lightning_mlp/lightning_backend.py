"""Adapter from the mnistfw backend protocol to Lightning (torch is imported only when used).

The ``model`` section describes the network; the shared ``trainer`` settings become Lightning's
``Trainer`` arguments one for one, the ``optimizer``/``scheduler`` settings the module's
optimiser and schedule. The run's trackers (``logger``) are fed through ``on_epoch_end`` as for
every backend, so the Trainer itself logs nowhere.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from mnistfw.backends.base import Backend, EpochCallback, History, RunContext
from mnistfw.backends.lightning_mlp.lightning_settings import LightningMLPSettings
from mnistfw.backends.threads import AUTO, ThreadGovernor, usable_cores
from mnistfw.config.vocabulary import LIGHTNING_TRAINER_KEYS, SHARED_TRAINER_KEYS, Reads, Training
from mnistfw.data.dataset import Dataset
from mnistfw.errors import ConfigError, ModelFormatError

log = logging.getLogger(__name__)

WEIGHTS_FILE = "model.pt"


class LightningMLPBackend(Backend):
    """An MLP trained by a Lightning ``Trainer``: checkpoints, early stopping, loggers, resume."""

    name: ClassVar[str] = "lightning_mlp"
    settings_schema: ClassVar[type] = LightningMLPSettings
    reads: ClassVar[Reads] = Reads(
        trainer=SHARED_TRAINER_KEYS | LIGHTNING_TRAINER_KEYS,
        optimizers=("sgd", "adam", "adamw", "rmsprop"),
        schedulers=("none", "cosine", "step", "exponential", "plateau", "onecycle"),
        sections=frozenset({"ckpt_path"}),
    )
    heavy_modules: ClassVar[tuple[str, ...]] = ("mnistfw.backends.lightning_mlp.lightning_module",)

    def __init__(self, settings: LightningMLPSettings, context: RunContext, **sections: Any) -> None:
        super().__init__(settings, context, **sections)
        self.net: Any = None
        self.architecture: dict[str, Any] = {}
        self._threads_chosen = False

    # -- training -------------------------------------------------------------------------
    def fit(self, data: Dataset, on_epoch_end: EpochCallback) -> History:
        import pytorch_lightning as pl
        import torch

        from mnistfw.backends.lightning_mlp.lightning_module import (
            MLPModule,
            RandomAffine,
            StepBatches,
            TensorBatches,
        )

        _quiet_lightning()
        training, s, seed = self.context.train, self.settings, self.context.seed
        t = training.trainer
        if self.context.resume_from is not None:
            _check_checkpoint(self.context.resume_from)
        pl.seed_everything(seed, workers=True, verbose=False)
        # Before the first parallel region, so that torch's worker threads inherit it.
        if not torch.set_flush_denormal(t.flush_denormal) and t.flush_denormal:
            log.info("trainer.flush_denormal: this CPU cannot flush denormals to zero; they are kept")
        governor = ThreadGovernor(t.num_threads, torch.set_num_threads, cap=_ddp_thread_cap(t))
        self._threads_chosen = True
        batch = t.batch_size or len(data.train)
        # limit_train_batches counts mini-batches here, whatever trainer.batches_per_step is.
        train = TensorBatches(torch.from_numpy(data.train.x), torch.from_numpy(data.train.y), batch, shuffle=True,
                              seed=seed, limit=t.limit_train_batches)
        # Every rank validates on all rows: the metrics agree on every rank without a reduction.
        val = TensorBatches(torch.from_numpy(data.val.x), torch.from_numpy(data.val.y), 1024, shuffle=False,
                            shard=False)
        self.architecture = {
            "n_features": data.info.n_features,
            "n_classes": data.info.n_classes,
            "hidden": list(s.hidden),
            "activation": s.activation,
            "batch_norm": s.batch_norm,
            "dropout": s.dropout,
        }
        module = MLPModule(
            **self.architecture,
            optimizer=asdict(training.optimizer),
            scheduler=asdict(training.scheduler),
            max_epochs=t.max_epochs,
            steps_per_epoch=len(train),  # optimiser steps: mini-batches, not Lightning's training steps
            gradient_clip_val=t.gradient_clip_val,
            max_norm=s.max_norm,
            init=s.init,
        )
        module.epoch_callback = governor.wrap(on_epoch_end)
        if s.augment.enabled:
            module.augment = RandomAffine(
                data.info.image_shape, s.augment.shift, s.augment.rotation, s.augment.scale,
                data.preprocessing.mean, data.preprocessing.std,
            )
        from mnistfw.backends.lightning_mlp.callbacks import AtomicCheckpointIO

        trainer = pl.Trainer(
            plugins=[AtomicCheckpointIO()],
            callbacks=self._callbacks(training),
            logger=False,  # the run's trackers get every epoch through on_epoch_end
            default_root_dir=str(self.context.run_dir) if self.context.run_dir else None,
            enable_model_summary=False,
            enable_checkpointing=self.context.run_dir is not None,
            **self._trainer_kwargs(training),
        )
        resume = str(self.context.resume_from) if self.context.resume_from else None
        try:
            trainer.fit(module, train_dataloaders=StepBatches(train, t.batches_per_step), val_dataloaders=val,
                        ckpt_path=resume)
        except SystemExit:
            # Lightning turns Ctrl-C into exit(1) after its clean-up; give it back its meaning.
            if any(getattr(cb, "interrupted", False) for cb in trainer.callbacks):
                raise KeyboardInterrupt from None
            raise
        self._restore_best(module, trainer)
        self.net = module.net.cpu().eval()
        return module.history

    @staticmethod
    def _trainer_kwargs(training: Training) -> dict[str, Any]:
        """Lightning ``Trainer`` arguments from the shared ``trainer`` settings."""
        t = training.trainer
        return {
            "accelerator": t.accelerator,
            "devices": t.devices,
            "strategy": t.strategy,
            "num_nodes": t.num_nodes,
            "precision": t.precision,
            "max_epochs": t.max_epochs,
            "min_epochs": t.min_epochs,
            "check_val_every_n_epoch": t.check_val_every_n_epoch,
            "limit_train_batches": 1.0,  # applied by the batch iterator, in mini-batches (see fit)
            "limit_val_batches": 1.0 if t.limit_val_batches is None else t.limit_val_batches,
            "deterministic": t.deterministic,
            "enable_progress_bar": _progress_bar(t),
            "num_sanity_val_steps": t.num_sanity_val_steps,
        }

    def _callbacks(self, training: Training) -> list[Any]:
        from pytorch_lightning.callbacks import ModelCheckpoint, TQDMProgressBar

        from mnistfw.backends.lightning_mlp.callbacks import SaveOnInterrupt

        t = training.trainer
        callbacks: list[Any] = []
        if _progress_bar(t):
            callbacks.append(TQDMProgressBar(refresh_rate=20))
        if self.context.run_dir is not None:
            ckpt_dir = self.context.run_dir / "checkpoints"
            monitor = t.checkpoint.monitor
            callbacks.append(
                ModelCheckpoint(
                    dirpath=ckpt_dir,
                    filename="best-{epoch:02d}" if monitor else "epoch-{epoch:02d}",
                    monitor=monitor,
                    mode=t.checkpoint.mode or "max",
                    save_top_k=1,
                    save_last=True,
                    auto_insert_metric_name=False,
                )
            )
            callbacks.append(SaveOnInterrupt(ckpt_dir / "last.ckpt"))
        return callbacks

    def _restore_best(self, module: Any, trainer: Any) -> None:
        import torch

        if not self.context.train.trainer.checkpoint.monitor or trainer.checkpoint_callback is None:
            return
        best = getattr(trainer.checkpoint_callback, "best_model_path", "")
        if best and Path(best).is_file():
            state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
            module.load_state_dict(state)
            log.info("restored best checkpoint %s", best)

    # -- inference and persistence -----------------------------------------------------------
    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        from mnistfw.backends.lightning_mlp.lightning_module import predict_proba

        if self.net is None:
            raise RuntimeError("model is not trained or loaded")
        if not self._threads_chosen:  # a loaded model (mnistfw-eval, -predict): the idle cores, once
            import torch

            ThreadGovernor(AUTO, torch.set_num_threads)
            self._threads_chosen = True
        return predict_proba(self.net, x)

    def save(self, directory: Path) -> dict[str, Any]:
        from mnistfw.backends.lightning_mlp.callbacks import torch_bytes
        from mnistfw.io import write_bytes

        write_bytes(Path(directory) / WEIGHTS_FILE, torch_bytes(self.net.state_dict()))
        return dict(self.architecture)

    def restore(self, directory: Path, architecture: dict[str, Any]) -> None:
        import torch

        from mnistfw.backends.lightning_mlp.lightning_module import build_mlp

        path = Path(directory) / WEIGHTS_FILE
        if not path.is_file():
            raise ModelFormatError(f"{directory} has no {WEIGHTS_FILE}; it is not a lightning_mlp model folder")
        s = self.settings
        try:
            net = build_mlp(int(architecture["n_features"]), int(architecture["n_classes"]), list(s.hidden),
                            s.activation, s.batch_norm, s.dropout, s.init)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFormatError(f"{directory}/mnistfw_model.json: the architecture is incomplete ({exc!r}); "
                                   "re-train or restore the run") from None
        if path.stat().st_size == 0:
            raise ModelFormatError(f"{path} is empty (an interrupted copy?); restore the run folder or re-train")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unpickling error means the file is not plain tensors
            unsafe = "weights_only" in str(exc) or "Unsupported global" in str(exc)
            reason = ("it holds Python objects besides tensors, which mnistfw never unpickles"
                      if unsafe else f"{type(exc).__name__}: {_first_line(exc)}")
            raise ModelFormatError(f"{path} is not a plain lightning_mlp weights file ({reason}); "
                                   "re-train or restore the run") from None
        try:
            net.load_state_dict(state)
        except Exception as exc:  # noqa: BLE001 - a shape or key mismatch
            raise ModelFormatError(f"{path} does not match the saved lightning_mlp architecture "
                                   f"({type(exc).__name__}: {_first_line(exc)}); re-train or restore the run") from None
        self.net = net.eval()
        self.architecture = dict(architecture)

    def first_layer_weights(self) -> np.ndarray | None:
        if self.net is None:
            return None
        return self.net[0].weight.detach().cpu().numpy().T.copy()

    def n_parameters(self) -> int | None:
        return None if self.net is None else sum(int(p.numel()) for p in self.net.parameters() if p.requires_grad)


def _progress_bar(t: Any) -> bool:
    """Lightning's progress bar when asked for and stderr is a terminal (not into log files)."""
    import sys

    return bool(t.enable_progress_bar) and sys.stderr.isatty()


def _ddp_thread_cap(t: Any) -> int | None:
    """Cores per process when DDP runs several processes on this machine (None: no cap)."""
    if not str(t.strategy).startswith("ddp") or str(t.accelerator) not in ("cpu", "auto"):
        return None
    try:
        per_node = int(t.devices)
    except (TypeError, ValueError):
        return None
    return max(1, usable_cores() // max(1, per_node))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _quiet_lightning() -> None:
    """Drop Lightning's start-up chatter (tips, "GPU available: False") and known-noise warnings."""
    logging.getLogger("pytorch_lightning.utilities.rank_zero").setLevel(logging.WARNING)
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*`check_val_every_n_epoch`.*")


def _check_checkpoint(path: Path) -> None:
    """Fail clearly on a missing or foreign checkpoint before Lightning's long traceback."""
    import torch

    if not path.is_file():
        raise ConfigError(f"ckpt_path: {path} does not exist; use <run>/checkpoints/last.ckpt of an earlier run")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise ModelFormatError(
            f"ckpt_path: {path} is not a readable Lightning checkpoint ({type(exc).__name__}); "
            "pass a .ckpt written by mnistfw-train with model=lightning_mlp"
        ) from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "pytorch-lightning_version" not in ckpt:
        raise ModelFormatError(
            f"ckpt_path: {path} is not a Lightning checkpoint; pass a .ckpt written by mnistfw-train "
            "with model=lightning_mlp"
        )
