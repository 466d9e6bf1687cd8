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

import gzip
from pathlib import Path

import numpy as np

from mnistfw.errors import DataError

#: File suffixes read as pictures (anything Pillow opens is accepted, these are just listed).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm")
#: Pixels below this fraction of the brightest ink count as background when cropping.
INK_THRESHOLD = 0.15


class ImageReadError(DataError):
    """One input file cannot be read as a digit picture (skipped by ``mnistfw-predict``)."""


def load_image(path: Path | str, size: int = 28, box: int = 20) -> np.ndarray:
    """Read a picture file and return it MNIST-style as ``(size, size)`` uint8."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            gray = _to_gray(im)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ImageReadError(f"{path.name}: not a readable image ({type(exc).__name__}: {exc})") from None
    try:
        return to_mnist(gray, size=size, box=box)
    except ImageReadError as exc:
        raise ImageReadError(f"{path.name}: {exc}") from None


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


def read_idx_images(path: Path | str) -> np.ndarray:
    """Read an IDX image file (``*-idx3-ubyte``, optionally ``.gz``) as ``(n, h, w)`` uint8."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise ImageReadError(f"{path.name}: not a readable IDX file ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ImageReadError(f"{path.name}: not an IDX file (wrong magic number)")
    dtype_code, ndim = raw[2], raw[3]
    if dtype_code != 0x08:
        raise ImageReadError(f"{path.name}: IDX data type 0x{dtype_code:02x} is not unsigned bytes (0x08)")
    if ndim not in (2, 3):
        raise ImageReadError(
            f"{path.name}: IDX file has {ndim} dimension(s); expected images (n, h, w) or one image (h, w)"
        )
    header = 4 + 4 * ndim
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected = int(np.prod(dims))
    if len(raw) - header != expected:
        raise ImageReadError(
            f"{path.name}: IDX file is truncated or padded ({len(raw) - header} bytes of data, "
            f"header says {expected})"
        )
    images = np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)
    return images[None] if ndim == 2 else images


def read_npy_images(path: Path | str, image_shape: tuple[int, int] = (28, 28)) -> np.ndarray:
    """Read a ``.npy`` array of images ``(n, h, w)``, rows ``(n, h*w)`` or one image ``(h, w)``.

    Returned as raw 0-255 values ``(n, h, w)``; float arrays whose values lie in [0, 1] are
    taken as already scaled and multiplied by 255. Never unpickles (``allow_pickle=False``).
    """
    path = Path(path)
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise ImageReadError(
            f"{path.name}: cannot be read without unpickling Python objects ({exc}); save a plain "
            "numeric array with np.save"
        ) from None
    except (OSError, EOFError) as exc:
        raise ImageReadError(f"{path.name}: not a readable .npy file ({exc})") from None
    if not isinstance(arr, np.ndarray):
        raise ImageReadError(f"{path.name}: holds several arrays (.npz); save one array with np.save")
    h, w = image_shape
    shape = arr.shape
    if shape == (h, w):
        arr = arr[None]
    elif arr.ndim == 2 and shape[1] == h * w:
        arr = arr.reshape(-1, h, w)
    elif arr.ndim == 3 and shape[1:] == (h, w):
        pass
    else:
        raise DataError(
            f"{path.name}: array of shape {shape} cannot be read as images; expected (n, {h}, {w}), "
            f"(n, {h * w}) or ({h}, {w})"
        )
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise DataError(f"{path.name}: array of dtype {arr.dtype} is not numeric pixel data")
    is_float = np.issubdtype(arr.dtype, np.floating)
    arr = arr.astype(np.float32)
    if len(arr) and not np.isfinite(arr).all():
        raise DataError(f"{path.name}: array holds NaN or infinite values")
    if len(arr) and is_float and arr.min() >= 0.0 and arr.max() <= 1.0:
        arr = arr * 255.0
    return np.clip(arr, 0.0, 255.0)
