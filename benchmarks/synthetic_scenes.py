"""Procedural scenes as RAW images, for training a rendering estimate on more scenes than
../shared holds (benchmarks/rendering_estimate.py --synthetic N).

A scene is linear light in the primaries of linear sRGB: a sky above a horizon and a ground
below, each a smooth gradient, covered by a random number (20 to 3000, log-uniform) of "dead
leaves" (Lee, Mumford and Huang 2001: occluding discs and rectangles of power-law sizes, the
standard synthetic model of natural-image statistics, also used to test cameras' texture
rendering, ISO/TS 19567-2) whose surface colours are mostly muted, lit by a smooth field of
+-0.3 to 1.2 stops, often crossed by a soft shadow of 1.5 to 4 stops lit by bluish sky light,
with up to five light sources far above white, a random illuminant colour, fine texture and a
little optical blur. It is exposed with its median 2 to 4.5 stops under white, mosaiced as
RGGB and given shot and read noise, as a 14-bit RawImage of an "sRGB camera" (its colour matrix
is XYZ -> linear sRGB, so LibRaw renders it as it renders a real camera's DNG).

The scenes are not photographs: they have the statistics that a global rendering estimate
reads (histograms, clipping, how chroma varies with brightness) without the content of any
real scene. Deterministic: raw_image(seed) is the same mosaic on every machine.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

# XYZ -> linear sRGB (IEC 61966-2-1): the camera's colour matrix, so camera RGB = linear sRGB.
XYZ_TO_SRGB = np.array([[3.2406, -1.5372, -0.4986], [-0.9689, 1.8758, 0.0415],
                        [0.0557, -0.2040, 1.0570]])
REC709_LUMA = np.array([0.2126, 0.7152, 0.0722])
WHITE = 16383  # 14-bit


def smooth_noise(rng: np.random.Generator, h: int, w: int, scale: int) -> np.ndarray:
    """(h, w) smooth Gaussian noise of unit standard deviation, features about `scale` px."""
    z = rng.standard_normal((max(2, h // scale + 2), max(2, w // scale + 2)))
    z = ndimage.zoom(z, (h / (z.shape[0] - 1), w / (z.shape[1] - 1)), order=3)[:h, :w]
    return z / (z.std() + 1e-9)


def surface_colours(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 3) linear RGB reflectances in [0.002, 1]: a random hue, a saturation mostly low
    (Beta(1.2, 3)), a luminance log-uniform in [0.02, 0.9]."""
    hue = rng.uniform(0, 2 * np.pi, n)
    sat = rng.beta(1.2, 3.0, n)
    lum = np.exp(rng.uniform(np.log(0.02), np.log(0.9), n))
    a, b = sat * np.cos(hue), sat * np.sin(hue)  # opponent axes around grey
    rgb = np.clip(np.stack([1 + 1.2 * a, 1 - 0.6 * a - 0.4 * b, 1 + 1.6 * b - 0.3 * a], 1), 0.01,
                  None)
    return np.clip(rgb / (rgb @ REC709_LUMA)[:, None] * lum[:, None], 0.002, 1.0)


def scene(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(size, size, 3) float64 linear scene radiance, arbitrary scale (module docstring), and
    its illuminant's colour (3,), G = 1."""
    h = w = size
    yy, xx = np.mgrid[:h, :w]
    colours = surface_colours(rng, 3001)
    horizon = rng.uniform(0.2, 0.7) * h + (xx - w / 2) * rng.uniform(-0.3, 0.3)
    sky = np.array([rng.uniform(0.5, 0.9), rng.uniform(0.7, 1.0), 1.0]) * rng.uniform(0.6, 3)
    sky = sky[None, None] * (1 + 0.5 * yy / h)[..., None]
    ground = colours[-1] * (0.6 + 0.8 * yy / h)[..., None]
    img = np.where((yy < horizon)[..., None], sky, ground)
    filled = np.zeros((h, w), bool)
    leaves = int(np.exp(rng.uniform(np.log(20), np.log(3000))))
    for k in range(leaves):  # front to back: a leaf fills only what is still empty
        r = min((rng.pareto(2.0) + 1) * size / 120, size / 2.5)
        cy, cx = rng.uniform(-r, h + r), rng.uniform(-r, w + r)
        y0, y1 = int(max(0, cy - r)), int(min(h, cy + r + 1))
        x0, x1 = int(max(0, cx - r)), int(min(w, cx + r + 1))
        if y0 >= y1 or x0 >= x1:
            continue
        ys, xs = yy[y0:y1, x0:x1], xx[y0:y1, x0:x1]
        inside = (np.ones(ys.shape, bool) if rng.random() < 0.3  # rectangles: man-made things
                  else (ys - cy) ** 2 + (xs - cx) ** 2 <= r * r) & ~filled[y0:y1, x0:x1]
        shading = np.clip(1 + rng.uniform(-0.4, 0.4) * (ys - cy) / max(r, 1), 0.3, 2)
        img[y0:y1, x0:x1][inside] = colours[k][None] * shading[inside][:, None]
        filled[y0:y1, x0:x1] |= inside
    img *= np.exp(rng.uniform(0.01, 0.15) * smooth_noise(rng, h, w, int(rng.integers(2, 8))))[
        ..., None]
    img *= (2 ** (rng.uniform(0.3, 1.2) * smooth_noise(rng, h, w, size // 3)))[..., None]
    if rng.random() < 0.6:  # a soft shadow lit by bluish sky light
        angle = rng.uniform(0, np.pi)
        d = ((xx - w / 2) * np.cos(angle) + (yy - h / 2) * np.sin(angle)
             - rng.uniform(-0.4, 0.4) * size)
        shade = ndimage.gaussian_filter((d > 0).astype(float), rng.uniform(1, 8))[..., None]
        tint = np.array([0.8, 0.95, 1.25]) ** rng.uniform(0, 1)
        img *= (1 - shade) + shade * 2 ** -rng.uniform(1.5, 4) * tint
    for _ in range(rng.integers(0, 6)):  # light sources and speculars
        r = rng.uniform(2, size / 25)
        lit = (yy - rng.uniform(0, h)) ** 2 + (xx - rng.uniform(0, w)) ** 2 <= r * r
        img[lit] = rng.uniform(2, 30) * np.array([1, rng.uniform(0.8, 1), rng.uniform(0.5, 1)])
    illuminant = np.array([rng.uniform(0.55, 1.4), 1.0, rng.uniform(0.45, 1.5)])
    return ndimage.gaussian_filter(img * illuminant, (0.7, 0.7, 0)), illuminant


def raw_image(seed: int, size: int = 512):
    """Scene `seed` as a (size, size) RGGB io.RawImage: 14-bit, black 0, as-shot white balance
    the inverse of its illuminant colour, colour matrix XYZ_TO_SRGB."""
    from rawdiffusion.io import RawImage

    rng = np.random.default_rng(seed)
    img, illuminant = scene(rng, size)
    img = img / np.median(img.mean(-1)) * 2 ** -rng.uniform(2, 4.5)
    mosaic = np.empty(img.shape[:2])
    mosaic[0::2, 0::2] = img[0::2, 0::2, 0]
    mosaic[0::2, 1::2] = img[0::2, 1::2, 1]
    mosaic[1::2, 0::2] = img[1::2, 0::2, 1]
    mosaic[1::2, 1::2] = img[1::2, 1::2, 2]
    signal = np.clip(mosaic, 0, 1) * WHITE
    signal = rng.poisson(signal / 4.0) * 4.0 + rng.normal(0, 3, signal.shape)
    return RawImage(mosaic=np.clip(np.round(signal), 0, WHITE).astype(np.uint16), cfa="RGGB",
                    black_level=(0, 0, 0, 0), white_level=WHITE,
                    wb=(float(1 / illuminant[0]), 1.0, float(1 / illuminant[2])),
                    color_matrix=XYZ_TO_SRGB, make="synthetic", model="sRGB camera")
