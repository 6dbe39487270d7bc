"""What a sensor records of a clean (generated) RAW: the signal under the scene's illuminant and
at an exposure, with the camera's noise at an ISO, quantised to its codes and clipped as it clips.

The camera's noise model and its calibration: noise.py. A generator made with an ISO
(generator.Generator.recorded: rawdiffusion.load(iso=...), convert --iso, sample.py noise.iso)
calls `add_noise` on each clean image it generated, with the image's own random stream
(`noise_generators`) and, for a drawn ISO, its own draw (`drawn_iso`).

`add_noise` gives a clean image the camera's noise level function at an ISO: Poisson shot noise
and Gaussian read noise, quantised to the file's codes. It adds what the image lacks: a
generator's output already carries noise-like detail from its guide (on the GoPro test image,
22 to 40 % of the real RAW's S, benchmarks/results/noise.md), and adding the whole model on top
of it overshot the real RAW's S by 24 to 35 %. What is there is measured on the image itself
with the same estimator (noise_levels.estimate_noise). O is the noise of the codes as measured:
it includes the quantisation's 1/12 code^2, so the Gaussian read part is drawn with O less
that, and quantising adds it back.

The scene's illuminant. A generator's RAW of a photo holds the colours of its camera's training
scenes' lighting, whose as-shot white balance is the camera's `wb`; an sRGB photo does not tell
the illuminant. Given the scene's as-shot white balance wb' (convert --white-balance, or one
drawn from the training images': `drawn_white_balance`), the clean signal is relit by von Kries
scaling in camera space, x'_c = x_c wb_c / wb'_c (`white_balance_gains`: the inverse of the
white balance a renderer applies, as in Brooks et al. 2019, "Unprocessing Images for Learned
Raw Denoising", Sec. 3.2), before the exposure, the clipping at white and the noise.

The noise is drawn on the CPU, whatever device generated the mean: an image's noise depends on
the run's seed and its index only (not on its batch, process or device).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from .diffusion import derived_seed
from .noise import NoiseError, NoiseModel
from .noise_levels import estimate_noise

# derived_seed's purpose keys (training_data.py has 0..2): an image's sensor noise, its drawn
# ISO, its drawn white balance, its drawn exposure
SENSOR_NOISE, SENSOR_ISO, SENSOR_WB, SENSOR_EV = 3, 4, 5, 6


def noise_generators(seeds: Sequence[int]) -> list[torch.Generator]:
    """One CPU torch.Generator per image, seeded with derived_seed(seed, SENSOR_NOISE) from the
    image's own seed (that of its diffusion noise, derived_seed(run seed, its index):
    generator.py): an image's noise depends on the run's seed and its index only, not on its
    batch, on how a job is sharded, or on the device that generated the mean."""
    return [torch.Generator().manual_seed(derived_seed(int(s), SENSOR_NOISE)) for s in seeds]


def drawn_iso(model: NoiseModel, seed: int) -> float:
    """An ISO for the image of seed `seed` (as noise_generators), drawn uniformly from the
    model's calibration ISOs, one per training image: the training data's distribution of
    ISOs, for generating a dataset (`--iso draw`)."""
    rng = np.random.default_rng(derived_seed(int(seed), SENSOR_ISO))
    return float(model.isos[rng.integers(len(model.isos))])


def drawn_white_balance(wbs: Sequence[Sequence[float]], seed: int) -> tuple[float, ...]:
    """The scene's as-shot white balance (R, G, B), divided by G, for the image of seed `seed`
    (as noise_generators), drawn uniformly from `wbs`, the as-shot gains of the camera's
    training images (camera.Camera.wbs), one per image: their distribution of illuminants, for
    generating a dataset (`--white-balance draw`). ValueError for no gains to draw from."""
    if not wbs:
        raise ValueError("no white balances to draw from")
    rng = np.random.default_rng(derived_seed(int(seed), SENSOR_WB))
    r, g, b = (float(v) for v in wbs[rng.integers(len(wbs))])
    return r / g, 1.0, b / g


def drawn_exposure(exposures: Sequence[float], seed: int) -> float:
    """An exposure in EV for the image of seed `seed` (as noise_generators), drawn uniformly
    from `exposures`, the camera's training images' exposures against its colour prior
    (camera.Camera.exposures, prior.exposure_offsets), one per image: their distribution of
    exposures, for generating a dataset (`--exposure draw`). ValueError for none to draw
    from."""
    if not exposures:
        raise ValueError("no exposures to draw from")
    rng = np.random.default_rng(derived_seed(int(seed), SENSOR_EV))
    return float(exposures[rng.integers(len(exposures))])


def white_balance_gains(camera_wb: Sequence[float], wb: Sequence[float]) -> np.ndarray:
    """The von Kries gains (4,) per packed channel R, G1, G2, B that relight a clean RAW made
    under the illuminant of as-shot white balance `camera_wb` (the generator's camera's) to
    that of `wb` (the scene's): wb_c / wb'_c, both (R, G, B) divided by their G first, so that
    green keeps its level (module docstring; Brooks et al. 2019's inverse white balance)."""
    camera_wb = np.asarray(camera_wb, dtype=np.float64)
    wb = np.asarray(wb, dtype=np.float64)
    rgb = (camera_wb / camera_wb[1]) / (wb / wb[1])
    return rgb[[0, 1, 1, 2]]


def expose(x: torch.Tensor, exposure: float, gains: np.ndarray | None = None) -> torch.Tensor:
    """The clean signal at `exposure` EV, relit by the per-channel `gains` (4,) (R, G1, G2, B:
    white_balance_gains; None: none): x gains 2^EV, clipped at white (1) once, as the sensor
    clips the light it gets. x: (B, 4, h, w) in [0, 1]; exposure 0 without gains returns x
    itself. NoiseError for an exposure that is not finite."""
    if not math.isfinite(exposure):
        raise NoiseError(f"exposure {exposure!r} EV: not a finite number")
    if gains is None:
        return x if exposure == 0 else (x * 2.0 ** exposure).clamp(max=1.0)
    scale = torch.tensor(np.asarray(gains) * 2.0 ** exposure, dtype=x.dtype, device=x.device)
    return (x * scale.view(1, 4, 1, 1)).clamp(max=1.0)


def add_noise(x: torch.Tensor, model: NoiseModel | None, iso: float | None, exposure: float,
              black: np.ndarray, white: float, generators: Sequence[torch.Generator],
              gains: np.ndarray | None = None) -> torch.Tensor:
    """What the sensor would have recorded of the clean mean `x` at `iso` and `exposure` EV,
    relit by `gains` (white_balance_gains; None: as generated).

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
    [-black / (white - black), 1]. The signal is expose(x, exposure, gains); with iso None it is
    returned without noise (x itself at 0 EV without gains). NoiseError for iso without a model, a bad
    ISO or exposure; ValueError for a generator count that is not B.
    """
    signal = expose(x, exposure, gains)
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
