"""A camera's sensor noise: the model, its calibration from the camera's own RAW files, and noise
drawn at an ISO and exposure onto a generated (clean) RAW.

The model (Foi et al. 2008, "Practical Poissonian-Gaussian noise modeling and fitting for
single-image raw-data", IEEE TIP 17(10)): per packed CFA channel c (R, G1, G2, B), a
normalised sample z = (raw - black) / (white - black) of clean value x has

    var z = S_c(ISO) x + O_c(ISO)

S is the shot (Poisson) part: S x electrons' worth, S = one electron in normalised units, so it
grows with the analogue gain, in proportion to the ISO. O is the read noise: the part made
before the gain grows with its square, the part after it (the ADC's) stays:

    S(ISO) = S_ref ISO / ISO_ref,   O(ISO) = O_gained (ISO / ISO_ref)^2 + O_fixed

Calibration fits these across files (each file measured with noise_levels.estimate_noise, at
its own ISO): S_ref from the median over files of S_i / ISO_i; O_gained and O_fixed by
non-negative least squares on the files' O_i (relative errors) when the files hold two ISOs or
more. With one ISO only (the shared GoPro files are all ISO 100), the two parts of O cannot be
told apart, and all of O is taken as read noise before the gain (O_fixed = 0): modern CMOS
sensors are limited by the noise before their gain at all but the lowest gains, and across
cameras and ISOs log O grows as 2.18 log S (the fit of Brooks et al. 2019, "Unprocessing
Images for Learned Raw Denoising"), close to the slope 2 of O proportional to gain^2.

Outside the calibrated ISOs the model extrapolates along these lines and logs a warning that
says so (a camera calibrated at ISO 100 only is still asked for low-light ISOs: refusing would
make it useless for what noise is added for); an ISO that is not a positive number is refused.

Generation (`add_noise`) gives a clean image the camera's noise level function at an ISO: Poisson
shot noise and Gaussian read noise, quantised to the file's codes. It adds what the image lacks:
a generator's output already carries noise-like detail from its guide (on the GoPro test image,
22 to 40 % of the real RAW's S, benchmarks/results/noise.md), and adding the whole model on top
of it overshot the real RAW's S by 24 to 35 %. What is there is measured on the
image itself with the same estimator. O is the noise of the codes as measured: it includes the
quantisation's 1/12 code^2, so the Gaussian read part is drawn with O less that, and quantising
adds it back.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass
from typing import Annotated, Sequence

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from scipy import optimize

from . import bayer
from .diffusion import derived_seed
from .errors import UserError
from .io import RawImage
from .schemas import schema_problem
from .noise_levels import estimate_noise

log = logging.getLogger(__name__)

SENSOR_NOISE = 3  # derived_seed's purpose key of the sensor noise (training_data.py has 0..2)


class NoiseError(UserError, ValueError):
    """An ISO, exposure or noise model that cannot be used; the message says which and why."""


Variance = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Iso = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Channels = tuple[Variance, Variance, Variance, Variance]


class _Record(BaseModel):
    """NoiseModel.to_dict's schema, so that a bad stored value is reported with its key."""

    model_config = ConfigDict(extra="forbid")
    iso: Iso
    shot: Channels
    read_gained: Channels
    read_fixed: Channels
    isos: Annotated[tuple[Iso, ...], Field(min_length=1)]


@dataclass(frozen=True)
class NoiseModel:
    """A camera's noise per packed channel (R, G1, G2, B), in normalised units (module
    docstring): shot = S at the reference ISO `iso`, read_gained = O's part before the gain at
    `iso`, read_fixed = O's part after it; isos: the ISO of each calibration file, ascending
    (their range is the calibrated range, and a draw of ISOs follows them)."""

    iso: float
    shot: tuple[float, float, float, float]
    read_gained: tuple[float, float, float, float]
    read_fixed: tuple[float, float, float, float]
    isos: tuple[float, ...]

    @property
    def iso_range(self) -> tuple[float, float]:
        return self.isos[0], self.isos[-1]

    def at(self, iso: float) -> tuple[np.ndarray, np.ndarray]:
        """(S, O) at `iso`, each (4,) float64 in normalised units. NoiseError for an ISO that is
        not a positive number; outside iso_range, extrapolated with a warning logged once per
        ISO and range."""
        iso = check_iso(iso)
        lo, hi = self.iso_range
        if not lo <= iso <= hi:
            _warn_extrapolated(iso, lo, hi)
        gain = iso / self.iso
        return (np.asarray(self.shot) * gain,
                np.asarray(self.read_gained) * gain ** 2 + np.asarray(self.read_fixed))

    def to_dict(self) -> dict:
        """Plain values (checkpoints and baseline files store it beside the camera)."""
        return {"iso": float(self.iso), "shot": [float(v) for v in self.shot],
                "read_gained": [float(v) for v in self.read_gained],
                "read_fixed": [float(v) for v in self.read_fixed],
                "isos": [float(v) for v in self.isos]}

    @classmethod
    def from_dict(cls, data: dict) -> NoiseModel:
        """The model of `to_dict`'s dict. NoiseError naming the key of a bad value."""
        try:
            r = _Record.model_validate(data)
        except ValidationError as e:
            raise NoiseError(f"noise model: {schema_problem(e, prefix='noise.')}") from None
        return cls(iso=r.iso, shot=r.shot, read_gained=r.read_gained, read_fixed=r.read_fixed,
                   isos=tuple(sorted(r.isos)))


@functools.cache  # once per ISO and range in a process, not once per image
def _warn_extrapolated(iso: float, lo: float, hi: float) -> None:
    log.warning("ISO %g lies outside the calibrated ISO %s: noise extrapolated (S in proportion "
                "to ISO, read noise before the gain as ISO^2%s)", iso,
                f"{lo:g}" if lo == hi else f"{lo:g} to {hi:g}",
                "; one ISO calibrated: all read noise taken as before the gain" if lo == hi
                else "")


def check_iso(iso) -> float:
    """`iso` as a float, or NoiseError (one line) when it is not a positive finite number."""
    try:
        value = float(iso)
    except (TypeError, ValueError):
        raise NoiseError(f"ISO {iso!r}: not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise NoiseError(f"ISO {iso!r}: must be a number above 0")
    return value


# ----------------------------------------------------------------------------- calibration

@dataclass
class FileNoise:
    """One calibration file's measurement: its ISO and exposure time (s) from its metadata
    (None when unknown), and S, O per packed channel (4,) at that ISO, normalised units."""

    path: str
    iso: float | None
    exposure_time: float | None
    shot: np.ndarray
    read: np.ndarray


def normalised_packed(raw: RawImage) -> tuple[np.ndarray, np.ndarray]:
    """raw's packed channels normalised, (raw - black) / (white - black), (4, h, w) float64,
    NOT clipped below 0 (the noise goes under black), and lo (4,): where code 0 lies."""
    black = bayer.packed_levels(raw.black_level, raw.cfa).reshape(4, 1, 1)
    span = raw.white_level - black
    packed = bayer.pack(raw.mosaic, raw.cfa).astype(np.float64)
    return (packed - black) / span, (-black / span).ravel()


def measure(raw: RawImage) -> FileNoise:
    """One RAW image's noise (noise_levels.estimate_noise on its whole mosaic) with its ISO
    and exposure time. ValueError when a channel has no smooth area to measure."""
    x, lo = normalised_packed(raw)
    found = estimate_noise([x], lo)
    return FileNoise(path=raw.path, iso=raw.iso, exposure_time=raw.exposure_time,
                     shot=found.shot, read=found.read)


def calibrate(files: Sequence[FileNoise]) -> NoiseModel:
    """The NoiseModel fitted across `files` of one camera (module docstring). Files without an
    ISO are left out (logged). NoiseError when none has one."""
    usable = [f for f in files if f.iso is not None]
    for f in files:
        if f.iso is None:
            log.warning("%s: no ISO in its metadata, left out of the noise calibration", f.path)
    if not usable:
        raise NoiseError(f"noise calibration: none of the {len(files)} file(s) has an ISO in "
                         "its metadata (EXIF ISOSpeedRatings)")
    isos = np.array([f.iso for f in usable], dtype=np.float64)
    shots = np.stack([f.shot for f in usable])
    reads = np.stack([f.read for f in usable])
    ref = float(isos.min())
    shot = np.median(shots / isos[:, None], axis=0) * ref
    if np.unique(isos).size == 1:
        gained, fixed = np.median(reads, axis=0), np.zeros(4)
    else:
        parts = np.array([_read_parts(isos / ref, reads[:, c]) for c in range(4)])
        gained, fixed = parts[:, 0], parts[:, 1]
    return NoiseModel(iso=ref, shot=tuple(shot.tolist()), read_gained=tuple(gained.tolist()),
                      read_fixed=tuple(fixed.tolist()), isos=tuple(sorted(isos.tolist())))


def _read_parts(gain: np.ndarray, read: np.ndarray) -> tuple[float, float]:
    """(O_gained, O_fixed) >= 0 with O = O_gained gain^2 + O_fixed closest to `read` (one per
    file, at relative gains `gain`) in relative error: non-negative least squares."""
    scale = 1 / np.maximum(read, 1e-6 * max(read.max(), 1e-30))
    design = np.stack([gain ** 2, np.ones_like(gain)], axis=1) * scale[:, None]
    parts, _ = optimize.nnls(design, read * scale)
    return float(parts[0]), float(parts[1])


# ----------------------------------------------------------------------------- sampling

def noise_generators(seed: int, indices: Sequence[int], device="cpu") -> list[torch.Generator]:
    """One torch.Generator per image, seeded with derived_seed(seed, index, SENSOR_NOISE): an
    image's noise depends on the run's seed and its index only, not on the batch or on how a
    job is sharded (on one device type: CPU and CUDA streams differ)."""
    return [torch.Generator(device).manual_seed(derived_seed(seed, int(i), SENSOR_NOISE))
            for i in indices]


def expose(x: torch.Tensor, exposure: float) -> torch.Tensor:
    """The clean signal at `exposure` EV: x 2^EV clipped at white (1). x: (B, 4, h, w) in
    [0, 1]; exposure 0 returns x itself. NoiseError for an exposure that is not finite."""
    if not math.isfinite(exposure):
        raise NoiseError(f"exposure {exposure!r} EV: not a finite number")
    return x if exposure == 0 else (x * 2.0 ** exposure).clamp(max=1.0)


def add_noise(x: torch.Tensor, model: NoiseModel | None, iso: float | None, exposure: float,
              black: np.ndarray, white: float,
              generators: Sequence[torch.Generator]) -> torch.Tensor:
    """What the sensor would have recorded of the clean mean `x` at `iso` and `exposure` EV.

    x: (B, 4, h, w) float in [0, 1], the clean normalised RAW (packed R, G1, G2, B). Per image,
    the signal x 2^EV is given the camera's noise level function at the ISO, (S, O) =
    model.at(iso): what its signal lacks of it (S - S_present, O - O_present, at least 0,
    where S_present and O_present are what noise_levels.estimate_noise measures on the signal
    itself: a generator's output already carries some noise-like detail from its guide) is
    drawn per sample, as Poisson counts (x 2^EV / S' of them, times S') plus Gaussian read noise
    (O' less the quantisation's 1/12 code^2); the result is quantised to the integer codes
    round(black + value (white - black)) and clipped to [0, white]: codes under black are kept
    down to 0, as real RAW has them. Where the signal reaches white the sensor is saturated and
    the code is white. black: (4,) per packed channel; white: the white level. generators: one
    per image (noise_generators), so that an image's noise does not depend on its batch.
    Returns (B, 4, h, w) float32: the codes normalised, (code - black) / (white - black), in
    [-black / (white - black), 1]. With iso None: no noise, expose(x, exposure) (x itself at
    0 EV). NoiseError for iso without a model, a bad ISO or exposure; ValueError for a
    generator count that is not B.
    """
    signal = expose(x, exposure)
    if iso is None:
        return signal
    if model is None:
        raise NoiseError(f"ISO {iso:g} asked for, but there is no noise model (the checkpoint's "
                         "training RAW had no ISO in their metadata)")
    if len(generators) != x.shape[0]:
        raise ValueError(f"{x.shape[0]} images but {len(generators)} generators: one per image")
    shot, read = model.at(iso)
    black = np.asarray(black, dtype=np.float64)
    out = torch.empty(signal.shape, dtype=torch.float32, device=x.device)
    for i, generator in enumerate(generators):
        mean = signal[i].float().clamp(min=0)
        present_shot, present_read = present_noise(mean, -black / (white - black))
        out[i] = _sensor(mean, np.maximum(shot - present_shot, 0.0),
                         np.maximum(read - present_read, 0.0), black, white, generator)
    return out


def present_noise(mean: torch.Tensor, lo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(S, O) per channel, (4,) each, of the noise-like detail a clean image (4, h, w) already
    has, as noise_levels.estimate_noise measures it; 0 where it finds no smooth area."""
    try:
        found = estimate_noise([mean.detach().double().cpu().numpy()], lo)
    except ValueError:  # no smooth area (a constant image, say): nothing to measure
        return np.zeros(4), np.zeros(4)
    return found.shot, found.read


def _sensor(mean: torch.Tensor, shot: np.ndarray, read: np.ndarray, black: np.ndarray,
            white: float, generator: torch.Generator) -> torch.Tensor:
    """Poisson-Gaussian noise of (4,) shot and read variances drawn onto one image's signal
    (4, h, w), quantised and clipped as `add_noise` says; returns the codes normalised."""
    span = white - black
    quantisation = 1 / (12 * span ** 2)  # of one code, in normalised units
    s, sd, b, w = (_per_channel(v, mean.device) for v in
                   (shot, np.sqrt(np.maximum(read - quantisation, 0.0)), black, span))
    rate = torch.where(s > 0, mean / s.clamp(min=1e-30), torch.zeros_like(mean))
    value = torch.where(s > 0, torch.poisson(rate, generator=generator) * s, mean)
    value = value + sd * torch.randn(mean.shape, generator=generator, device=mean.device)
    codes = torch.round(b + value * w).clamp(0, white)
    return (torch.where(mean >= 1, torch.full_like(codes, float(white)), codes) - b) / w


def _per_channel(values: np.ndarray, device) -> torch.Tensor:
    """(4,) numbers -> a (4, 1, 1) float32 tensor on `device`, to broadcast over (4, h, w)."""
    return torch.tensor(np.asarray(values, dtype=np.float32), device=device).view(4, 1, 1)


def dng_noise_profile(shot: np.ndarray, read: np.ndarray) -> tuple[tuple[float, float], ...]:
    """DNG NoiseProfile pairs (S, O) per colour plane R, G, B (DNG 1.6, tag 51041, for
    CFAPlaneColor 0, 1, 2) from (4,) per packed channel: G is the mean of G1 and G2."""
    pairs = [(shot[0], read[0]), ((shot[1] + shot[2]) / 2, (read[1] + read[2]) / 2),
             (shot[3], read[3])]
    return tuple((float(s), float(o)) for s, o in pairs)


def profile_channels(profile) -> tuple[np.ndarray, np.ndarray]:
    """A DNG NoiseProfile (one pair for all planes, or one per plane R, G, B) -> (S, O), each
    (4,) per packed channel R, G1, G2, B."""
    pairs = np.asarray(profile, dtype=np.float64).reshape(-1, 2)
    per_channel = pairs[[0, 0, 0, 0]] if len(pairs) == 1 else pairs[[0, 1, 1, 2]]
    return per_channel[:, 0], per_channel[:, 1]
