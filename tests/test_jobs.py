"""run_jobs: bad inputs are reported and skipped, in this process or in worker processes, and a
worker that dies (a crash in a decoding library) costs only its own item; every worker process
dies with its parent."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rawdiffusion.errors import UserError
from rawdiffusion.images import PhotoError
from rawdiffusion.io import RawFormatError
from rawdiffusion.jobs import run_jobs

REPO = Path(__file__).resolve().parents[1]


def job(item: str) -> str:
    """Module level, so that spawned workers can import it."""
    if item == "dies":
        os._exit(70)  # as a segfault in LibRaw would end the worker: no exception, no cleanup
    if item == "bad":
        raise RawFormatError(item, "not a RAW file")
    if item == "missing":
        raise FileNotFoundError(f"{item}: no such file")
    if item == "photo":
        raise PhotoError(item, "not a readable image")  # names the item itself
    if item == "other":
        raise UserError("labels.json: not a label file")  # names another file
    return item.upper()


def test_failures_are_reported_and_the_rest_done_in_this_process():
    results, failures = run_jobs(job, ["a", "bad", "b", "missing"], workers=1)
    assert results == {"a": "A", "b": "B"}
    assert [(f.item, f.reason) for f in failures] == [
        ("bad", "not a RAW file"), ("missing", "FileNotFoundError: missing: no such file")]


def test_a_user_error_names_its_item_once_and_another_file_in_full():
    results, failures = run_jobs(job, ["photo", "other", "a"], workers=1)
    assert results == {"a": "A"}
    assert [(f.item, f.reason) for f in failures] == [
        ("photo", "not a readable image"), ("other", "labels.json: not a label file")]


def test_a_worker_that_dies_costs_only_its_own_item():
    items = ["a", "b", "dies", "c", "bad", "d", "e"]
    results, failures = run_jobs(job, items, workers=2)
    assert results == {i: i.upper() for i in "abcde"}
    reasons = {f.item: f.reason for f in failures}
    assert reasons.keys() == {"dies", "bad"}
    assert reasons["dies"].startswith("its worker process died")
    assert reasons["bad"] == "not a RAW file"


# ----------------------------------------------------------------------------- orphans

READER = """
import os, pathlib, sys, time
from rawdiffusion.generation import Job, read_ahead

class Sleepy(Job):
    def read(self, index):
        pathlib.Path(sys.argv[1], str(os.getpid())).write_text("")
        time.sleep(600)

for batch in read_ahead(Sleepy(), [0], 1, workers=1):
    pass
"""

POOL = """
import sys
from rawdiffusion.jobs import run_jobs
from sleepy import sleep_here

run_jobs(sleep_here, [sys.argv[1], sys.argv[1] + "/."], workers=2)
"""

SLEEPY = """
import os, pathlib, time

def sleep_here(folder):
    pathlib.Path(folder, str(os.getpid())).write_text("")
    time.sleep(600)
"""


def alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie waiting to be reaped counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def wait_for(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
@pytest.mark.parametrize("script, sig", [(READER, signal.SIGKILL), (READER, signal.SIGTERM),
                                         (POOL, signal.SIGKILL)])
def test_a_worker_dies_with_its_killed_parent(tmp_path, script, sig):
    """convert's and sample.py's photo readers and prepare's pool: a parent killed by SIGKILL
    or SIGTERM (no cleanup of its own) takes its worker processes with it."""
    (tmp_path / "sleepy.py").write_text(SLEEPY)
    pids = tmp_path / "pids"
    pids.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), str(tmp_path)])}
    parent = subprocess.Popen([sys.executable, "-c", script, str(pids)], env=env)
    try:
        assert wait_for(lambda: any(pids.iterdir()), 120), "no worker started"
        worker = int(next(pids.iterdir()).name)
        assert worker != parent.pid and alive(worker)
        parent.send_signal(sig)
        parent.wait(timeout=60)
        assert wait_for(lambda: not alive(worker), 30), f"worker {worker} outlived its parent"
    finally:
        parent.kill()
        for pid in (int(p.name) for p in pids.iterdir()):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
