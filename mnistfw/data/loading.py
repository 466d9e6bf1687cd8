"""``load_dataset``: source (IDX | bundled sample | CSV) -> seeded split -> scaling -> :class:`Dataset`."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from mnistfw.data import idx
from mnistfw.data.data_settings import DataConfig, SplitConfig, is_fraction
from mnistfw.data.dataset import DataInfo, Dataset, Preprocessing, Split
from mnistfw.data.download import DATASETS, DataUnavailable, default_dir, locate_files
from mnistfw.data.sample import SAMPLE_SIZE, SAMPLE_SOURCE, load_sample
from mnistfw.errors import ConfigError, DataError

log = logging.getLogger(__name__)

#: Share of the pool carved out as the test split when the source has no test set of its own
#: (the bundled sample, a CSV without ``test_path``) and ``split.test`` is null.
DEFAULT_TEST_FRACTION = 0.2
#: Split used when ``source=auto`` falls back to the sample and the configured one uses counts.
SAMPLE_SPLIT = SplitConfig(train=None, val=0.1, test=None)

_DIGITS = [str(d) for d in range(10)]


@dataclass
class _Raw:
    """What a source delivers: a pool to split, and its own test set if it has one."""

    images: np.ndarray  # uint8 (n, h, w)
    labels: np.ndarray  # int64 (n,)
    source: str
    class_names: list[str]
    test_images: np.ndarray | None = None
    test_labels: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)


def load_dataset(cfg: DataConfig | Any, seed: int) -> Dataset:
    """Load, split and scale the data described by ``cfg`` (a :class:`DataConfig` or the ``data`` section).

    ``seed`` drives the shuffle before splitting, so the same seed gives the same splits.
    """
    if not isinstance(cfg, DataConfig):
        from mnistfw.config.validation import validate_section

        name = cfg.get("name", "?") if hasattr(cfg, "get") else "?"
        cfg = validate_section(cfg, DataConfig, "data", f"data={name}")
    start = time.perf_counter()
    split_cfg = cfg.split
    if cfg.source == "csv":
        raw = _from_csv(cfg)
    elif cfg.source == "sample":
        spec = DATASETS.get(cfg.name)
        if spec is not None and not spec.has_sample:
            raise ConfigError(
                f"data.source: sample is the bundled MNIST digits sample and cannot stand in for {spec.title}; "
                f"use source=full or data=mnist_sample"
            )
        raw = _from_sample()
    else:
        raw, split_cfg = _from_idx_or_fallback(cfg)
    dataset = _build(raw, cfg, split_cfg, seed)
    s = dataset.info.sizes
    log.debug(
        "Data %s from %s: train %d, val %d, test %d, images %dx%d (%.2f s)",
        cfg.name, dataset.info.source, s["train"], s["val"], s["test"], *dataset.info.image_shape,
        time.perf_counter() - start,
    )  # fmt: skip
    return dataset


# --------------------------------------------------------------------------- sources


def _resolve(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.expandvars(os.path.expanduser(str(path)))).resolve()


def _from_idx_or_fallback(cfg: DataConfig) -> tuple[_Raw, SplitConfig]:
    spec = DATASETS.get(cfg.name)
    directory = _resolve(cfg.dir) if cfg.dir else _resolve(default_dir(spec, cfg.name))
    title = spec.title if spec else cfg.name
    try:
        return _from_idx(cfg, directory), cfg.split
    except DataUnavailable as exc:
        reason = str(exc)
        if cfg.source == "full" or spec is None or not spec.has_sample:
            hint = (
                "; or use data.source=auto to fall back to the bundled 5,000-image sample"
                if spec is not None and spec.has_sample
                else ""
            )
            raise DataError(
                f"{title} data not found in {directory} and not downloadable ({reason}). "
                f"Put the four IDX files there (or point data.dir / MNISTFW_DATA_DIR at a folder that "
                f"has them) or allow network access for the download{hint}"
            ) from None
    # source=auto and the set is MNIST: fall back to the bundled sample.
    split_cfg = cfg.split
    split_note = ""
    if any(isinstance(v, int) for v in (split_cfg.train, split_cfg.val, split_cfg.test)):
        split_cfg = SAMPLE_SPLIT
        split_note = (
            f" The configured split counts are meant for the full set, so the sample is split like data=mnist_sample "
            f"(val {SAMPLE_SPLIT.val:g}, test {DEFAULT_TEST_FRACTION:g}, train the rest)."
        )
    message = (
        f"Full {title} could not be found in {directory} nor downloaded ({reason}); "
        f"this run uses the bundled {SAMPLE_SIZE:,}-image MNIST sample instead.{split_note} "
        f"To get the full set, put the four IDX files in that folder or point MNISTFW_DATA_DIR "
        f"(or data.dir) at a folder that has them, or allow network access so they can be "
        f"downloaded; data.source=full makes this an error instead."
    )
    log.warning(message)
    raw = _from_sample()
    raw.notes.insert(0, f"fallback: full {title} not found in {directory} nor downloaded ({reason}); "
                        f"used the bundled {SAMPLE_SIZE:,}-image sample")  # fmt: skip
    return raw, split_cfg


def _from_idx(cfg: DataConfig, directory: Path) -> _Raw:
    spec = DATASETS.get(cfg.name)
    if spec and cfg.n_classes != len(spec.class_names):
        raise ConfigError(
            f"data.n_classes: {spec.title} has {len(spec.class_names)} classes, not {cfg.n_classes}; "
            f"leave data.n_classes at {len(spec.class_names)}"
        )
    files, notes = locate_files(directory, spec, download=cfg.download, mirrors=cfg.mirrors)
    n_classes = len(spec.class_names) if spec else cfg.n_classes
    images = idx.read_images(files["train_images"])
    labels = idx.read_labels(files["train_labels"], n_classes)
    test_images = idx.read_images(files["test_images"])
    test_labels = idx.read_labels(files["test_labels"], n_classes)
    for im, lb, im_key, lb_key in (
        (images, labels, "train_images", "train_labels"),
        (test_images, test_labels, "test_images", "test_labels"),
    ):
        if len(im) != len(lb):
            raise DataError(
                f"{files[im_key]} holds {len(im)} images but {files[lb_key]} {len(lb)} labels; "
                f"one of them is from another dataset: delete both and download them again"
            )
    if test_images.shape[1:] != images.shape[1:]:
        raise DataError(
            f"{files['test_images']}: images are {test_images.shape[1]}x{test_images.shape[2]} "
            f"but the training images are {images.shape[1]}x{images.shape[2]}; "
            f"the files come from different datasets"
        )
    class_names = list(spec.class_names) if spec else [str(c) for c in range(n_classes)]
    return _Raw(images, labels, f"idx:{directory}", class_names, test_images, test_labels, notes)


def _from_sample() -> _Raw:
    images, labels = load_sample()
    return _Raw(images, labels, SAMPLE_SOURCE, list(_DIGITS))


def _from_csv(cfg: DataConfig) -> _Raw:
    from mnistfw.data.csv_source import read_csv

    shape = tuple(cfg.image_shape) if cfg.image_shape else None
    path = _resolve(str(cfg.path))
    n = cfg.n_classes
    images, labels, shape = read_csv(path, cfg.label_column, shape, "data.path", n)  # type: ignore[arg-type]
    raw = _Raw(images, labels, f"csv:{path}", [str(c) for c in range(n)])
    if cfg.test_path:
        if cfg.split.test is not None:
            raise ConfigError(
                "data.split.test: must be null when data.test_path is given (the test file is the test split)"
            )
        test_path = _resolve(str(cfg.test_path))
        raw.test_images, raw.test_labels, _ = read_csv(test_path, cfg.label_column, shape, "data.test_path", n)
        raw.notes.append(f"test split from {test_path}")
    return raw


# --------------------------------------------------------------------------- split and scale


def _count(value: Any, pool: int, key: str) -> int | None:
    if value is None:
        return None
    n = int(round(value * pool)) if is_fraction(value) else int(value)
    if n < 1:
        raise ConfigError(f"data.split.{key}: {value} of {pool} rows is less than one row; use a larger value")
    return n


def _build(raw: _Raw, cfg: DataConfig, split_cfg: SplitConfig, seed: int) -> Dataset:
    pool = len(raw.labels)
    notes = list(raw.notes)
    n_val = _count(split_cfg.val, pool, "val") or 0
    if raw.test_images is None:
        test_value = split_cfg.test if split_cfg.test is not None else DEFAULT_TEST_FRACTION
        if split_cfg.test is None:
            notes.append(f"no separate test set: {DEFAULT_TEST_FRACTION:g} of the data held out as test")
        n_test = _count(test_value, pool, "test") or 0
    else:
        n_test = _count(split_cfg.test, pool, "test") or 0  # 0: the source's own test set
    n_train = _count(split_cfg.train, pool, "train")
    rest = pool - n_val - n_test
    if n_train is None:
        n_train = rest
    if n_train < 1 or n_train > rest:
        asked = f"val {n_val} + test {n_test}" + (f" + train {n_train}" if split_cfg.train is not None else "")
        raise ConfigError(
            f"data.split: {asked} rows leave no valid training set in the {pool} rows of {raw.source}; "
            f"use smaller counts or fractions"
        )
    if cfg.limit_train is not None and cfg.limit_train < n_train:
        notes.append(f"training set limited to {cfg.limit_train} of {n_train} rows (data.limit_train)")
        n_train = cfg.limit_train

    if cfg.shuffle:
        order = np.random.default_rng(seed).permutation(pool)
    else:
        order = np.arange(pool)
        if raw.source == SAMPLE_SOURCE:
            log.warning("data.shuffle=false on the bundled sample, which is sorted by digit: splits will miss digits")
    val_idx = order[:n_val]
    test_idx = order[n_val : n_val + n_test]
    train_idx = order[n_val + n_test : n_val + n_test + n_train]

    images = {"train": raw.images[train_idx], "val": raw.images[val_idx]}
    labels = {"train": raw.labels[train_idx], "val": raw.labels[val_idx]}
    if n_test:
        images["test"], labels["test"] = raw.images[test_idx], raw.labels[test_idx]
    else:
        images["test"], labels["test"] = np.array(raw.test_images), np.asarray(raw.test_labels)

    prep = Preprocessing()
    xs = {name: _scaled(im, prep.scale) for name, im in images.items()}
    if cfg.standardize:
        mean, std = _mean_std(images["train"], prep.scale)
        std = np.maximum(std, cfg.std_floor)
        prep = replace(prep, mean=[float(v) for v in mean], std=[float(v) for v in std])
        m32, s32 = np.asarray(prep.mean, dtype=np.float32), np.asarray(prep.std, dtype=np.float32)
        for x in xs.values():  # the same float32 operations as Preprocessing.apply
            x -= m32
            x /= s32

    splits = {
        name: Split(x=xs[name], y=labels[name].astype(np.int64, copy=False), images=np.ascontiguousarray(images[name]))
        for name in ("train", "val", "test")
    }
    h, w = raw.images.shape[1:]
    info = DataInfo(
        name=cfg.name,
        source=raw.source,
        image_shape=(int(h), int(w)),
        n_classes=len(raw.class_names),
        class_names=raw.class_names,
        sizes={name: len(s) for name, s in splits.items()},
        notes=notes,
    )
    return Dataset(splits["train"], splits["val"], splits["test"], info, prep)


def _scaled(images: np.ndarray, scale: float) -> np.ndarray:
    """``images * scale`` as float32 rows ``(n, h*w)``: bit-identical to ``Preprocessing.apply``."""
    flat = images.reshape(len(images), -1)
    out = np.empty(flat.shape, dtype=np.float32)
    np.multiply(flat, np.float32(scale), out=out, dtype=np.float32)
    return out


def _mean_std(images: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel mean and std of ``images * scale`` from exact integer sums (no large temporaries)."""
    flat = images.reshape(len(images), -1)
    total = flat.sum(axis=0, dtype=np.int64)
    squares = np.zeros(flat.shape[1], dtype=np.int64)
    for i in range(0, len(flat), 8192):
        block = flat[i : i + 8192].astype(np.int32)
        squares += np.einsum("ij,ij->j", block, block)
    n = max(len(flat), 1)
    mean = total / n
    var = np.maximum(squares / n - mean * mean, 0.0)
    return mean * scale, np.sqrt(var) * scale
