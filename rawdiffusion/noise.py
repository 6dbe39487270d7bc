"""A camera's sensor noise: the model, and its calibration from the camera's own RAW files.

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

Drawing the noise onto generated RAW: sensor.py. Preparing a dataset records each image's ISO
and measured noise (`entry_noise`), from which training and `baseline fit` calibrate the model
of the camera (`calibrate_entries`), stored with it (camera.Camera.noise).
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass
from typing import Annotated, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from scipy import optimize

from . import bayer
from .errors import UserError
from .io import RawImage
from .schemas import schema_problem
from .noise_levels import estimate_noise

log = logging.getLogger(__name__)


class NoiseError(UserError, ValueError):
    """An ISO, exposure or noise model that cannot be used; the message says which and why."""


Variance = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Iso = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Channels = tuple[Variance, Variance, Variance, Variance]


class NoiseModel(BaseModel):
    """A camera's noise per packed channel (R, G1, G2, B), in normalised units (module
    docstring): shot = S at the reference ISO `iso`, read_gained = O's part before the gain at
    `iso`, read_fixed = O's part after it; isos: the ISO of each calibration file, ascending
    (their range is the calibrated range, and a draw of ISOs follows them). A declared schema,
    validated when made (pydantic's ValidationError) and frozen; a Camera holds it
    (camera.Camera.noise), and checkpoints and baseline files store it in the camera's dict
    under "noise" (`to_dict`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    iso: Iso
    shot: Channels
    read_gained: Channels
    read_fixed: Channels
    isos: Annotated[tuple[Iso, ...], Field(min_length=1)]

    @field_validator("isos")
    @classmethod
    def _ascending(cls, isos: tuple[float, ...]) -> tuple[float, ...]:
        return tuple(sorted(isos))

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
        """Plain values, as checkpoints and baseline files store it."""
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: dict) -> NoiseModel:
        """The model of `to_dict`'s dict. NoiseError naming the key of a bad value."""
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            raise NoiseError(f"noise model: {schema_problem(e, prefix='noise.')}") from None


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


def entry_noise(raw: RawImage) -> dict:
    """What `prepare` records of a RAW file's noise in its dataset entry: "iso" and
    "exposure_time" (s) from its metadata, "noise_profile" (its DNG NoiseProfile pairs (S, O))
    and "noise": {"shot": (4,), "read": (4,)} measured on the whole mosaic (`measure`), each
    None when unknown (a channel without a smooth area is not measured)."""
    try:
        found = measure(raw)
        noise = {"shot": found.shot.tolist(), "read": found.read.tolist()}
    except ValueError:
        noise = None
    profile = None if raw.noise_profile is None else [list(p) for p in raw.noise_profile]
    return {"iso": raw.iso, "exposure_time": raw.exposure_time, "noise_profile": profile,
            "noise": noise}


def calibrate_entries(entries: Sequence[dict], camera: str) -> NoiseModel | None:
    """The noise model of one camera from its prepared images' dataset entries (`entry_noise`'s
    keys): `calibrate` over those with an ISO and a measurement. None when there is none, with
    one warning that says why and how to get one; entries left out beside used ones are
    counted in one line. `camera` names the camera in these lines."""
    files = [FileNoise(path=e.get("source", ""), iso=e["iso"],
                       exposure_time=e.get("exposure_time"), shot=np.asarray(e["noise"]["shot"]),
                       read=np.asarray(e["noise"]["read"]))
             for e in entries if e.get("iso") and e.get("noise")]
    earlier = sum("noise" not in e for e in entries)
    no_iso = sum("noise" in e and not e.get("iso") for e in entries)
    counts = ((earlier, "prepared by a version before noise calibration (run the same "
                        "`rawdiffusion prepare` command again: it adds their ISO and noise)"),
              (no_iso, "without an ISO in their metadata (headerless dumps: give \"iso\" in "
                       "their JSON sidecars)"),
              (len(entries) - len(files) - earlier - no_iso, "without a smooth area to measure"))
    why = ", ".join(f"{n} {what}" for n, what in counts if n)
    if not files:
        log.warning("%s: no noise model (`--iso` and noise.iso need one): of its %d training "
                    "image(s), %s", camera, len(entries), why or "none")
        return None
    if why:
        log.info("%s: noise calibrated from %d training image(s); left out: %s", camera,
                 len(files), why)
    return calibrate(files)


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
