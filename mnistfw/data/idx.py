"""Read and write IDX files (the MNIST format), gzip-compressed or raw.

An images file is a big-endian int32 magic 2051, then count, rows and columns, then one
unsigned byte per pixel; a labels file is magic 2049, then count, then one byte per label.
:func:`parse` is the one IDX parser (training data and ``mnistfw-predict`` inputs both use it);
for the dataset files every structural problem is a one-line :class:`DataError` naming the file
and the fix.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from mnistfw.errors import DataError
from mnistfw.io import write_bytes

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
#: What each IDX magic number of unsigned bytes holds (the last byte is the number of dimensions).
_KIND = {IMAGES_MAGIC: "images", LABELS_MAGIC: "labels", 2050: "single-image"}
_FIX = "delete it and download it again"
_BLOCK = 1 << 22


class IdxError(ValueError):
    """What is wrong with an IDX file (without a fix: the dataset and predict readers add their own)."""


def parse(path: Path, ndims: tuple[int, ...], image_shape: tuple[int, int] | None = None) -> np.ndarray:
    """The one IDX parser: header first, then at most the bytes the header announces.

    ``ndims`` are the accepted numbers of dimensions (3: images, 2: one image, 1: labels). A gzip
    file is inflated as a stream, so a lying header or a decompression bomb never makes it
    allocate more than the header's size (plus one byte to tell a padded file). Raises
    :class:`IdxError` for a damaged or foreign file and ``OSError`` when it cannot be read.
    """
    with open(path, "rb") as raw:
        compressed = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        if not compressed:
            return _parse_stream(raw, ndims, image_shape)
        try:
            return _parse_stream(_Inflater(raw.read()), ndims, image_shape)
        except (EOFError, zlib.error) as exc:
            raise IdxError(f"truncated or corrupt gzip file ({exc})") from None


class _Inflater:
    """``read(n)`` over gzip-compressed bytes, each call one zlib call that inflates at most ``n``
    bytes.

    Unlike ``gzip.GzipFile``, which inflates in small chunks and takes the interpreter lock back
    after each, a whole read here runs without the lock, so it really runs beside another thread
    (the backend's imports). zlib checks each member's CRC and length as it reaches the member's
    end; concatenated members are read one after the other, as ``gzip`` does.
    """

    def __init__(self, data: bytes) -> None:
        self._inflate = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        self._input = data

    def read(self, n: int) -> bytes:
        """Up to ``n`` inflated bytes; fewer only at the end of the data. Raises ``EOFError`` when
        the data ends inside a member and ``zlib.error`` when it is not valid gzip."""
        parts: list[bytes] = []
        while n > 0 and self._input:
            out = self._inflate.decompress(self._input, n)
            parts.append(out)
            n -= len(out)
            if self._inflate.eof:  # a member ended: what follows is the next member (or padding)
                rest = self._inflate.unused_data
                self._inflate = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
                self._input = rest if rest.strip(b"\0") else b""
            else:
                self._input = self._inflate.unconsumed_tail
                if not self._input and n > 0:
                    raise EOFError("compressed file ended before the end-of-stream marker was reached")
        return b"".join(parts)


def _parse_stream(fh: BinaryIO, ndims: tuple[int, ...], image_shape: tuple[int, int] | None) -> np.ndarray:
    head = fh.read(4)
    if len(head) < 4:
        raise IdxError(f"not an IDX file: only {len(head)} bytes, shorter than an IDX header")
    (magic,) = struct.unpack(">i", head)
    if head[:2] != b"\0\0" or head[2] != 0x08 or not 1 <= head[3] <= 3:
        raise IdxError(f"not an IDX file of unsigned bytes (wrong magic number {magic})")
    ndim = head[3]
    if ndim not in ndims:
        wanted = " or ".join(f"{_KIND[0x800 + n]} ({n} dimension(s), magic {0x800 + n})" for n in ndims)
        raise IdxError(f"wrong magic number {magic} (an IDX {_KIND[magic]} file, {ndim} dimension(s)); "
                       f"expected {wanted}")
    header = fh.read(4 * ndim)
    if len(header) < 4 * ndim:
        raise IdxError(f"truncated: shorter than an IDX {_KIND[magic]} header")
    dims = struct.unpack(f">{ndim}i", header)
    if any(d <= 0 for d in dims):
        raise IdxError(f"invalid IDX dimensions {dims} in the header (an empty or corrupt file)")
    if image_shape is not None and ndim >= 2 and tuple(dims[-2:]) != tuple(image_shape):
        raise IdxError(f"IDX images are {dims[-2]}x{dims[-1]}, the model expects {image_shape[0]}x{image_shape[1]}")
    expected = int(np.prod(dims, dtype=np.int64))
    blocks, total = [], 0
    while total <= expected:  # one byte more than announced tells a padded file
        block = fh.read(min(_BLOCK, expected + 1 - total))
        if not block:
            break
        blocks.append(block)
        total += len(block)
    if total != expected:
        state = "truncated" if total < expected else "longer than its header says"
        raise IdxError(f"{state}: the header says {' x '.join(map(str, dims))} = {expected} bytes of data, "
                       f"found {'more' if total > expected else total}")
    return np.frombuffer(b"".join(blocks), dtype=np.uint8).reshape(dims)


def _read(path: Path, ndim: int) -> np.ndarray:
    """Parse one dataset file; every problem is a DataError naming it and the fix."""
    try:
        return parse(path, (ndim,))
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except IdxError as exc:
        raise DataError(f"{path}: {exc}; corrupt or wrong file, {_FIX}") from None


def read_images(path: str | os.PathLike[str]) -> np.ndarray:
    """Images from an IDX images file as a read-only ``uint8`` array ``(n, rows, cols)``."""
    return _read(Path(path), 3)


def read_labels(path: str | os.PathLike[str], n_classes: int | None = 10) -> np.ndarray:
    """Labels from an IDX labels file as ``int64`` ``(n,)``, checked to lie in ``[0, n_classes)``."""
    path = Path(path)
    labels = _read(path, 1)
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
    """Write atomically (gzip-compressed when the name ends in ``.gz``)."""
    if path.name.endswith(".gz"):
        payload = gzip.compress(payload, compresslevel=6, mtime=0)
    return write_bytes(path, payload)
