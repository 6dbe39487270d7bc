"""Running one function over many inputs: worker processes, a progress bar, and bad inputs
reported and skipped rather than fatal. Resumption is the job function's part: it returns
early when its outputs exist (they are written atomically, so existing means complete)."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from tqdm import tqdm

from .errors import UserError
from .errors import RawFormatError



@dataclass
class Failure:
    item: str
    reason: str


def _call(fn, item):
    try:
        return item, fn(item), None
    except RawFormatError as e:
        return item, None, e.reason
    except UserError as e:  # names its file and reason: the item's own file is named once
        own = getattr(e, "path", None) == str(item)
        return item, None, e.reason if own else str(e)
    except (OSError, ValueError) as e:
        return item, None, f"{type(e).__name__}: {e}"


def run_jobs(fn, items, workers: int = 1, desc: str = "") -> tuple[dict, list[Failure]]:
    """Apply `fn` to every item, in `workers` processes (1: in this process).

    Returns ({item: result} for the items that worked, [Failure] for the ones that raised
    RawFormatError, OSError or ValueError, or whose worker process died); any other exception
    is a bug and propagates. `fn` must be a module-level function (it is pickled to the
    workers).
    """
    items = list(items)
    results, failures = {}, []
    workers = max(1, min(workers, len(items), os.cpu_count() or 1))
    bar = tqdm(total=len(items), desc=desc, unit="file", dynamic_ncols=True)
    outcomes = (_call(fn, item) for item in items) if workers == 1 else \
        _pooled(fn, items, workers)
    try:
        for item, result, reason in outcomes:
            if reason is None:
                results[item] = result
            else:
                failures.append(Failure(str(item), reason))
                bar.write(f"skipped {item}: {reason}")
            bar.update()
    finally:
        bar.close()
        outcomes.close()
    return results, failures


def _pooled(fn, items: list, workers: int):
    """_call's outcomes from `workers` processes. A worker that dies (a crash inside a decoding
    library, the out-of-memory killer) breaks the whole pool: the items not finished then run
    one process each, which pins the death on its own item and lets the others complete."""
    # spawn, not fork: workers start clean even if the parent holds threads (torch, tqdm)
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context)
    futures = {pool.submit(_call, fn, item): n for n, item in enumerate(items)}
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
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        try:
            return pool.submit(_call, fn, item).result()
        except BrokenProcessPool:
            return item, None, ("its worker process died (a crash in a decoding library, or "
                                "out of memory)")
