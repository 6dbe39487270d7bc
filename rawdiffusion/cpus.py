"""How many CPUs a command uses: its compute threads and its data-reading processes, set by the
user (system.threads and system.workers of the Hydra commands, --threads of convert, prepare
and baseline fit) or chosen from the CPUs this process may run on.

Why it matters: PyTorch (and OpenMP, which LibRaw uses too) starts a thread per core whoever
else runs there; on a loaded 2-core machine a training step took 80 s with those threads
and 9 s with one.

The defaults:
- threads: this process's share of the CPUs it may run on (os.sched_getaffinity: a
  container's, a SLURM task's or taskset's share), divided among the processes that compute
  side by side (torchrun's local processes, prepare's workers); never more than
  $OMP_NUM_THREADS when that is set (torchrun sets it to 1 for several processes).
- data-reading processes (DataLoader workers of training and sample.py): one fewer than the
  process's share of the CPUs, at most 4; none on one CPU (the data is read in the process
  itself). So 1 on a 2-core machine, where 4 would make PyTorch warn that they "might freeze".
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys

from .errors import SetupError

log = logging.getLogger(__name__)

MOST_WORKERS = 4  # data-reading processes per process by default (benchmarks: enough on GPUs)


def available() -> int:
    """The CPUs this process may run on (its affinity; the machine's count where the system
    has no affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def local_processes() -> int:
    """The processes of this launch on this machine: torchrun's LOCAL_WORLD_SIZE, else 1."""
    return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", 1)))


def default_threads(processes: int | None = None) -> int:
    """Compute threads of this process: available() divided among `processes` (default:
    local_processes()), at least 1, at most $OMP_NUM_THREADS when set to a positive number."""
    share = max(1, available() // (processes or local_processes()))
    omp = os.environ.get("OMP_NUM_THREADS", "").strip()
    return min(share, int(omp)) if omp.isdigit() and int(omp) > 0 else share


def default_workers() -> int:
    """Data-reading processes of this process: one fewer than its share of the CPUs, 0 to
    MOST_WORKERS."""
    return min(MOST_WORKERS, max(0, available() // local_processes() - 1))


def set_threads(threads: int | None, option: str, processes: int | None = None) -> int:
    """Use `threads` CPU threads for computing (None: default_threads(processes)); `option` is
    the setting's name for the messages ("system.threads", "--threads"). Sets PyTorch's
    intra-op threads (and its inter-op threads, where it still can), and $OMP_NUM_THREADS for
    what starts later (OpenMP libraries loaded later, PyTorch when imported later, worker
    processes started from here). Logs the number once; returns it. Raises SetupError for a
    number below 1."""
    if threads is not None and threads < 1:
        raise SetupError(f"{option}={threads}: must be >= 1 (or null: chosen from the CPUs)")
    n = default_threads(processes) if threads is None else threads
    os.environ["OMP_NUM_THREADS"] = str(n)
    torch = sys.modules.get("torch")  # a command that does not use PyTorch is not made to load it
    if torch is not None:
        torch.set_num_threads(n)
        if torch.get_num_interop_threads() != n:
            # settable once, before any inter-op work: a second command in one process keeps it
            with contextlib.suppress(RuntimeError):
                torch.set_num_interop_threads(n)
    why = f"{option}={threads}" if threads is not None else \
        f"chosen from {available()} available CPU(s); set {option} to change"
    each = f" in each of {processes} processes" if processes and processes > 1 else ""
    log.info("using %d CPU thread(s)%s (%s)", n, each, why)
    return n
