"""Turning RGB images into a camera's RAW files with a trained checkpoint, at any scale.

Used by `rawdiffusion convert` and by sample.py's prediction writing. A job is a list of
items (an RGB image in, an output name out). It is sharded over the processes of a torchrun
launch (each takes every world-th item), resumable (an item whose outputs exist is skipped;
outputs are written atomically, so existing means complete), reports progress with an ETA,
and records every output in a manifest (source, output, steps, seed, checkpoint hash).

Sizes. A photo of H x W pixels becomes a mosaic of H x W: as in training, the guide is the
photo halved with area interpolation, and the packed RAW has the guide's size. Images larger
than the tile size are generated in overlapping tiles (tiling.generate_tiled).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .checkpoint import camera_raw, file_digest, same_checkpoint
from .diffusion import Diffusion, derived_seed
from .errors import SetupError, UserError
from .images import PhotoError, check_guide, halve_area, raw_preview, read_rgb, write_png
from .io import MIN_DNG_SIDE, write_dng, write_hdf5, write_npy
from .processes import append_record, read_manifest, shard
from .tiling import generate_tiled, guide_tensor, pad_to_multiple

FORMATS = ("dng", "hdf5", "npy")
SUFFIX = {"dng": ".dng", "hdf5": ".h5", "npy": ".npy"}


@dataclass
class RawGenerator:
    """A trained network with its sampling settings: what turns RGB guides into packed RAW."""

    net: torch.nn.Module
    diffusion: torch.nn.Module
    camera: dict          # the checkpoint's camera: cfa, black_level, white_level, wb, ...
    digest: str           # file_digest of the checkpoint
    steps: int | None = 24  # DDIM steps; None for a one-pass network (model.objective=direct)
    tile: int = 256
    overlap: int = 64
    device: str = "cpu"

    @torch.no_grad()
    def generate(self, guide: np.ndarray, seed: int, callback=None) -> np.ndarray:
        """RGB guide (h, w, 3) uint8 -> packed RAW (4, h, w) float32 in [0, 1]. `seed` draws
        the noise; callback(dict(tile=k, tiles=n, i=..., t=..., ...)) runs at each DDIM step of
        each tile (tiling.generate_tiled). ValueError for another shape or dtype."""
        check_guide(guide)
        rgb, (h, w) = pad_to_multiple(guide_tensor(guide, self.device), self.net.multiple)
        x0 = generate_tiled(self.net, self.diffusion, rgb, self.steps,
                            torch.Generator(self.device).manual_seed(seed), tile=self.tile,
                            overlap=self.overlap, callback=callback)
        if not torch.isfinite(x0).all():
            raise UserError(f"checkpoint {self.digest}: the network gave non-finite values "
                            "(broken weights)")
        return ((x0[0, :, :h, :w].float().cpu().numpy() + 1) / 2).clip(0, 1)


def load_generator(path, device="cpu", steps: int = 24, tile: int = 256, overlap: int = 64):
    """What `convert --checkpoint FILE` and `sample.py checkpoint=FILE` generate with: a
    trained checkpoint's RawGenerator, or a baseline file's baselines.Baseline (same interface:
    `generate`, `camera`, `digest`, `steps`). A one-pass network (model.objective=direct) samples
    in one forward pass whatever `steps` says (its `steps` is None). The checkpoint is
    validated before any work (checkpoint.load_checkpoint), and must name its camera: what
    it generates is written as that camera's RAW. CheckpointError, one line, otherwise;
    SetupError for a tile size or overlap the network cannot use."""
    from .baselines import is_baseline_file, load_baseline
    from .checkpoint import CheckpointError, load_model

    if Path(path).is_file() and is_baseline_file(path):
        return load_baseline(path)
    net, state = load_model(path, device=device)
    if not state["camera"]:
        raise CheckpointError(path, "camera: none recorded (a checkpoint that generates needs "
                                    "the Bayer order and levels of the RAW it writes)")
    m = net.multiple
    if tile % m or tile < 2 * m:
        raise SetupError(f"tile size {tile} (convert --tile, sample.py tile=): this network "
                         f"needs a multiple of {m}, at least {2 * m}")
    if not 0 <= overlap < tile:
        raise SetupError(f"tile overlap {overlap} (convert --overlap, sample.py overlap=): "
                         f"must be in [0, {tile}), below the tile size")
    if objective_of(state) == "direct":
        steps = None
    return RawGenerator(net, Diffusion().to(device), state["camera"], file_digest(path),
                        steps=steps, tile=tile, overlap=overlap, device=str(device))


def objective_of(state: dict) -> str:
    """A checkpoint's training objective: "diffusion" (the paper's) or "direct" (the one-pass
    control); checkpoints from before the option are diffusion models."""
    return state.get("config", {}).get("model", {}).get("objective", "diffusion")


def write_prediction(base: Path, x: np.ndarray, camera: dict, fmt: str) -> list[Path]:
    """Write packed RAW x (4, h, w) in [0, 1] as <base>.dng|.h5|.npy plus a <base>.png preview
    (greens averaged, gamma 1/5); the preview is written last. Returns the paths."""
    out = base.with_name(base.name + SUFFIX[fmt])
    if fmt == "dng":
        write_dng(out, camera_raw(camera, x))
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


def convert(sources: list[Path], out: Path, gen: RawGenerator, seed: int, fmt: str = "dng",
            names: list[str] | None = None, figure: bool = False,
            max_pixels: int | None = None) -> tuple[int, int]:
    """Convert RGB image files into RAW files in `out` (this process's share of them).

    names: output base names (default: the sources' stems). figure: also write
    <name>_compare.png, photo | generated RAW preview | the DNG as LibRaw renders it.
    max_pixels: the largest photo read (images.read_rgb; default Pillow's limit).
    Returns (converted, skipped as already done). What concerns the whole job (no sources,
    colliding names, an --out that is a file, a camera no DNG can hold) raises UserError before
    anything is written; a photo that cannot be read is skipped with nothing written for it,
    and once the others are converted ConversionFailed names every such photo.
    """
    rank, world = shard()
    names = names or [p.stem for p in sources]
    _check_job(sources, names, out, fmt, gen)
    make_folder(out, f"--out {out}")
    mine = list(range(rank, len(sources), world))
    done = skipped = 0
    failures = []
    part = out / f"manifest.part{rank}.jsonl"
    # A rerun skips photos finished with the same generator; another checkpoint redoes them.
    made = read_manifest(out, "source")
    bar = tqdm(total=len(mine), unit="image", desc="convert", disable=rank != 0,
               dynamic_ncols=True)
    with bar:
        for index in mine:
            source, base = sources[index], out / names[index]
            if outputs_exist(base, fmt) and (not figure or _figure_path(base).is_file()) \
                    and same_checkpoint(made.get(str(source), {}).get("checkpoint"), gen.digest):
                skipped += 1
                bar.update()
                continue
            try:
                photo = _read_photo(source, fmt, max_pixels)
            except PhotoError as e:
                failures.append(str(e))
                bar.update()
                continue
            s = derived_seed(seed, index)
            x = _generate_with_progress(gen, halve_area(photo), s, source.name, rank == 0)
            paths = write_prediction(base, x, gen.camera, fmt)
            if figure:
                _write_figure(base, photo, x, paths[0] if fmt == "dng" else None)
            append_record(part, {"source": str(source), "output": str(paths[0]),
                                 "preview": str(paths[1]), "steps": gen.steps, "seed": s,
                                 "checkpoint": gen.digest, "size": list(x.shape[1:])})
            done += 1
            bar.update()
    if failures:
        raise ConversionFailed(done, skipped, failures)
    return done, skipped


def _generate_with_progress(gen, guide: np.ndarray, seed: int, name: str,
                            show: bool) -> np.ndarray:
    """gen.generate with a second progress bar under the images' one: the photo's denoising
    steps over all its tiles (a 12 MP photo takes minutes on a CPU). Nothing is shown for
    a generator without steps (a baseline, a one-pass network), which reports none."""
    with tqdm(desc=f"  {name}", unit="step", leave=False, position=1, dynamic_ncols=True,
              disable=not show or not gen.steps) as steps:
        def report(progress: dict) -> None:  # one call per DDIM step of each tile
            if steps.total is None:
                steps.reset(total=progress["tiles"] * gen.steps)
            steps.update()

        return gen.generate(guide, seed, callback=report)


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
    problem = camera_problem(gen.camera) if fmt == "dng" else None
    if problem:
        raise UserError(f"checkpoint {gen.digest[:16]}: its camera cannot be written as a DNG: "
                        f"{problem}")


def make_folder(path: Path, named: str) -> None:
    """mkdir -p, or a UserError saying why not, the folder `named` as the user gave it (e.g.
    "--out x/y")."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{named}: cannot make this folder ({e.strerror})") from None


def camera_problem(camera: dict) -> str | None:
    """Why no DNG of `camera` (a checkpoint's camera fields) can be written, or None."""
    missing = [k for k in ("cfa", "black_level", "white_level") if k not in camera]
    if missing:
        return f"no {', '.join(missing)}"
    wb = camera.get("wb")
    if wb and not (len(wb) == 3 and all(np.isfinite(g) and g > 0 for g in wb)):
        return f"white balance {list(wb)} is not three positive gains"
    try:  # RawImage checks the CFA order, the levels and the colour matrices
        camera_raw(camera, np.zeros((4, MIN_DNG_SIDE, MIN_DNG_SIDE), np.float32))
    except ValueError as e:
        return str(e)
    return None


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

