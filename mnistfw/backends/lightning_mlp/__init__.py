"""PyTorch Lightning MLP backend (``model=lightning_mlp``)."""

from mnistfw.backends.lightning_mlp.lightning_backend import LightningMLPBackend

__all__ = ["LightningMLPBackend"]
