"""Running one function over many inputs: worker processes, a progress bar, and bad inputs
reported and skipped rather than fatal. Resumption is the job function's part: it returns
early when its outputs exist (they are written atomically, so existing means complete)."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass

from tqdm import tqdm

from .io import RawFormatError



@dataclass
class Failure:
    item: str
    reason: str


def _call(fn, item):
    try:
        return item, fn(item), None
    except RawFormatError as e:
        return item, None, e.reason
    except (OSError, ValueError) as e:
        return item, None, f"{type(e).__name__}: {e}"


def run_jobs(fn, items, workers: int = 1, desc: str = "") -> tuple[dict, list[Failure]]:
    """Apply `fn` to every item, in `workers` processes (1: in this process).

    Returns ({item: result} for the items that worked, [Failure] for the ones that raised
    RawFormatError, OSError or ValueError); any other exception is a bug and propagates.
    `fn` must be a module-level function (it is pickled to the workers).
    """
    items = list(items)
    results, failures = {}, []
    workers = max(1, min(workers, len(items), os.cpu_count() or 1))
    bar = tqdm(total=len(items), desc=desc, unit="file", dynamic_ncols=True)
    if workers == 1:
        outcomes = (_call(fn, item) for item in items)
        pool = None
    else:
        # spawn, not fork: workers start clean even if the parent holds threads (torch, tqdm)
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
        outcomes = (f.result() for f in as_completed([pool.submit(_call, fn, i) for i in items]))
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
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return results, failures
