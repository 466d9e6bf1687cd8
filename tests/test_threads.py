"""Thread counts under contention: real busy processes, real /proc/stat readings."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from mnistfw.backends import threads
from mnistfw.backends.threads import AUTO, MAX_THREADS_ENV, CpuSample, ThreadGovernor, free_cores, usable_cores

pytestmark = pytest.mark.skipif(CpuSample.now().machine_busy_s is None, reason="needs /proc/stat (Linux)")


@contextmanager
def busy_processes(n: int) -> Iterator[None]:
    """``n`` single-threaded processes spinning on the CPU."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        time.sleep(0.3)  # let them start spinning
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_busy_processes_are_counted_and_own_work_is_not() -> None:
    before = CpuSample.now()
    with busy_processes(1):
        start = CpuSample.now()
        time.sleep(0.8)
        others = start.others_busy_cores(CpuSample.now())
    assert others is not None and others >= 0.6, others

    # This process spinning alone is its own work, not another process's.
    start = CpuSample.now()
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        pass
    later = CpuSample.now()
    assert later.own_s - start.own_s >= 0.3
    assert before.others_busy_cores(before) is None  # no time passed: no measurement


def test_auto_leaves_a_busy_core_alone() -> None:
    cores = usable_cores()
    with busy_processes(1):
        n, others = free_cores(CpuSample.now())
    assert others is not None and others >= 0.6
    assert 1 <= n <= max(1, cores - 1)


def test_cap_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MAX_THREADS_ENV, "1")
    assert threads.thread_cap() == 1
    n, _ = free_cores(CpuSample.now())
    assert n == 1
    monkeypatch.setenv(MAX_THREADS_ENV, "not a number")
    assert threads.thread_cap() == usable_cores()


def test_fixed_count_is_applied_once_and_never_retuned() -> None:
    applied: list[int] = []
    governor = ThreadGovernor(3, applied.append)
    seen: list[int] = []

    def on_epoch_end(epoch: int, metrics: object) -> None:
        seen.append(epoch)

    assert governor.wrap(on_epoch_end) is on_epoch_end
    governor.retune()
    assert applied == [3]


def test_auto_drops_to_one_thread_when_every_core_gets_busy() -> None:
    applied: list[int] = []
    governor = ThreadGovernor(AUTO, applied.append)
    assert applied == [governor.current] and 1 <= governor.current <= usable_cores()
    epochs: list[int] = []
    callback = governor.wrap(lambda epoch, metrics: epochs.append(epoch))
    with busy_processes(usable_cores()):
        time.sleep(0.6)
        callback(1, {})
    assert epochs == [1]
    assert governor.current == 1
    assert applied[-1] == 1
