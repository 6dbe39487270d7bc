"""Process plumbing of training, sampling and conversion: the processes of a torchrun (or
SLURM) launch, waiting for each other, and the per-process records that make a sharded job
resumable.

A sharded job gives each process every world-th item. Each process appends one JSON line per
finished item to its own part file (<stem>.part<rank>.jsonl): a line is whole or absent after
a kill, so a rerun skips exactly the items recorded. Conversion's parts are merged into one
manifest.jsonl when the job ends.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import torch
import torch.distributed as dist

from .allocator import keep_freed_memory
from .atomic import append_line, atomic_output
from .errors import UserError


def shard() -> tuple[int, int]:
    """(rank, world size) of a torchrun launch; (0, 1) otherwise."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


@contextlib.contextmanager
def processes(cpu: bool = False):
    """This process's device (cuda:LOCAL_RANK when there is a GPU and not `cpu`); under
    torchrun, or a SLURM job of several submitit tasks, also a process group (NCCL on GPUs,
    gloo on CPU), destroyed on the way out. Freed memory is kept for reuse
    (allocator.keep_freed_memory): a quarter of a CPU sampling step otherwise."""
    keep_freed_memory()
    if "RANK" not in os.environ and "SUBMITIT_EXECUTOR" in os.environ:
        import submitit  # under SLURM only: an optional dependency

        if submitit.JobEnvironment().num_tasks > 1:  # hydra.launcher.tasks_per_node > 1
            # All of a node's GPUs stay visible; each task picks its own by LOCAL_RANK.
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    cuda = torch.cuda.is_available() and not cpu
    local = int(os.environ.get("LOCAL_RANK", 0))
    device = torch.device(f"cuda:{local}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
    if shard()[1] > 1:
        dist.init_process_group("nccl" if cuda else "gloo")
    try:
        yield device
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def barrier() -> None:
    """Wait for every process of a torchrun launch (nothing to wait for otherwise)."""
    if dist.is_initialized():
        dist.barrier()


def mean_over_processes(x: torch.Tensor) -> torch.Tensor:
    """x averaged over the processes of a launch, in place (x itself with one process)."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(x)
        x /= dist.get_world_size()
    return x


def append_record(path: Path, record: dict) -> None:
    """Append one JSON line to a process's part file (manifest or results), whole or not at
    all (atomic.append_line: a full disk is named as such, with the file)."""
    append_line(path, json.dumps(record))


def record_written(writing: list, part: Path, bar) -> int:
    """Append each record of `writing` ((future or None, record) pairs, in order) to the part
    file once its future, the write of its outputs, is done: a record never names an output
    that is not whole. A future's dict result (output paths, say) joins its record; a write's
    error propagates. Advances the progress bar once per record; returns how many."""
    for future, record in writing:
        extra = future.result() if future is not None else None
        append_record(part, {**record, **extra} if isinstance(extra, dict) else record)
        bar.update()
    return len(writing)


def read_records(out: Path, stem: str, key: str) -> dict[str, dict]:
    """The records of every process's <stem>.part<rank>.jsonl in `out`, by record[key]; a line
    cut by a kill is ignored (its item is redone or recorded again)."""
    records = {}
    for part in sorted(out.glob(f"{stem}.part*.jsonl")):
        for line in part.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and key in record:  # else not one of ours: redone
                records[record[key]] = record
    return records


def read_manifest(out: Path, key: str) -> dict[str, dict]:
    """Every manifest record in `out` by record[key]: manifest.jsonl, then the per-process parts
    not yet merged into it (newer, so they win). A manifest.jsonl line that is not a record
    (edited by hand, say) is a UserError naming the file and line."""
    merged = out / "manifest.jsonl"
    records = {}
    if merged.is_file():
        for n, line in enumerate(merged.read_text().splitlines(), 1):
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                record, problem = None, f"not JSON ({e.msg})"
            else:
                problem = f"no {key!r} field"
            if not isinstance(record, dict) or key not in record:
                raise UserError(f"{merged}: line {n} is not a manifest record ({problem}); "
                                "repair the file, or delete it to convert everything again")
            records[record[key]] = record
    return records | read_records(out, "manifest", key)


def merge_manifests(out: Path) -> Path:
    """Join the per-process manifest parts into manifest.jsonl (keeping the records of earlier
    runs), one line per output, sorted; then remove the parts. A kill in between leaves parts
    that are already merged, which the next merge joins again harmlessly."""
    parts = sorted(out.glob("manifest.part*.jsonl"))
    records = read_manifest(out, "output")
    path = out / "manifest.jsonl"
    with atomic_output(path) as tmp:
        tmp.write_text("".join(json.dumps(records[k]) + "\n" for k in sorted(records)))
    for part in parts:
        part.unlink()
    return path
