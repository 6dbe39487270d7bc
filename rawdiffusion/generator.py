"""Generators: photos in, a camera's RAW out.

`Generator` is what every generator offers, a trained network's (`RawGenerator`) and a
baseline's (baselines.Baseline) alike; rawdiffusion.load (loading.py) gives either:

    gen(photo, seed=0)          a photo -> io.RawImage, the full-resolution Bayer mosaic
    gen.generate(batch, seed=0) photos as a tensor on the generator's device -> packed RAW there
    gen.generate_from_guides(guides, seeds)   already-halved guides -> packed RAW (numpy)

Sizes. As in training, a photo of H x W pixels is halved by area into the guide (H // 2,
W // 2) (images.halve_area), the packed RAW (4, H // 2, W // 2) has the guide's size, and the
mosaic is H x W (an odd side loses its last row or column). Seeds. Photo i of a batch draws its
noise from diffusion.derived_seed(seed, i), as the i-th photo of `rawdiffusion convert --seed
seed` does: `gen(photo, seed=s)` is what convert writes for that photo alone.

Sensor noise. A generator made with an ISO (rawdiffusion.load(iso=...), convert --iso) records
what it generates as the camera would: the clean mean at its exposure, with the camera's noise
at that ISO (`recorded`: sensor.add_noise, drawn on the CPU from the image's own seed), and
`gen(photo)` carries the ISO and the NoiseProfile of that noise. generate_from_guides gives the
clean mean always (sample.py scores it).

A photo pipeline. A generator made with one (rawdiffusion.load(pipeline=FILE), convert
--pipeline: pipeline.py, calibrated from RAW + photo pairs) undoes it from every guide before
generating (`undone`), so that photos of that pipeline reach the model as the canonical
rendering it learnt from.

The scene's white balance. A generator made with one (rawdiffusion.load(white_balance=...),
convert --white-balance) relights its clean mean from its camera's training illuminant (the
camera's `wb`) to the scene's before the exposure and the noise (`recorded`: sensor.py's von
Kries gains), and its RawImage's `wb` (the DNG's AsShotNeutral 1 / wb) is the scene's: a
renderer that applies the as-shot white balance shows the same picture either way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from .camera import Camera
from .diffusion import Diffusion, derived_seed
from .errors import SettingError, UserError
from .images import check_guide, halve_area, image_rgb, read_rgb
from .io import RawImage
from .pipeline import Pipeline
from .sensor import add_noise, drawn_exposure, drawn_iso, drawn_white_balance, \
    noise_generators, white_balance_gains
from .sampling import (codes_to_guide, generate_batched, pad_to_multiple, padded_size,
                       tile_count)
from .settings import DEFAULTS, check_count


class Generator:
    """Photos -> RAW of one camera (see the module docstring). Subclasses set `camera`,
    `digest` (SHA-256 of the file they were loaded from), `device`, `steps` (None: no steps),
    `sampler`, `batch_size` (guides handed over at once), `iso`, `exposure` and
    `white_balance` (what the sensor records: settings.Settings) and give `_packed`."""

    camera: Camera
    digest: str
    device: torch.device
    steps: int | None
    sampler: str | None
    batch_size: int
    iso: float | str | None = None
    exposure: float | str = 0.0
    white_balance: tuple[float, float, float] | str | None = None
    pipeline: Pipeline | None = None  # a photo pipeline undone before generating

    def __call__(self, photo, seed: int = 0) -> RawImage:
        """photo: an (H, W, 3) uint8 array of sRGB codes, a Pillow image, or the path of an
        image file (read as `convert` reads it: images.read_rgb) -> the camera's RawImage,
        mosaic (H // 2 * 2, W // 2 * 2) uint16, with the camera's levels and colour metadata
        (`.write_dng(path)`, `.packed`); with sensor noise (`iso`: `recorded`), also its ISO
        and the NoiseProfile of that noise; its `wb` is the scene's (scene_wb), or the camera's
        own. SettingError naming `photo` or `seed` when they
        cannot be used; images.PhotoError naming the file for an unreadable one."""
        check_count("seed", seed, 0)
        guide = halve_area(photo_array(photo))
        image_seed = derived_seed(seed, 0)
        x = self.generate_from_guides([guide], [image_seed])[0]
        if not self.clean:
            x = self.recorded(torch.from_numpy(x), image_seed).numpy()
        return self.camera.raw(x, self.iso_for(image_seed), self.scene_wb(image_seed))

    @torch.no_grad()
    def generate(self, batch: torch.Tensor, seed: int = 0) -> torch.Tensor:
        """batch: (B, 3, H, W) photos, uint8 sRGB codes or float in [0, 1] (quantised to 8-bit
        codes, as the photos the model learnt from), moved to the generator's device ->
        packed RAW (B, 4, H // 2, W // 2) float32 (R, G1, G2, B, normalised by the camera's
        levels) on that device: in [0, 1], or with sensor noise (`iso`) the recorded codes
        normalised, down to -black / (white - black) (`recorded`). Image i draws its noise from
        derived_seed(seed, i), as convert's i-th photo: image 0 is `gen(photo, seed).packed`
        but for that RawImage's rounding to whole raw numbers. SettingError naming `batch` or
        `seed` when they cannot be used."""
        check_count("seed", seed, 0)
        guides = self.undone(halve_batch(batch.to(self.device)))
        seeds = [derived_seed(seed, i) for i in range(len(guides))]
        xs = self._packed(list(guides.split(1)), seeds)
        if not self.clean:
            xs = [self.recorded(x[0], s)[None].to(self.device) for x, s in zip(xs, seeds)]
        return torch.cat(xs)

    @property
    def clean(self) -> bool:
        """Whether what it records is the clean mean as generated: no ISO, 0 EV, the camera's
        own white balance."""
        return self.iso is None and self.exposure == 0 and self.white_balance is None

    def iso_for(self, seed: int) -> float | None:
        """The ISO at which the image of seed `seed` (derived_seed(run seed, its index)) is
        recorded: `iso`; for "draw" one drawn from the camera's calibration ISOs
        (sensor.drawn_iso); None without noise."""
        if self.iso == "draw":
            return drawn_iso(self.camera.noise, seed)
        return None if self.iso is None else float(self.iso)

    def exposure_for(self, seed: int) -> float:
        """The exposure (EV) at which the image of seed `seed` is recorded: `exposure`; for
        "draw" one drawn from the camera's training images' (sensor.drawn_exposure)."""
        if self.exposure == "draw":
            return drawn_exposure(self.camera.exposures, seed)
        return float(self.exposure)

    def scene_wb(self, seed: int) -> tuple[float, float, float] | None:
        """The scene's as-shot white balance (R, G, B), G = 1, given or drawn for the image of
        seed `seed`: `white_balance`, or for "draw" one drawn from the camera's training
        images' (sensor.drawn_white_balance); None when none was given (the camera's own)."""
        if self.white_balance == "draw":
            return drawn_white_balance(self.camera.wbs, seed)
        return None if self.white_balance is None else tuple(self.white_balance)

    def wb_for(self, seed: int) -> tuple[float, float, float] | None:
        """The white balance (R, G, B), G = 1, of the image of seed `seed`: the scene's
        (scene_wb), or without one the camera's own (camera_wb). What the records say was
        used."""
        return self.scene_wb(seed) or self.camera_wb

    @property
    def camera_wb(self) -> tuple[float, float, float] | None:
        """The camera's own white balance, `camera.wb` divided by its G (R, G, B), that of its
        training scenes' lighting; None for a camera without one."""
        if self.camera.wb is None:
            return None
        r, g, b = self.camera.wb
        return r / g, 1.0, b / g

    def recorded(self, x: torch.Tensor, seed: int) -> torch.Tensor:
        """What the camera records of a clean packed RAW x (4, h, w) in [0, 1] (any device):
        the signal relit to the scene's white balance scene_wb(seed) (x_c wb_c / wb'_c, wb the
        camera's: sensor.white_balance_gains; as it is without one), x 2^EV at the exposure
        exposure_for(seed), clipped at white, with the camera's sensor noise at iso_for(seed)
        (sensor.add_noise: what the image lacks of the noise model's level, quantised to the
        camera's codes; drawn on the CPU from sensor.noise_generators([seed]), so that it does
        not depend on the batch, the process or the device) -> (4, h, w) float32 on the CPU,
        normalised codes in [-black / (white - black), 1]; without an ISO the exposed signal
        alone. What convert and sample.py write."""
        iso = self.iso_for(seed)
        scene = self.scene_wb(seed)
        gains = None if scene is None else white_balance_gains(self.camera.wb, scene)
        out = add_noise(x.detach().cpu().float()[None], self.camera.noise, iso,
                        self.exposure_for(seed),
                        np.asarray(self.camera.black_level), self.camera.white_level,
                        noise_generators([seed] if iso is not None else []), gains)
        return out[0]

    def generate_from_guides(self, guides: list[np.ndarray], seeds: list[int],
                             callback=None) -> list[np.ndarray]:
        """Already-halved RGB guides [(h, w, 3) uint8] -> [packed RAW (4, h, w) float32 in
        [0, 1]]: the clean mean, without sensor noise (`recorded` adds it), guide i's diffusion
        noise from seeds[i]; a network samples their tiles `batch_size` to a forward pass
        (each result as for its guide alone, up to float rounding).
        callback(dict(tiles=k, i=..., t=..., ...)) runs at each step of each forward pass of
        k tiles. ValueError for a guide of another shape or dtype, or a seed too few or many."""
        if len(seeds) != len(guides):
            raise ValueError(f"{len(guides)} guides but {len(seeds)} seeds: one seed per guide")
        for guide in guides:
            check_guide(guide)
        # a copy: the guide may be read-only (read_rgb's is), which from_numpy warns about
        codes = [self.undone(torch.tensor(g, device=self.device).permute(2, 0, 1)[None])
                 for g in guides]
        return [x[0].cpu().numpy() for x in self._packed(codes, seeds, callback)]

    def undone(self, codes: torch.Tensor) -> torch.Tensor:
        """Guides (B, 3, h, w) of 8-bit codes with the photo pipeline undone
        (pipeline.Pipeline.apply), or as they are without one."""
        return codes if self.pipeline is None else self.pipeline.apply(codes)

    def generate_from_guide(self, guide: np.ndarray, seed: int = 0) -> np.ndarray:
        """One guide (h, w, 3) uint8 -> packed RAW (4, h, w) float32 in [0, 1]."""
        return self.generate_from_guides([guide], [seed])[0]

    def tile_steps(self, guide_shape: tuple[int, ...]) -> int:
        """Tiles x steps of a guide of (h, w, ...): the units its callbacks count (0 for a
        generator without steps)."""
        return 0

    def _packed(self, codes: list[torch.Tensor], seeds: list[int],
                callback=None) -> list[torch.Tensor]:
        """Guides [(1, 3, h, w) uint8 codes on the device] -> [packed RAW (1, 4, h, w) float32
        in [0, 1] on the device]."""
        raise NotImplementedError


@dataclass
class RawGenerator(Generator):
    """A trained network with its sampling settings (settings.Settings): what turns RGB guides
    into packed RAW. steps None: a one-pass network (model.objective=direct)."""

    net: torch.nn.Module
    diffusion: Diffusion
    camera: Camera        # the checkpoint's camera: what its RAW is written as
    digest: str           # file_digest of the checkpoint
    steps: int | None = DEFAULTS.steps
    tile: int = DEFAULTS.tile
    overlap: int = DEFAULTS.overlap
    device: torch.device | str = "cpu"
    batch_size: int = DEFAULTS.batch_size  # tiles per forward pass, of one guide or several
    sampler: str = DEFAULTS.sampler
    bf16: bool = False    # bf16 autocast of the network (the colour prior stays float64)
    iso: float | str | None = DEFAULTS.iso  # sensor noise (settings.Settings)
    exposure: float | str = DEFAULTS.exposure
    white_balance: tuple[float, float, float] | str | None = DEFAULTS.white_balance
    pipeline: Pipeline | None = None

    def tile_steps(self, guide_shape: tuple[int, ...]) -> int:
        size = padded_size(guide_shape[:2], self.net.multiple)
        return tile_count(size, self.tile, self.overlap) * (self.steps or 0)

    def _packed(self, codes: list[torch.Tensor], seeds: list[int],
                callback=None) -> list[torch.Tensor]:
        """The guides' tiles sampled `batch_size` to a forward pass (sampling.generate_batched):
        each result is what the guide gives alone, up to float rounding."""
        padded = [pad_to_multiple(codes_to_guide(c), self.net.multiple) for c in codes]
        noises = [torch.randn((1, 4, *rgb.shape[-2:]), device=self.device,
                              generator=torch.Generator(self.device).manual_seed(seed))
                  for (rgb, _), seed in zip(padded, seeds)]
        device_type = torch.device(self.device).type
        with torch.no_grad(), torch.autocast(device_type, torch.bfloat16, enabled=self.bf16):
            x0s = generate_batched(self.net, self.diffusion, [rgb for rgb, _ in padded], noises,
                                   self.steps, self.tile, self.overlap, self.batch_size,
                                   callback, self.sampler)
        if not all(torch.isfinite(x0).all() for x0 in x0s):
            raise UserError(f"checkpoint {self.digest}: non-finite values from the network "
                            f"with the {self.sampler} sampler at {self.steps} steps (broken "
                            f"weights, or {'bf16 overflow' if self.bf16 else 'a bug'})")
        return [((x0[..., :h, :w].float() + 1) / 2).clamp(0, 1)
                for x0, (_, (h, w)) in zip(x0s, padded)]


def photo_array(photo) -> np.ndarray:
    """`Generator.__call__`'s photo as (H, W, 3) uint8 sRGB codes; SettingError naming
    `photo` when it is none of an array, a Pillow image or a path, or under 2 x 2 pixels."""
    if isinstance(photo, (str, os.PathLike)):
        rgb = read_rgb(photo)
    elif isinstance(photo, Image.Image):
        rgb = image_rgb(photo)
    elif isinstance(photo, np.ndarray):
        if photo.ndim != 3 or photo.shape[-1] != 3 or photo.dtype != np.uint8:
            raise SettingError("photo", f"an array of shape {photo.shape} and dtype "
                                        f"{photo.dtype}; expected (H, W, 3) uint8 sRGB codes")
        rgb = photo
    else:
        raise SettingError("photo", f"a {type(photo).__name__}; expected an (H, W, 3) uint8 "
                                    "array, a Pillow image or the path of an image file")
    if min(rgb.shape[:2]) < 2:
        raise SettingError("photo", f"{rgb.shape[1]}x{rgb.shape[0]} pixels; at least 2x2 make "
                                    "a RAW pixel")
    return rgb


def halve_batch(batch: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) photos, uint8 or float in [0, 1] -> (B, 3, H // 2, W // 2) uint8 guide
    codes: float photos quantised to round(255 x), then 2 x 2 blocks averaged, rounding half
    up: exactly images.halve_area of the 8-bit photo. SettingError naming `batch` otherwise."""
    if batch.ndim != 4 or batch.shape[1] != 3 or min(batch.shape[-2:]) < 2:
        raise SettingError("batch", f"a tensor of shape {tuple(batch.shape)}; expected (B, 3, H, "
                                    "W) photos, H and W at least 2")
    if batch.dtype == torch.uint8:
        codes = batch.to(torch.int32)
    elif batch.is_floating_point():
        if not bool(((batch >= 0) & (batch <= 1)).all()):  # NaN too
            raise SettingError("batch", f"float values from {batch.min().item():g} to "
                                        f"{batch.max().item():g}; expected photos in [0, 1]")
        codes = (batch.float() * 255).round().to(torch.int32)
    else:
        raise SettingError("batch", f"a {batch.dtype} tensor; expected uint8 codes or floats "
                                    "in [0, 1]")
    h, w = batch.shape[-2] // 2 * 2, batch.shape[-1] // 2 * 2
    total = (codes[..., 0:h:2, 0:w:2] + codes[..., 0:h:2, 1:w:2] + codes[..., 1:h:2, 0:w:2]
             + codes[..., 1:h:2, 1:w:2])
    return ((total + 2) // 4).to(torch.uint8)
