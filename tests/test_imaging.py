"""MNIST-style conversion of real pictures, and the IDX / .npy readers used by mnistfw-predict."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mnistfw.data import idx
from mnistfw.data.sample import load_sample
from mnistfw.errors import DataError
from mnistfw.imaging import ImageReadError, load_image, read_idx_images, read_npy_images, to_mnist


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    images, labels = load_sample()
    return images[:40].reshape(-1, 28, 28).astype(np.uint8), labels[:40]


def _photo(digit: np.ndarray, size: tuple[int, int] = (150, 190), at: tuple[int, int] = (30, 60)) -> np.ndarray:
    """The digit as a 'photo': upscaled, dark ink on light grey paper, off-centre, a little noise."""
    big = np.asarray(Image.fromarray(digit).resize((112, 112), Image.Resampling.BILINEAR), dtype=np.float32)
    paper = np.full(size, 210.0, dtype=np.float32)
    y, x = at
    paper[y : y + 112, x : x + 112] -= big * (180.0 / 255.0)
    noise = np.random.default_rng(0).normal(0, 3, size)
    return np.clip(paper + noise, 0, 255).astype(np.uint8)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel().astype(float), b.ravel().astype(float))[0, 1])


def test_photo_of_a_digit_comes_back_close_to_the_original(digits: tuple[np.ndarray, np.ndarray]) -> None:
    images, _ = digits
    corrs = [_corr(to_mnist(_photo(d)), d) for d in images]
    # MNIST digits are themselves cropped, 20x20-boxed and mass-centred, so the round trip of
    # a blurred, inverted, shifted, noisy copy must land close to the original.
    assert np.median(corrs) > 0.9, sorted(corrs)[:5]
    assert min(corrs) > 0.7


def test_conversion_geometry(digits: tuple[np.ndarray, np.ndarray]) -> None:
    for d in digits[0][:10]:
        out = to_mnist(_photo(d, size=(300, 200), at=(150, 10)))
        assert out.shape == (28, 28) and out.dtype == np.uint8
        rows, cols = np.flatnonzero(out.any(axis=1)), np.flatnonzero(out.any(axis=0))
        assert max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1) <= 21  # longest side fits 20 px (+1 blur)
        assert max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1) >= 19
        mass = out.astype(float) / out.sum()
        cy, cx = (mass.sum(axis=1) * np.arange(28)).sum(), (mass.sum(axis=0) * np.arange(28)).sum()
        assert abs(cy - 14.0) <= 0.75 and abs(cx - 14.0) <= 0.75, (cy, cx)
        assert out.max() > 200 and out[0].max() == 0 and out[:, 0].max() == 0  # white ink on black border


def test_dark_on_light_and_light_on_dark_give_the_same_image(digits: tuple[np.ndarray, np.ndarray]) -> None:
    photo = _photo(digits[0][3]).astype(np.int16)
    a, b = to_mnist(photo), to_mnist(255 - photo)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 2


def test_aspect_ratio_is_kept() -> None:
    bar = np.zeros((100, 100), dtype=np.uint8)
    bar[10:90, 45:55] = 255  # a tall thin "1": 80 x 10
    out = to_mnist(bar)
    rows, cols = np.flatnonzero(out.any(axis=1)), np.flatnonzero(out.any(axis=0))
    assert rows[-1] - rows[0] + 1 == 20
    assert 2 <= cols[-1] - cols[0] + 1 <= 4  # 10/80 of 20 px, not stretched


def test_files_in_colour_and_with_transparency(tmp_path: Path, digits: tuple[np.ndarray, np.ndarray]) -> None:
    photo = _photo(digits[0][5])
    ref = to_mnist(photo)
    Image.fromarray(photo).convert("RGB").save(tmp_path / "d.jpg", quality=95)
    Image.fromarray(photo).save(tmp_path / "d.png")
    # Black ink on a fully transparent canvas (a common export from drawing apps).
    ink = (255 - photo.astype(np.int16)).clip(0, 255).astype(np.uint8)
    rgba = np.zeros((*photo.shape, 4), dtype=np.uint8)
    rgba[..., 3] = np.where(ink > 60, 255, 0)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "t.png")
    assert np.array_equal(load_image(tmp_path / "d.png"), ref)
    assert _corr(load_image(tmp_path / "d.jpg"), ref) > 0.97
    assert _corr(load_image(tmp_path / "t.png"), ref) > 0.85


def test_blank_and_corrupt_pictures_are_errors_naming_the_file(tmp_path: Path) -> None:
    Image.fromarray(np.full((50, 50), 200, dtype=np.uint8)).save(tmp_path / "blank.png")
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    (tmp_path / "notes.txt").write_text("not a picture")
    for name in ("blank.png", "corrupt.png", "notes.txt"):
        with pytest.raises(ImageReadError, match=name):
            load_image(tmp_path / name)


def test_npy_shapes_scaling_and_errors(tmp_path: Path, digits: tuple[np.ndarray, np.ndarray]) -> None:
    images = digits[0][:4]
    np.save(tmp_path / "stack.npy", images)
    np.save(tmp_path / "rows.npy", images.reshape(4, 784))
    np.save(tmp_path / "one.npy", images[0])
    np.save(tmp_path / "unit.npy", images.astype(np.float32) / 255.0)
    for name, n in (("stack.npy", 4), ("rows.npy", 4), ("one.npy", 1), ("unit.npy", 4)):
        out = read_npy_images(tmp_path / name)
        assert out.shape == (n, 28, 28)
        assert np.allclose(out, images[:n], atol=1e-3), name
    np.save(tmp_path / "bad.npy", np.zeros((3, 5)))
    with pytest.raises(DataError, match=r"bad.npy.*\(3, 5\).*expected \(n, 28, 28\)") as err:
        read_npy_images(tmp_path / "bad.npy")
    assert isinstance(err.value, ImageReadError)  # a wrong shape is named and skipped by predict, like any bad input
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ImageReadError, match="unpickling"):
        read_npy_images(tmp_path / "objects.npy")
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(ImageReadError, match="junk.npy"):
        read_npy_images(tmp_path / "junk.npy")


def test_idx_files(tmp_path: Path, digits: tuple[np.ndarray, np.ndarray]) -> None:
    images = digits[0][:6]
    idx.write_images(tmp_path / "x-idx3-ubyte", images)
    raw = (tmp_path / "x-idx3-ubyte").read_bytes()
    (tmp_path / "x-idx3-ubyte.gz").write_bytes(gzip.compress(raw))
    assert np.array_equal(read_idx_images(tmp_path / "x-idx3-ubyte"), images)
    assert np.array_equal(read_idx_images(tmp_path / "x-idx3-ubyte.gz"), images)
    (tmp_path / "short-idx3-ubyte").write_bytes(raw[:-10])
    with pytest.raises(ImageReadError, match="truncated"):
        read_idx_images(tmp_path / "short-idx3-ubyte")
    (tmp_path / "wrong-idx3-ubyte").write_bytes(b"\x12\x34" + raw[2:])
    with pytest.raises(ImageReadError, match="magic"):
        read_idx_images(tmp_path / "wrong-idx3-ubyte")
