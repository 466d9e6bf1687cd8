"""Schema of the ``data`` config group (``configs/data/*.yaml``).

The top-level validator checks the composed ``cfg.data`` with
``validate_section(cfg.data, DataConfig, "data", f"data={cfg.data.name}")``; unknown keys and
wrong types are caught there, value ranges in the ``__post_init__`` methods below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mnistfw.config.validation import require

SOURCES = ("auto", "full", "sample", "csv")

_AMOUNT_HELP = "a count (positive integer, e.g. 5000), a fraction in (0, 1) (e.g. 0.1) or null"
_VAL_HELP = "a count (positive integer, e.g. 5000) or a fraction in (0, 1) (e.g. 0.1)"


def is_fraction(value: Any) -> bool:
    """True for a float split amount (a share of the pool), False for a count or null."""
    return isinstance(value, float)


def _valid_amount(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value > 0
    if isinstance(value, float):
        return 0.0 < value < 1.0
    return False


@dataclass
class SplitConfig:
    """Sizes of the splits, each a count or a fraction of the pool (the official training set).

    ``train: null`` takes everything left after val (and test); ``test: null`` uses the
    source's own test set (MNIST's official 10,000), a count or fraction carves the test
    split out of the pool instead.
    """

    train: Any = None
    val: Any = 5000
    test: Any = None

    def __post_init__(self) -> None:
        for key in ("train", "val", "test"):
            value = getattr(self, key)
            if key == "val":  # a validation set is always needed (early stopping, pruning, objective)
                require(value is not None and _valid_amount(value), "split.val", f"must be {_VAL_HELP}; got {value!r}")
            else:
                require(_valid_amount(value), f"split.{key}", f"must be {_AMOUNT_HELP}; got {value!r}")
        fractions = [v for v in (self.train, self.val, self.test) if is_fraction(v)]
        total = sum(fractions)
        if self.train is None:
            require(total < 1.0, "split", f"val + test fractions add up to {total:g}; leave room for train (< 1)")
        else:
            require(total <= 1.0 + 1e-9, "split", f"fractions add up to {total:g}; at most 1 is allowed")


@dataclass
class DataConfig:
    """Where the data comes from and how it is split and scaled."""

    # Dataset name: mnist and fashion_mnist have known files, checksums and mirrors.
    name: str = "mnist"
    # auto: full set, else the bundled sample | full: full set or fail | sample | csv
    source: str = "auto"
    # Folder with the four IDX files (null: $MNISTFW_DATA_DIR/<dataset folder> or ./data/<folder>).
    dir: str | None = None
    # Download missing IDX files from the mirrors (checksums verified).
    download: bool = True
    # Base URLs to download from, tried in order (null: the standard public mirrors).
    mirrors: list[str] | None = None
    split: SplitConfig = field(default_factory=SplitConfig)
    # Shuffle the pool (seeded by the top-level ``seed``) before splitting.
    shuffle: bool = True
    # Subtract the training-set mean and divide by its std, per pixel, after scaling to [0, 1].
    standardize: bool = False
    # Smallest std used by ``standardize`` (pixels that hardly vary are not blown up).
    std_floor: float = 0.1
    # Keep only this many training rows (null = all).
    limit_train: int | None = None
    # CSV source: file with a label column and one column per pixel; optional separate test file.
    path: str | None = None
    test_path: str | None = None
    label_column: str = "label"
    # CSV source: image height and width (null: square, from the number of pixel columns).
    image_shape: list[int] | None = None
    # Number of classes: labels must be integers 0..n_classes-1 (CSV files and IDX sets other
    # than mnist / fashion_mnist, which have their own ten).
    n_classes: int = 10

    def __post_init__(self) -> None:
        require(self.source in SOURCES, "source", f"must be one of {', '.join(SOURCES)}; got {self.source!r}")
        require(bool(self.name), "name", "must be a non-empty name, e.g. mnist")
        if self.source == "csv":
            require(
                bool(self.path),
                "path",
                "source=csv needs a CSV file with a label column and one column per pixel, e.g. data.path=train.csv",
            )
        if self.mirrors is not None:
            require(
                len(self.mirrors) > 0 and all(str(m).strip() for m in self.mirrors),
                "mirrors",
                "must be a non-empty list of base URLs (or null for the standard mirrors)",
            )
        require(self.std_floor > 0, "std_floor", f"must be > 0 (e.g. 0.1); got {self.std_floor!r}")
        require(
            self.limit_train is None or self.limit_train > 0,
            "limit_train",
            f"must be a positive count or null (all); got {self.limit_train!r}",
        )
        if self.image_shape is not None:
            require(
                len(self.image_shape) == 2 and all(int(v) > 0 for v in self.image_shape),
                "image_shape",
                f"must be [height, width] with positive sizes, e.g. [28, 28]; got {list(self.image_shape)!r}",
            )
        require(bool(self.label_column), "label_column", "must name the CSV column holding the labels")
        require(
            not isinstance(self.n_classes, bool) and isinstance(self.n_classes, int) and self.n_classes >= 2,
            "n_classes",
            f"must be the number of classes, an integer >= 2 (e.g. 10); got {self.n_classes!r}",
        )
