"""Packing, normalisation and the dihedral transforms of Bayer mosaics."""

import numpy as np
import pytest

from rawdiffusion import bayer
from rawdiffusion.training_data import paired_crop_dihedral
from rawdiffusion.io import CFA_ORDERS


def labelled_mosaic(cfa, h=8, w=12):
    """Each pixel holds its channel's number (R=1, G1=2, G2=3, B=4), derived from first
    principles: G1 is the green on a row that holds R."""
    m = np.zeros((h, w), np.uint16)
    for i, letter in enumerate(cfa):
        dy, dx = divmod(i, 2)
        row = cfa[2 * dy: 2 * dy + 2]
        code = {"R": 1, "B": 4}.get(letter) or (2 if "R" in row else 3)
        m[dy::2, dx::2] = code
    return m


@pytest.mark.parametrize("cfa", CFA_ORDERS)
def test_pack_gives_canonical_r_g1_g2_b(cfa):
    packed = bayer.pack(labelled_mosaic(cfa), cfa)
    assert packed.shape == (4, 4, 6)
    for c in range(4):
        assert (packed[c] == c + 1).all()


@pytest.mark.parametrize("cfa", CFA_ORDERS)
def test_unpack_is_the_exact_inverse(cfa):
    m = np.random.default_rng(0).integers(0, 2 ** 16, (10, 14)).astype(np.uint16)
    assert np.array_equal(bayer.unpack(bayer.pack(m, cfa), cfa), m)


def test_odd_sizes_lose_the_last_row_and_column():
    m = np.arange(7 * 9, dtype=np.uint16).reshape(7, 9)
    packed = bayer.pack(m, "RGGB")
    assert packed.shape == (4, 3, 4)
    assert np.array_equal(bayer.unpack(packed, "RGGB"), m[:6, :8])


def test_unknown_order_is_refused():
    with pytest.raises(ValueError, match="RGBW"):
        bayer.pack(np.zeros((4, 4)), "RGBW")


def test_packed_levels_follow_the_channel_positions():
    # black per tile position, row-major: (0,0)=1 (0,1)=2 (1,0)=3 (1,1)=4
    assert bayer.packed_levels([1, 2, 3, 4], "RGGB").tolist() == [1, 2, 3, 4]
    assert bayer.packed_levels([1, 2, 3, 4], "BGGR").tolist() == [4, 3, 2, 1]
    assert bayer.packed_levels([1, 2, 3, 4], "GRBG").tolist() == [2, 1, 4, 3]
    assert bayer.packed_levels([1, 2, 3, 4], "GBRG").tolist() == [3, 4, 1, 2]
    assert bayer.packed_levels(600, "RGGB").tolist() == [600] * 4


def test_normalise_golden_values_and_clipping():
    raw = np.array([600, 1000, 16383, 500], np.uint16).reshape(4, 1, 1)
    black = np.array([600, 600, 600, 600])
    x = bayer.normalise(raw, black, 15520)
    np.testing.assert_allclose(x.ravel(), [0.0, 400 / 14920, 1.0, 0.0], rtol=1e-6)
    assert x.dtype == np.float32


def test_normalise_then_denormalise_is_exact_inside_the_levels():
    rng = np.random.default_rng(0)
    black = np.array([10, 20, 30, 40])
    raw = (rng.integers(0, 4096 - 40, (4, 6, 6)) + black.reshape(4, 1, 1)).astype(np.uint16)
    back = bayer.denormalise(bayer.normalise(raw, black, 4095), black, 4095)
    assert np.array_equal(back, raw)


def test_dihedral_group_has_eight_distinct_elements():
    tile = np.arange(6).reshape(2, 3)
    images = {bayer.dihedral(tile, k).tobytes() + bytes(bayer.dihedral(tile, k).shape)
              for k in range(8)}
    assert len(images) == 8
    assert np.array_equal(bayer.dihedral(tile, 0), tile)


def test_flips_and_rotations_change_the_bayer_order():
    assert bayer.dihedral_cfa("RGGB", 4) == "GRBG"  # left-right flip
    assert bayer.dihedral_cfa("RGGB", 6) == "GBRG"  # half turn then flip: upside down
    assert bayer.dihedral_cfa("RGGB", 2) == "BGGR"  # half turn
    assert bayer.dihedral_cfa("RGGB", 1) == "GBRG"  # quarter turn counter-clockwise


@pytest.mark.parametrize("cfa", CFA_ORDERS)
@pytest.mark.parametrize("k", range(8))
def test_transformed_packed_equals_packed_transformed_mosaic(cfa, k):
    m = np.random.default_rng(k).integers(0, 4096, (12, 16)).astype(np.uint16)
    expected = bayer.pack(np.ascontiguousarray(bayer.dihedral(m, k)), bayer.dihedral_cfa(cfa, k))
    assert np.array_equal(bayer.dihedral_packed(bayer.pack(m, cfa), k), expected)


def test_paired_crop_keeps_raw_and_rgb_aligned_and_uses_all_eight_transforms():
    rng = np.random.default_rng(0)
    h, w, size = 20, 24, 8
    raw = rng.uniform(0, 1, (4, h, w)).astype(np.float32)
    # an RGB guide that is a known function of the RAW at the same pixel
    rgb = np.stack([raw[0], (raw[1] + raw[2]) / 2, raw[3]])
    seen = np.zeros(8, int)
    for _ in range(800):
        r, g, k = paired_crop_dihedral(raw, rgb, size, rng)
        seen[k] += 1
        assert r.shape == (4, size, size) and g.shape == (3, size, size)
        np.testing.assert_allclose(g, np.stack([r[0], (r[1] + r[2]) / 2, r[3]]), rtol=1e-6)
    assert (seen > 60).all(), seen  # each of the 8 transforms, about 100 times


def test_paired_crop_is_seeded_and_refuses_small_samples():
    raw, rgb = np.zeros((4, 16, 16)), np.zeros((3, 16, 16))
    a = paired_crop_dihedral(np.random.rand(4, 16, 16), rgb, 8, np.random.default_rng(3))
    assert a[2] == paired_crop_dihedral(raw, rgb, 8, np.random.default_rng(3))[2]
    with pytest.raises(ValueError, match="smaller"):
        paired_crop_dihedral(raw, rgb, 32, np.random.default_rng(0))
