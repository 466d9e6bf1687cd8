"""Data pipeline: sources (IDX, CSV, bundled sample) -> split -> scale -> :class:`Dataset`."""

from mnistfw.data.dataset import DataInfo, Dataset, Preprocessing, Split

__all__ = ["DataInfo", "Dataset", "Preprocessing", "Split"]
