"""The in-memory dataset every backend, evaluator and visualizer receives."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass
class Preprocessing:
    """How raw pixels (0-255) become model inputs: ``x = (raw * scale - mean) / std``.

    Saved next to every model so that ``mnistfw-eval`` and ``mnistfw-predict`` feed a
    reloaded model exactly what it was trained on.
    """

    scale: float = 1.0 / 255.0
    mean: list[float] | None = None
    std: list[float] | None = None

    def apply(self, raw: np.ndarray) -> np.ndarray:
        """Map raw pixel rows ``(n, n_features)`` (any numeric dtype, 0-255) to float32 inputs."""
        x = np.asarray(raw, dtype=np.float32).reshape(len(raw), -1) * np.float32(self.scale)
        if self.mean is not None and self.std is not None:
            x -= np.asarray(self.mean, dtype=np.float32)
            x /= np.asarray(self.std, dtype=np.float32)
        return x

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocessing:
        return cls(scale=float(d.get("scale", 1 / 255)), mean=d.get("mean"), std=d.get("std"))


@dataclass
class Split:
    """One split: model inputs ``x`` (float32, ``(n, n_features)``), labels ``y`` (int64)
    and the raw ``images`` (uint8, ``(n, h, w)``) for plots."""

    x: np.ndarray
    y: np.ndarray
    images: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class DataInfo:
    """Where the data came from and its shape; recorded in ``metrics.json``."""

    name: str
    source: str
    image_shape: tuple[int, int]
    n_classes: int
    class_names: list[str]
    sizes: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def n_features(self) -> int:
        return int(self.image_shape[0] * self.image_shape[1])

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["image_shape"] = list(self.image_shape)
        return d


@dataclass
class Dataset:
    """Train/val/test splits plus :class:`DataInfo` and the :class:`Preprocessing` used."""

    train: Split
    val: Split
    test: Split
    info: DataInfo
    preprocessing: Preprocessing

    def split(self, name: str) -> Split:
        """Return the split called ``train``, ``val`` or ``test``."""
        if name not in ("train", "val", "test"):
            raise KeyError(f"unknown split {name!r}; use train, val or test")
        return getattr(self, name)
