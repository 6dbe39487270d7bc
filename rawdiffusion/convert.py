"""`rawdiffusion convert`: photos into a camera's RAW files, with a trained checkpoint or a
baseline file, at any scale.

The photos (JPEG, PNG, TIFF, ...) are the items of a generation.Job: sharded over the processes
of a torchrun launch, resumable, read ahead and written behind (generation.py), each written as
<name>.dng (or the reference's .h5 / .npy) with a <name>.png preview and, when asked, a
<name>_compare.png figure, and recorded in a manifest (source, checkpoint, steps, sampler, seed,
ISO and exposure of the sensor noise, white balance, size, outputs and their digests; merged
into manifest.jsonl by processes.merge_manifests).

Sizes. A photo of H x W pixels becomes a mosaic of H x W: as in training, the guide is the
photo halved with area interpolation, and the packed RAW has the guide's size (generator.py).
Images larger than the tile size are generated in overlapping tiles (sampling.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import make_folder
from .errors import UserError
from .camera import Camera
from .figures import PHOTO, RAW_DATA, RENDERED, labelled, render_for_comparison
from .generation import Job, prediction_files, run, write_prediction
from .generator import Generator
from .images import PhotoError, halve_area, raw_preview, read_rgb, write_png
from .io import MIN_DNG_SIDE
from .processes import read_manifest


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
    are encoded and written by two threads while the next photos are sampled, with the scene's
    white balance and the sensor noise of `gen`'s ISO and exposure when it has them
    (generator.Generator.recorded). Photo i
    draws its noise from derived_seed(seed, i); a rerun skips photos made by the same generation
    whose outputs are intact, and redoes the others (generation.run).
    Returns (converted, skipped as already done). What concerns the whole job (no sources,
    colliding names, an --out that is a file) raises UserError before anything is written; a
    photo that cannot be read is skipped with nothing written for it, and once the others are
    converted ConversionFailed names every such photo.
    """
    names = names or [p.stem for p in sources]
    _check_job(sources, names, out, fmt)
    make_folder(out, f"--out {out}")
    job = _Photos([str(p) for p in sources], out, sources, names, gen.camera, fmt, figure,
                  max_pixels)
    outcome = run(job, gen, seed, workers)
    if outcome.failures:
        raise ConversionFailed(outcome.done, outcome.skipped,
                               [f.line for f in outcome.failures])
    return outcome.done, outcome.skipped


@dataclass
class _Photos(Job):
    """convert's generation.Job: the photos `sources`, written as out/<names[i]>.*."""

    keys: list[str]
    out: Path
    sources: list[Path]
    names: list[str]
    camera: Camera
    fmt: str
    figure: bool
    max_pixels: int | None
    key: str = "source"
    stem: str = "manifest"
    skip_bad: bool = True
    unit: str = "image"
    desc: str = "convert"

    def previous(self) -> dict[str, dict]:
        return read_manifest(self.out, "source")

    def read(self, index: int):
        photo = _read_photo(self.sources[index], self.fmt, self.max_pixels)
        return photo, halve_area(photo)

    def files(self, index: int) -> list[Path]:
        base = self.out / self.names[index]
        return prediction_files(base, self.fmt) + ([_figure_path(base)] if self.figure else [])

    def write(self, index: int, photo: np.ndarray, x: np.ndarray, iso: float | None,
              wb: tuple[float, float, float] | None) -> dict:
        base = self.out / self.names[index]
        output, preview = write_prediction(base, x, self.camera, self.fmt, iso, wb)
        if self.figure:
            _write_figure(base, photo, x, output if self.fmt == "dng" else None)
        return {"output": str(output), "preview": str(preview)}

    def record(self, index: int, photo: np.ndarray, x: np.ndarray) -> dict:
        return {"size": list(x.shape[1:])}

    def name(self, index: int, photo: np.ndarray) -> str:
        return self.sources[index].name


def _check_job(sources: list[Path], names: list[str], out: Path, fmt: str) -> None:
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
        for path in (*prediction_files(base, fmt), _figure_path(base)):
            if path.resolve() in inputs:
                raise UserError(f"{path}: an input photo would be overwritten by an output; "
                                "choose another --out folder")


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
    """photo | the DNG as LibRaw renders it (when written; figures.render_for_comparison) |
    packed RAW preview, side by side at the packed RAW's height under their labels."""
    cells, labels = [halve_area(photo)[:x.shape[1]]], [PHOTO]
    if dng is not None:
        cells.append(halve_area(render_for_comparison(dng)))
        labels.append(RENDERED)
    cells.append(raw_preview(x))
    labels.append(RAW_DATA)
    write_png(_figure_path(base), labelled(cells, labels))
