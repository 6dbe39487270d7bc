"""Unprocessing: the classic, training-free RGB -> RAW baseline, as a deterministic generator.

Brooks, Mildenhall, Xue, Chen, Sharlet, Barron, "Unprocessing Images for Learned Raw
Denoising", CVPR 2019, Section 3 (the camera pipeline, 3.1-3.5, inverted step by step);
published code: google-research/google-research, unprocessing/unprocess.py (`unprocess`)
and unprocessing/process.py (`process`). Brooks draw camera parameters at random per image
and add shot/read noise, to make training data for a denoiser. Here the parameters are fixed
(`generic_params`: the mean of their distributions; `camera_params`: one camera's metadata)
and no noise is added, so the same guide always gives the same RAW.

`unprocess`, sRGB -> packed RAW, per pixel:
    1. inverse tone curve      x = 0.5 - sin(asin(1 - 2y) / 3)        (inverse smoothstep)
    2. gamma expansion         x = max(x, 1e-8) ** 2.2
    3. inverse colour corr.    cam = rgb_to_cam @ x
    4. inverse WB, brightness  cam = cam * safe_gains   (gains [1/r, 1, 1/b] / rgb_gain,
                                                          relaxed to 1 near white)
    5. clip to [0, 1], pack to R, G1, G2, B with G1 = G2 = the green.
The forward pipeline (gains, colour correction, gamma 1/2.2, smoothstep; Brooks' `process`)
is the tests' oracle (tests/test_unprocess.py): `process(unprocess(rgb))` gives rgb back
wherever step 4 used the plain gains and nothing was clipped.

Packed RAW follows the project's convention: (4, h, w) float32 in [0, 1], channels R, G1, G2,
B, normalised linear RAW (raw - black) / (white - black); see `bayer.py`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .camera import Camera
from .io import colour_science

# XYZ -> camera matrices of the four cameras Brooks et al. sample from, as published in
# google-research/google-research, unprocessing/unprocess.py, `random_ccm` (their `xyz2cams`).
# Facts (calibration data), not code: DNG ColorMatrix semantics, like Camera.color_matrix.
BROOKS_XYZ_TO_CAMS = (
    ((1.0234, -0.2969, -0.2266), (-0.5625, 1.6328, -0.0469), (-0.0703, 0.2188, 0.6406)),
    ((0.4913, -0.0541, -0.0202), (-0.613, 1.3513, 0.2906), (-0.1564, 0.2151, 0.7183)),
    ((0.838, -0.263, -0.0639), (-0.2887, 1.0725, 0.2496), (-0.0627, 0.1427, 0.5438)),
    ((0.6596, -0.2079, -0.0562), (-0.4782, 1.3016, 0.1933), (-0.097, 0.1581, 0.5181)),
)

GAMMA = 2.2            # Brooks' gamma_expansion / gamma_compression (Section 3.4)
SAFE_INFLECTION = 0.9  # Brooks' safe_invert_gains: grey level where gains start to relax


@dataclass(frozen=True)
class UnprocessParams:
    """The camera a guide is unprocessed into.

    xyz_to_cam: (3, 3) CIE XYZ -> camera RGB matrix (DNG ColorMatrix semantics), stored as a
        tuple of row tuples so the parameters are immutable and hashable.
    rgb_gain: the global brightening gain the forward pipeline applies (undone by dividing).
    red_gain, blue_gain: white-balance gains of the R and B channels (green gain is 1).
    """

    xyz_to_cam: tuple[tuple[float, float, float], ...]
    rgb_gain: float
    red_gain: float
    blue_gain: float

    def __post_init__(self):
        m = np.asarray(self.xyz_to_cam, dtype=np.float64)
        if m.shape != (3, 3):
            raise ValueError(f"xyz_to_cam must be 3x3, got shape {m.shape}")
        object.__setattr__(self, "xyz_to_cam", tuple(tuple(float(v) for v in row) for row in m))
        for name in ("rgb_gain", "red_gain", "blue_gain"):
            value = float(getattr(self, name))
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value}")
            object.__setattr__(self, name, value)

    @property
    def rgb_to_cam(self) -> np.ndarray:
        """(3, 3) linear sRGB -> camera RGB, each row summing to 1 (see `rgb_to_cam`)."""
        return rgb_to_cam(self.xyz_to_cam)

    def to_dict(self) -> dict:
        """Plain lists and floats, for JSON."""
        return {"xyz_to_cam": [list(row) for row in self.xyz_to_cam],
                "rgb_gain": self.rgb_gain, "red_gain": self.red_gain,
                "blue_gain": self.blue_gain}

    @classmethod
    def from_dict(cls, d: dict) -> UnprocessParams:
        """Inverse of `to_dict`."""
        return cls(xyz_to_cam=d["xyz_to_cam"], rgb_gain=d["rgb_gain"],
                   red_gain=d["red_gain"], blue_gain=d["blue_gain"])


def generic_params() -> UnprocessParams:
    """The expectation of Brooks' random camera, as one fixed, camera-agnostic baseline.

    Brooks (unprocess.py, `random_ccm` and `random_gains`) draw per image:
      - XYZ -> camera: a random convex combination of four published matrices. Here: their
        plain average (the expectation of the combination, whose weights are i.i.d.).
      - rgb_gain = 1 / N(0.8, 0.1). Here: 1 / 0.8 = 1.25, the mean brightness inverted as
        they do (not the mean of 1 / N, which the normal's tails make ill-defined).
      - red_gain ~ U(1.9, 2.4), blue_gain ~ U(1.5, 1.9). Here: the midpoints, 2.15 and 1.7.
    """
    return UnprocessParams(xyz_to_cam=np.mean(BROOKS_XYZ_TO_CAMS, axis=0),
                           rgb_gain=1.0 / 0.8, red_gain=2.15, blue_gain=1.7)


def camera_params(camera: Camera) -> UnprocessParams:
    """Unprocessing into one camera, from its description (a checkpoint's camera).

    xyz_to_cam = the camera's DNG ColorMatrix (XYZ -> camera) calibrated nearest daylight:
    of color_matrix / illuminant and color_matrix2 / illuminant2, the one for D65, else D50,
    else D55, else the first (Brooks' matrices are daylight calibrations, and the sRGB guide's
    white is D65; a tungsten calibration would turn every colour); red_gain, blue_gain = the
    as-shot white-balance gains camera.wb (R, G, B), divided by the green gain (which is 1 by
    convention); rgb_gain = 1.0, since a camera's metadata records no brightening and the
    normalised RAW already sits at the exposure the camera chose.

    Raises ValueError when the camera has no colour matrix or no white balance.
    """
    wb = camera.wb
    calibrations = [(m, illuminant) for m, illuminant in (
        (camera.color_matrix, camera.illuminant), (camera.color_matrix2, camera.illuminant2))
        if m is not None]
    daylight = {21: 0, 23: 1, 20: 2}  # EXIF LightSource codes of D65, D50, D55: preference
    matrix = min(calibrations, key=lambda c: daylight.get(c[1], 3))[0] if calibrations else None
    if matrix is None or wb is None:
        name = camera.name or "this camera"
        raise ValueError("upi-camera needs the camera's colour matrix and white balance; "
                         f"{name} has none: use --kind upi")
    r, g, b = (float(x) for x in wb)
    return UnprocessParams(xyz_to_cam=matrix, rgb_gain=1.0, red_gain=r / g, blue_gain=b / g)


@functools.cache
def _srgb_to_xyz() -> np.ndarray:
    return np.array(colour_science().models.RGB_COLOURSPACE_sRGB.matrix_RGB_to_XYZ, dtype=np.float64)


def rgb_to_cam(xyz_to_cam) -> np.ndarray:
    """(3, 3) XYZ -> camera matrix -> (3, 3) linear sRGB -> camera matrix, as Brooks do
    (unprocess.py, `random_ccm`): xyz_to_cam @ sRGB_to_XYZ with each row normalised to sum 1,
    so sRGB white (1, 1, 1) maps to camera (1, 1, 1), i.e. white-balanced camera RGB.

    sRGB_to_XYZ (D65) comes from colour-science; Brooks type Lindbloom's 7-digit version of
    the same matrix, which differs from it in the fourth decimal.
    """
    m = np.asarray(xyz_to_cam, dtype=np.float64) @ _srgb_to_xyz()
    return m / m.sum(axis=1, keepdims=True)


def smoothstep(x: np.ndarray) -> np.ndarray:
    """The global tone curve Brooks assume (Section 3.5): 3x^2 - 2x^3, on x clipped to [0, 1]."""
    x = np.clip(x, 0.0, 1.0)
    return 3.0 * x ** 2 - 2.0 * x ** 3


def inverse_smoothstep(y: np.ndarray) -> np.ndarray:
    """Inverse of `smoothstep` on [0, 1] (Section 3.5; unprocess.py `inverse_smoothstep`):
    x = 0.5 - sin(asin(1 - 2y) / 3), the root of 3x^2 - 2x^3 = y that lies in [0, 1]."""
    y = np.clip(y, 0.0, 1.0)
    return 0.5 - np.sin(np.arcsin(1.0 - 2.0 * y) / 3.0)


def safe_invert_gains(cam: np.ndarray, params: UnprocessParams) -> np.ndarray:
    """Undo white balance and brightening without dimming highlights (Section 3.3;
    unprocess.py `safe_invert_gains`).

    cam: (..., 3) camera RGB, white-balanced and bright. Plain inversion multiplies by
    gains g = [1 / red_gain, 1, 1 / blue_gain] / rgb_gain; a saturated pixel would then come
    out below white and could never saturate again. Near white the gains relax towards 1:
    with grey = the channel mean, mask = (max(grey - 0.9, 0) / 0.1) ** 2 and
    safe = max(mask + (1 - mask) * g, g), which equals g for grey <= 0.9 and 1 at grey = 1
    (for gains below 1; gains above 1 are left alone by the max).
    """
    gains = np.array([1.0 / params.red_gain, 1.0, 1.0 / params.blue_gain]) / params.rgb_gain
    grey = cam.mean(axis=-1, keepdims=True)
    mask = (np.maximum(grey - SAFE_INFLECTION, 0.0) / (1.0 - SAFE_INFLECTION)) ** 2
    return cam * np.maximum(mask + (1.0 - mask) * gains, gains)


def _as_unit_rgb(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise ValueError(f"expected an (h, w, 3) RGB image, got shape {rgb.shape}")
    if rgb.dtype == np.uint8:
        return rgb.astype(np.float64) / 255.0
    if not np.issubdtype(rgb.dtype, np.floating):
        raise ValueError(f"expected uint8 or float RGB, got dtype {rgb.dtype}")
    return rgb.astype(np.float64)


def unprocess(rgb: np.ndarray, params: UnprocessParams) -> np.ndarray:
    """sRGB guide -> packed RAW by Brooks' inverted pipeline, without noise.

    rgb: (h, w, 3) uint8 sRGB, or float in [0, 1] (values outside are clipped by the tone
        curve's inverse).
    Returns (4, h, w) float32 in [0, 1], channels R, G1, G2, B with G1 == G2 (the guide is
    already at the packed size, so the "mosaic" step just repeats the green).

    Steps as unprocess.py `unprocess`: inverse smoothstep; gamma expansion x ** 2.2 (Brooks'
    approximation of the sRGB transfer curve, kept because unprocessing means inverting
    their assumed pipeline, which the forward `process` renders back exactly); inverse colour correction
    with `params.rgb_to_cam`; `safe_invert_gains`; clip to [0, 1].
    """
    x = inverse_smoothstep(_as_unit_rgb(rgb))
    x = np.maximum(x, 1e-8) ** GAMMA
    cam = x @ params.rgb_to_cam.T
    cam = np.clip(safe_invert_gains(cam, params), 0.0, 1.0)
    r, g, b = np.moveaxis(cam, -1, 0)
    return np.stack([r, g, g, b]).astype(np.float32)
