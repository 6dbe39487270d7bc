"""Training-time data handling: the paired random crop and dihedral augmentation."""

from __future__ import annotations

import numpy as np

from .bayer import dihedral, dihedral_packed


def paired_crop_dihedral(raw: np.ndarray, rgb: np.ndarray, size: int,
                         rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int]:
    """Random size x size crop and one of the 8 dihedral transforms, the same for both images.

    raw: (4, h, w) packed RAW (R, G1, G2, B); rgb: (3, h, w) guide of the same h, w.
    Each of the 8 transforms (identity, 3 rotations, 4 reflections) has probability 1/8; the
    packed channels keep their meaning (bayer.dihedral_packed swaps G1/G2 where needed).
    Returns (raw crop, rgb crop, transform index k).
    """
    if raw.shape[-2:] != rgb.shape[-2:]:
        raise ValueError(f"RAW {raw.shape} and RGB {rgb.shape} differ in size")
    h, w = raw.shape[-2:]
    if h < size or w < size:
        raise ValueError(f"sample of {w}x{h} is smaller than the {size}x{size} crop")
    top, left = int(rng.integers(h - size + 1)), int(rng.integers(w - size + 1))
    k = int(rng.integers(8))
    window = (..., slice(top, top + size), slice(left, left + size))
    raw = np.ascontiguousarray(dihedral_packed(raw[window], k))
    rgb = np.ascontiguousarray(dihedral(rgb[window], k))
    return raw, rgb, k
