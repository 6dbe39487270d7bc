"""allocator.keep_freed_memory: the setting is in force in the process, observed through glibc's
own bookkeeping (mallinfo2), which no other process's load can change.

What it is for, a U-Net step that no longer page-faults its activation maps, depends on the
machine's memory pressure and is measured by hand: benchmarks/allocator_faults.py.
"""

import json
import subprocess
import sys

import pytest

BLOCK = 24 << 20  # an activation map's size class: above glibc's default mmap threshold
                   # (128 KiB), below the 32 MiB that keep_freed_memory sets

# One block malloc'ed, freed and malloc'ed again, with glibc's accounting after each step
# (struct mallinfo2, glibc >= 2.33: arena = bytes of the heap, hblkhd = bytes in mmap'ed blocks,
# fordblks = free bytes kept in the heap).
MALLOC = """
import ctypes, json, sys
from rawdiffusion.allocator import keep_freed_memory

class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks",
                "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Mallinfo2
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
size = int(sys.argv[2])
if sys.argv[1] == "keep":
    assert keep_freed_memory()
block = libc.malloc(size)
held = libc.mallinfo2()
libc.free(block)
freed = libc.mallinfo2()
again = libc.malloc(size)
print(json.dumps({"mapped_while_held": held.hblkhd, "heap_while_held": held.arena,
                  "heap_after_free": freed.arena, "free_in_heap": freed.fordblks,
                  "same_block_again": again == block}))
"""


def malloc_accounting(mode: str) -> dict:
    # A process of its own: the setting is process-wide and must not leak into other tests.
    result = subprocess.run([sys.executable, "-c", MALLOC, mode, str(BLOCK)],
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def has_mallinfo2() -> bool:
    import ctypes

    try:
        return hasattr(ctypes.CDLL(None), "mallinfo2")
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux") or not has_mallinfo2(),
                    reason="glibc's mallopt and mallinfo2 (glibc >= 2.33): Linux only")
def test_freed_blocks_stay_in_the_heap_and_are_reused():
    kept = malloc_accounting("keep")
    # the block came from the heap, not from a mapping of its own ...
    assert kept["mapped_while_held"] < BLOCK <= kept["heap_while_held"]
    # ... and freeing it gave nothing back to the system: the heap keeps it, free, ...
    assert kept["heap_after_free"] >= kept["heap_while_held"]
    assert kept["free_in_heap"] >= BLOCK
    # ... for the next block of its size, which is the same memory (no fresh pages to fault in)
    assert kept["same_block_again"]


@pytest.mark.skipif(not sys.platform.startswith("linux") or not has_mallinfo2(),
                    reason="glibc's mallopt and mallinfo2 (glibc >= 2.33): Linux only")
def test_without_it_glibc_maps_the_block_and_returns_it():
    """What the setting changes: by default a block this large is a mapping of its own,
    unmapped when freed (so each step faults fresh zeroed pages in)."""
    default = malloc_accounting("default")
    assert default["mapped_while_held"] >= BLOCK
    assert default["heap_after_free"] < BLOCK
