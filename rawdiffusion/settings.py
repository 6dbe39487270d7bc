"""What a generator samples with: the samplers, the step counts each takes, and the defaults
of every setting, each validated here and nowhere else.

One place for the defaults that `rawdiffusion convert`, the demo and `rawdiffusion.load` share:
one DDIM step (the fewest within 0.05 dB of ddim24 on the shipped model's steps-against-quality
curve, benchmarks/steps.py; the paper's evaluation, sample.py, keeps ddim24), tiles of 256
packed pixels overlapping by 64, one tile per forward pass (benchmarks/generation_speed.py),
noise seed 0, float32, no sensor noise (no ISO, 0 EV: the clean mean) and the camera's own white
balance (that of its training scenes' lighting). No torch here: the command line reads this
module to build its options.

A setting that cannot work raises errors.SettingError naming the argument ("steps=0: ..."),
which each front end words with its own option (convert's --steps, sample.py's
diffusion_val.timestep_respacing).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

from .errors import SettingError

MAX_ISO = 4294967295  # EXIF ISOSpeed, a LONG: the largest ISO a DNG can say
MAX_EV = 64  # |exposure| beyond this scales a [0, 1] signal past float32's range in practice
WB_RATIO = 1000  # R/G and B/G of a white balance lie within [1 / WB_RATIO, WB_RATIO]
T = 1000  # the diffusion's steps (diffusion.Diffusion's schedule); here for the step counts
SAMPLERS = ("ddim", "dpmpp2m", "unipc")  # diffusion.Diffusion.sample, and solvers.py's two
DTYPES = ("float32", "bfloat16")  # bfloat16: the network under bf16 autocast


def most_steps(sampler: str) -> int:
    """The most steps a sampler takes: T, but T - 1 for unipc, whose linspace spacing over
    [0, T - 1] repeats a timestep at T steps (a step of size 0: NaN)."""
    return T - 1 if sampler == "unipc" else T


def check_sampler(sampler: str) -> str:
    """`sampler` if it is one of SAMPLERS; SettingError naming them otherwise."""
    if sampler not in SAMPLERS:
        raise SettingError("sampler", f"choose one of {', '.join(SAMPLERS)}", sampler)
    return sampler


def check_steps(steps: int, sampler: str = "ddim") -> int:
    """`steps` if `sampler` takes that many (an int, 1 to most_steps(sampler)); SettingError
    naming the sampler or the step count otherwise."""
    check_sampler(sampler)
    if isinstance(steps, bool) or not isinstance(steps, int) or \
            not 1 <= steps <= most_steps(sampler):
        raise SettingError("steps", f"the {sampler} sampler takes 1 to {most_steps(sampler)} "
                                    "steps", steps)
    return steps


def check_count(name: str, value, least: int) -> int:
    """`value` if it is an integer >= least; SettingError naming `name` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise SettingError(name, f"must be an integer >= {least}", value)
    return value


def check_tiling(tile: int, overlap: int, batch_size: int) -> None:
    """Tiles of `tile` pixels a side (>= 1), overlapping by 0 <= overlap < tile, `batch_size`
    (>= 1) to a forward pass; SettingError naming the one that cannot work."""
    check_count("tile", tile, 1)
    check_count("overlap", overlap, 0)
    if overlap >= tile:
        raise SettingError("overlap", f"must be below the tile size {tile}", overlap)
    check_count("batch_size", batch_size, 1)


def check_iso_setting(iso):
    """`iso` if it is None (no sensor noise), "draw" (an ISO per image, drawn from the training
    images': sensor.drawn_iso) or a whole number from 1 to MAX_ISO, as the DNG's EXIF ISO
    speed holds it; SettingError naming `iso` otherwise."""
    if iso is None or iso == "draw":
        return iso
    if isinstance(iso, bool) or not isinstance(iso, (int, float)) or not math.isfinite(iso) \
            or iso != int(iso) or not 1 <= iso <= MAX_ISO:
        raise SettingError("iso", f"a whole number from 1 to {MAX_ISO} (the DNG's EXIF ISO "
                                  "speed), or draw (an ISO per image drawn from the training "
                                  "images')", iso)
    return iso


def check_exposure(exposure) -> float | str:
    """`exposure` (EV) if it is a number from -MAX_EV to MAX_EV, or "draw" (one per image drawn
    from the training images': sensor.drawn_exposure); SettingError naming `exposure`
    otherwise."""
    if isinstance(exposure, str) and exposure == "draw":
        return exposure
    if exposure_problem(exposure):
        raise SettingError("exposure", f"a number of EV from -{MAX_EV} to {MAX_EV} (0: as "
                                       "generated, -2: a quarter of the light), or draw (one "
                                       "per image drawn from the training images')", exposure)
    return float(exposure)


def exposure_problem(ev) -> str | None:
    """Why `ev` is not an exposure a generator can record at, or None: it must be a real
    number (not a bool) from -MAX_EV to MAX_EV; an int too large for a float is out of range."""
    value = math.nan
    if isinstance(ev, numbers.Real) and not isinstance(ev, bool):
        try:
            value = float(ev)
        except OverflowError:
            value = math.inf
    if math.isfinite(value) and abs(value) <= MAX_EV:
        return None
    return f"{ev!r} is not a number of EV from -{MAX_EV} to {MAX_EV}"


def check_white_balance(wb):
    """`wb` as the generator takes it: None (the camera's own, camera.Camera.wb), "draw" (one
    per image drawn from the training images': sensor.drawn_white_balance), or three finite
    gains above 0 (R, G, B, as LibRaw's camera_whitebalance gives them; a list, tuple, array
    or any sequence) returned as a tuple of floats divided by the green one (G = 1), R / G and
    B / G within [1 / WB_RATIO, WB_RATIO] (white_balance_problem). SettingError naming
    `white_balance` otherwise."""
    if wb is None or (isinstance(wb, str) and wb == "draw"):
        return wb
    words = ("three white-balance gains R,G,B above 0 (the scene's as-shot multipliers, green "
             f"1; R/G and B/G from 1/{WB_RATIO} to {WB_RATIO}), or draw (one per image drawn "
             "from the training images')")
    if isinstance(wb, (str, bytes)) or not hasattr(wb, "__iter__") or not hasattr(wb, "__len__") \
            or len(wb) != 3:
        raise SettingError("white_balance", words, wb)
    gains = []
    for gain in wb:
        if isinstance(gain, bool) or not isinstance(gain, numbers.Real) \
                or not math.isfinite(gain) or gain <= 0:
            raise SettingError("white_balance", words, tuple(wb))
        gains.append(float(gain))
    if white_balance_problem(gains):
        raise SettingError("white_balance", words, tuple(wb))
    return tuple(g / gains[1] for g in gains)


def white_balance_problem(gains) -> str | None:
    """Why three positive gains (R, G, B) cannot relight a RAW and be written as a DNG's
    AsShotNeutral, or None: R / G or B / G outside [1 / WB_RATIO, WB_RATIO]."""
    r, g, b = (float(v) for v in gains)
    if all(1 / WB_RATIO <= v / g <= WB_RATIO for v in (r, b)):
        return None
    return (f"R/G {r / g:.3g} and B/G {b / g:.3g}: each must lie from 1/{WB_RATIO} to "
            f"{WB_RATIO}")


@dataclass(frozen=True)
class Settings:
    """How a generator samples, checked when made (SettingError naming the argument).

    steps: sampling steps (check_steps; a one-pass network or a baseline ignores them);
    sampler: one of SAMPLERS; tile: side of the tiles in packed pixels (each network also
    needs a multiple of its own, sampling.check_tile); overlap: pixels shared by neighbouring
    tiles, 0 <= overlap < tile; batch_size: tiles per forward pass, >= 1; seed: the noise seed,
    >= 0; dtype: "float32" or "bfloat16" (bf16 autocast of the network; the colour prior stays
    float64); iso: the ISO whose sensor noise the camera's noise model adds (noise.py), "draw"
    for one per image drawn from the training images' ISOs, or None for none (the clean mean);
    exposure: EV by which the clean signal is scaled (x 2^EV, clipped at white) before the
    noise, or "draw" for one per image drawn from the training images' (check_iso_setting,
    check_exposure); white_balance: the scene's as-shot gains (R, G,
    B), kept divided by G, by which the clean signal is relit before the exposure
    (sensor.white_balance_gains), "draw" for one per image drawn from the training images', or
    None for the camera's own (check_white_balance).
    """

    steps: int = 1
    sampler: str = "ddim"
    tile: int = 256
    overlap: int = 64
    batch_size: int = 1
    seed: int = 0
    dtype: str = "float32"
    iso: float | str | None = None
    exposure: float | str = 0.0
    white_balance: tuple[float, float, float] | str | None = None

    def __post_init__(self):
        check_steps(self.steps, self.sampler)
        check_tiling(self.tile, self.overlap, self.batch_size)
        check_count("seed", self.seed, 0)
        if self.dtype not in DTYPES:
            raise SettingError("dtype", "choose torch.float32 or torch.bfloat16", self.dtype)
        check_iso_setting(self.iso)
        object.__setattr__(self, "exposure", check_exposure(self.exposure))
        # frozen: the checked gains (a tuple, G = 1) replace the sequence given
        object.__setattr__(self, "white_balance", check_white_balance(self.white_balance))


DEFAULTS = Settings()
