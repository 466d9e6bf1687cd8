"""Data pipeline: sources (IDX, CSV, bundled sample) -> split -> scale -> :class:`Dataset`."""

from mnistfw.data.data_settings import DataConfig, SplitConfig
from mnistfw.data.dataset import DataInfo, Dataset, Preprocessing, Split
from mnistfw.data.loading import load_dataset

__all__ = ["DataConfig", "DataInfo", "Dataset", "Preprocessing", "Split", "SplitConfig", "load_dataset"]
