"""Find the four IDX files of a known dataset in a folder, verify them, download what is missing.

Known datasets (:data:`DATASETS`) come with their files' SHA-256 checksums and public mirrors.
A file already in the folder must match its checksum: a mismatch is a :class:`DataError`
(never used, never silently replaced). Missing files are downloaded with pooch, which writes
to a temporary file in the same folder, checks the hash and only then renames it into place:
a failed, interrupted or corrupt download leaves nothing behind. When the files can be neither
found nor downloaded, :class:`DataUnavailable` says why (the pipeline may then fall back).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from mnistfw.errors import DataError

log = logging.getLogger(__name__)

#: Seconds to wait for a connection / for the next bytes of a download. Short on purpose:
#: a machine without network must fail fast and fall back, not hang.
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 60.0

#: Role of each file -> its standard (gzip) file name; the same for MNIST and Fashion-MNIST.
FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}


@dataclass(frozen=True)
class IdxDataset:
    """A dataset published as the four standard IDX files."""

    name: str
    folder: str  # default sub-folder of the data dir
    title: str
    sha256: dict[str, str]  # file name -> SHA-256
    mirrors: tuple[str, ...]  # base URLs, tried in order
    class_names: tuple[str, ...]
    has_sample: bool  # the bundled 5,000-image sample is a stand-in for it


DATASETS: dict[str, IdxDataset] = {
    "mnist": IdxDataset(
        name="mnist",
        folder="mnist",
        title="MNIST",
        sha256={
            "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        },
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
        class_names=tuple(str(d) for d in range(10)),
        has_sample=True,
    ),
    "fashion_mnist": IdxDataset(
        name="fashion_mnist",
        folder="fashion-mnist",
        title="Fashion-MNIST",
        sha256={
            "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        },
        mirrors=(
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        ),
        class_names=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),  # fmt: skip
        has_sample=False,
    ),
}


class DataUnavailable(DataError):
    """The files are neither in the folder nor downloadable (the reason is the message)."""


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_checksum(path: Path, expected: str) -> None:
    """Raise :class:`DataError` unless ``path`` has the SHA-256 ``expected``."""
    found = sha256_of(path)
    if found != expected:
        raise DataError(
            f"{path}: SHA-256 {found[:16]}... does not match the known checksum {expected[:16]}...; "
            f"the file is corrupt or incomplete and is not used: delete it (rm {path}) and run again "
            f"to download it, or replace it with a good copy"
        )


def locate_files(
    directory: Path,
    spec: IdxDataset | None,
    *,
    download: bool = True,
    mirrors: Sequence[str] | None = None,
) -> tuple[dict[str, Path], list[str]]:
    """Paths of the four IDX files in ``directory`` (downloading missing ones) and notes.

    A ``.gz`` file is checked against its known checksum; an uncompressed copy (same name
    without ``.gz``) is accepted when no ``.gz`` is there and is only checked structurally.
    """
    found: dict[str, Path] = {}
    notes: list[str] = []
    missing: list[str] = []
    for role, fname in FILES.items():
        gz, raw = directory / fname, directory / fname.removesuffix(".gz")
        if gz.is_file():
            expected = spec.sha256.get(fname) if spec else None
            if expected:
                verify_checksum(gz, expected)
            found[role] = gz
        elif raw.is_file():
            found[role] = raw
            notes.append(f"{raw.name}: uncompressed copy used (format checked, no known checksum)")
        else:
            missing.append(role)
    if not missing:
        return found, notes

    names = ", ".join(FILES[r] for r in missing)
    if not download:
        raise DataUnavailable(f"{names} missing; downloading is off (data.download=false)")
    bases = list(mirrors) if mirrors else list(spec.mirrors if spec else ())
    if spec is None or not bases:
        raise DataUnavailable(f"{names} missing; no download source is known for this dataset")
    created = _missing_dirs(directory)
    dead: set[str] = set()  # mirrors that could not be reached: not retried for the other files
    for role in missing:
        fname = FILES[role]
        failures: dict[str, list[str]] = {}  # reason -> hosts
        for base in bases:
            if base in dead:
                continue
            url = base.rstrip("/") + "/" + fname
            try:
                _fetch(url, directory, fname, spec.sha256[fname])
            except Exception as exc:  # network, HTTP, checksum, permissions: all mean "not downloadable"
                reason, unreachable = _describe(exc)
                if unreachable:
                    dead.add(base)
                failures.setdefault(reason, []).append(urlsplit(url).netloc or base)
                log.debug("download of %s failed", url, exc_info=True)
                continue
            found[role] = directory / fname
            notes.append(f"downloaded {fname} from {url}")
            log.info("Downloaded %s from %s (checksum verified)", fname, url)
            break
        else:
            for folder in created:  # leave no empty folders behind
                with contextlib.suppress(OSError):
                    folder.rmdir()
            why = "; ".join(f"{reason} for {', '.join(dict.fromkeys(hosts))}" for reason, hosts in failures.items())
            raise DataUnavailable(f"{fname} missing; download failed: {why or 'no mirror left to try'}")
    return found, notes


def _missing_dirs(directory: Path) -> list[Path]:
    """``directory`` and those of its parents that do not exist yet, deepest first."""
    missing = []
    for folder in (directory, *directory.parents):
        if folder.exists():
            break
        missing.append(folder)
    return missing


def _fetch(url: str, directory: Path, fname: str, sha256: str) -> None:
    """Download ``url`` to ``directory/fname`` through pooch (temporary file, hash check, rename)."""
    import pooch

    directory.mkdir(parents=True, exist_ok=True)
    downloader = pooch.HTTPDownloader(progressbar=sys.stderr.isatty(), timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S))
    log.info("Downloading %s into %s", url, directory)
    pooch_log = pooch.get_logger()  # pooch prints its own line to stderr: ours goes to the run log
    level = pooch_log.level
    pooch_log.setLevel(logging.WARNING)
    try:
        pooch.retrieve(url, known_hash=f"sha256:{sha256}", fname=fname, path=directory, downloader=downloader)
    finally:
        pooch_log.setLevel(level)


def _describe(exc: BaseException) -> tuple[str, bool]:
    """A short reason for a failed download and whether the server was unreachable."""
    import requests

    text = str(exc)
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return f"HTTP {exc.response.status_code}", False
    if isinstance(exc, requests.Timeout):
        return f"timed out (connect {CONNECT_TIMEOUT_S:g} s / read {READ_TIMEOUT_S:g} s)", True
    if isinstance(exc, requests.ConnectionError):
        if "NameResolution" in text or "Failed to resolve" in text or "getaddrinfo" in text:
            return "no network (host name could not be resolved)", True
        if "refused" in text.lower():
            return "connection refused", True
        return f"connection failed ({text.splitlines()[0][:120]})", True
    if isinstance(exc, ValueError) and "hash" in text.lower():
        return "downloaded file failed the SHA-256 check and was discarded", False
    if isinstance(exc, PermissionError):
        return f"folder not writable ({exc.filename or exc})", True
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}", True
    return f"{type(exc).__name__}: {text.splitlines()[0][:120] if text else ''}", False


def default_dir(spec: IdxDataset | None, name: str) -> Path:
    """``$MNISTFW_DATA_DIR/<folder>``, else ``./data/<folder>``."""
    folder = spec.folder if spec else name
    root = os.environ.get("MNISTFW_DATA_DIR")
    return Path(root, folder) if root else Path("data", folder)
