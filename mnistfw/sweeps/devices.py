"""Which GPU each concurrent trial gets: slot *i* sees device *i* modulo the devices present.

A slot is a forked worker (``hydra.sweeper.n_jobs``) or a job's place in a launcher's batch.
The devices are the entries of ``CUDA_VISIBLE_DEVICES`` when the user set it (indices, UUIDs
or MIG ids, spread over as given; empty or ``-1``: no GPU), otherwise ``0 .. count-1`` for the
GPUs this machine has. No GPU: nothing is set, and trials run as before.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

VAR = "CUDA_VISIBLE_DEVICES"


def gpu_count() -> int:
    """GPUs on this machine, without importing torch or creating a CUDA context.

    torch's own count when torch is already imported (NVML based, fork-safe), otherwise the
    NVIDIA driver's list of GPUs in ``/proc`` (0 where there is none).
    """
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            return int(torch.cuda.device_count())
        except Exception:  # noqa: BLE001 - a broken CUDA set-up counts as none
            return 0
    try:
        return sum(1 for _ in Path("/proc/driver/nvidia/gpus").iterdir())
    except OSError:
        return 0


def visible_devices(count: int | None = None, environ: Mapping[str, str] | None = None) -> list[str]:
    """The devices to spread trials over (see the module docstring); ``count`` defaults to :func:`gpu_count`."""
    environ = os.environ if environ is None else environ
    given = environ.get(VAR)
    if given is not None:
        devices = [d.strip() for d in given.split(",") if d.strip()]
        return [] if not devices or devices[0] == "-1" else devices
    return [str(i) for i in range(gpu_count() if count is None else count)]


def device_for(slot: int, devices: Sequence[str]) -> str | None:
    """``CUDA_VISIBLE_DEVICES`` for slot ``slot``: device ``slot`` modulo the devices; None without any."""
    return devices[slot % len(devices)] if devices else None
