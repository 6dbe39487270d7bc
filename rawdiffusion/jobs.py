"""Running one function over many items: a bad item is reported with its reason and skipped, and
the others go on, in this process or in worker processes that die with it.

`attempt` is the one place that tells a bad item (a UserError, OSError or ValueError: a file
that cannot be read or used) from a bug (anything else, which propagates) and words its reason;
`run_jobs` (prepare), the photo reader of generation.py (convert, sample.py) and `rawdiffusion
info` use it. Resumption is the job function's part: it returns early when its outputs exist
(they are written atomically, so existing means complete).

Every worker process the package starts (these pools, the readers of convert and sample.py,
training's data loader) calls `die_with_parent` first, so that no worker outlives a parent
killed by SIGKILL or SIGTERM.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from tqdm import tqdm

from .errors import UserError
from .files import shown

BAD_ITEM = (UserError, OSError, ValueError)  # what a bad input raises; anything else is a bug
PR_SET_PDEATHSIG = 1  # prctl(2) option, from <linux/prctl.h>


@dataclass
class Failure:
    """A bad item: `reason` says why (without the item's name when the error named the item;
    an error about another file names that file), `line` the one line naming the file
    (default "<item>: <reason>")."""

    item: str
    reason: str
    line: str = ""

    def __post_init__(self):
        self.line = self.line or f"{shown(self.item)}: {self.reason}"


def attempt(fn, item):
    """(item, fn(item), None), or (item, None, Failure) when fn raised a BAD_ITEM error; any
    other exception propagates."""
    try:
        return item, fn(item), None
    except BAD_ITEM as e:
        return item, None, failure(item, e)


def failure(item, error: Exception) -> Failure:
    """The Failure of `item` that raised `error`: a UserError names its file (`path`) or is
    about the item; an OSError or ValueError is said with its type."""
    path = getattr(error, "path", None)
    if isinstance(error, UserError):
        reason = error.reason if path == str(item) and hasattr(error, "reason") else str(error)
    else:
        reason = f"{type(error).__name__}: {error}"
    names_its_file = isinstance(error, UserError) and path is not None
    return Failure(str(item), reason, str(error) if names_its_file else "")


def run_jobs(fn, items, workers: int = 1, desc: str = "") -> tuple[dict, list[Failure]]:
    """Apply `fn` to every item, in `workers` processes (1: in this process).

    Returns ({item: result} for the items that worked, [Failure] for the ones that raised a
    BAD_ITEM error or whose worker process died); any other exception is a bug and
    propagates. `fn` must be a module-level function (it is pickled to the workers).
    """
    items = list(items)
    results, failures = {}, []
    workers = max(1, min(workers, len(items), os.cpu_count() or 1))
    bar = tqdm(total=len(items), desc=desc, unit="file", dynamic_ncols=True)
    outcomes = (attempt(fn, item) for item in items) if workers == 1 else \
        _pooled(fn, items, workers)
    try:
        for item, result, failed in outcomes:
            if failed is None:
                results[item] = result
            else:
                failures.append(failed)
                bar.write(f"skipped {item}: {failed.reason}")
            bar.update()
    finally:
        bar.close()
        outcomes.close()
    return results, failures


def _pooled(fn, items: list, workers: int):
    """attempt's outcomes from `workers` processes. A worker that dies (a crash inside a
    decoding library, the out-of-memory killer) breaks the whole pool: the items not finished
    then run one process each, which pins the death on its own item and lets the others
    complete."""
    # spawn, not fork: workers start clean even if the parent holds threads (torch, tqdm)
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=die_with_parent,
                               initargs=(os.getpid(),))
    futures = {pool.submit(attempt, fn, item): n for n, item in enumerate(items)}
    finished = set()
    try:
        for future in as_completed(futures):
            outcome = future.result()
            finished.add(futures[future])
            yield outcome
    except BrokenProcessPool:
        pass
    finally:
        pool.shutdown(cancel_futures=True)
    for n, item in enumerate(items):
        if n not in finished:
            yield _alone(fn, item, context)


def _alone(fn, item, context):
    with ProcessPoolExecutor(1, mp_context=context, initializer=die_with_parent,
                             initargs=(os.getpid(),)) as pool:
        try:
            return pool.submit(attempt, fn, item).result()
        except BrokenProcessPool:
            return item, None, Failure(str(item), "its worker process died (a crash in a "
                                                  "decoding library, or out of memory)")


def die_with_parent(parent: int, *_worker_id) -> None:
    """Make this worker process die (SIGKILL) when its parent, the process `parent`, ends in
    any way, SIGKILL and SIGTERM included: Linux's prctl(PR_SET_PDEATHSIG) (prctl(2)), then a
    check that the parent is still `parent`, since it may have ended before. Nothing on other
    systems. The initializer of a process pool, and a DataLoader's worker_init_fn (whose
    worker id is ignored). The signal comes when the thread that started the worker ends:
    start workers from the main thread."""
    if not sys.platform.startswith("linux"):
        return
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGKILL)
