"""The C library's memory allocator, set for PyTorch on CPU.

glibc's malloc returns a freed block of more than a few MiB to the operating system at once
and maps fresh pages for the next one, which the kernel must zero on first touch. A U-Net step
on CPU frees and allocates its activation maps (8 MiB each for 32 channels at 256 x 256) dozens
of times, so without this a paper-preset sampling step at 256 x 256 took 64,000 page faults and
a quarter of its time went to them (0.37 s a step; 0.28 s with freed blocks kept for reuse).

`keep_freed_memory` makes malloc keep blocks below 32 MiB (the largest threshold glibc allows)
in the heap for reuse. The cost: the process keeps its peak memory until it exits, which for a
sampling or training run is what it will need again at the next step anyway.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_MAX = 32 << 20  # glibc refuses larger values on 64-bit systems
NEVER_TRIM = (1 << 31) - 1  # the largest int: free heap memory is kept


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to keep freed blocks of up to 32 MiB for reuse (process-wide).

    Returns whether it took effect: False where the C library has no mallopt (not glibc).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)) and bool(
        mallopt(M_TRIM_THRESHOLD, NEVER_TRIM))
