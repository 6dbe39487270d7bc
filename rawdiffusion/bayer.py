"""Bayer mosaics: the four Bayer orders, packing to four half-resolution planes, levels and
normalisation, dihedral transforms.

Packed order. Every Bayer order packs to the same canonical channels (R, G1, G2, B), where G1
is the green that shares a row with R and G2 the green that shares a row with B. For RGGB this
is the reference's R, G, G, B; for the other orders the planes are taken from the positions
where those colours sit, so a model sees the same channel meaning for every camera:

    order   R      G1     G2     B       (row, column) inside the 2x2 tile
    RGGB    (0,0)  (0,1)  (1,0)  (1,1)
    BGGR    (1,1)  (1,0)  (0,1)  (0,0)
    GRBG    (0,1)  (0,0)  (1,1)  (1,0)
    GBRG    (1,0)  (1,1)  (0,0)  (0,1)

Odd sizes. A mosaic with an odd height or width loses its last row or column when packed (the
top-left corner, which fixes the Bayer order, is kept); `unpack` returns the even-sized mosaic.

Dihedral transforms. Rotating or flipping a mosaic changes its Bayer order (a horizontally
flipped RGGB mosaic is GRBG). `dihedral_packed` transforms packed planes so that the result is
exactly `pack(dihedral(mosaic, k), dihedral_cfa(cfa, k))`: every plane is rotated or flipped,
and for the four transforms that swap rows and columns G1 and G2 trade places (the green that
shared a column with R now shares its row). Channels thus keep their meaning under all 8.
"""

from __future__ import annotations

import numpy as np

# (row, column) of R, G1, G2, B inside the 2x2 tile, per Bayer order (see the table above).
_POSITIONS = {
    "RGGB": ((0, 0), (0, 1), (1, 0), (1, 1)),
    "BGGR": ((1, 1), (1, 0), (0, 1), (0, 0)),
    "GRBG": ((0, 1), (0, 0), (1, 1), (1, 0)),
    "GBRG": ((1, 0), (1, 1), (0, 0), (0, 1)),
}
CFA_ORDERS = tuple(_POSITIONS)  # the four Bayer orders: colours of the 2x2 tile, row-major


def channel_positions(cfa: str) -> tuple[tuple[int, int], ...]:
    """(row, column) in the 2x2 tile of the R, G1, G2, B samples of Bayer order `cfa`."""
    try:
        return _POSITIONS[cfa]
    except KeyError:
        raise ValueError(f"unknown Bayer order {cfa!r}; expected one of "
                         f"{', '.join(_POSITIONS)}") from None


def pack(mosaic: np.ndarray, cfa: str) -> np.ndarray:
    """(H, W) mosaic -> (4, H // 2, W // 2) planes in R, G1, G2, B order (odd sizes cropped)."""
    h, w = mosaic.shape[-2] // 2 * 2, mosaic.shape[-1] // 2 * 2
    return np.stack([mosaic[..., dy:h:2, dx:w:2] for dy, dx in channel_positions(cfa)], axis=-3)


def unpack(packed: np.ndarray, cfa: str) -> np.ndarray:
    """(4, h, w) planes in R, G1, G2, B order -> (2h, 2w) mosaic of Bayer order `cfa`."""
    *lead, c, h, w = packed.shape
    if c != 4:
        raise ValueError(f"packed RAW must have 4 channels, got shape {packed.shape}")
    mosaic = np.empty((*lead, 2 * h, 2 * w), dtype=packed.dtype)
    for plane, (dy, dx) in enumerate(channel_positions(cfa)):
        mosaic[..., dy::2, dx::2] = packed[..., plane, :, :]
    return mosaic


def packed_levels(black_level, cfa: str) -> np.ndarray:
    """Per-position black levels of the 2x2 tile (row-major) -> (4,) in R, G1, G2, B order."""
    tile = np.broadcast_to(np.asarray(black_level, dtype=np.float64), 4).reshape(2, 2)
    return np.array([tile[dy, dx] for dy, dx in channel_positions(cfa)])


def level_problem(black, white, names=("black level", "white level"),
                  limit: float = 65535) -> str | None:
    """Why black and white levels are impossible, or None when they are fine: every value a
    finite number, 0 <= black < white <= limit (65535: no uint16 sample goes beyond).
    names: what the message calls them (the tag or key they came from)."""
    black_name, white_name = names
    try:
        black = np.asarray(black, dtype=np.float64).ravel()
        white = float(white)
    except (TypeError, ValueError):
        return f"levels are not numbers ({black_name} {black!r}, {white_name} {white!r})"
    if not np.isfinite(white) or white <= 0:
        return f"impossible {white_name} {white:g} (must be a number above 0)"
    if white > limit:
        return f"impossible {white_name} {white:g} (above {limit:g}, more than 16 bits hold)"
    for b in black:
        if not np.isfinite(b) or b < 0:
            return f"impossible {black_name} {b:g} (must be a number, at least 0)"
        if b >= white:
            return f"impossible levels: {black_name} {b:g} is not below {white_name} {white:g}"
    return None


def normalise(packed: np.ndarray, black: np.ndarray, white: float) -> np.ndarray:
    """Raw numbers (4, h, w) -> (raw - black_c) / (white - black_c) clipped to [0, 1], float32.

    black: (4,) per packed channel (see `packed_levels`); white: the saturation level.
    """
    black = np.asarray(black, dtype=np.float32).reshape(4, 1, 1)
    x = (packed.astype(np.float32) - black) / (np.float32(white) - black)
    return np.clip(x, 0.0, 1.0)


def denormalise(x: np.ndarray, black: np.ndarray, white: float) -> np.ndarray:
    """(4, h, w) normalised -> raw numbers x (white - black_c) + black_c, rounded, clipped to
    [0, white], uint16: [0, 1] gives black to white; values below 0 (sensor noise under
    black, sensor.add_noise) keep their codes down to code 0, as real RAW has them."""
    black = np.asarray(black, dtype=np.float64).reshape(4, 1, 1)
    raw = np.asarray(x, dtype=np.float64) * (white - black) + black
    return np.clip(np.round(raw), 0, white).astype(np.uint16)


# ----------------------------------------------------------------------------- dihedral group

def dihedral(image: np.ndarray, k: int) -> np.ndarray:
    """Element k (0..7) of the dihedral group on the last two axes: k % 4 quarter turns
    counter-clockwise, then a left-right flip when k >= 4. k = 0 is the identity."""
    if not 0 <= k < 8:
        raise ValueError(f"dihedral transform index must be in 0..7, got {k}")
    out = np.rot90(image, k % 4, axes=(-2, -1))
    if k >= 4:
        out = out[..., ::-1]
    return out


def dihedral_inverse(image: np.ndarray, k: int) -> np.ndarray:
    """The inverse of `dihedral(., k)`: dihedral_inverse(dihedral(x, k), k) == x."""
    if not 0 <= k < 8:
        raise ValueError(f"dihedral transform index must be in 0..7, got {k}")
    if k >= 4:
        image = image[..., ::-1]
    return np.rot90(image, -(k % 4), axes=(-2, -1))


def dihedral_cfa(cfa: str, k: int) -> str:
    """Bayer order of `dihedral(mosaic, k)` for an even-sized mosaic of order `cfa`."""
    tile = np.array(list(cfa)).reshape(2, 2)
    return "".join(dihedral(tile, k).ravel())


def dihedral_packed(packed: np.ndarray, k: int) -> np.ndarray:
    """Transform packed planes (..., 4, h, w) so that channels keep their meaning (see module
    docstring): equal to packing the transformed mosaic with its transformed Bayer order."""
    out = dihedral(packed, k)
    if k % 2 == 1:  # rows and columns swapped: the green on R's row was the one on R's column
        out = out[..., [0, 2, 1, 3], :, :]
    return out
