"""CSV source: a header row, a label column and one column per pixel (the common Kaggle layout)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mnistfw.errors import DataError

if TYPE_CHECKING:
    import pandas as pd


def read_csv(
    path: Path,
    label_column: str = "label",
    image_shape: tuple[int, int] | None = None,
    key: str = "data.path",
    n_classes: int = 10,
) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Images ``uint8 (n, h, w)``, labels ``int64 (n,)`` and the image shape from a labelled CSV file.

    ``image_shape`` (h, w) must match the number of pixel columns; ``None`` takes a square.
    Labels must be integers ``0..n_classes-1``, pixels integers 0-255. ``key`` is the config
    key that named the file, used in messages; every problem is one line naming the file, line and column.
    """
    frame = _read_frame(path, key)
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    if label_column not in columns:
        hint = ""
        if _looks_numeric(columns):
            hint = " The first row looks like data: the file needs a header row (e.g. label,pixel0,pixel1,...)."
        shown = ", ".join(columns[:4]) + (", ..." if len(columns) > 4 else "")
        raise DataError(
            f"{path}: no label column {label_column!r} (columns: {shown}). Set data.label_column to "
            f"the column that holds the labels; a file without labels (like Kaggle's test.csv) "
            f"cannot be used.{hint}"
        )
    pixel_columns = [c for c in columns if c != label_column]
    h, w = _image_shape(path, len(pixel_columns), image_shape)
    _check_numeric(path, frame)
    table = frame.to_numpy()  # one block: much faster than selecting hundreds of columns by name
    if table.dtype == object:  # numbers pandas kept as text (e.g. quoted)
        table = table.astype(np.float64)
    label_at = columns.index(label_column)
    labels = _checked_labels(path, table[:, label_at].astype(np.float64), label_column, n_classes)
    pixels = np.delete(table, label_at, axis=1) if label_at else table[:, 1:]
    _check_pixels(path, pixels, pixel_columns)
    return pixels.astype(np.uint8).reshape(-1, h, w), labels, (h, w)


def _read_frame(path: Path, key: str) -> pd.DataFrame:
    """The CSV as a pandas DataFrame with at least one row; a missing, empty or unreadable file is one line."""
    import pandas as pd

    if not path.exists():
        raise DataError(f"{key}: CSV file {path} not found; give the path of a CSV with a label column")
    if not path.is_file():
        raise DataError(f"{key}: {path} is a folder, not a CSV file; give the path of a CSV with a label column")
    try:
        if path.stat().st_size == 0:
            raise DataError(f"{path}: the file is empty; a CSV needs a header row (label,pixel0,...) and data rows")
        # Only an empty cell is missing: text like "NaN" or "NA" is reported as the non-number it is.
        frame = pd.read_csv(path, low_memory=False, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: not a readable CSV file ({first})") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc}); check the file and its permissions") from None
    if len(frame) == 0:
        raise DataError(f"{path}: the CSV has a header but no rows")
    return frame


def _image_shape(path: Path, n_pixels: int, image_shape: tuple[int, int] | None) -> tuple[int, int]:
    """``image_shape`` checked against the number of pixel columns (``None``: a square)."""
    if image_shape is None:
        side = math.isqrt(n_pixels)
        if side * side != n_pixels or side == 0:
            raise DataError(
                f"{path}: {n_pixels} pixel columns do not make a square image; set data.image_shape=[height,width]"
            )
        return side, side
    h, w = (int(v) for v in image_shape)
    if h * w != n_pixels:
        raise DataError(
            f"{path}: {n_pixels} pixel columns, but data.image_shape [{h}, {w}] needs {h * w}; "
            f"fix data.image_shape or the file"
        )
    return h, w


def _checked_labels(path: Path, labels: np.ndarray, label_column: str, n_classes: int) -> np.ndarray:
    """The labels as int64, refusing the first that is not a class number below ``n_classes``."""
    bad_labels = ~((labels >= 0) & (labels < n_classes) & (labels == np.round(labels)))  # NaN fails too
    if bad_labels.any():
        row = int(np.argmax(bad_labels))
        raise DataError(
            f"{path}: label {labels[row]:g} in column {label_column!r}, line {row + 2}: labels must be class numbers "
            f"0-{n_classes - 1} (integers below data.n_classes={n_classes}); fix the file, or raise data.n_classes"
        )
    return labels.astype(np.int64)


def _check_pixels(path: Path, pixels: np.ndarray, pixel_columns: list[str]) -> None:
    """Refuse the first pixel that is not an integer 0-255, naming its line and column."""
    if pixels.dtype.kind in "iu" and pixels.min() >= 0 and pixels.max() <= 255:
        return
    bad = (pixels < 0) | (pixels > 255) | (pixels != np.round(pixels))
    if bad.any():
        row, col = (int(v) for v in np.argwhere(bad)[0])
        raise DataError(
            f"{path}: pixel value {float(pixels[row, col]):g} in column {pixel_columns[col]!r}, "
            f"line {row + 2}: pixels must be integers 0-255 (raw intensities)"
        )


def _looks_numeric(names: list[str]) -> bool:
    try:
        [float(n) for n in names[:5]]
    except ValueError:
        return False
    return True


def _check_numeric(path: Path, frame: pd.DataFrame) -> None:
    """Raise naming the first empty or non-numeric cell."""
    import pandas as pd

    for column in frame.columns:
        series = frame[column]
        if series.dtype.kind in "biuf" and not series.isna().any():
            continue
        numeric = pd.to_numeric(series, errors="coerce")
        bad = numeric.isna()
        if bad.any():
            row = int(np.argmax(bad.to_numpy()))
            value = series.iloc[row]
            what = "an empty cell" if pd.isna(value) else f"non-numeric value {str(value)[:40]!r}"
            cells = frame.iloc[row]
            at = list(frame.columns).index(column)
            if pd.isna(value) and at and cells.iloc[at:].isna().all():
                raise DataError(
                    f"{path}: line {row + 2} has {at} values but the header names {len(cells)} columns "
                    f"(from column {column!r} on the row is missing); every row needs a value per column"
                )
            raise DataError(f"{path}: {what} in column {column!r}, line {row + 2}; every cell must be a number")
