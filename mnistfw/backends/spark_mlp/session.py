"""Starting and stopping the SparkSession of a run, with fast, clear failures.

Before the JVM is launched we check that Java is there and new enough for the installed
pyspark, and that a remote master answers on its port: both would otherwise surface as a
long hang or a page of Java stack trace.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from mnistfw.backends.spark_mlp.spark_settings import SparkConfig
from mnistfw.errors import BackendUnavailableError, ConfigError

log = logging.getLogger(__name__)

_VERSION_RE = re.compile(r'version "([^"]+)"')


def required_java_major(pyspark_version: str) -> int:
    """Oldest Java major version the given pyspark runs on (4.x: 17, 3.x: 8)."""
    major = int(pyspark_version.split(".")[0])
    return 17 if major >= 4 else 8


def java_executable() -> tuple[Path | None, str]:
    """The ``java`` Spark will launch (``$JAVA_HOME/bin/java``, else ``java`` on PATH) and where it came from."""
    home = os.environ.get("JAVA_HOME")
    if home:
        return Path(home) / "bin" / "java", f"JAVA_HOME={home}"
    found = shutil.which("java")
    return (Path(found) if found else None), "PATH"


def parse_java_major(version_output: str) -> int | None:
    """Major version from ``java -version`` output: ``"1.8.0_392"`` -> 8, ``"17.0.15"`` -> 17."""
    match = _VERSION_RE.search(version_output)
    if not match:
        return None
    parts = match.group(1).split(".")
    try:
        first = int(re.sub(r"\D.*", "", parts[0]) or 0)
        return int(re.sub(r"\D.*", "", parts[1])) if first == 1 and len(parts) > 1 else first
    except ValueError:
        return None


def check_java(pyspark_version: str | None = None) -> int:
    """Raise :class:`BackendUnavailableError` unless a Java new enough for pyspark is installed.

    Returns the Java major version found.
    """
    if pyspark_version is None:
        import pyspark

        pyspark_version = pyspark.__version__
    need = required_java_major(pyspark_version)
    hint = f"install Java {need}+ (e.g. apt-get install openjdk-{need}-jre-headless) and/or point JAVA_HOME at it"
    java, origin = java_executable()
    if java is None:
        raise BackendUnavailableError(
            f"Spark (pyspark {pyspark_version}) needs Java {need}+ but no java was found "
            f"(JAVA_HOME is unset and there is no java on PATH); {hint}"
        )
    if not java.is_file():
        raise BackendUnavailableError(f"Spark needs Java {need}+ but {java} (from {origin}) does not exist; {hint}")
    try:
        proc = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BackendUnavailableError(f"cannot run {java} -version (from {origin}): {exc}; {hint}") from None
    output = (proc.stderr or "") + (proc.stdout or "")
    major = parse_java_major(output)
    if proc.returncode != 0 or major is None:
        first = output.strip().splitlines()[0] if output.strip() else f"exit code {proc.returncode}"
        raise BackendUnavailableError(f"{java} -version (from {origin}) failed: {first}; {hint}")
    if major < need:
        raise BackendUnavailableError(
            f"pyspark {pyspark_version} needs Java {need}+ but {java} (from {origin}) is Java {major}; {hint}"
        )
    return major


def master_endpoints(master: str) -> list[tuple[str, int]]:
    """``(host, port)`` pairs a master URL points at; empty for local and YARN masters."""
    if master.startswith("spark://"):
        hosts = master[len("spark://") :].split(",")
        out = []
        for hp in hosts:
            host, _, port = hp.strip().rstrip("/").partition(":")
            out.append((host, int(port) if port else 7077))
        return out
    if master.startswith("k8s://"):
        url = master[len("k8s://") :]
        if "://" not in url:
            url = "https://" + url
        parsed = urlparse(url)
        port = parsed.port or (80 if parsed.scheme == "http" else 443)
        return [(parsed.hostname or "", port)]
    return []


def check_master(master: str, timeout: float) -> None:
    """Fail fast (within ``timeout`` seconds per endpoint) when a remote master cannot be reached."""
    if master == "yarn" and not (os.environ.get("HADOOP_CONF_DIR") or os.environ.get("YARN_CONF_DIR")):
        raise ConfigError(
            "spark.master=yarn needs HADOOP_CONF_DIR or YARN_CONF_DIR pointing at the cluster's "
            "Hadoop config; set one of them or use spark.master=spark://host:7077"
        )
    endpoints = master_endpoints(master)
    if not endpoints:
        return
    errors = []
    for host, port in endpoints:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return
        except OSError as exc:
            errors.append(f"{host}:{port}: {exc.strerror or exc}")
    raise BackendUnavailableError(
        f"cannot reach Spark master {master} ({'; '.join(errors)}; waited {timeout:g} s); "
        "start the master, or fix spark.master (and spark.connect_timeout)"
    )


@dataclass
class SessionHandle:
    """A SparkSession and whether this run started it (and so must stop it)."""

    spark: Any
    owned: bool

    def stop(self) -> None:
        if self.owned and self.spark is not None:
            with contextlib.suppress(Exception):
                self.spark.stop()
        self.spark = None


def active_session(master: str | None = None) -> Any:
    """The running SparkSession (with that master, when given), or None."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        return None
    spark = SparkSession.getActiveSession()
    if spark is None:
        return None
    if master is not None and spark.sparkContext.master != master:
        return None
    return spark


def start_session(cfg: SparkConfig, reuse: bool = True) -> SessionHandle:
    """Start (or, with ``reuse``, join an active one on the same master) the run's SparkSession."""
    try:
        import pyspark
        from pyspark import SparkContext
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise BackendUnavailableError(f"model=spark_mlp needs pyspark ({exc}); pip install 'mnistfw[spark]'") from None
    if int(pyspark.__version__.split(".")[0]) < 4:
        raise BackendUnavailableError(
            f"model=spark_mlp needs pyspark 4.0+ (found {pyspark.__version__}); pip install -U 'mnistfw[spark]'"
        )
    if reuse:
        existing = active_session(cfg.master)
        if existing is not None:
            log.info("Spark: joining the running SparkSession on %s", cfg.master)
            existing.sparkContext.setLogLevel(cfg.log_level.upper())
            return SessionHandle(existing, owned=False)
    if SparkContext._gateway is None:  # the JVM is not running yet
        check_java(pyspark.__version__)
    check_master(cfg.master, cfg.connect_timeout)
    other = active_session()
    if other is not None:
        raise ConfigError(
            f"spark.master={cfg.master}, but this process already runs a SparkSession on "
            f"{other.sparkContext.master} (one per process); stop it first or use that master"
        )
    logging.getLogger("py4j").setLevel(logging.WARNING)  # one INFO line per closed connection
    builder = SparkSession.builder.master(cfg.master)
    for key, value in cfg.spark_settings().items():
        builder = builder.config(key, value)
    # The driver JVM inherits this process's environment: keep a native BLAS single-threaded
    # per task (Spark's own advice), unless the user chose otherwise.
    saved = os.environ.get("OPENBLAS_NUM_THREADS")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    try:
        spark = builder.getOrCreate()
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BackendUnavailableError(f"could not start Spark on {cfg.master}: {first[:300]}") from exc
    finally:
        if saved is None:
            os.environ.pop("OPENBLAS_NUM_THREADS", None)
    spark.sparkContext.setLogLevel(cfg.log_level.upper())
    log.info(
        "Spark %s session on %s (default parallelism %d, BLAS %s)",
        spark.version,
        spark.sparkContext.master,
        spark.sparkContext.defaultParallelism,
        blas_name(spark),
    )
    return SessionHandle(spark, owned=True)


def blas_name(spark: Any) -> str:
    """Which BLAS the driver JVM's Spark ML uses: ``native (JNIBLAS)`` or ``java (VectorBLAS)``..."""
    try:
        name = spark._jvm.dev.ludovic.netlib.blas.BLAS.getInstance().getClass().getSimpleName()
    except Exception:  # noqa: BLE001 - purely informative
        return "unknown"
    return f"native ({name})" if name.startswith("JNI") else f"java ({name})"


@contextlib.contextmanager
def job_progress(spark: Any, label: str, enabled: bool = True, every_s: float = 30.0) -> Iterator[None]:
    """Name the block's Spark jobs ``label`` (as the Spark UI shows them) and, when ``enabled``
    (``trainer.enable_progress_bar``), log every ``every_s`` seconds how many Spark jobs (one per
    loss/gradient evaluation of L-BFGS) it has run so far."""
    import threading
    import time

    sc = spark.sparkContext
    tracker = sc.statusTracker()
    group = f"mnistfw-{os.getpid()}-{time.monotonic_ns()}"
    sc.setJobGroup(group, label)
    stop = threading.Event()
    start = time.perf_counter()

    def watch() -> None:
        while not stop.wait(every_s):
            try:
                jobs = len(tracker.getJobIdsForGroup(group))
            except Exception:  # noqa: BLE001 - the session is going away
                return
            log.info("Spark MLP: %s: %d Spark jobs so far (%.0f s)", label, jobs, time.perf_counter() - start)

    thread = threading.Thread(target=watch, name="spark-mlp-progress", daemon=True)
    if enabled:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        if enabled:
            thread.join(timeout=5)
        with contextlib.suppress(Exception):
            sc.setLocalProperty("spark.jobGroup.id", None)
            sc.setLocalProperty("spark.job.description", None)
