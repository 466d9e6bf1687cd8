"""Read and write IDX files (the MNIST format), gzip-compressed or raw.

An images file is a big-endian int32 magic 2051, then count, rows and columns, then one
unsigned byte per pixel; a labels file is magic 2049, then count, then one byte per label.
Every structural problem is a one-line :class:`DataError` naming the file and the fix.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np

from mnistfw.errors import DataError
from mnistfw.io import publish

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
_KIND = {IMAGES_MAGIC: "images", LABELS_MAGIC: "labels"}
_FIX = "delete it and download it again"


def _read_bytes(path: Path) -> bytes:
    """The decompressed content of ``path`` (gzip when it starts with the gzip magic)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        # One zlib call is the fastest path for the usual single-member file.
        d = zlib.decompressobj(wbits=31)
        out = d.decompress(data)
        if d.eof and not d.unused_data:
            return out
        if not d.eof:
            raise EOFError("compressed data ended before the end-of-stream marker")
        return gzip.decompress(data)  # several gzip members
    except (EOFError, zlib.error, gzip.BadGzipFile, OSError) as exc:
        raise DataError(f"{path}: truncated or corrupt gzip file ({exc}); {_FIX}") from None


def _header(path: Path, data: bytes, magic: int, ndim: int) -> tuple[int, ...]:
    size = 4 + 4 * ndim
    if len(data) >= 4:
        (found,) = struct.unpack(">i", data[:4])
        if found != magic:
            what = f" (an IDX {_KIND[found]} file)" if found in _KIND else ""
            raise DataError(
                f"{path}: wrong magic number {found}{what}; an IDX {_KIND[magic]} file starts with {magic}. "
                f"Wrong or corrupt file: {_FIX}"
            )
    if len(data) < size:
        raise DataError(
            f"{path}: only {len(data)} bytes, shorter than an IDX {_KIND[magic]} header; file truncated, {_FIX}"
        )
    dims = struct.unpack(f">{ndim}i", data[4:size])
    if any(d <= 0 for d in dims):
        raise DataError(f"{path}: invalid IDX dimensions {dims} in the header; corrupt file, {_FIX}")
    expected = size + int(np.prod(dims))
    if len(data) != expected:
        state = "truncated" if len(data) < expected else "longer than its header says"
        raise DataError(
            f"{path}: {state}: header says {' x '.join(map(str, dims))} = {expected - size} bytes of data, "
            f"found {len(data) - size}; {_FIX}"
        )
    return tuple(dims)


def read_images(path: str | os.PathLike[str]) -> np.ndarray:
    """Images from an IDX images file as a read-only ``uint8`` array ``(n, rows, cols)``."""
    path = Path(path)
    data = _read_bytes(path)
    n, rows, cols = _header(path, data, IMAGES_MAGIC, 3)
    return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(n, rows, cols)


def read_labels(path: str | os.PathLike[str], n_classes: int | None = 10) -> np.ndarray:
    """Labels from an IDX labels file as ``int64`` ``(n,)``, checked to lie in ``[0, n_classes)``."""
    path = Path(path)
    data = _read_bytes(path)
    _header(path, data, LABELS_MAGIC, 1)
    labels = np.frombuffer(data, dtype=np.uint8, offset=8)
    if n_classes is not None and len(labels) and int(labels.max()) >= n_classes:
        bad = int(np.argmax(labels >= n_classes))
        raise DataError(
            f"{path}: label {int(labels[bad])} at position {bad} is outside 0..{n_classes - 1}; "
            f"corrupt or wrong file, {_FIX}"
        )
    return labels.astype(np.int64)


def write_images(path: str | os.PathLike[str], images: np.ndarray) -> Path:
    """Write ``uint8`` images ``(n, rows, cols)`` as an IDX file (gzip when the name ends in ``.gz``)."""
    images = np.ascontiguousarray(images, dtype=np.uint8)
    if images.ndim != 3:
        raise ValueError(f"images must be (n, rows, cols), got shape {images.shape}")
    header = struct.pack(">4i", IMAGES_MAGIC, *images.shape)
    return _write(Path(path), header + images.tobytes())


def write_labels(path: str | os.PathLike[str], labels: np.ndarray) -> Path:
    """Write labels ``(n,)`` (0-255) as an IDX file (gzip when the name ends in ``.gz``)."""
    labels = np.ascontiguousarray(labels, dtype=np.uint8).reshape(-1)
    return _write(Path(path), struct.pack(">2i", LABELS_MAGIC, len(labels)) + labels.tobytes())


def _write(path: Path, payload: bytes) -> Path:
    """Write through a temporary sibling and an atomic rename (permissions from the umask)."""
    if path.name.endswith(".gz"):
        payload = gzip.compress(payload, compresslevel=6, mtime=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
        publish(tmp, path)  # the usual permissions, not mkstemp's 0600
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path
