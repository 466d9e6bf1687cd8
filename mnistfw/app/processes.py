"""Which process of a multi-process run this is (DistributedDataParallel, torchrun, SLURM)."""

from __future__ import annotations

import os

#: Environment variables in which launchers give a process its rank (any non-zero one: not the primary).
RANK_VARIABLES = ("RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK")


def is_primary_process() -> bool:
    """True in the process that writes the run folder (rank 0, or the only process)."""
    for name in RANK_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value and value != "0":
            return False
    return True
