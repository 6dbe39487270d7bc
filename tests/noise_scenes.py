"""Synthetic RAW with real Poisson-Gaussian noise of known S and O: textured scenes (a smooth
random field, hard-edged shapes and fine stripes) for the noise calibration's tests and for
benchmarks/noise.py's recovery table."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def textured_scene(height: int, width: int, seed: int) -> np.ndarray:
    """A clean packed scene (4, height, width) in [0, 1.1]: a smooth random field over the
    whole range (spread on a log scale from 0.001 to 1), 24 flat discs and rectangles with hard edges,
    and two patches of fine stripes (texture a noise estimator must not take for noise);
    values above 1 clip at white. The four channels share the shapes, with their own gains,
    as a camera's would."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.normal(size=(height, width)), sigma=min(height, width) / 12)
    field = (field - field.min()) / (np.ptp(field) + 1e-12)
    scene = 10.0 ** (3 * field - 3)  # 0.001 .. 1 on a log scale: dark areas, as photographs have
    yy, xx = np.mgrid[0:height, 0:width]
    for _ in range(24):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        r = rng.uniform(0.03, 0.12) * min(height, width)
        inside = ((yy - cy) ** 2 + (xx - cx) ** 2 < r ** 2) if rng.random() < 0.5 else (
            (abs(yy - cy) < r) & (abs(xx - cx) < 1.5 * r))
        scene = np.where(inside, rng.uniform(0.0, 1.1), scene)
    for _ in range(2):
        cy, cx = rng.integers(0, height * 3 // 4), rng.integers(0, width * 3 // 4)
        stripes = 0.3 + 0.2 * np.sin(xx / rng.uniform(1.0, 3.0))
        box = (yy >= cy) & (yy < cy + height // 6) & (xx >= cx) & (xx < cx + width // 6)
        scene = np.where(box, stripes, scene)
    gains = np.array([0.7, 1.0, 1.0, 0.85])[:, None, None]
    return np.clip(scene[None] * gains, 0.0, 1.1)


def poisson_gaussian_codes(clean: np.ndarray, shot, read, black, white: float,
                           seed: int) -> np.ndarray:
    """Integer codes of `clean` (4, h, w) normalised with true noise: Poisson electrons
    (clean / shot per sample, times shot) plus N(0, read) per channel, on the codes of
    black .. white, clipped to [0, white]. Returns (4, h, w) uint16."""
    rng = np.random.default_rng(seed)
    shot, read = (np.asarray(v, dtype=np.float64).reshape(-1, 1, 1) for v in (shot, read))
    black = np.asarray(black, dtype=np.float64).reshape(-1, 1, 1)
    noisy = rng.poisson(clean / shot) * shot + rng.normal(size=clean.shape) * np.sqrt(read)
    codes = np.round(black + noisy * (white - black))
    return np.clip(codes, 0, white).astype(np.uint16)


def normalised(codes: np.ndarray, black, white: float) -> np.ndarray:
    """(raw - black) / (white - black) per channel, not clipped below 0 (float64)."""
    black = np.asarray(black, dtype=np.float64).reshape(-1, 1, 1)
    return (codes.astype(np.float64) - black) / (white - black)
