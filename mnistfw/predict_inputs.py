"""Gather the inputs of ``mnistfw-predict``: pictures, folders of them, IDX image files, ``.npy`` arrays.

Pictures (anything Pillow reads) are converted MNIST-style (:mod:`mnistfw.imaging`); folders
are searched recursively (hidden files and folders ignored, links to folders not followed);
IDX and ``.npy`` inputs are taken as MNIST-style already. Every input that cannot be used
(missing, unreadable, damaged, truncated, empty, of another size or dtype, too large, not a
regular file) is named in a WARNING, recorded in :attr:`Inputs.skipped` and left out: the
rest is still predicted.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mnistfw.errors import DataError

log = logging.getLogger("mnistfw.predict")

IDX_SUFFIXES = (".idx", ".ubyte", ".idx3")


@dataclass
class Inputs:
    """Images gathered from the user's paths, ready for the model, and the inputs skipped."""

    names: list[str] = field(default_factory=list)
    images: list[np.ndarray] = field(default_factory=list)  #: each (n, h, w) float32, raw 0-255
    skipped: list[dict[str, str]] = field(default_factory=list)  #: {"input": name, "reason": why}

    def add(self, names: list[str], images: np.ndarray) -> None:
        self.names.extend(names)
        self.images.append(np.asarray(images, dtype=np.float32))

    def skip(self, name: str, reason: str) -> None:
        """Record an input that cannot be used, with a WARNING naming it."""
        log.warning("skipped %s: %s", name, reason)
        self.skipped.append({"input": name, "reason": reason})

    def array(self, shape: tuple[int, int]) -> np.ndarray:
        return np.concatenate(self.images) if self.images else np.zeros((0, *shape), dtype=np.float32)


def _is_idx(path: Path) -> bool:
    name = path.name.lower().removesuffix(".gz")
    return "idx" in name or name.endswith(IDX_SUFFIXES)


def _files(root: Path, errors: list[OSError] | None = None) -> list[Path]:
    """Entries under ``root`` other than folders (recursively, sorted), hidden ones left out.

    Links to folders are not followed; folders that cannot be listed go into ``errors``.
    """
    found: list[Path] = []
    for folder, dirs, names in os.walk(root, onerror=None if errors is None else errors.append):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found.extend(Path(folder, n) for n in names if not n.startswith("."))
    return sorted(found)


def gather_inputs(specs: Iterable[str], image_shape: tuple[int, int]) -> Inputs:
    """Read every input path into raw ``(n, h, w)`` images; every unusable input is named and skipped."""
    found = Inputs()
    for spec in specs:
        path = Path(str(spec)).expanduser()
        mode = _mode(path)
        if mode is not None and stat.S_ISDIR(mode):
            errors: list[OSError] = []
            files = _files(path, errors)
            for exc in errors:
                where = Path(exc.filename or path)
                name = where.relative_to(path).as_posix() if where != path else str(path)
                found.skip(name, f"folder cannot be read ({exc.strerror or exc})")
            if not files and not errors:
                log.warning("inputs: folder %s is empty", path)
            named = [(f, f.relative_to(path).as_posix()) for f in files]
        else:
            named = [(path, path.name or str(path))]
        for file, name in named:
            try:
                names, images = _read(file, name, image_shape)
            except DataError as exc:
                found.skip(name, _reason(exc, file))
            except MemoryError:
                found.skip(name, "too large to load into memory; split it into smaller files")
            else:
                found.add(names, images)
    return found


def _mode(path: Path) -> int | None:
    """``st_mode`` of ``path`` (links followed), or None when it cannot be looked at."""
    try:
        return path.stat().st_mode
    except OSError:
        return None


def _read(file: Path, name: str, image_shape: tuple[int, int]) -> tuple[list[str], np.ndarray]:
    """Names and raw images of one input file; :class:`DataError` when it cannot be used."""
    from mnistfw.imaging import ImageReadError, load_image, read_idx_images, read_npy_images

    try:
        mode = file.stat().st_mode
    except FileNotFoundError:
        broken = file.is_symlink()
        raise ImageReadError("a link to a file that does not exist" if broken else "does not exist") from None
    except OSError as exc:
        raise ImageReadError(f"cannot be accessed ({exc.strerror or exc})") from None
    if not stat.S_ISREG(mode):
        raise ImageReadError("a folder, not a file" if stat.S_ISDIR(mode) else "not a regular file")
    h, w = image_shape
    if file.suffix.lower() == ".npy":
        arr = read_npy_images(file, (h, w))
    elif _is_idx(file):
        arr = read_idx_images(file, (h, w))
    else:
        if h != w:
            raise ImageReadError(f"pictures can only be converted for square models, not {h}x{w}")
        return [name], load_image(file, size=h, box=max(1, round(h * 20 / 28)))[None]
    return [f"{name}[{i}]" for i in range(len(arr))], arr


def _reason(exc: DataError, file: Path) -> str:
    """The message of ``exc`` without the leading ``<file name>: `` (the input is named beside it)."""
    text = str(exc)
    return text.removeprefix(f"{file.name}: ")
