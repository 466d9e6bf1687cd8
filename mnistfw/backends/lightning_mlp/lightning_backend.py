"""Adapter from the mnistfw backend protocol to Lightning (torch is imported only when used)."""

from __future__ import annotations

import logging
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from mnistfw.backends.base import Backend, EpochCallback, History
from mnistfw.backends.lightning_mlp.lightning_settings import LightningMLPConfig
from mnistfw.config.validation import validate_section
from mnistfw.data.dataset import Dataset
from mnistfw.errors import ConfigError, ModelFormatError

log = logging.getLogger(__name__)

WEIGHTS_FILE = "model.pt"


class LightningMLPBackend(Backend):
    """An MLP trained by a Lightning ``Trainer``: checkpoints, early stopping, loggers, resume."""

    name = "lightning_mlp"
    config_schema = LightningMLPConfig

    def __init__(self, cfg: Any, run_dir: Path | None = None) -> None:
        super().__init__(cfg, run_dir)
        self.model_cfg: LightningMLPConfig = validate_section(
            cfg.model, LightningMLPConfig, "model", "model=lightning_mlp"
        )
        self.net: Any = None
        self.architecture: dict[str, Any] = {}

    # -- training -------------------------------------------------------------------------
    def fit(self, data: Dataset, on_epoch_end: EpochCallback) -> History:
        import pytorch_lightning as pl
        import torch

        from mnistfw.backends.lightning_mlp.lightning_module import MLPModule, RandomAffine, TensorBatches

        _quiet_lightning()
        mc, tc = self.model_cfg, self.cfg.trainer
        seed = int(self.cfg.seed)
        pl.seed_everything(seed, workers=True, verbose=False)
        if tc.get("num_threads"):
            torch.set_num_threads(int(tc.num_threads))
        train = TensorBatches(
            torch.from_numpy(data.train.x), torch.from_numpy(data.train.y), mc.batch_size, shuffle=True, seed=seed
        )
        val = TensorBatches(torch.from_numpy(data.val.x), torch.from_numpy(data.val.y), 1024, shuffle=False)
        self.architecture = {
            "n_features": data.info.n_features,
            "n_classes": data.info.n_classes,
            "hidden": list(mc.hidden),
            "activation": mc.activation,
            "batch_norm": mc.batch_norm,
            "dropout": mc.dropout,
        }
        module = MLPModule(
            **self.architecture,
            optimizer=asdict(mc.optimizer),
            scheduler=asdict(mc.scheduler),
            max_epochs=int(tc.max_epochs),
            steps_per_epoch=len(train),
            gradient_clip_val=tc.get("gradient_clip_val"),
        )
        module.epoch_callback = on_epoch_end
        if mc.augment.enabled:
            module.augment = RandomAffine(
                data.info.image_shape, mc.augment.shift, mc.augment.rotation, mc.augment.scale,
                data.preprocessing.mean, data.preprocessing.std,
            )
        trainer = pl.Trainer(
            callbacks=self._callbacks(),
            logger=self._loggers(),
            default_root_dir=str(self.run_dir) if self.run_dir else None,
            enable_model_summary=False,
            enable_checkpointing=self.run_dir is not None,
            **{**self._trainer_kwargs(), "log_every_n_steps": min(int(tc.get("log_every_n_steps", 50)), len(train))},
        )
        ckpt_path = self.cfg.get("ckpt_path")
        if ckpt_path:
            _check_checkpoint(Path(ckpt_path))
        trainer.fit(module, train_dataloaders=train, val_dataloaders=val, ckpt_path=ckpt_path or None)
        self._restore_best(module, trainer)
        self.net = module.net.cpu().eval()
        return module.history

    def _trainer_kwargs(self) -> dict[str, Any]:
        tc = self.cfg.trainer
        kwargs: dict[str, Any] = {
            "accelerator": tc.accelerator,
            "devices": tc.devices,
            "precision": tc.precision,
            "max_epochs": int(tc.max_epochs),
            "min_epochs": int(tc.get("min_epochs") or 1),
            "limit_train_batches": tc.limit_train_batches,
            "limit_val_batches": tc.limit_val_batches,
            "deterministic": tc.get("deterministic", False),
            "log_every_n_steps": int(tc.get("log_every_n_steps", 50)),
            "enable_progress_bar": bool(tc.get("enable_progress_bar", True)),
            "num_sanity_val_steps": int(tc.get("num_sanity_val_steps", 0)),
        }
        if tc.get("strategy"):
            kwargs["strategy"] = tc.strategy
        if int(tc.max_epochs) < 1:
            raise ConfigError(f"trainer.max_epochs: must be >= 1, got {tc.max_epochs}")
        return kwargs

    def _callbacks(self) -> list[Any]:
        from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint, TQDMProgressBar

        from mnistfw.backends.lightning_mlp.callbacks import SaveOnInterrupt

        mc = self.model_cfg
        callbacks: list[Any] = []
        if self.cfg.trainer.get("enable_progress_bar", True):
            callbacks.append(TQDMProgressBar(refresh_rate=20))
        if self.run_dir is not None:
            ckpt_dir = self.run_dir / "checkpoints"
            callbacks.append(
                ModelCheckpoint(
                    dirpath=ckpt_dir,
                    filename="best-{epoch:02d}",
                    monitor=mc.checkpoint.monitor,
                    mode=mc.checkpoint.mode,
                    save_top_k=1,
                    save_last=True,
                    auto_insert_metric_name=False,
                )
            )
            callbacks.append(SaveOnInterrupt(ckpt_dir / "last.ckpt"))
        es = mc.early_stopping
        if es.patience:
            callbacks.append(EarlyStopping(monitor=es.monitor, mode=es.mode, patience=es.patience))
        return callbacks

    def _loggers(self) -> list[Any] | bool:
        if self.run_dir is None:
            return False
        from mnistfw.backends.lightning_mlp.loggers import build_loggers

        return build_loggers(self.cfg.get("logger") or {}) or False

    @staticmethod
    def _restore_best(module: Any, trainer: Any) -> None:
        import torch

        best = getattr(trainer.checkpoint_callback, "best_model_path", "") if trainer.checkpoint_callback else ""
        if best and Path(best).is_file():
            state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
            module.load_state_dict(state)
            log.info("restored best checkpoint %s", best)

    # -- inference and persistence -----------------------------------------------------------
    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        from mnistfw.backends.lightning_mlp.lightning_module import predict_proba

        if self.net is None:
            raise RuntimeError("model is not trained or loaded")
        return predict_proba(self.net, x)

    def save(self, directory: Path) -> dict[str, Any]:
        import torch

        torch.save(self.net.state_dict(), directory / WEIGHTS_FILE)
        return dict(self.architecture)

    @classmethod
    def load(cls, directory: Path, meta: dict[str, Any]) -> LightningMLPBackend:
        import torch

        from mnistfw.backends.lightning_mlp.lightning_module import build_mlp

        path = Path(directory) / WEIGHTS_FILE
        if not path.is_file():
            raise ModelFormatError(f"{directory} has no {WEIGHTS_FILE}; it is not a lightning_mlp model folder")
        arch = meta["architecture"]
        net = build_mlp(
            arch["n_features"], arch["n_classes"], arch["hidden"], arch["activation"], arch["batch_norm"],
            arch["dropout"],
        )
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            net.load_state_dict(state)
        except Exception as exc:  # noqa: BLE001 - any unpickling/shape error means a bad file
            raise ModelFormatError(
                f"{path} does not match the saved lightning_mlp architecture ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0]}); re-train or restore the run"
            ) from exc
        obj = cls.__new__(cls)
        obj.cfg, obj.run_dir, obj.net, obj.architecture = None, None, net.eval(), dict(arch)
        return obj

    def first_layer_weights(self) -> np.ndarray | None:
        if self.net is None:
            return None
        return self.net[0].weight.detach().cpu().numpy().T.copy()


def _quiet_lightning() -> None:
    """Drop Lightning's start-up chatter (tips, "GPU available: False") and known-noise warnings."""
    logging.getLogger("pytorch_lightning.utilities.rank_zero").setLevel(logging.WARNING)
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")


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
        ) from exc
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "pytorch-lightning_version" not in ckpt:
        raise ModelFormatError(
            f"ckpt_path: {path} is not a Lightning checkpoint; pass a .ckpt written by mnistfw-train "
            "with model=lightning_mlp"
        )
