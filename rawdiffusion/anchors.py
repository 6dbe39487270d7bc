"""Anchors of the colour prior's fit: saturated colours whose RAW the camera's colour matrix
predicts.

Few training photos hold saturated colours, so a map fitted on them (prior.py) extrapolates
there, and its cubic terms extrapolate badly: fitted on the GoPro DNGs alone, the default map
turns a drawn chart's cyan by -42 degrees of hue and its blue by +24 (docs/quality.md,
"Saturated colours"). Real sensors record saturated colours almost linearly: with measured
spectral sensitivities, camera RGB of 214 surfaces, 26 of them outside sRGB, is a 3x3 matrix of
their linear sRGB within 3 % (chart.sensor_patches). A camera that names its colour matrix (DNG
ColorMatrix, XYZ -> camera) says which 3x3 matrix. So the fit adds synthetic samples, the
anchors, to its least squares, with ANCHOR_WEIGHT of the pixels' weight in all:

  inputs   real surfaces: the 214 of chart.surface_srgb (24 ColorChecker patches, 190 of RAW to
           ACES' training set) in linear sRGB under D65, at the exposures EXPOSURES (a perfect
           white reflector at luminance 1), as the 8-bit sRGB codes of a photo (clipped to the
           sRGB gamut, so that the 26 surfaces outside it have a channel at code 0); those with a
           channel above MAX_CODE are left out: near clipping the map has learned the mean RAW
           behind a clipped guide, which anchors there would fight.
  targets  x_c = sum_k M_ck n_c(l_k) for the surface's unclipped linear sRGB l: n_c(v) the map's
           own response of channel c to a grey of linear value v (fitted first without anchors:
           the camera's tone, exposure and white balance, as the training data show them;
           linear below 0), and M = unprocess.rgb_to_cam of the colour matrix nearest daylight
           (white-balanced camera RGB of linear sRGB, rows summing to 1: white stays white).
           For a camera whose data obey one tone curve per channel and then the matrix, as
           LibRaw renders a RAW file (its sRGB output is the inverse of M; Coffin's dcraw), the
           targets are exact; G1 = G2.

A camera without a colour matrix (headerless dumps) gets no anchors. ANCHOR_WEIGHT was chosen
on the GoPro DNGs, by leave-one-image-out fits and the saturated chart
(benchmarks/colour_anchors.py; docs/quality.md, "Saturated colours").
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from .camera import Camera
from .chart import surface_srgb
from .io import colour_science
from .unprocess import rgb_to_cam

ANCHOR_WEIGHT = 0.01  # the anchors' weight in all, as a fraction of the fitted pixels' weight
EXPOSURES = (0.25, 0.5, 1.0, 2.0)  # the surfaces' brightness: a white reflector's luminance
MAX_CODE = 224  # anchors whose sRGB code exceeds this in a channel are left out
DAYLIGHT = {21: 0, 23: 1, 20: 2}  # EXIF LightSource codes of D65, D50, D55: the preference


def daylight_matrix(camera: Camera) -> tuple[np.ndarray, str] | None:
    """The camera's XYZ -> camera colour matrix calibrated nearest daylight, (3, 3) float64,
    and which it is ("color_matrix2 (EXIF illuminant 23)"): of color_matrix / illuminant and
    color_matrix2 / illuminant2, the one for D65, else D50, else D55, else the first, as
    unprocess.camera_params and LibRaw choose. None without a colour matrix."""
    calibrations = [(np.asarray(m, dtype=np.float64), key, illuminant) for m, key, illuminant in (
        (camera.color_matrix, "color_matrix", camera.illuminant),
        (camera.color_matrix2, "color_matrix2", camera.illuminant2)) if m is not None]
    if not calibrations:
        return None
    matrix, key, illuminant = min(calibrations, key=lambda c: DAYLIGHT.get(c[2], 3))
    return matrix, f"{key} (EXIF illuminant {illuminant or 0})"


@functools.cache
def anchor_colours() -> tuple[np.ndarray, np.ndarray]:
    """The anchors' inputs: 8-bit sRGB codes (m, 3) int64 and the unclipped linear sRGB (m, 3)
    float64 they stand for (module docstring). Read-only (cached)."""
    linear = np.concatenate([surface_srgb() * e for e in EXPOSURES])
    encoded = colour_science().cctf_encoding(np.clip(linear, 0, 1), function="sRGB")
    codes = np.round(np.asarray(encoded) * 255).astype(np.int64)
    keep = (codes.max(1) <= MAX_CODE) & (codes.max(1) > 0)
    codes, linear = codes[keep], linear[keep]
    codes.flags.writeable = linear.flags.writeable = False
    return codes, linear


def flat_terms(cmap, codes: np.ndarray) -> torch.Tensor:
    """The terms (m, n) float64 of a map (prior.ColourMap) for uniform patches of the 8-bit
    codes (m, 3): `local` terms are 0."""
    patches = torch.tensor(np.asarray(codes), dtype=torch.float64).reshape(-1, 3, 1, 1)
    return cmap.features(patches)[..., 0, 0]


def neutral_response(cmap, weights: torch.Tensor, linear: np.ndarray) -> np.ndarray:
    """n_c(v): a map's unclipped estimate of channel c (R, (G1 + G2) / 2, B) for a grey of
    linear value v, at every value of `linear` (..., any float), -> (..., 3) float64;
    interpolated between the 256 grey codes in linear sRGB, extended below 0 along the chord
    from code 0 to code 16 (an out-of-gamut surface's negative component)."""
    greys = np.repeat(np.arange(256), 3).reshape(256, 3)
    n = (flat_terms(cmap, greys) @ weights).numpy()
    n = np.stack([n[:, 0], (n[:, 1] + n[:, 2]) / 2, n[:, 3]], 1)
    table = cmap.table.cpu().numpy()
    slope = (n[16] - n[0]) / table[16]
    out = np.stack([np.interp(linear, table, n[:, c]) for c in range(3)], -1)
    below = linear[..., None] < 0
    return np.where(below, n[0] + linear[..., None] * slope, out)


def anchor_samples(cmap, weights: torch.Tensor, camera: Camera | None):
    """The anchors of a map fitted without them (its weights (n, 4)) for `camera`: (terms X
    (m, n), targets Y (m, 4) R, G1, G2, B, both float64 tensors, the matrix used), or None when
    the camera has no colour matrix. Targets as the module docstring says."""
    found = daylight_matrix(camera) if camera is not None else None
    if found is None:
        return None
    matrix, which = found
    M = rgb_to_cam(matrix)
    codes, linear = anchor_colours()
    n = neutral_response(cmap, weights, linear)  # (m, 3 inputs k, 3 channels c): n_c(l_k)
    rgb = np.einsum("ck,mkc->mc", M, n)
    Y = torch.from_numpy(rgb[:, [0, 1, 1, 2]].copy())
    return flat_terms(cmap, codes), Y, which
