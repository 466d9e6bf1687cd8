"""CPU thread counts that hold up when other processes use the cores.

Torch's default (one intra-op thread per core) collapses when anything else runs: a thread that
shares its core with another busy process holds up every parallel region of the other threads,
and an epoch can take four times as long. ``trainer.num_threads: auto`` (the default) therefore
uses the cores that *other* processes leave idle, measured from ``/proc/stat`` minus this
process's own CPU time, and measures again after every epoch, so a job that starts or stops
beside a run changes its thread count at the next epoch boundary.

``MNISTFW_MAX_THREADS`` caps the automatic count; the sweeper sets it for each of its ``n_jobs``
worker processes (cores // n_jobs) so that workers do not all start on every core. On systems
without ``/proc/stat`` ``auto`` uses every core the process may run on.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

EpochCallback = Callable[[int, Mapping[str, float]], None]
AUTO = "auto"
MAX_THREADS_ENV = "MNISTFW_MAX_THREADS"
#: Shortest window the first measurement is taken over (seconds).
MIN_WINDOW_S = 0.2


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS reports it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def thread_cap() -> int:
    """The most threads ``auto`` may choose: usable cores, lowered by ``MNISTFW_MAX_THREADS``."""
    cores = usable_cores()
    raw = os.environ.get(MAX_THREADS_ENV, "").strip()
    if raw.isdigit() and int(raw) >= 1:
        return min(cores, int(raw))
    return cores


def share_of_cores(n_workers: int) -> int:
    """Threads each of ``n_workers`` processes on this machine may use: the cap divided among them."""
    return max(1, thread_cap() // max(1, n_workers))


@dataclass(frozen=True)
class CpuSample:
    """Machine-wide busy CPU seconds, this process's CPU seconds and the wall clock at one moment."""

    machine_busy_s: float | None
    own_s: float
    wall_s: float

    @classmethod
    def now(cls) -> CpuSample:
        times = os.times()
        return cls(_machine_busy_seconds(), times.user + times.system, time.monotonic())

    def others_busy_cores(self, later: CpuSample) -> float | None:
        """Average number of cores other processes kept busy between this sample and ``later``."""
        if self.machine_busy_s is None or later.machine_busy_s is None or later.wall_s <= self.wall_s:
            return None
        others = (later.machine_busy_s - self.machine_busy_s) - (later.own_s - self.own_s)
        return max(0.0, others / (later.wall_s - self.wall_s))


def _machine_busy_seconds() -> float | None:
    """Busy CPU seconds of all cores since boot (``/proc/stat``), or None where it is missing."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = fh.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    ticks = [int(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal
    busy = ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6] + ticks[7]
    return busy / os.sysconf("SC_CLK_TCK")


#: Samples older than this are not used for a new decision (a sweep runs many trials in one process).
STALE_AFTER_S = 10.0
#: The latest sample; the first is taken when a backend imports this module, before the data is
#: loaded, so the first measurement spans start-up instead of delaying the run.
_latest = CpuSample.now()


def _reset_after_fork() -> None:
    """A forked child (a sweep worker) has its own CPU clock: the parent's sample does not apply."""
    global _latest
    _latest = CpuSample.now()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def _recent_sample() -> CpuSample:
    global _latest
    if time.monotonic() - _latest.wall_s > STALE_AFTER_S:
        _latest = CpuSample.now()
    return _latest


def free_cores(since: CpuSample) -> tuple[int, float | None]:
    """Threads to use now and the cores other processes kept busy since ``since``.

    The count is the cores they left idle, at least 1 and at most :func:`thread_cap`.
    """
    global _latest
    if time.monotonic() - since.wall_s < MIN_WINDOW_S:
        time.sleep(MIN_WINDOW_S - (time.monotonic() - since.wall_s))
    cap = thread_cap()
    _latest = CpuSample.now()
    others = since.others_busy_cores(_latest)
    if others is None:
        return cap, None
    return max(1, min(cap, int(usable_cores() - others + 0.5))), others


class ThreadGovernor:
    """Sets a backend's thread count from ``trainer.num_threads`` and, for ``auto``, re-measures it every epoch.

    ``apply`` is the backend's setter (``torch.set_num_threads``, a BLAS limit). A fixed count is
    applied once; ``auto`` is applied at the start and after each epoch via :meth:`wrap`.
    """

    def __init__(self, num_threads: int | str, apply: Callable[[int], Any], *, cap: int | None = None) -> None:
        self.auto = num_threads == AUTO
        self.apply = apply
        self.cap = cap
        self._sample = _recent_sample()
        self.others: float | None = None
        self.current = self._choose() if self.auto else int(num_threads)
        apply(self.current)
        log.info("threads: %d (%s)", self.current, self._why())

    def _why(self) -> str:
        if not self.auto:
            return "trainer.num_threads"
        busy = "" if self.others is None else f", other processes busy on {self.others:.1f}"
        return f"auto: {usable_cores()} usable cores{busy}, cap {self.cap or thread_cap()}"

    def _choose(self) -> int:
        n, self.others = free_cores(self._sample)
        self._sample = _latest
        return min(n, self.cap) if self.cap else n

    def retune(self) -> None:
        """Measure the idle cores over the last epoch and apply the new count if it changed."""
        if not self.auto:
            return
        n = self._choose()
        if n != self.current:
            log.info("threads: %d -> %d (%s)", self.current, n, self._why())
            self.current = n
            self.apply(n)

    def wrap(self, on_epoch_end: EpochCallback) -> EpochCallback:
        """``on_epoch_end`` that first retunes the thread count."""
        if not self.auto:
            return on_epoch_end

        def callback(epoch: int, metrics: Mapping[str, float]) -> None:
            self.retune()
            on_epoch_end(epoch, metrics)

        return callback
