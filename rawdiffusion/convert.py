"""Turning RGB images into a camera's RAW files with a trained checkpoint, at any scale.

Used by `rawdiffusion convert` and by sample.py's prediction writing. A job is a list of
items (an RGB image in, an output name out). It is sharded over the processes of a torchrun
launch (each takes every world-th item), resumable (an item whose outputs exist is skipped;
outputs are written atomically, so existing means complete), reports progress with an ETA,
and records every output in a manifest (source, output, steps, seed, checkpoint hash).

Sizes. A photo of H x W pixels becomes a mosaic of H x W: as in training, the guide is the
photo halved with area interpolation, and the packed RAW has the guide's size (generator.py).
Images larger than the tile size are generated in overlapping tiles (sampling.py).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .camera import Camera
from .checkpoint import same_checkpoint
from .diffusion import derived_seed
from .errors import UserError
from .generator import Generator
from .images import PhotoError, halve_area, raw_preview, read_rgb, write_png
from .io import MIN_DNG_SIDE, write_dng, write_hdf5, write_npy
from .processes import read_manifest, record_written, shard

FORMATS = ("dng", "hdf5", "npy")
SUFFIX = {"dng": ".dng", "hdf5": ".h5", "npy": ".npy"}


def write_prediction(base: Path, x: np.ndarray, camera: Camera, fmt: str) -> list[Path]:
    """Write packed RAW x (4, h, w) in [0, 1] as <base>.dng|.h5|.npy plus a <base>.png preview
    (greens averaged, gamma 1/5); the preview is written last. Returns the paths."""
    out = base.with_name(base.name + SUFFIX[fmt])
    if fmt == "dng":
        write_dng(out, camera.raw(x))
    elif fmt == "hdf5":
        write_hdf5(out, x)
    else:
        write_npy(out, x)
    preview = base.with_name(base.name + ".png")
    write_png(preview, raw_preview(x))
    return [out, preview]


def outputs_exist(base: Path, fmt: str) -> bool:
    """Whether <base>.png and <base>.<fmt> exist and are not empty (written atomically, an
    output is whole or absent; an empty one was cut by something else)."""
    return all(path.is_file() and path.stat().st_size > 0 for path in
               (base.with_name(base.name + ".png"), base.with_name(base.name + SUFFIX[fmt])))


class ConversionFailed(UserError, ValueError):
    """Photos that could not be read, raised once every other photo is converted: `failures`
    holds one line per photo, naming it and the reason."""

    def __init__(self, done: int, skipped: int, failures: list[str]):
        self.done, self.skipped, self.failures = done, skipped, failures
        super().__init__(f"{done} converted, {len(failures)} failed: " + "; ".join(failures))


def convert(sources: list[Path], out: Path, gen: Generator, seed: int, fmt: str = "dng",
            names: list[str] | None = None, figure: bool = False,
            max_pixels: int | None = None, workers: int = 0) -> tuple[int, int]:
    """Convert RGB image files into RAW files in `out` (this process's share of them).

    names: output base names (default: the sources' stems). figure: also write
    <name>_compare.png, photo | generated RAW preview | the DNG as LibRaw renders it.
    max_pixels: the largest photo read (images.read_rgb; default Pillow's limit). workers:
    processes that read and decode the photos ahead of the model (0: this process). The
    photos go to the model `gen.batch_size` at a time (their tiles batched); their outputs
    are encoded and written by two threads while the next photos are sampled.
    Returns (converted, skipped as already done). What concerns the whole job (no sources,
    colliding names, an --out that is a file) raises UserError before
    anything is written; a photo that cannot be read is skipped with nothing written for it,
    and once the others are converted ConversionFailed names every such photo.
    """
    rank, world = shard()
    names = names or [p.stem for p in sources]
    _check_job(sources, names, out, fmt, gen)
    make_folder(out, f"--out {out}")
    mine = list(range(rank, len(sources), world))
    part = out / f"manifest.part{rank}.jsonl"
    # A rerun skips photos finished by the same generation; another checkpoint, step count,
    # sampler or seed redoes them.
    made = read_manifest(out, "source")
    todo = [i for i in mine if not (
        outputs_exist(out / names[i], fmt)
        and (not figure or _figure_path(out / names[i]).is_file())
        and same_generation(made.get(str(sources[i])), gen, derived_seed(seed, i)))]
    skipped, done, failures = len(mine) - len(todo), 0, []
    bar = tqdm(total=len(mine), initial=skipped, unit="image", desc="convert",
               disable=rank != 0, dynamic_ncols=True)
    with bar, ThreadPoolExecutor(2, thread_name_prefix="write") as writers:
        writing = []  # the previous batch's outputs, written while this one is sampled
        for batch in _read_batches(sources, todo, fmt, max_pixels, gen.batch_size, workers):
            for error in (e for _, _, e in batch if e):
                failures.append(error)
                bar.update()
            photos = [(i, photo) for i, photo, e in batch if not e]
            if not photos:
                continue
            seeds = [derived_seed(seed, i) for i, _ in photos]
            xs = generate_with_progress(gen, [halve_area(p) for _, p in photos], seeds,
                                        sources[photos[0][0]].name, rank == 0)
            done += record_written(writing, part, bar)
            writing = [(writers.submit(_write_outputs, out / names[i], photo, x, gen, fmt, figure),
                        {"source": str(sources[i]), **gen.record(), "seed": s,
                         "size": list(x.shape[1:])})
                       for (i, photo), s, x in zip(photos, seeds, xs)]
        done += record_written(writing, part, bar)
    if failures:
        raise ConversionFailed(done, skipped, failures)
    return done, skipped


def same_generation(record: dict | None, gen, seed: int) -> bool:
    """Whether a manifest or results record was made as `gen` would make it now with the noise
    seed `seed`: the same checkpoint (checkpoint.same_checkpoint), steps, sampler and seed.
    Keys that records of older versions lack are taken to agree."""
    if not record or not same_checkpoint(record.get("checkpoint"), gen.digest):
        return False
    now = {**gen.record(), "seed": seed}
    del now["checkpoint"]
    return all(record.get(key, value) == value for key, value in now.items())


class _Photos(torch.utils.data.Dataset):
    """The photos to convert, read and decoded where a DataLoader puts it (worker processes):
    (index, photo (H, W, 3) uint8, None), or (index, None, the reason) for a photo that cannot
    be read."""

    def __init__(self, sources: list[Path], todo: list[int], fmt: str, max_pixels: int | None):
        self.sources, self.todo, self.fmt, self.max_pixels = sources, todo, fmt, max_pixels

    def __len__(self) -> int:
        return len(self.todo)

    def __getitem__(self, k: int):
        index = self.todo[k]
        try:
            return index, _read_photo(self.sources[index], self.fmt, self.max_pixels), None
        except PhotoError as e:
            return index, None, str(e)


def _read_batches(sources, todo, fmt, max_pixels, size: int, workers: int):
    """Lists of up to `size` of _Photos' items, in `todo`'s order, read `workers` ahead."""
    return torch.utils.data.DataLoader(_Photos(sources, todo, fmt, max_pixels), batch_size=size,
                                       num_workers=workers, collate_fn=list)


def _write_outputs(base: Path, photo: np.ndarray, x: np.ndarray, gen, fmt: str,
                   figure: bool) -> dict:
    """One photo's outputs (write_prediction, and the figure when asked); returns the paths
    its manifest record names."""
    output, preview = write_prediction(base, x, gen.camera, fmt)
    if figure:
        _write_figure(base, photo, x, output if fmt == "dng" else None)
    return {"output": str(output), "preview": str(preview)}


def generate_with_progress(gen, guides: list[np.ndarray], seeds: list[int], name: str,
                           show: bool) -> list[np.ndarray]:
    """gen.generate_from_guides with a second progress bar under the images' one (shown when `show`):
    the denoising steps of all the guides' tiles (a 12 MP photo takes minutes on a CPU), named
    after the first guide's `name`. Nothing is shown for a generator without steps (a
    baseline, a one-pass network). Used by convert and sample.py."""
    total = sum(gen.tile_steps(g.shape) for g in guides)
    more = f" and {len(guides) - 1} more" if len(guides) > 1 else ""
    with tqdm(desc=f"  {name}{more}", total=total, unit="tile-step", leave=False, position=1,
              dynamic_ncols=True, disable=not show or not total) as steps:
        def report(progress: dict) -> None:  # one call per step of each batch of tiles
            steps.update(progress["tiles"])

        return gen.generate_from_guides(guides, seeds, callback=report)


def _check_job(sources: list[Path], names: list[str], out: Path, fmt: str, gen) -> None:
    """What would stop the whole conversion, before anything is written."""
    if not sources:
        raise UserError("no images to convert")
    first = {}
    for source, name in zip(sources, names):
        if name in first:
            raise UserError(f"{first[name]} and {source} would both be written as "
                            f"{out / name}.*; rename one or convert them separately")
        first[name] = source
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: a file, not a folder; the outputs need a folder")
    manifest = out / "manifest.jsonl"
    if manifest.exists() and not manifest.is_file():
        raise UserError(f"{manifest}: not a file; convert records its outputs there")
    # An output must never replace an input (a photo.png beside --out's photo.png preview).
    inputs = {p.resolve() for p in sources}
    for name in names:
        base = out / name
        for path in (base.with_name(name + SUFFIX[fmt]), base.with_name(name + ".png"),
                     _figure_path(base)):
            if path.resolve() in inputs:
                raise UserError(f"{path}: an input photo would be overwritten by an output; "
                                "choose another --out folder")


def make_folder(path: Path, named: str) -> None:
    """mkdir -p, or a UserError saying why not, the folder `named` as the user gave it (e.g.
    "--out x/y")."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{named}: cannot make this folder ({e.strerror})") from None


def _read_photo(path: Path, fmt: str, max_pixels: int | None) -> np.ndarray:
    photo = read_rgb(path, max_pixels)
    smallest = MIN_DNG_SIDE if fmt == "dng" else 4
    if min(photo.shape[:2]) < smallest:
        raise PhotoError(path, f"image of {photo.shape[1]}x{photo.shape[0]} is too small (the "
                               f"{fmt} output needs {smallest} pixels a side)")
    return photo


def _figure_path(base: Path) -> Path:
    return base.with_name(base.name + "_compare.png")


def _write_figure(base: Path, photo: np.ndarray, x: np.ndarray, dng: Path | None) -> None:
    """photo | packed RAW preview | DNG rendered by LibRaw (when written), side by side at the
    packed RAW's height."""
    from PIL import Image

    h = x.shape[1]
    panels = [halve_area(photo)[:h], raw_preview(x)]
    if dng is not None:
        from .io import read_raw, render_srgb

        panels.append(halve_area(render_srgb(read_raw(dng))))
    panels = [np.asarray(Image.fromarray(p).resize((p.shape[1] * h // p.shape[0], h)))
              for p in panels]
    gap = np.full((h, 8, 3), 32, np.uint8)
    write_png(_figure_path(base), np.concatenate(sum(([p, gap] for p in panels), [])[:-1],
                                                 axis=1))
