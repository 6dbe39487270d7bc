"""run_jobs: bad inputs are reported and skipped, in this process or in worker processes, and a
worker that dies (a crash in a decoding library) costs only its own item."""

import os

from rawdiffusion.errors import UserError
from rawdiffusion.images import PhotoError
from rawdiffusion.io import RawFormatError
from rawdiffusion.jobs import run_jobs


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
