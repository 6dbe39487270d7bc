"""The saturated chart: what a generator makes of colours that few training scenes contain.

A chart of saturated sRGB patches on grey is turned into the camera's RAW by a generator
(any rawdiffusion.generator.Generator: a checkpoint's or a baseline's), written as the camera's DNG and rendered
back by LibRaw with the camera's own metadata, as the training guides were rendered: a faithful
generator gives the patches' colours back. Per patch, `chart_report` gives the CIELAB hue
error of the rendering and the two greens' disagreement (metrics.green_disagreement), which
renders as a maze pattern where it is large; real sensors keep G1 and G2 equal up to noise and
crosstalk, both greens sitting behind the same colour filter.

`sensor_patches` gives what a real sensor records of saturated surfaces: camera RGB from
measured spectral sensitivities (colour-science's MSDS_CAMERA_SENSITIVITIES) and reflectances
(the ColorChecker, and the 190 patches of RAW to ACES' training set), under an illuminant,
beside the same surfaces' linear sRGB: exact RAW of saturated colours to test maps against.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np
import torch

from .camera import Camera
from .images import halve_area
from .io import colour_science, read_raw, render_srgb, write_dng
from .metrics import green_disagreement

# Saturated sRGB colours (8-bit codes): the primaries and secondaries, orange and purple.
SATURATED = {"red": (220, 30, 30), "orange": (240, 120, 20), "yellow": (230, 220, 30),
             "green": (30, 200, 40), "cyan": (30, 210, 220), "blue": (30, 40, 220),
             "magenta": (220, 40, 220), "purple": (120, 30, 180)}
GREY = 128
BLOCK = 32  # patch side in guide pixels
MARGIN = 8  # guide pixels left out at each patch edge when averaging


def chart_guide(colours: dict = SATURATED, block: int = BLOCK) -> np.ndarray:
    """The chart: one row of block x block patches, one per colour, with a grey border of one
    block: (3 block, block len(colours), 3) uint8 sRGB codes."""
    guide = np.full((3 * block, block * len(colours), 3), GREY, np.uint8)
    for i, c in enumerate(colours.values()):
        guide[block:2 * block, i * block:(i + 1) * block] = c
    return guide


def hue_degrees(srgb: np.ndarray) -> np.ndarray:
    """CIELAB hue angle in degrees of sRGB-encoded colours (..., 3) in [0, 1] (D65)."""
    colour = colour_science()
    lab = colour.XYZ_to_Lab(colour.sRGB_to_XYZ(srgb))
    return np.degrees(np.arctan2(lab[..., 2], lab[..., 1]))


def hue_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Signed hue angle of b minus a, in degrees in (-180, 180]: sRGB (..., 3) in [0, 1]."""
    d = hue_degrees(b) - hue_degrees(a)
    return (d + 180) % 360 - 180


def render_with_camera(camera: Camera, x: np.ndarray) -> np.ndarray:
    """Packed RAW x (4, h, w) in [0, 1] of a generator's camera, written as its DNG and
    rendered by LibRaw with the camera's metadata (rawpy's defaults, orientation ignored),
    halved to the packed size: (h, w, 3) uint8, what `convert --figure` shows."""
    with tempfile.TemporaryDirectory(prefix="rawdiffusion-chart-") as tmp:
        path = Path(tmp) / "chart.dng"
        write_dng(path, camera.raw(x))
        return halve_area(render_srgb(read_raw(path)))


def chart_report(gen, colours: dict = SATURATED, block: int = BLOCK, seed: int = 0) -> list[dict]:
    """Each chart patch through `gen` (a Generator: `generate_from_guide`, `camera`):
    [{"colour", "srgb", "rendered" (sRGB codes of the rendering's mean, or None), "hue_error"
    (signed degrees, or None), "g1", "g2" (mean greens, fraction of white),
    "green_disagreement" (mean |G1 - G2|, fraction of white)}]. Hue errors need a camera with
    its own colour matrix: without one its DNGs carry documented defaults and the rendering
    says nothing of the generator, so they are None."""
    x = gen.generate_from_guide(chart_guide(colours, block), seed=seed)
    rendered = render_with_camera(gen.camera, x) if gen.camera.color_matrix is not None \
        else None
    rows = []
    for i, (name, c) in enumerate(colours.items()):
        inner = (slice(block + MARGIN, 2 * block - MARGIN),
                 slice(i * block + MARGIN, (i + 1) * block - MARGIN))
        patch = torch.from_numpy(np.ascontiguousarray(x[(slice(None), *inner)]))[None]
        row = {"colour": name, "srgb": list(c), "rendered": None, "hue_error": None,
               "g1": float(patch[0, 1].mean()), "g2": float(patch[0, 2].mean()),
               "green_disagreement": float(green_disagreement(patch)[0])}
        if rendered is not None:
            mean = rendered[inner].reshape(-1, 3).mean(0)
            row["rendered"] = [round(float(v), 1) for v in mean]
            row["hue_error"] = float(hue_difference(np.array(c) / 255, mean / 255))
        rows.append(row)
    return rows


def sensor_patches(camera: str = "Nikon 5100 (NPL)", illuminant: str = "D65"):
    """Saturated surfaces as a real sensor records them: (names, linear sRGB (N, 3) of each
    surface under `illuminant` adapted to D65 (surface_srgb), camera RGB (N, 3) white-balanced
    so that a perfect white reflector gives (1, 1, 1) and scaled like the linear sRGB (its
    green equals the surfaces' luminance Y for that white)). `camera`: a key of
    colour.MSDS_CAMERA_SENSITIVITIES. A sensor with one green filter records G1 = G2 for every
    surface; what differs between cameras is R, G, B."""
    colour = colour_science()  # colour-science is imported on first use (io.colour_science)
    from colour.characterisation import training_data_sds_to_RGB  # with colour, on first use

    names, sds = _surfaces()
    shape = colour.SpectralShape(*SPECTRAL_SHAPE)
    sensitivities = colour.MSDS_CAMERA_SENSITIVITIES[camera].copy().align(shape)
    light = colour.SDS_ILLUMINANTS[illuminant].copy().align(shape)
    rgb, _ = training_data_sds_to_RGB(sds, sensitivities, light)
    rgb = np.asarray(rgb)
    return names, surface_srgb(illuminant), rgb[:-1] / rgb[-1, 1]


SPECTRAL_SHAPE = (380, 780, 5)  # nm: start, end, interval of the surfaces' spectra


def _surfaces():
    """(names, colour.MultiSpectralDistributions) of the 214 surfaces, the 24 ColorChecker
    patches (N Ohta) and the 190 of RAW to ACES' training set, and a perfect white reflector
    last (named "white")."""
    colour = colour_science()
    from colour.characterisation import read_training_data_rawtoaces_v1  # with colour

    shape = colour.SpectralShape(*SPECTRAL_SHAPE)
    checker = colour.SDS_COLOURCHECKERS["ColorChecker N Ohta"]
    training = read_training_data_rawtoaces_v1().copy().align(shape)
    names = [f"checker {n}" for n in checker] + [f"rawtoaces {n}" for n in training.labels]
    data = np.hstack([np.stack([checker[n].copy().align(shape).values for n in checker], 1),
                      training.values])
    data = np.hstack([data, np.ones((len(shape.wavelengths), 1))])  # the perfect reflector
    return names, colour.MultiSpectralDistributions(data, shape.wavelengths,
                                                    labels=[*names, "white"])


@functools.cache
def surface_srgb(illuminant: str = "D65") -> np.ndarray:
    """Linear sRGB (N, 3) float64 of the 214 surfaces of sensor_patches (in its order) under
    `illuminant` (a key of colour.SDS_ILLUMINANTS), adapted to D65 (von Kries, CAT02), scaled
    so that a perfect white reflector has luminance 1; unclipped: the 26 surfaces outside the
    sRGB gamut have a negative component. Read-only (cached). CIE 1931 2 degree observer."""
    colour = colour_science()
    from colour.characterisation import training_data_sds_to_XYZ  # with colour

    _, sds = _surfaces()
    shape = colour.SpectralShape(*SPECTRAL_SHAPE)
    light = colour.SDS_ILLUMINANTS[illuminant].copy().align(shape)
    cmfs = colour.MSDS_CMFS["CIE 1931 2 Degree Standard Observer"].copy().align(shape)
    xyz = training_data_sds_to_XYZ(sds, cmfs, light, None)
    adapted = colour.chromatic_adaptation(xyz, xyz[-1], colour.xy_to_XYZ(colour.CCS_ILLUMINANTS[
        "CIE 1931 2 Degree Standard Observer"]["D65"]) * xyz[-1, 1])
    linear = np.asarray(colour.XYZ_to_RGB(adapted, "sRGB", apply_cctf_encoding=False))
    linear = linear[:-1] / linear[-1, 1]
    linear.flags.writeable = False
    return linear
