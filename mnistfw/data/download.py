"""Find the four IDX files of a known dataset in a folder, verify them, download what is missing.

Known datasets (:data:`DATASETS`) come with their files' SHA-256 checksums and public mirrors.
A file already in the folder must match its checksum: a mismatch is a :class:`DataError`
(never used, never silently replaced). A folder path that is a file, lies inside a file, or
cannot be read (or written, when a download is needed) is a :class:`DataError` too.
Missing files are downloaded (pooch's HTTP downloader) into a temporary ``.<name>-<random>.part``
beside them, checked against the hash and only then renamed into place with the usual
permissions; downloads into one folder are serialised by an ``flock`` on the folder, and the
remains of a killed download are removed by the next run. When the files can be neither found
nor downloaded, :class:`DataUnavailable` says why (the pipeline may then fall back).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import stat
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from mnistfw.errors import DataError
from mnistfw.io import publish

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

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


class _ChecksumMismatch(Exception):
    """A downloaded file does not have its known SHA-256 (it has been discarded)."""


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file; an unreadable file is a :class:`DataError` naming it."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc}); fix its permissions or replace it") from None
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


def check_folder(directory: Path, key: str = "data.dir") -> None:
    """Refuse, in one line naming it, a data folder path that is not (and cannot become) a readable folder."""
    fix = f"point {key} (or MNISTFW_DATA_DIR) at the folder holding the four IDX files"
    for path in (directory, *directory.parents):
        kind = _kind(path, key, fix)
        if kind is None:
            continue  # not there yet: it is created when the files are downloaded
        if kind != "folder":
            where = f"is {kind}, not a folder" if path == directory else f"cannot be a folder: {path} is {kind}"
            raise DataError(f"{key}: {directory} {where}; {fix}")
        if path == directory and not os.access(directory, os.R_OK | os.X_OK):
            raise DataError(f"{key}: {directory} is not readable (permission denied); fix its permissions or {fix}")
        return


def _kind(path: Path, key: str, fix: str) -> str | None:
    """``"folder"``, ``"a file"``, ``"a broken link"``, ... or None when nothing is at ``path``."""
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return "a broken link" if path.is_symlink() else None
    except OSError as exc:
        raise DataError(f"{key}: {path} cannot be accessed ({exc.strerror or exc}); {fix}") from None
    if stat.S_ISDIR(mode):
        return "folder"
    return "a file" if stat.S_ISREG(mode) else "not a regular file"


def _present(path: Path) -> bool:
    """True for a regular file, False when nothing is there; anything else is a :class:`DataError`."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise DataError(f"{path}: cannot be accessed ({exc.strerror or exc}); fix the folder's permissions") from None
    if not stat.S_ISREG(mode):
        what = "a folder" if stat.S_ISDIR(mode) else "not a regular file"
        raise DataError(f"{path} is {what}; remove it so the file can be downloaded, or put the real file there")
    return True


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
    A path that is not a usable folder is a :class:`DataError` before anything is read;
    :class:`DataUnavailable` only means "missing and not downloadable".
    """
    check_folder(directory)
    found: dict[str, Path] = {}
    notes: list[str] = []
    missing: list[str] = []
    for role, fname in FILES.items():
        gz, raw = directory / fname, directory / fname.removesuffix(".gz")
        if _present(gz):
            expected = spec.sha256.get(fname) if spec else None
            if expected:
                verify_checksum(gz, expected)
            found[role] = gz
        elif _present(raw):
            found[role] = raw
            notes.append(f"{raw.name}: uncompressed copy used (format checked, no known checksum)")
        else:
            missing.append(role)
    if not missing:
        _tidy(directory)
        return found, notes

    names = ", ".join(FILES[r] for r in missing)
    if not download:
        raise DataUnavailable(f"{names} missing; downloading is off (data.download=false)")
    bases = list(mirrors) if mirrors else list(spec.mirrors if spec else ())
    if spec is None or not bases:
        raise DataUnavailable(f"{names} missing; no download source is known for this dataset")
    created = _missing_dirs(directory)
    writable = created[-1].parent if created else directory
    if not os.access(writable, os.W_OK | os.X_OK):
        raise DataError(
            f"data.dir: {names} missing in {directory} and cannot be downloaded there: {writable} is not writable; "
            f"make it writable, put the files there, or point data.dir (or MNISTFW_DATA_DIR) at a writable folder"
        )
    try:
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataError(f"data.dir: {directory} cannot be created ({exc.strerror or exc})") from None
        with _folder_lock(directory, wait=True):
            _remove(_stale_partials(directory))
            _download(directory, spec, missing, bases, found, notes)
    except BaseException:
        for folder in created:  # leave no empty folders behind
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    return found, notes


def _download(
    directory: Path, spec: IdxDataset, missing: list[str], bases: list[str], found: dict[str, Path], notes: list[str]
) -> None:
    """Download each missing file from the first mirror that delivers it intact (called under the folder lock)."""
    import requests

    dead: set[str] = set()  # mirrors that could not be reached: not retried for the other files
    for role in missing:
        fname = FILES[role]
        target = directory / fname
        if _present(target):  # another process downloaded it while this one waited for the lock
            verify_checksum(target, spec.sha256[fname])
            found[role] = target
            continue
        failures: dict[str, list[str]] = {}  # reason -> hosts
        for base in bases:
            if base in dead:
                continue
            url = base.rstrip("/") + "/" + fname
            try:
                _fetch(url, target, spec.sha256[fname])
            except Exception as exc:  # network, HTTP, checksum: "not downloadable"; a local fault: an error
                if isinstance(exc, OSError) and not isinstance(exc, requests.RequestException):
                    raise DataError(
                        f"{directory}: the download of {fname} cannot be saved there ({exc.strerror or exc}); "
                        f"free disk space or fix the folder's permissions, or point data.dir at another folder"
                    ) from None
                reason, unreachable = _describe(exc)
                if unreachable:
                    dead.add(base)
                failures.setdefault(reason, []).append(urlsplit(url).netloc or base)
                log.debug("download of %s failed", url, exc_info=True)
                continue
            found[role] = target
            notes.append(f"downloaded {fname} from {url}")
            log.info("Downloaded %s from %s (checksum verified)", fname, url)
            break
        else:
            why = "; ".join(f"{reason} for {', '.join(dict.fromkeys(hosts))}" for reason, hosts in failures.items())
            raise DataUnavailable(f"{fname} missing; download failed: {why or 'no mirror left to try'}")


def _missing_dirs(directory: Path) -> list[Path]:
    """``directory`` and those of its parents that do not exist yet, deepest first."""
    missing = []
    for folder in (directory, *directory.parents):
        if folder.exists():
            break
        missing.append(folder)
    return missing


def _fetch(url: str, target: Path, sha256: str) -> None:
    """Download ``url`` into a temporary ``.<name>-<random>.part`` beside ``target``, check it, publish it.

    The file appears under its own name only complete and verified, with the usual permissions.
    """
    import pooch

    downloader = pooch.HTTPDownloader(progressbar=sys.stderr.isatty(), timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S))
    log.info("Downloading %s into %s", url, target.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}-", suffix=PARTIAL_SUFFIX, dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            downloader(url, fh, None)
            fh.flush()
            os.fsync(fh.fileno())
        if sha256_of(Path(tmp)) != sha256:
            raise _ChecksumMismatch(url)
        publish(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _describe(exc: BaseException) -> tuple[str, bool]:
    """A short reason for a failed download and whether the server was unreachable."""
    import requests

    text = str(exc)
    if isinstance(exc, _ChecksumMismatch):
        return "downloaded file failed the SHA-256 check and was discarded", False
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
    return f"{type(exc).__name__}: {text.splitlines()[0][:120] if text else ''}", False


# --------------------------------------------------------------------------- interrupted downloads

#: Suffix of this module's temporary downloads: ``.<file name>-<random>.part``.
PARTIAL_SUFFIX = ".part"
#: A pooch-style temporary (``tmp`` + 8 characters, left by versions that downloaded through
#: ``pooch.retrieve``) counts as stale once untouched this long: a live download writes at
#: least every READ_TIMEOUT_S seconds or fails.
STALE_AFTER_S = 2 * READ_TIMEOUT_S
_KNOWN = "|".join(map(re.escape, FILES.values()))
_OURS = re.compile(rf"\.(?:{_KNOWN})-[a-z0-9_]{{8}}{re.escape(PARTIAL_SUFFIX)}")
_POOCH = re.compile(r"tmp[a-z0-9_]{8}")


@contextlib.contextmanager
def _folder_lock(directory: Path, wait: bool) -> Iterator[bool]:
    """Hold an exclusive ``flock`` on the folder itself (no lock file); yields whether it was obtained.

    Downloads into one folder hold it, so while it is held no temporary download of another
    mnistfw process is live there. ``wait=False`` gives up at once when another process has it.
    """
    if fcntl is None:  # no flock (Windows): no cross-process protection
        yield True
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError as exc:
        raise DataError(f"data.dir: {directory} cannot be opened ({exc.strerror or exc})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                yield False
                return
            log.info("Waiting for another process that is downloading into %s", directory)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield True
    finally:
        os.close(fd)  # releases the lock


def _stale_partials(directory: Path) -> list[Path]:
    """Temporary downloads of the known files left by killed runs (call under the folder lock).

    Ours (``.<known name>-<random>.part``) are stale whenever the lock is free; pooch's
    (``tmpXXXXXXXX``) only when untouched for :data:`STALE_AFTER_S` and empty or gzip data.
    """
    stale = []
    now = time.time()
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return []
    for entry in entries:
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            if _OURS.fullmatch(entry.name):
                stale.append(Path(entry.path))
            elif _POOCH.fullmatch(entry.name) and now - entry.stat().st_mtime > STALE_AFTER_S:
                with open(entry.path, "rb") as fh:
                    if fh.read(2) in (b"", b"\x1f\x8b"):
                        stale.append(Path(entry.path))
        except OSError:
            continue
    return stale


def _remove(paths: list[Path]) -> None:
    for path in paths:
        try:
            path.unlink()
            log.info("Removed %s, the remains of an interrupted download", path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.debug("could not remove %s: %s", path, exc)


def _tidy(directory: Path) -> None:
    """Remove stale temporary downloads when the files are all there (skipped while a download runs)."""
    if not _stale_partials(directory):
        return
    with _folder_lock(directory, wait=False) as held:
        if held:
            _remove(_stale_partials(directory))


def default_dir(spec: IdxDataset | None, name: str) -> Path:
    """``$MNISTFW_DATA_DIR/<folder>``, else ``./data/<folder>``."""
    folder = spec.folder if spec else name
    root = os.environ.get("MNISTFW_DATA_DIR")
    return Path(root, folder) if root else Path("data", folder)
