"""Sampling the packed RAW of RGB guides of any size with a trained network: the one sampler
dispatch, the guidance computed once, and overlapping tiles, batched, when an image is larger
than a tile.

`sample_x0` is the one place a sampler is chosen: "ddim" is Diffusion.sample (Song et al. 2021,
eta = 0, diffusion.py), "dpmpp2m" and "unipc" diffusers' multistep solvers (solvers.py); every
other function samples through it. The guidance features and every SPADE gamma/beta depend on
the RGB image alone, so `generate` computes them once and reuses them at every denoising step
(the reference recomputed them at each).

Tiling (`generate_tiled`) runs each overlapping tile through the whole DDIM trajectory on its
own (so the cached guidance is one tile's, and memory follows the tile size, not the image),
starting every tile from its crop of ONE noise field drawn for the whole image, and blends the
tiles' x0 with weights that ramp linearly across each overlap. With eta = 0 a tile's trajectory
is a deterministic function of its RGB and that shared noise, so neighbours agree closely
where they overlap and the ramps hide what little differs.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from . import solvers
from .diffusion import Diffusion
from .errors import SettingError
from .settings import T, check_steps, check_tiling


def guide_tensor(rgb: np.ndarray, device="cpu") -> torch.Tensor:
    """(H, W, 3) uint8 sRGB -> (1, 3, H, W) float32 in [-1, 1]."""
    # a copy: rgb may be read-only
    return codes_to_guide(torch.tensor(rgb, device=device).permute(2, 0, 1)[None])


def codes_to_guide(codes: torch.Tensor) -> torch.Tensor:
    """8-bit sRGB codes (B, 3, H, W), any dtype -> the network's guide, float32 in [-1, 1]
    (prior.guide_codes inverts it)."""
    return codes.float() / 127.5 - 1


@torch.no_grad()
def sample_x0(model_fn, noise: torch.Tensor, steps: int, sampler: str = "ddim", callback=None,
              diffusion: Diffusion | None = None) -> torch.Tensor:
    """A deterministic sample from x_T = `noise` with one of settings.SAMPLERS: the one
    sampler dispatch.

    model_fn(x_t, t) -> x0_hat: x_t (B, C, H, W) float32, t (B,) ints, the original timesteps
    in [0, T); x0_hat is clipped to [-1, 1] before the sampler uses it. noise: x_T, (B, C, H,
    W). steps: the number of model calls (every sampler calls the model exactly `steps` times;
    settings.check_steps). callback(dict(i, t, x, x0)) runs at model call i = 0 .. steps - 1
    with t the timestep, x = x_t and x0 the clipped x0_hat. sampler: "ddim", DDIM with eta = 0
    (diffusion.Diffusion.sample, over `diffusion`'s schedule, default a new Diffusion on
    noise's device), or "dpmpp2m" / "unipc" (solvers.solve; their timesteps: solvers.py).
    Returns x0: (B, C, H, W) float32 in [-1, 1] on noise's device.
    Raises errors.SettingError (a ValueError) naming the sampler or the step count.
    """
    check_steps(steps, sampler)
    if sampler == "ddim":
        diffusion = Diffusion().to(noise.device) if diffusion is None else diffusion
        return diffusion.sample(model_fn, noise.shape, steps, noise=noise, callback=callback)
    return solvers.solve(model_fn, noise, steps, sampler, callback=callback)


@torch.no_grad()
def generate(model, diffusion: Diffusion, rgb: torch.Tensor, steps: int | None,
             generator: torch.Generator | None = None, noise: torch.Tensor | None = None,
             cache_guidance: bool = True, callback=None, sampler: str = "ddim") -> torch.Tensor:
    """Sample packed RAW for an RGB guide (sample_x0) with the guidance computed once.

    rgb: (B, 3, H, W) in [-1, 1], H and W multiples of `model.multiple`.
    steps: sampling steps; None for a network trained with model.objective=direct, which
    predicts x0 in one forward pass from x = 0 at t = T - 1 (diffusion.direct_loss).
    noise: x_T (B, 4, H, W); None: drawn from `generator` on the schedule's device.
    cache_guidance: compute the guidance once (True) or at every step as the reference did
    (False; kept to measure and test the difference). Other arguments as sample_x0.
    Returns x0: (B, 4, H, W) in [-1, 1].
    """
    shape = (rgb.shape[0], 4, *rgb.shape[-2:])
    if steps is None:  # the one-pass control (model.objective=direct): x0 = net(0, T - 1; rgb)
        t = torch.full((shape[0],), T - 1, device=rgb.device)
        return model(torch.zeros(shape, device=rgb.device), t, rgb=rgb).float()
    if cache_guidance:
        guidance = model.encode_guidance(rgb)
        model_fn = lambda x, t: model(x, t, guidance=guidance)  # noqa: E731
    else:
        model_fn = lambda x, t: model(x, t, rgb=rgb)  # noqa: E731
    if noise is None:
        noise = torch.randn(shape, device=diffusion.alpha_bar.device, generator=generator)
    return sample_x0(model_fn, noise, steps, sampler, callback, diffusion)


def check_tile(tile: int, multiple: int) -> None:
    """A tile side a network of `multiple` (UNet.multiple) can sample: a multiple of it, at
    least twice it; SettingError naming `tile` otherwise."""
    if tile % multiple or tile < 2 * multiple:
        raise SettingError("tile", f"this network needs a multiple of {multiple}, at least "
                                   f"{2 * multiple}", tile)


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Starts of tiles of length `tile` covering [0, size), neighbours overlapping by at least
    `overlap`; the last tile ends at `size`."""
    if size <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, size - tile, stride)) + [size - tile]
    return starts


def _ramp(length: int, overlap: int, rise: bool, fall: bool) -> torch.Tensor:
    """1-D blending weights: rising linearly over the first `overlap` samples (if `rise`) and
    falling over the last (if `fall`), 1 elsewhere; never 0, so every pixel has weight."""
    w = torch.ones(length)
    ramp = torch.arange(1, overlap + 1, dtype=torch.float32) / (overlap + 1)
    if rise and overlap:
        w[:overlap] = torch.minimum(w[:overlap], ramp)
    if fall and overlap:
        w[-overlap:] = torch.minimum(w[-overlap:], ramp.flip(0))
    return w


@torch.no_grad()
def generate_tiled(model, diffusion: Diffusion, rgb: torch.Tensor, steps: int | None,
                   generator: torch.Generator | None = None, tile: int = 256, overlap: int = 64,
                   callback=None) -> torch.Tensor:
    """`generate` for a large image by overlapping tiles (see the module docstring), one tile
    per forward pass: `generate_batched` for one image.

    rgb: (1, 3, H, W) in [-1, 1], H and W multiples of `model.multiple`; tile: side of the
    tiles, a multiple of `model.multiple`; overlap: pixels shared by neighbouring tiles. The
    image's noise x_T (1, 4, H, W) is drawn from `generator`; every sampler is deterministic
    given x_T (DDIM with eta = 0), so overlapping tiles draw no noise of their own.
    callback(dict(tiles=k, i=..., t=..., ...)) runs at each DDIM step of each forward pass of
    k tiles.
    Returns x0: (1, 4, H, W) in [-1, 1].
    """
    noise = torch.randn((1, 4, *rgb.shape[-2:]), generator=generator,
                        device=diffusion.alpha_bar.device)
    return generate_batched(model, diffusion, [rgb], [noise], steps, tile, overlap,
                            batch_size=1, callback=callback)[0]


@torch.no_grad()
def generate_batched(model, diffusion: Diffusion, rgbs: list[torch.Tensor],
                     noises: list[torch.Tensor], steps: int | None, tile: int = 256,
                     overlap: int = 64, batch_size: int = 1, callback=None,
                     sampler: str = "ddim") -> list[torch.Tensor]:
    """`generate_tiled` for many images at once: the tiles of all of them, up to `batch_size`
    tiles of one size per forward pass (images of one size have tiles of one size). Each
    image's tiles start from their crops of its own noise, so an image's x0 does not depend on
    the batch it is in, up to float rounding (another batch size may round otherwise).

    rgbs: [(1, 3, H_i, W_i)] in [-1, 1], sides multiples of `model.multiple`; noises: their
    x_T, [(1, 4, H_i, W_i)]. sampler: as `generate`. Other arguments as generate_tiled;
    callback(dict(tiles=k, ...)) runs at each step of each forward pass of k tiles.
    Returns [x0 (1, 4, H_i, W_i) in [-1, 1]]. Raises errors.SettingError (a ValueError) naming
    `tile`, `overlap` or `batch_size` when they cannot work (check_tile, settings.check_tiling).
    """
    check_tile(tile, model.multiple)
    check_tiling(tile, overlap, batch_size)
    outs = [torch.zeros((1, 4, *rgb.shape[-2:]), device=rgb.device) for rgb in rgbs]
    weights = [torch.zeros((1, 1, *rgb.shape[-2:]), device=rgb.device) for rgb in rgbs]
    by_size: dict[tuple[int, int], list] = {}  # tile size -> [(image, y, x)]
    for i, rgb in enumerate(rgbs):
        H, W = rgb.shape[-2:]
        for y in tile_starts(H, tile, overlap):
            for x in tile_starts(W, tile, overlap):
                by_size.setdefault((min(tile, H), min(tile, W)), []).append((i, y, x))
    for (th, tw), boxes in by_size.items():
        for start in range(0, len(boxes), batch_size):
            chunk = boxes[start:start + batch_size]
            windows = [(..., slice(y, y + th), slice(x, x + tw)) for _, y, x in chunk]
            report = None
            if callback is not None:
                report = lambda d, k=len(chunk): callback(dict(d, tiles=k))  # noqa: E731
            x0 = generate(model, diffusion,
                          torch.cat([rgbs[i][w] for (i, _, _), w in zip(chunk, windows)]), steps,
                          noise=torch.cat([noises[i][w] for (i, _, _), w in zip(chunk, windows)]),
                          callback=report, sampler=sampler)
            for k, ((i, y, x), window) in enumerate(zip(chunk, windows)):
                H, W = rgbs[i].shape[-2:]
                w = (_ramp(th, overlap, y > 0, y + th < H)[:, None]
                     * _ramp(tw, overlap, x > 0, x + tw < W)[None, :]).to(x0.device)
                outs[i][window] += x0[k:k + 1] * w
                weights[i][window] += w
    return [out / weight for out, weight in zip(outs, weights)]


def padded_size(size: tuple[int, int], multiple: int) -> tuple[int, int]:
    """(H, W) rounded up to multiples of `multiple`, at least twice it: pad_to_multiple's size."""
    return tuple(max(-(-s // multiple) * multiple, 2 * multiple) for s in size)


def tile_count(size: tuple[int, int], tile: int, overlap: int) -> int:
    """Tiles generate_batched cuts from a (padded) image of (H, W)."""
    return len(tile_starts(size[0], tile, overlap)) * len(tile_starts(size[1], tile, overlap))


def pad_to_multiple(rgb: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad (B, 3, H, W) at the bottom and right to multiples of `multiple` (at least
    twice it); returns the padded tensor and the original (H, W) to crop back to."""
    H, W = rgb.shape[-2:]
    ph, pw = (padded - size for padded, size in zip(padded_size((H, W), multiple), (H, W)))
    if ph or pw:
        mode = "reflect" if ph < H and pw < W else "replicate"
        rgb = F.pad(rgb, (0, pw, 0, ph), mode=mode)
    return rgb, (H, W)
