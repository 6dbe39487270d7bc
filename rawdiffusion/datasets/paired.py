"""Turning RAW files into paired RAW/RGB samples, as the paper's released code prepares them.

Per image: read the mosaic, pack it to (4, H/2, W/2), render the RGB guide with rawpy's default
settings and halve it with area interpolation so it matches the packed size, then cut samples:
either a grid x grid set of patches (FiveK protocol) or the whole image resized (NOD h416).
"""

from __future__ import annotations

import functools
import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import bayer, files
from ..atomic import atomic_output
from ..errors import UserError
from ..images import halve_area, resize_area, write_png
from ..io import RAW_SUFFIXES, read_raw, render_srgb
from ..noise import entry_noise
from ..sidecar import sidecar_path
from ..jobs import Failure, run_jobs
from . import layout
from .errors import DatasetError

PATCH_MULTIPLE = 32  # the U-Net downsamples five times


def split_like_sklearn(items: list, test_fraction: float, seed: int) -> tuple[list, list]:
    """(train, test) exactly as scikit-learn's train_test_split(items, test_size=test_fraction,
    random_state=seed): ceil(n * f) test items taken first from a RandomState permutation.
    test_fraction 0 puts everything in train (scikit-learn would refuse it)."""
    n = len(items)
    if not 0 <= test_fraction < 1:
        raise UserError(f"test fraction must be in [0, 1), got {test_fraction}")
    if test_fraction == 0:
        return list(items), []
    n_test = math.ceil(test_fraction * n)
    if n - n_test < 1:
        raise UserError(f"{n} image(s) with test fraction {test_fraction} leave none to train on")
    permutation = np.random.RandomState(seed).permutation(n)
    return [items[i] for i in permutation[n_test:]], [items[i] for i in permutation[:n_test]]


def grid_boxes(height: int, width: int, grid: int) -> list[tuple[int, int, int, int]]:
    """(top, left, h, w) of grid x grid patches covering a height x width image, row-major.

    Each patch is its grid cell centre-cropped to sides that are multiples of 32.
    """
    if grid < 1:
        raise UserError(f"grid {grid}: must be at least 1 patch per side")
    cell_h, cell_w = height // grid, width // grid
    ph, pw = cell_h // PATCH_MULTIPLE * PATCH_MULTIPLE, cell_w // PATCH_MULTIPLE * PATCH_MULTIPLE
    if ph == 0 or pw == 0:
        raise ValueError(f"a {width}x{height} packed image is too small for a {grid}x{grid} "
                         f"grid of patches with sides a multiple of {PATCH_MULTIPLE}")
    return [(r * cell_h + (cell_h - ph) // 2, c * cell_w + (cell_w - pw) // 2, ph, pw)
            for r in range(grid) for c in range(grid)]


def save_npy(path, array: np.ndarray) -> None:
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)


@dataclass(frozen=True)
class Task:
    path: str       # the RAW file
    image_id: str   # id of the image in the dataset (sample ids derive from it)

    def __str__(self) -> str:  # how progress and failure reports name it
        return self.path


def prepare_image(task: Task, out: str, grid: int | None = None,
                  size: tuple[int, int] | None = None, max_pixels: int | None = None) -> dict:
    """Prepare one RAW file into `out` (see layout.py); returns its dataset entry.

    Exactly one of grid (patches per side) and size ((height, width) of the resized sample).
    max_pixels: the largest RAW image read (io.read_raw; default io.RAW_MAX_PIXELS).
    The entry also records the image's ISO, exposure time, DNG NoiseProfile and noise measured
    on its whole mosaic (noise.entry_noise), from which training calibrates the camera's noise
    model. Skips the work when the image's entry exists: outputs are written atomically and
    the entry last, so an existing entry means complete samples; an entry of a version before
    noise calibration gains those keys, its samples left as they are.
    """
    meta_path = layout.image_meta_path(out, task.image_id)
    if meta_path.is_file():
        entry = json.loads(meta_path.read_text())
        if "noise" not in entry:
            entry.update(entry_noise(read_raw(task.path, max_pixels)))
            layout.write_json(meta_path, entry)
        return entry
    raw = read_raw(task.path, max_pixels)
    packed = bayer.pack(raw.mosaic, raw.cfa)                      # (4, H/2, W/2)
    h, w = packed.shape[1:]
    rgb = halve_area(render_srgb(raw)[: 2 * h, : 2 * w])         # (H/2, W/2, 3)
    if grid is not None:
        boxes = grid_boxes(h, w, grid)
        samples = {f"{task.image_id}_{k}": (packed[:, y:y + ph, x:x + pw], rgb[y:y + ph, x:x + pw])
                   for k, (y, x, ph, pw) in enumerate(boxes)}
    else:
        samples = {task.image_id: (resize_area(packed.transpose(1, 2, 0), *size).transpose(2, 0, 1),
                                   resize_area(rgb, *size))}
    for sample_id, (raw_patch, rgb_patch) in samples.items():
        save_npy(Path(out) / "raw" / f"{sample_id}.npy", np.ascontiguousarray(raw_patch))
        write_png(Path(out) / "rgb" / f"{sample_id}.png", np.ascontiguousarray(rgb_patch))
    first = next(iter(samples.values()))[0]
    entry = {
        "source": os.path.abspath(task.path),
        "make": raw.make, "model": raw.model,
        "cfa": raw.cfa,
        "black_level": bayer.packed_levels(raw.black_level, raw.cfa).tolist(),
        "white_level": raw.white_level,
        "wb": None if raw.wb is None else list(raw.wb),
        # both DNG calibrations with their illuminants (EXIF LightSource codes), as in the file
        "color_matrix": None if raw.color_matrix is None else raw.color_matrix.tolist(),
        "illuminant": None if raw.color_matrix is None else raw.illuminant,
        "color_matrix2": None if raw.color_matrix2 is None else raw.color_matrix2.tolist(),
        "illuminant2": None if raw.color_matrix2 is None else raw.illuminant2,
        "width": int(raw.mosaic.shape[1]), "height": int(raw.mosaic.shape[0]),
        "sample_size": [int(first.shape[1]), int(first.shape[2])],
        "samples": list(samples),
        **entry_noise(raw),
    }
    layout.write_json(meta_path, entry)
    return entry


def prepare_paired(splits: dict[str, list[Task]], out, name: str, made_by: dict,
                   workers: int = 1, grid: int | None = 3, size: tuple[int, int] | None = None,
                   max_pixels: int | None = None) -> tuple[dict, list[Failure]]:
    """Prepare every task of every split into `out` and write the dataset description.

    Files that fail (unreadable, not Bayer, too small, over max_pixels) are reported and left
    out of their split; the others are prepared. Returns (description, failures).
    """
    out = Path(out)
    tasks = [t for ts in splits.values() for t in ts]
    ids = [t.image_id for t in tasks]
    if len(set(ids)) != len(ids):
        raise UserError("two input files map to the same image id")
    job = functools.partial(layout.per_image, prepare_image, out=str(out), grid=grid, size=size,
                            max_pixels=max_pixels)
    done, failures = run_jobs(job, tasks, workers=workers, desc=f"prepare {name}")
    kept = {s: [t.image_id for t in ts if t in done] for s, ts in splits.items()}
    description = layout.finish(out, name, "paired", made_by, kept)
    return description, failures


def raw_named_entries(folder) -> list[Path]:
    """Entries directly in `folder` named like RAW files (a RAW suffix, or a JSON sidecar beside
    them), whatever they are, sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in RAW_SUFFIXES
                  or (p.suffix.lower() != ".json" and sidecar_path(p).is_file()))


def regular_files(entries) -> tuple[list[Path], list[Failure]]:
    """(the entries that are regular files or symlinks to one, a Failure for each other one
    saying what it is), so that prepare reports them and goes on. Each left out is said at
    once on stderr ('skipped <entry>: <what it is>', as the job runner says its failures), so
    that it is named even when what remains cannot make a dataset."""
    regular, skipped = [], []
    for path in entries:
        what = files.not_a_file(path, "RAW file")  # a directory, a FIFO, a symlink loop, ...
        if what:
            skipped.append(Failure(str(path), what))
            print(f"skipped {files.shown(path)}: {what}", file=sys.stderr)
        else:
            regular.append(path)
    return regular, skipped


def prepare_folder(raw_dir, out, name: str | None = None, test_fraction: float = 0.15,
                   split_seed: int = 2817, grid: int = 3, workers: int = 1,
                   max_pixels: int | None = None):
    """`rawdiffusion prepare folder`: one camera's RAW files -> a paired dataset.

    The split is made over all RAW files found, by sorted path (as scikit-learn would), before
    any is read, so a file that fails does not move the others between splits. Entries named
    like RAW files that are no regular files (directories, FIFOs, broken symlinks) are left out
    of the split and reported with the failures. max_pixels: the largest RAW image read
    (default io.RAW_MAX_PIXELS).
    """
    found, skipped = regular_files(raw_named_entries(raw_dir))
    if not found:
        raise FileNotFoundError(f"{raw_dir}: no RAW files (DNG, NEF, CR2, ARW, ..., or a dump "
                                "with a JSON sidecar)" + _besides(skipped))
    train, test = split_with_skipped(found, skipped, test_fraction, split_seed)
    task = lambda p: Task(str(p), layout.image_id_for(p, raw_dir))  # noqa: E731
    made_by = {"command": "prepare folder", "raw_dir": os.path.abspath(raw_dir),
               "test_fraction": test_fraction, "split_seed": split_seed, "grid": grid}
    description, failures = prepare_paired(
        {"train": [task(p) for p in train], "test": [task(p) for p in test]},
        out, name or _prepared_name(out) or Path(out).resolve().name, made_by, workers,
        grid=grid, max_pixels=max_pixels)
    return description, skipped + failures


def split_with_skipped(found: list, skipped: list[Failure], test_fraction: float, seed: int):
    """split_like_sklearn(found, ...), whose error about too few files says how many entries
    were skipped as no files (each was named on stderr as it was found)."""
    try:
        return split_like_sklearn(found, test_fraction, seed)
    except UserError as e:
        raise UserError(f"{e}{_besides(skipped)}") from None


def _besides(skipped: list[Failure]) -> str:
    return (f" ({len(skipped)} entr{'y' if len(skipped) == 1 else 'ies'} named like RAW files "
            "skipped as no files, named above)") if skipped else ""


def _prepared_name(out) -> str | None:
    """The name in out/dataset.json when `out` was prepared before (its runs are named after
    it, so a rerun keeps it), else None."""
    path = Path(out) / layout.DESCRIPTION
    try:
        return layout.read_description(path)["name"] if path.is_file() else None
    except DatasetError:
        return None
