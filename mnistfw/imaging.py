"""Turn real-world digit pictures into MNIST-style 28x28 images, and read IDX / .npy inputs.

MNIST digits are white ink on black, cropped to the ink, scaled so the longest side fits a
20x20 box (aspect kept) and pasted into a 28x28 field with the centre of mass in the middle.
:func:`to_mnist` applies the same steps to any grayscale picture::

    img = load_image("my_seven.jpg")        # (28, 28) uint8, white digit on black

Steps: grayscale (transparent pixels become background) -> invert when the background is light
-> subtract the background level and stretch the ink to 0-255 -> crop to the ink's bounding box
-> resize the longest side to 20 px -> paste into 28x28 so the centre of mass sits at the centre.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np

from mnistfw.errors import DataError

#: File suffixes read as pictures (anything Pillow opens is accepted, these are just listed).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm")
#: Pixels below this fraction of the brightest ink count as background when cropping.
INK_THRESHOLD = 0.15
#: Largest picture read (Pillow's ``Image.MAX_IMAGE_PIXELS``): a digit never needs more, and a
#: decompression bomb is refused from its header, before anything is decoded.
MAX_PICTURE_PIXELS = 50_000_000


class ImageReadError(DataError):
    """One input file cannot be read as digit images (``mnistfw-predict`` names it and skips it)."""


def load_image(path: Path | str, size: int = 28, box: int = 20) -> np.ndarray:
    """Read a picture file and return it MNIST-style as ``(size, size)`` uint8.

    Any file Pillow cannot decode (damaged, truncated, empty, not a picture) and any picture
    over :data:`MAX_PICTURE_PIXELS` (refused from its header, before decoding) is an
    :class:`ImageReadError` naming the file.
    """
    from PIL import Image

    path = Path(path)
    Image.MAX_IMAGE_PIXELS = MAX_PICTURE_PIXELS  # Pillow's decompression-bomb limit, made strict below
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # over the limit: refuse, not warn
            with Image.open(path) as im:
                im.load()
                gray = _to_gray(im)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))  # Pillow: "Image size (<n> pixels) exceeds limit ..."
        size = f" ({int(found.group(1)) / 1e6:,.0f} megapixels)" if found else ""
        raise ImageReadError(
            f"{path.name}: picture too large{size}; a digit picture needs at most "
            f"{MAX_PICTURE_PIXELS / 1e6:g} megapixels (larger ones are refused unread): scale it down"
        ) from None
    except Exception as exc:  # whatever Pillow's decoders raise for a damaged or foreign file
        raise ImageReadError(f"{path.name}: not a readable image ({type(exc).__name__}: {_first_line(exc)})") from None
    try:
        return to_mnist(gray, size=size, box=box)
    except ImageReadError as exc:
        raise ImageReadError(f"{path.name}: {exc}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _to_gray(im) -> np.ndarray:  # noqa: ANN001 - a PIL image
    """Grayscale float array in 0-255; transparent areas take the background's value."""
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = np.asarray(im.convert("RGBA"), dtype=np.float32)
        alpha = rgba[..., 3] / 255.0
        lum = rgba[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        if alpha.min() < 1.0:
            opaque = alpha > 0.5
            # Ink drawn on a transparent canvas: put it on the opposite colour so it stays visible.
            ink_is_dark = not opaque.any() or lum[opaque].mean() < 128
            background = 255.0 if ink_is_dark else 0.0
            lum = lum * alpha + background * (1.0 - alpha)
        return lum
    return np.asarray(im.convert("L"), dtype=np.float32)


def to_mnist(gray: np.ndarray, size: int = 28, box: int = 20) -> np.ndarray:
    """Convert a grayscale picture (any size, 0-255) into an MNIST-style ``(size, size)`` uint8.

    Raises :class:`ImageReadError` for a blank picture (no ink found).
    """
    from PIL import Image

    img = np.asarray(gray, dtype=np.float32)
    if img.ndim != 2 or min(img.shape) < 1:
        raise ImageReadError(f"expected a 2-D grayscale picture, got shape {img.shape}")
    border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
    background = float(np.median(border))
    if background > 127.5:  # dark ink on a light background: make it white on black
        img = 255.0 - img
        background = 255.0 - background
    img = np.clip(img - background, 0.0, None)
    peak = float(img.max())
    if peak < 8.0:  # less than ~3 % contrast anywhere: nothing drawn
        raise ImageReadError("blank image (no ink found)")
    img = img * (255.0 / peak)
    img[img < INK_THRESHOLD * 255.0] = 0.0

    rows = np.flatnonzero(img.any(axis=1))
    cols = np.flatnonzero(img.any(axis=0))
    img = img[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]

    h, w = img.shape
    scale = box / max(h, w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    resized = Image.fromarray(img).resize((new_w, new_h), Image.Resampling.LANCZOS)
    patch = np.clip(np.asarray(resized, dtype=np.float32), 0.0, 255.0)

    out = np.zeros((size, size), dtype=np.float32)
    total = float(patch.sum())
    if total > 0:
        cy = float((patch.sum(axis=1) * np.arange(new_h)).sum() / total)
        cx = float((patch.sum(axis=0) * np.arange(new_w)).sum() / total)
    else:
        cy, cx = (new_h - 1) / 2, (new_w - 1) / 2
    # MNIST puts the centre of mass at pixel index size/2 (14.0 in 28x28; measured: 14.0 +- 0.3).
    top = int(np.clip(round(size / 2 - cy), 0, size - new_h))
    left = int(np.clip(round(size / 2 - cx), 0, size - new_w))
    out[top : top + new_h, left : left + new_w] = patch
    return np.round(out).astype(np.uint8)


def read_idx_images(path: Path | str, image_shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read an IDX image file (``*-idx3-ubyte``, gzip-compressed or not) as ``(n, h, w)`` uint8.

    A file holding one image ``(h, w)`` gives ``(1, h, w)``. With ``image_shape`` the header must
    announce images of that size (checked before the pixels are read). Every problem is an
    :class:`ImageReadError` naming the file; the parser is :func:`mnistfw.data.idx.parse`.
    """
    from mnistfw.data.idx import IdxError, parse

    path = Path(path)
    try:
        images = parse(path, (3, 2), image_shape)
    except IdxError as exc:
        raise ImageReadError(f"{path.name}: {exc}") from None
    except OSError as exc:
        raise ImageReadError(f"{path.name}: not a readable IDX file ({_first_line(exc)})") from None
    return images[None] if images.ndim == 2 else images


def read_npy_images(path: Path | str, image_shape: tuple[int, int] = (28, 28)) -> np.ndarray:
    """Read a ``.npy`` array of images ``(n, h, w)``, rows ``(n, h*w)`` or one image ``(h, w)``.

    Returned as raw 0-255 values ``(n, h, w)`` float32; float arrays whose values lie in [0, 1]
    are taken as already scaled and multiplied by 255. The header (format, dtype, shape, size)
    is checked before any data is read, and nothing is ever unpickled. Every problem is an
    :class:`ImageReadError` naming the file.
    """
    path = Path(path)
    h, w = image_shape
    try:
        with open(path, "rb") as fh:
            magic = fh.read(6)
            if magic[:4] == b"PK\x03\x04":
                raise ImageReadError(f"{path.name}: holds several arrays (.npz); save one array with np.save")
            if magic != b"\x93NUMPY":
                raise ImageReadError(f"{path.name}: not a .npy file (no NumPy header); save the array with np.save")
            fh.seek(0)
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
            else:
                raise ImageReadError(f"{path.name}: .npy format version {version} is not supported; save with np.save")
            available = os.fstat(fh.fileno()).st_size - fh.tell()
    except (OSError, ValueError, EOFError, SyntaxError) as exc:
        raise ImageReadError(f"{path.name}: not a readable .npy file ({_first_line(exc)})") from None
    if dtype.hasobject:
        raise ImageReadError(
            f"{path.name}: holds Python objects, which cannot be read without unpickling (never done here); "
            "save a plain numeric array with np.save"
        )
    if dtype.kind not in "iuf":
        raise ImageReadError(f"{path.name}: array of dtype {dtype} is not numeric pixel data")
    if not (shape == (h, w) or (len(shape) == 2 and shape[1] == h * w) or (len(shape) == 3 and shape[1:] == (h, w))):
        raise ImageReadError(
            f"{path.name}: array of shape {shape} cannot be read as images; expected (n, {h}, {w}), "
            f"(n, {h * w}) or ({h}, {w})"
        )
    needed = int(np.prod(shape)) * dtype.itemsize
    if available < needed:
        raise ImageReadError(f"{path.name}: .npy file is truncated ({available} of {needed} bytes of data)")
    if needed == 0:
        raise ImageReadError(f"{path.name}: array of shape {shape} holds no images")
    try:
        arr = np.array(np.load(path, mmap_mode="r", allow_pickle=False), dtype=np.float32).reshape(-1, h, w)
    except (OSError, ValueError, MemoryError) as exc:
        raise ImageReadError(f"{path.name}: not a readable .npy file ({_first_line(exc)})") from None
    if not np.isfinite(arr).all():
        raise ImageReadError(f"{path.name}: array holds NaN or infinite values")
    if dtype.kind == "f" and arr.min() >= 0.0 and arr.max() <= 1.0:
        arr *= 255.0
    return np.clip(arr, 0.0, 255.0, out=arr)
