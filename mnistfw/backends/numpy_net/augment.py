"""Random affine distortions of training images (``model.augment``), in NumPy.

Each image of a batch gets its own shift, rotation and zoom, drawn uniformly from
``[-shift, shift]`` pixels, ``[-rotation, rotation]`` degrees and ``[1 - scale, 1 + scale]``.
Every output pixel is mapped back to where it comes from in the input image (the inverse
affine map) and read there by bilinear interpolation, with background (0) outside the image.
This is what the Lightning backend's ``RandomAffine`` does with torch's ``affine_grid`` and
``grid_sample`` (``align_corners=False``); for a square image the two agree to float rounding.

Coordinates are pixel centres ``(x, y)`` = (column, row), measured from the image centre
``c = ((w - 1) / 2, (h - 1) / 2)``. The output pixel ``p`` reads the input at::

    c + R(-angle) (p - c) / zoom - shift        R(a) = [[cos a, sin a], [-sin a, cos a]]

so the content turns by ``angle`` counter-clockwise on screen (as ``np.rot90``), is magnified
by ``zoom``, and moves by ``zoom * R(angle) shift``.

Like the network, the distortion works in buffers allocated once and reused: a fresh
allocation per batch costs about as much again in page faults as the arithmetic.
"""

from __future__ import annotations

import math

import numpy as np

from mnistfw.config.vocabulary import AugmentSettings

#: Rows warped at a time: bounds the work buffers whatever the batch size.
CHUNK = 1024
#: Zero border around every image, wide enough for the 2x2 neighbourhood of any clipped coordinate.
PAD = 2


class RandomAffine:
    """Distorts batches of flattened images in place, drawing from its own ``rng``.

    Works on pixel intensities (``x * std + mean`` when the inputs were standardised, so that
    the background is 0) and maps the result back to the model's input space.
    """

    def __init__(
        self,
        image_shape: tuple[int, int],
        settings: AugmentSettings,
        rng: np.random.Generator,
        mean: list[float] | None = None,
        std: list[float] | None = None,
    ) -> None:
        self.h, self.w = (int(v) for v in image_shape)
        self.shift = float(settings.shift)
        self.rotation = math.radians(settings.rotation)
        self.scale = float(settings.scale)
        self.rng = rng
        standardised = mean is not None and std is not None
        self.mean = np.asarray(mean).reshape(1, self.h, self.w) if standardised else None
        self.std = np.asarray(std).reshape(1, self.h, self.w) if standardised else None
        self._capacity = 0
        self._dtype: np.dtype | None = None

    def __call__(self, x: np.ndarray) -> None:
        """Replace every row of ``x`` ``(n, h * w)`` (C-contiguous, float) by a randomly distorted copy."""
        for start in range(0, len(x), CHUNK):
            images = x[start : start + CHUNK].reshape(-1, self.h, self.w)
            n = len(images)
            self.reserve(n, images.dtype)
            if self.mean is not None:
                images *= self._std
                images += self._mean
            self.warp_(
                images,
                angle=self.rng.uniform(-self.rotation, self.rotation, n),
                zoom=1 + self.rng.uniform(-self.scale, self.scale, n),
                shift=self.rng.uniform(-self.shift, self.shift, (n, 2)),
            )
            if self.mean is not None:
                images -= self._mean
                images /= self._std

    # -- work buffers ----------------------------------------------------------------------
    def reserve(self, rows: int, dtype: np.dtype) -> None:
        """Make sure the work buffers hold ``rows`` images of ``dtype`` (they only ever grow)."""
        if rows <= self._capacity and dtype == self._dtype:
            return
        h, w = self.h, self.w
        self._padded = np.zeros((rows, h + 2 * PAD, w + 2 * PAD), dtype)  # the border is never written
        self._src_x, self._src_y, self._left, self._up, self._low = (np.empty((rows, h, w), dtype) for _ in range(5))
        self._index, self._moved = np.empty((rows, h, w), np.intp), np.empty((rows, h, w), np.intp)
        self._first = (np.arange(rows) * self._padded[0].size)[:, None, None]  # where each padded image starts
        self._gx = np.arange(w, dtype=dtype) - (w - 1) / 2  # output columns and rows, from the centre
        self._gy = np.arange(h, dtype=dtype) - (h - 1) / 2
        if self.mean is not None:
            self._mean, self._std = self.mean.astype(dtype), self.std.astype(dtype)
        self._capacity, self._dtype = rows, dtype

    # -- the warp ---------------------------------------------------------------------------
    def warp_(self, images: np.ndarray, angle: np.ndarray, zoom: np.ndarray, shift: np.ndarray) -> None:
        """Turn ``images`` ``(n, h, w)`` by ``angle`` (radians), magnify by ``zoom``, move by ``shift``, in place.

        ``angle`` and ``zoom`` hold one value per image, ``shift`` one ``(x, y)`` pair in pixels
        per image. ``images`` must be a C-contiguous float array; it is resampled bilinearly.
        """
        n, dtype = len(images), images.dtype
        self.reserve(n, dtype)
        padded = self._padded[:n]
        padded[:, PAD : PAD + self.h, PAD : PAD + self.w] = images
        src_x, src_y = self._source(n, angle, zoom, shift)
        self._sample(padded, src_x, src_y, images)

    def _source(self, n: int, angle: np.ndarray, zoom: np.ndarray, shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where each output pixel comes from, in pixels of the padded input.

        The inverse map is a term per output column plus a term per output row, so only their
        sum is computed at full size.
        """
        dtype, h, w = self._dtype, self.h, self.w
        cos = (np.cos(angle) / zoom).astype(dtype)[:, None]
        sin = (np.sin(angle) / zoom).astype(dtype)[:, None]
        shift = np.asarray(shift, dtype=dtype)
        centre_x = (w - 1) / 2 + PAD - shift[:, :1]
        centre_y = (h - 1) / 2 + PAD - shift[:, 1:]
        src_x = np.subtract((cos * self._gx + centre_x)[:, None, :], (sin * self._gy)[:, :, None], out=self._src_x[:n])
        src_y = np.add((sin * self._gx)[:, None, :], (cos * self._gy + centre_y)[:, :, None], out=self._src_y[:n])
        return src_x, src_y

    def _sample(self, padded: np.ndarray, src_x: np.ndarray, src_y: np.ndarray, out: np.ndarray) -> None:
        """Bilinear samples of every padded image at its own coordinates, into ``out``; 0 outside the image.

        Coordinates are clipped to one pixel beyond the image, where the border is zero on both
        sides of the 2x2 neighbourhood, so no index leaves the padded array.
        """
        n, hp, wp = padded.shape
        left, up, low = self._left[:n], self._up[:n], self._low[:n]
        index, moved = self._index[:n], self._moved[:n]
        np.clip(src_x, PAD - 1, wp - PAD, out=src_x)
        np.clip(src_y, PAD - 1, hp - PAD, out=src_y)
        np.floor(src_x, out=left)
        np.floor(src_y, out=up)
        fx, fy = src_x, src_y
        fx -= left  # the weights of the right and the lower neighbours
        fy -= up
        up *= wp
        up += left  # the top-left neighbour's position in its padded image (< hp * wp: exact)
        np.copyto(index, up, casting="unsafe")
        index += self._first[:n]
        flat = padded.reshape(-1)
        right = left  # free now: holds the right-hand neighbours from here on

        def gather(offset: int, into: np.ndarray) -> np.ndarray:
            np.add(index, offset, out=moved)
            return np.take(flat, moved, out=into, mode="clip")

        np.take(flat, index, out=out, mode="clip")  # top row: out + fx (right - out)
        gather(1, right)
        right -= out
        right *= fx
        out += right
        gather(wp, low)  # bottom row: low + fx (right - low)
        gather(wp + 1, right)
        right -= low
        right *= fx
        low += right
        low -= out  # between the rows: out + fy (low - out)
        low *= fy
        out += low
