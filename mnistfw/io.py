"""Atomic file writes, in one place: nothing half-written is ever left behind.

Every file mnistfw writes goes through :func:`atomic_path` (or the helpers built on it): the
content is written to a temporary sibling, then renamed onto the target, so a crash, a full
disk or Ctrl-C leaves either the old file or the new one, never a torn one. Published files
get the usual permissions (``0666 & ~umask``), not the 0600 of a temporary file.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def publish(tmp: Path | str, path: Path | str, directory: bool = False) -> None:
    """Give a temporary file/folder normal permissions and rename it onto ``path`` atomically."""
    os.chmod(tmp, (0o777 if directory else 0o666) & ~_umask())
    os.replace(tmp, path)


@contextlib.contextmanager
def atomic_path(path: Path | str, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends normally it replaces ``path``.

    On an exception (Ctrl-C included) the temporary file is removed and ``path`` is untouched.
    ``suffix`` keeps an extension on the temporary name for writers that insist on one
    (``np.savez`` adds ``.npz``, matplotlib picks the format from it).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}-", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        publish(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_bytes(path: Path | str, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: Path | str, text: str) -> Path:
    """Write ``text`` as is (UTF-8, no newline translation) atomically."""
    return write_bytes(path, text.encode("utf-8"))


def dumps_json(obj: Any) -> str:
    """Indented JSON in which lists of numbers (e.g. matrix rows) stay on one line."""
    text = json.dumps(obj, indent=2, default=_json_default)
    number_list = re.compile(r"\[\s*(-?[\d.eE+-]+(?:,\s*-?[\d.eE+-]+)*)\s*\]")
    return number_list.sub(lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]", text)


def write_json(path: Path | str, obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically."""
    return write_text(path, dumps_json(obj) + "\n")


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


@contextlib.contextmanager
def atomic_directory(path: Path | str) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces ``path``, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}-", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}-old-{os.getpid()}")
            os.replace(path, old)
            publish(tmp, path, directory=True)
            shutil.rmtree(old, ignore_errors=True)
        else:
            publish(tmp, path, directory=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
