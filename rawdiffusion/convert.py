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

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .camera import Camera
from .checkpoint import file_digest, same_checkpoint
from .diffusion import Diffusion, derived_seed
from .errors import SetupError, UserError
from .images import PhotoError, check_guide, halve_area, raw_preview, read_rgb, write_png
from .io import MIN_DNG_SIDE, write_dng, write_hdf5, write_npy
from .processes import read_manifest, record_written, shard
from .tiling import generate_batched, guide_tensor, pad_to_multiple, padded_size, tile_count

FORMATS = ("dng", "hdf5", "npy")
SUFFIX = {"dng": ".dng", "hdf5": ".h5", "npy": ".npy"}


@dataclass
class RawGenerator:
    """A trained network with its sampling settings: what turns RGB guides into packed RAW."""

    net: torch.nn.Module
    diffusion: torch.nn.Module
    camera: Camera        # the checkpoint's camera: what its RAW is written as
    digest: str           # file_digest of the checkpoint
    steps: int | None = 24  # sampling steps; None for a one-pass network (model.objective=direct)
    tile: int = 256
    overlap: int = 64
    device: str = "cpu"
    batch_size: int = 1   # tiles per forward pass, of one image or of several (generate_many)
    sampler: str = "ddim"  # solvers.SAMPLERS
    bf16: bool = False    # bf16 autocast of the network (the colour prior stays float64)

    def generate(self, guide: np.ndarray, seed: int, callback=None) -> np.ndarray:
        """RGB guide (h, w, 3) uint8 -> packed RAW (4, h, w) float32 in [0, 1]. `seed` draws
        the noise. callback(dict(tiles=k, i=..., t=..., ...)) runs at each step of each forward
        pass of k tiles. ValueError for another shape or dtype."""
        return self.generate_many([guide], [seed], callback)[0]

    @torch.no_grad()
    def generate_many(self, guides: list[np.ndarray], seeds: list[int],
                      callback=None) -> list[np.ndarray]:
        """`generate` for several guides, their tiles sampled `batch_size` to a forward pass
        (tiling.generate_batched): each result is what `generate` gives for its guide and seed,
        up to float rounding."""
        if len(seeds) != len(guides):
            raise ValueError(f"{len(guides)} guides but {len(seeds)} seeds: one seed per guide")
        for guide in guides:
            check_guide(guide)
        padded = [pad_to_multiple(guide_tensor(g, self.device), self.net.multiple)
                  for g in guides]
        noises = [torch.randn((1, 4, *rgb.shape[-2:]), device=self.device,
                              generator=torch.Generator(self.device).manual_seed(seed))
                  for (rgb, _), seed in zip(padded, seeds)]
        with torch.autocast(torch.device(self.device).type, torch.bfloat16, enabled=self.bf16):
            x0s = generate_batched(self.net, self.diffusion, [rgb for rgb, _ in padded], noises,
                                   self.steps, self.tile, self.overlap, self.batch_size,
                                   callback, self.sampler)
        results = []
        for x0, (_, (h, w)) in zip(x0s, padded):
            if not torch.isfinite(x0).all():
                raise UserError(f"checkpoint {self.digest}: non-finite values from the network "
                                f"with the {self.sampler} sampler at {self.steps} steps "
                                f"(broken weights, or {'bf16 overflow' if self.bf16 else 'a bug'})")
            results.append(((x0[0, :, :h, :w].float().cpu().numpy() + 1) / 2).clip(0, 1))
        return results

    def tile_steps(self, guide_shape: tuple[int, ...]) -> int:
        """Tiles x steps of a guide of (h, w, ...): the units its callbacks count."""
        size = padded_size(guide_shape[:2], self.net.multiple)
        return tile_count(size, self.tile, self.overlap) * (self.steps or 0)


def load_generator(path, device="cpu", steps: int = 24, tile: int = 256, overlap: int = 64,
                   batch_size: int = 1, sampler: str = "ddim", bf16: bool = False):
    """What `convert --checkpoint FILE` and `sample.py checkpoint=FILE` generate with: a
    trained checkpoint's RawGenerator, or a baseline file's baselines.Baseline (same interface:
    `generate`, `camera`, `digest`, `steps`). A one-pass network (model.objective=direct) samples
    in one forward pass whatever `steps` says (its `steps` is None). The checkpoint is
    validated before any work (checkpoint.load_checkpoint), and must name its camera: what
    it generates is written as that camera's RAW. CheckpointError, one line, otherwise;
    SetupError for a tile size or overlap the network cannot use, a batch size below 1 or an
    unknown sampler (solvers.SAMPLERS)."""
    from .config import SAMPLERS

    from .baselines import is_baseline_file, load_baseline
    from .checkpoint import CheckpointError, checkpoint_camera, load_model

    if batch_size < 1:
        raise SetupError(f"batch size {batch_size} (convert --batch-size, sample.py batch_size=): "
                         "must be at least 1")
    if sampler not in SAMPLERS:
        raise SetupError(f"sampler {sampler!r} (convert --sampler, sample.py sampler=): choose "
                         f"one of {', '.join(SAMPLERS)}")
    from .solvers import most_steps

    if isinstance(steps, bool) or not isinstance(steps, int) or \
            not 1 <= steps <= most_steps(sampler):
        raise SetupError(f"{steps} steps with the {sampler} sampler: it takes 1 to "
                         f"{most_steps(sampler)}")
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
    return RawGenerator(net, Diffusion().to(device), checkpoint_camera(state), file_digest(path),
                        steps=steps, tile=tile, overlap=overlap, device=str(device),
                        batch_size=batch_size, sampler=sampler, bf16=bf16)


def objective_of(state: dict) -> str:
    """A checkpoint's training objective: "diffusion" (the paper's) or "direct" (the one-pass
    control); checkpoints from before the option are diffusion models."""
    return state.get("config", {}).get("model", {}).get("objective", "diffusion")


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


def convert(sources: list[Path], out: Path, gen: RawGenerator, seed: int, fmt: str = "dng",
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
                        {"source": str(sources[i]), "steps": gen.steps,
                         "sampler": sampler_of(gen), "seed": s, "checkpoint": gen.digest,
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
    now = {"steps": gen.steps, "sampler": sampler_of(gen), "seed": seed}
    return all(record.get(key, value) == value for key, value in now.items())


def sampler_of(gen) -> str | None:
    """The sampler a manifest or results record names: None for a generator without steps (a
    baseline, a one-pass network)."""
    return getattr(gen, "sampler", None) if gen.steps else None


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
    """gen.generate_many with a second progress bar under the images' one (shown when `show`):
    the denoising steps of all the guides' tiles (a 12 MP photo takes minutes on a CPU), named
    after the first guide's `name`. Nothing is shown for a generator without steps (a
    baseline, a one-pass network). Used by convert and sample.py."""
    total = sum(gen.tile_steps(g.shape) for g in guides)
    more = f" and {len(guides) - 1} more" if len(guides) > 1 else ""
    with tqdm(desc=f"  {name}{more}", total=total, unit="tile-step", leave=False, position=1,
              dynamic_ncols=True, disable=not show or not total) as steps:
        def report(progress: dict) -> None:  # one call per step of each batch of tiles
            steps.update(progress["tiles"])

        return gen.generate_many(guides, seeds, callback=report)


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
