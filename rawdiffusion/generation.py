"""Generating many items into files: the one loop of `rawdiffusion convert` and sample.py.

A `Job` (convert's photos, sample.py's dataset samples) names its items and says how to read
one, which files it writes and what its record holds; `run` does the rest:

- sharding: each process of a torchrun launch takes every world-th item;
- resumption: an item is skipped when its record says it was made as the generator would make
  it now (same checkpoint, steps, sampler, noise seed, ISO, exposure and white balance:
  `same_generation`) and its files are intact (`intact`); each finished item appends one JSON
  line to this process's part file, <stem>.part<rank>.jsonl, after its files are written, with
  each file's size and SHA-256;
- read-ahead: `workers` processes read and decode the items (generator.Generator.batch_size
  at a time), dying with this one (jobs.die_with_parent);
- write-behind: two threads write a batch's files while the next batch is generated, after
  giving each its scene's white balance and sensor noise when the generator has a white
  balance, ISO or exposure (generator.Generator.recorded);
- progress: a bar over the items and one over the denoising steps of the batch's tiles;
- bad items (jobs.attempt): skipped and reported, or, for a job that must have every item,
  the end of the job with their one line.

Files. `write_prediction` writes a packed RAW as DNG (the camera's), HDF5 or .npy, with a PNG
preview. A record lists what it wrote under "files": {path relative to the output folder:
{"bytes": size, "sha256": digest}}; a file cut or changed since (by a full disk, another
program) no longer matches and its item is made again. Records of versions before the digests:
the files must exist and not be empty.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .camera import Camera
from .checkpoint import file_digest, same_checkpoint
from .diffusion import derived_seed
from .errors import UserError
from .generator import Generator
from .images import raw_preview, write_png
from .io import write_dng, write_hdf5, write_npy
from .jobs import Failure, attempt, die_with_parent
from .processes import record_written, shard

FORMATS = ("dng", "hdf5", "npy")
SUFFIX = {"dng": ".dng", "hdf5": ".h5", "npy": ".npy"}


class Job:
    """The items of a run (see the module docstring). Subclasses give `keys` (one per item,
    the record's `key` field), `out` (the output folder), `stem` (of the part files),
    `skip_bad` (skip an item that cannot be read, or end the job), `unit` and `desc` (of the
    progress bar), and the methods below."""

    keys: list[str]
    key: str
    out: Path
    stem: str
    skip_bad: bool
    unit: str
    desc: str

    def previous(self) -> dict[str, dict]:
        """The records of earlier runs in `out`, by key."""
        raise NotImplementedError

    def planned(self, mine: list[int], todo: list[int]) -> None:
        """Told this process's items and those of them still to do, before any is read."""

    def read(self, index: int):
        """(the item, its guide (h, w, 3) uint8); runs in the reader processes."""
        raise NotImplementedError

    def files(self, index: int) -> list[Path]:
        """The files item `index` writes: what must be intact for it to count as done."""
        raise NotImplementedError

    def write(self, index: int, item, x: np.ndarray, iso: float | None,
              wb: tuple[float, float, float] | None) -> dict:
        """Write item `index`'s files from its packed RAW x (4, h, w) as recorded (in [0, 1], or
        with sensor noise down to -black / (white - black)) at `iso` (None: clean) under the
        scene's white balance `wb` (R, G, B; None: the camera's own), in a writer thread;
        returns what its record adds (e.g. the paths)."""
        raise NotImplementedError

    def record(self, index: int, item, x: np.ndarray) -> dict:
        """What item `index`'s record holds besides the key, the generation and the files; x:
        its clean packed RAW, as generated."""
        return {}

    def name(self, index: int, item) -> str:
        """What the step bar calls the item."""
        return self.keys[index]


@dataclass
class Outcome:
    """What `run` did in this process: items done, skipped as done before, and the bad items
    skipped (jobs.Failure)."""

    done: int = 0
    skipped: int = 0
    failures: list[Failure] = field(default_factory=list)


def run(job: Job, gen: Generator, seed: int, workers: int = 0) -> Outcome:
    """Generate this process's share of `job`'s items with `gen`, item i from the noise seed
    derived_seed(seed, i), skipping those done before (see the module docstring). Raises the
    UserError of the first item that cannot be read when the job does not skip bad items."""
    rank, world = shard()
    mine = list(range(rank, len(job.keys), world))
    before = job.previous()
    todo = [i for i in mine if not (same_generation(before.get(job.keys[i]), gen,
                                                    derived_seed(seed, i))
                                    and intact(before[job.keys[i]], job.files(i), job.out))]
    job.planned(mine, todo)
    outcome = Outcome(skipped=len(mine) - len(todo))
    part = job.out / f"{job.stem}.part{rank}.jsonl"
    bar = tqdm(total=len(mine), initial=outcome.skipped, unit=job.unit, desc=job.desc,
               disable=rank != 0, dynamic_ncols=True)
    with bar, ThreadPoolExecutor(2, thread_name_prefix="write") as writers:
        writing = []  # the previous batch's files, written while this one is generated
        for batch in read_ahead(job, todo, gen.batch_size, workers):
            items = _good(job, batch, outcome, bar)
            if not items:
                continue
            seeds = [derived_seed(seed, i) for i, _, _ in items]
            xs = generate_with_progress(gen, [guide for _, _, guide in items], seeds,
                                        job.name(*items[0][:2]), rank == 0)
            outcome.done += record_written(writing, part, bar)
            writing = [(writers.submit(_write, job, i, item, x, gen, s),
                        {job.key: job.keys[i], **made_with(gen), "seed": s,
                         **recorded_as(gen, s), **job.record(i, item, x)})
                       for (i, item, _), s, x in zip(items, seeds, xs)]
        outcome.done += record_written(writing, part, bar)
    return outcome


def _good(job: Job, batch: list, outcome: Outcome, bar) -> list:
    """The (index, item, guide) of a read batch that could be read; the others are failures
    (counted as done on the bar), or the end of a job that does not skip them."""
    for index, _, failed in batch:
        if failed is not None:
            if not job.skip_bad:
                raise UserError(failed.line)
            outcome.failures.append(failed)
            bar.update()
    return [(index, *read) for index, read, failed in batch if failed is None]


def _write(job: Job, index: int, item, x: np.ndarray, gen: Generator, seed: int) -> dict:
    """Item `index`'s files, from its clean x with the white balance and sensor noise of seed
    `seed` (gen.recorded), and their sizes and digests, for its record."""
    if not gen.clean:
        x = gen.recorded(torch.from_numpy(x), seed).numpy()
    extra = job.write(index, item, x, gen.iso_for(seed), gen.scene_wb(seed)) or {}
    written = {path.relative_to(job.out).as_posix(): {"bytes": path.stat().st_size,
                                                       "sha256": file_digest(path)}
               for path in job.files(index)}
    return {**extra, "files": written} if written else extra


class _Reads(torch.utils.data.Dataset):
    """The items to generate, read where a DataLoader puts it (its worker processes):
    (index, (item, guide), None), or (index, None, jobs.Failure) for one that cannot be read."""

    def __init__(self, job: Job, todo: list[int]):
        self.job, self.todo = job, todo

    def __len__(self) -> int:
        return len(self.todo)

    def __getitem__(self, k: int):
        return attempt(self.job.read, self.todo[k])


def read_ahead(job: Job, todo: list[int], size: int, workers: int):
    """Lists of up to `size` of the items `todo` (in its order), read by `workers` processes
    ahead of their use (0: in this one), which die with this process."""
    return torch.utils.data.DataLoader(
        _Reads(job, todo), batch_size=size, num_workers=workers, collate_fn=list,
        worker_init_fn=functools.partial(die_with_parent, os.getpid()) if workers else None)


def generate_with_progress(gen: Generator, guides: list[np.ndarray], seeds: list[int],
                           name: str, show: bool) -> list[np.ndarray]:
    """gen.generate_from_guides with a second progress bar under the items' one (shown when
    `show`): the denoising steps of all the guides' tiles (a 12 MP photo takes minutes on a
    CPU), named after the first guide's item. Nothing is shown for a generator without steps
    (a baseline, a one-pass network)."""
    total = sum(gen.tile_steps(g.shape) for g in guides)
    more = f" and {len(guides) - 1} more" if len(guides) > 1 else ""
    with tqdm(desc=f"  {name}{more}", total=total, unit="tile-step", leave=False, position=1,
              dynamic_ncols=True, disable=not show or not total) as steps:
        def report(progress: dict) -> None:  # one call per step of each batch of tiles
            steps.update(progress["tiles"])

        return gen.generate_from_guides(guides, seeds, callback=report)


def made_with(gen: Generator) -> dict:
    """What a manifest or results record says about how its outputs were made: the digest of
    the generator's file, its steps and sampler (None for a generator without steps), and the
    digest of the photo pipeline it undoes (None: none)."""
    return {"checkpoint": gen.digest, "steps": gen.steps,
            "sampler": getattr(gen, "sampler", None) if gen.steps else None,
            "pipeline": _pipeline_digest(gen)}


def _pipeline_digest(gen: Generator) -> str | None:
    pipeline = getattr(gen, "pipeline", None)
    return None if pipeline is None else pipeline.digest


def recorded_as(gen: Generator, seed: int) -> dict:
    """What a record says about how the item of seed `seed` was recorded: its ISO (None: no
    sensor noise; drawn for "draw": gen.iso_for), the exposure in EV (given or drawn:
    gen.exposure_for), and the white balance used, [R, G, B] with G = 1 (the scene's, given or
    drawn, or the camera's own: gen.wb_for; None for a camera without one)."""
    wb = gen.wb_for(seed)
    return {"iso": gen.iso_for(seed), "exposure": gen.exposure_for(seed),
            "white_balance": None if wb is None else list(wb)}


def same_generation(record: dict | None, gen: Generator, seed: int) -> bool:
    """Whether a manifest or results record was made as `gen` would make it now with the noise
    seed `seed`: the same checkpoint (checkpoint.same_checkpoint), steps, sampler, seed, photo
    pipeline, ISO, exposure and white balance. Keys that records of older versions lack are
    taken to agree; those of versions before sensor noise were made without it (no ISO, 0 EV),
    those before the white balance with the camera's own, and those before photo pipelines
    without one."""
    if not record or not same_checkpoint(record.get("checkpoint"), gen.digest):
        return False
    now = {**made_with(gen), "seed": seed}
    del now["checkpoint"], now["pipeline"]
    noise = recorded_as(gen, seed)
    own = None if gen.camera_wb is None else list(gen.camera_wb)
    return (all(record.get(key, value) == value for key, value in now.items())
            and record.get("pipeline") == _pipeline_digest(gen)
            and record.get("iso") == noise["iso"]
            and record.get("exposure", 0.0) == noise["exposure"]
            and record.get("white_balance", own) == noise["white_balance"])


def intact(record: dict, files: list[Path], out: Path) -> bool:
    """Whether `files` are as `record` says they were written: of the recorded size and
    SHA-256; a file the record does not list (a record of an older version) must exist and not
    be empty (written atomically, an output is whole or absent; an empty one was cut)."""
    recorded = record.get("files") or {}
    for path in files:
        if not path.is_file():
            return False
        size = path.stat().st_size
        known = recorded.get(path.relative_to(out).as_posix())
        if known is None:
            if size == 0:
                return False
        elif size != known.get("bytes") or file_digest(path) != known.get("sha256"):
            return False
    return True


def write_prediction(base: Path, x: np.ndarray, camera: Camera, fmt: str,
                     iso: float | None = None,
                     wb: tuple[float, float, float] | None = None) -> list[Path]:
    """Write packed RAW x (4, h, w) as <base>.dng (`camera`'s)|.h5|.npy plus a <base>.png
    preview (greens averaged, gamma 1/5); the preview is written last. x: in [0, 1], or with
    sensor noise recorded at `iso` (generator.Generator.recorded) down to -black / (white -
    black): the DNG keeps those codes under black, and carries the ISO and the NoiseProfile
    of the camera's noise model at it, and the scene's white balance `wb` as its AsShotNeutral
    (None: the camera's own; Camera.raw); HDF5 and .npy hold x in [0, 1] (the
    reference's layout, without a black level): below 0 is clipped to 0. Returns the paths
    (prediction_files)."""
    out, preview = prediction_files(base, fmt)
    if fmt == "dng":
        write_dng(out, camera.raw(x, iso, wb))
    elif fmt == "hdf5":
        write_hdf5(out, x)
    else:
        write_npy(out, x)
    write_png(preview, raw_preview(x))
    return [out, preview]


def prediction_files(base: Path, fmt: str) -> list[Path]:
    """The files write_prediction writes: <base>.<fmt's suffix> and <base>.png."""
    return [base.with_name(base.name + SUFFIX[fmt]), base.with_name(base.name + ".png")]
