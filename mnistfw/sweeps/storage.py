"""Where a study lives: ``hydra.sweeper.storage`` turned into an Optuna storage.

Accepted values:

* ``null`` - a SQLite file beside the sweep folder, named after the study
  (``<parent of hydra.sweep.dir>/<study_name>.db``): the same command again (a new
  timestamped sweep folder in the same parent) finds the study and continues it;
* ``memory`` - in memory, gone when the command ends; with ``n_jobs > 1`` a journal file in
  the sweep folder (``<sweep dir>/optuna_journal.log``) so the worker processes can share it;
* any SQLAlchemy URL: ``sqlite:///outputs/study.db`` (relative to the current folder),
  ``postgresql://user:pw@host/db``, ``mysql+pymysql://...`` -> ``RDBStorage``;
* an Optuna journal file: ``journal:///abs/path/study.log``, ``journal://relative/study.log``,
  or a plain path ending in ``.log``, ``.jsonl`` or ``.journal`` ->
  ``JournalStorage(JournalFileBackend(path))``;
* a mapping with ``_target_`` (e.g. ``optuna.storages.RDBStorage`` with ``engine_kwargs``).

A :class:`StorageSpec` is plain data, so worker processes can open their own connection.
A storage that cannot be created or opened raises :class:`StorageError`, one line naming
the storage and the fix.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mnistfw.errors import ConfigError

MEMORY, RDB, JOURNAL, TARGET = "memory", "rdb", "journal", "target"
JOURNAL_SUFFIXES = (".log", ".jsonl", ".journal")


class StorageError(ConfigError):
    """``hydra.sweeper.storage`` cannot be created, opened or written."""


@dataclass
class StorageSpec:
    """A resolved storage: its kind, location and how to show it in logs."""

    kind: str
    #: RDB: the SQLAlchemy URL (SQLite paths made absolute); journal: the absolute file path.
    location: str = ""
    #: For ``_target_`` storages: the mapping to instantiate.
    target: dict[str, Any] = field(default_factory=dict)
    #: What the user wrote (passwords hidden), for messages.
    shown: str = "in memory"

    @property
    def persistent(self) -> bool:
        """True when the study outlives the process (and can be shared and resumed)."""
        return self.kind != MEMORY

    @property
    def url(self) -> str:
        """What ``optuna-dashboard`` and ``optuna.load_study`` take (passwords hidden)."""
        if self.kind == RDB:
            return _hide_password(self.location)
        return self.location or self.shown

    @property
    def address(self) -> str | None:
        """What another process hands :func:`resolve_storage` to open this storage (password
        included), or None when it cannot (in memory, a ``_target_`` mapping)."""
        if self.kind == RDB:
            return self.location
        if self.kind == JOURNAL:
            return f"journal://{self.location}"
        return None

    def open(self) -> Any:
        """A fresh Optuna storage object (call once per process); :class:`StorageError` if it fails."""
        try:
            return self._open()
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - driver, file system and schema errors alike
            raise self.error(exc) from None

    def error(self, exc: BaseException, doing: str = "open") -> StorageError:
        """``exc`` (raised while using this storage) as one line naming the storage and the fix."""
        cause = getattr(exc, "orig", None) or exc  # SQLAlchemy wraps the driver's error
        lines = str(cause).strip().splitlines()
        reason = f"{type(cause).__name__}: {lines[0] if lines else ''}".rstrip(": ")
        if isinstance(cause, ImportError):
            fix = "install the database driver the URL names (e.g. pip install psycopg2-binary or pymysql)"
        elif self.kind == JOURNAL or self.location.startswith("sqlite"):
            fix = ("use a folder you can write to (not under a file), move a damaged file away, "
                   "or set hydra.sweeper.storage to another place (memory: not kept)")
        else:
            fix = "check the URL, that the database server is running and reachable, and the user and password"
        return StorageError(f"hydra.sweeper.storage: cannot {doing} {self.shown} ({reason}); {fix}")

    def _open(self) -> Any:
        import optuna

        if self.kind == MEMORY:
            return optuna.storages.InMemoryStorage()
        if self.kind == JOURNAL:
            from optuna.storages import JournalStorage
            from optuna.storages.journal import JournalFileBackend

            Path(self.location).parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(self.location))
        if self.kind == RDB:
            kwargs: dict[str, Any] = {}
            if self.location.startswith("sqlite"):
                # Several worker processes write one SQLite file: wait for its lock, don't fail.
                kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
            return optuna.storages.RDBStorage(self.location, **kwargs)
        from hydra.utils import instantiate

        return instantiate(self.target, _convert_="all")

    def lock_path(self, study_name: str = "") -> Path | None:
        """A per-machine lock file shared by every process working on this study, or None.

        Without ``study_name``: the lock of the storage itself, taken around creating its
        tables and a study, which Optuna does not guard against concurrent processes.
        """
        if not self.persistent:
            return None
        key = f"{self.kind}|{self.location}|{sorted(self.target.items())}|{study_name}"
        digest = hashlib.sha1(key.encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"mnistfw-optuna-{digest}.lock"


def _hide_password(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - only for display
        return url


def default_storage(sweep_dir: Path, study_name: str) -> StorageSpec:
    """The SQLite file beside the sweep folder that ``storage: null`` means."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", study_name).strip("._") or "study"
    path = Path(sweep_dir).absolute().parent / f"{safe}.db"
    spec = StorageSpec(RDB, f"sqlite:///{path}", shown=f"sqlite:///{path}")
    _make_folder(spec, path.parent)
    return spec


def _make_folder(spec: StorageSpec, folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise spec.error(exc, "create the folder of") from None


def resolve_storage(value: Any, n_jobs: int, sweep_dir: Path, study_name: str = "mnistfw") -> StorageSpec:
    """Interpret ``hydra.sweeper.storage`` (see the module docstring)."""
    from omegaconf import OmegaConf

    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value, resolve=True)
    if value is None or value == "":
        return default_storage(sweep_dir, study_name)
    if isinstance(value, str) and value.strip().lower() == "memory":
        if n_jobs > 1:
            path = (Path(sweep_dir) / "optuna_journal.log").absolute()
            return StorageSpec(JOURNAL, str(path), shown=f"journal file {path} (n_jobs > 1 needs a shared storage)")
        return StorageSpec(MEMORY)
    if isinstance(value, dict):
        if "_target_" not in value:
            raise ConfigError("hydra.sweeper.storage: a mapping needs _target_, e.g. optuna.storages.RDBStorage")
        return StorageSpec(TARGET, target=dict(value), shown=str(value.get("url", value["_target_"])))
    if not isinstance(value, str):
        raise ConfigError(f"hydra.sweeper.storage: expected a URL or a file path, got {value!r}")
    text = value.strip()
    if text.startswith("journal://"):
        raw = text[len("journal://"):]
        if not raw:
            raise ConfigError("hydra.sweeper.storage: journal:// needs a file path, e.g. journal:///tmp/study.log")
        path = Path(raw).expanduser().absolute()
        return StorageSpec(JOURNAL, str(path), shown=f"journal file {path}")
    if "://" not in text:
        if text.lower().endswith(JOURNAL_SUFFIXES):
            path = Path(text).expanduser().absolute()
            return StorageSpec(JOURNAL, str(path), shown=f"journal file {path}")
        raise ConfigError(
            f"hydra.sweeper.storage: '{text}' is neither a database URL (sqlite:///study.db, "
            "postgresql://...) nor a journal file (journal:///path/study.log or a path ending in .log) "
            "nor memory"
        )
    if text.startswith("sqlite:///"):
        raw = text[len("sqlite:///"):]
        path_part, sep, query = raw.partition("?")
        if path_part and path_part != ":memory:":
            path = Path(path_part).expanduser().absolute()
            url = f"sqlite:///{path}" + (sep + query if sep else "")
            spec = StorageSpec(RDB, url, shown=text)
            _make_folder(spec, path.parent)
            return spec
    return StorageSpec(RDB, text, shown=_hide_password(text))


@contextlib.contextmanager
def study_lock(path: Path | None) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (shared by processes on this machine); no-op for None.

    Workers take it around "count the trials, then ask for a new one", so processes on one
    machine never start more than ``n_trials`` trials between them.
    """
    if path is None:
        yield
        return
    try:
        import fcntl
    except ImportError:  # not POSIX: no cross-process lock; see the README on overshoot
        yield
        return
    with open(path, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def machine_id() -> str:
    """Where process ids mean the same thing: host name, boot id and PID namespace (Linux).

    Two processes with equal ``machine_id`` can check each other's pids; containers sharing
    a host name (``--network host``) still differ by their PID namespace.
    """
    import socket

    parts = [socket.gethostname()]
    with contextlib.suppress(OSError):
        parts.append(Path("/proc/sys/kernel/random/boot_id").read_text().strip())
    with contextlib.suppress(OSError):
        parts.append(os.readlink("/proc/self/ns/pid"))
    return "/".join(parts)


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    # A killed child that its parent has not reaped yet is a zombie: as good as dead.
    with contextlib.suppress(OSError, IndexError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True
