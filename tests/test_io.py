"""Reading, writing and round-tripping RAW files (synthetic and the real ones in ../shared)."""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import rawpy
import tifffile

from conftest import SHARED_FILES, require_shared, SHARED_RAW, synthetic_raw
from rawdiffusion import bayer
from rawdiffusion.io import (CFA_ORDERS, D50, D65, MIN_DNG_SIDE, STANDARD_LIGHT_A, TUNGSTEN,
                             RawFormatError, RawImage, read_packed, read_raw, render_srgb,
                             write_dng, write_hdf5, write_npy)


def assert_same_raw(a, b):
    assert np.array_equal(a.mosaic, b.mosaic)
    assert a.mosaic.dtype == b.mosaic.dtype == np.uint16
    assert (a.cfa, a.black_level, a.white_level) == (b.cfa, b.black_level, b.white_level)
    assert (a.make, a.model) == (b.make, b.model)
    assert (a.wb is None) == (b.wb is None)
    if a.wb is not None:
        np.testing.assert_allclose(a.wb, b.wb, rtol=1e-6)
    for m, n in ((a.color_matrix, b.color_matrix), (a.color_matrix2, b.color_matrix2)):
        assert (m is None) == (n is None)
        if m is not None:
            np.testing.assert_allclose(m, n, atol=1e-6)
    if a.color_matrix is not None:
        assert a.illuminant == b.illuminant
    if a.color_matrix2 is not None:
        assert a.illuminant2 == b.illuminant2


def dng_tags(path) -> dict:
    """The tags of a DNG's first IFD by code, rationals as floats."""
    with tifffile.TiffFile(path) as tif:
        tags = {}
        for t in tif.pages[0].tags.values():
            v = t.value
            if int(t.dtype) in (5, 10):
                pairs = np.asarray(v, dtype=float).reshape(-1, 2)
                v = tuple(pairs[:, 0] / pairs[:, 1])
            tags[t.code] = v
        return tags


def cfa_dng(path, sensor, cfa="RGGB", black=(0,), white=4095, active_area=None, extra=()):
    """A minimal Bayer DNG written directly with tifffile (not write_dng): the whole `sensor`
    array as the image, CFA pattern and levels as given, optional ActiveArea (top, left)."""
    code = {"R": 0, "G": 1, "B": 2}
    black = tuple(black)
    tags = [(33421, "H", 2, (2, 2), True), (33422, "B", 4, bytes(code[c] for c in cfa), True),
            (50706, "B", 4, b"\x01\x04\x00\x00", True), (50717, "I", 1, white, True),
            (50714, "I", len(black), black, True), *extra]
    if len(black) == 4:
        tags.append((50713, "H", 2, (2, 2), True))   # BlackLevelRepeatDim
    if active_area is not None:
        top, left = active_area
        h, w = sensor.shape
        tags.append((50829, "I", 4, (top, left, h - 1, w - 2), True))
    tifffile.imwrite(path, np.asarray(sensor, np.uint16), photometric=32803, extratags=tags,
                     metadata=None)
    return path


def scene(h=48, w=64, seed=0, low=100, high=4000):
    return np.random.default_rng(seed).integers(low, high, (h, w)).astype(np.uint16)


# ----------------------------------------------------------------------------- real files

@pytest.mark.parametrize("name", sorted(SHARED_FILES))
def test_shared_file_reads_with_its_cfa_and_levels(name):
    path = require_shared(SHARED_RAW / name)
    cfa, black, white, width, height = SHARED_FILES[name]
    raw = read_raw(path)
    assert raw.cfa == cfa
    assert raw.black_level == (black,) * 4
    assert raw.white_level == white
    assert raw.mosaic.shape == (height, width)
    assert raw.mosaic.dtype == np.uint16
    assert 0 < raw.mosaic.max() <= max(white, 2 ** 14)  # data present, within its bit depth


@pytest.mark.parametrize("name", sorted(SHARED_FILES))
def test_shared_file_packs_unpacks_and_roundtrips_through_dng(name, tmp_path):
    raw = read_raw(require_shared(SHARED_RAW / name))
    packed = bayer.pack(raw.mosaic, raw.cfa)
    assert packed.shape == (4, raw.mosaic.shape[0] // 2, raw.mosaic.shape[1] // 2)
    assert np.array_equal(bayer.unpack(packed, raw.cfa), raw.mosaic)
    write_dng(tmp_path / "out.dng", raw)
    back = read_raw(tmp_path / "out.dng")
    assert_same_raw(raw, back)
    with rawpy.imread(str(tmp_path / "out.dng")) as r:  # what any LibRaw-based tool sees
        assert np.array_equal(r.raw_image_visible, raw.mosaic)
        assert r.white_level == raw.white_level


def test_gopro_metadata_and_aligned_rendering():
    raw = read_raw(require_shared(SHARED_RAW / "dng/gopro_hero6_GOPR0024.dng"))
    assert (raw.make, raw.model) == ("GoPro", "HERO6 Black")
    np.testing.assert_allclose(raw.wb, (1 / 0.522449, 1.0, 1 / 0.571429), rtol=1e-6)
    # both calibrations, as the file has them: ColorMatrix1 tungsten (3), ColorMatrix2 D50
    assert (raw.illuminant, raw.illuminant2) == (TUNGSTEN, D50)
    np.testing.assert_allclose(raw.color_matrix[0], [1.8331, -0.8166, -0.2478])
    np.testing.assert_allclose(raw.color_matrix2[0], [1.0344, -0.4210, -0.0620])
    info = raw.info()
    assert (info["illuminant"], info["illuminant2"]) == (TUNGSTEN, D50)
    assert info["color_matrix2"][2] == [0.0093, 0.1058, 0.5541]
    # The file says "mirrored" (Orientation 2); the guide must stay aligned with the mosaic.
    rgb = render_srgb(raw)
    green = bayer.pack(raw.mosaic, raw.cfa)[1].astype(float)
    rendered_green = rgb[0::2, 1::2, 1].astype(float)
    assert np.corrcoef(green.ravel(), rendered_green.ravel())[0, 1] > 0.9


@pytest.mark.parametrize("name", sorted(n for n in SHARED_FILES if n.endswith(".dng")))
def test_rewritten_shared_dng_renders_like_the_original(name, tmp_path):
    # LibRaw's default rendering takes its "daylight" balance from the colour matrices, so a
    # matrix written under the wrong illuminant tints every picture (the HERO6 went from mean
    # RGB 73/69/61 to 55/70/87 when only its tungsten matrix was written).
    path = require_shared(SHARED_RAW / name)
    write_dng(tmp_path / "out.dng", read_raw(path))

    def mean_rgb(f):
        with rawpy.imread(str(f)) as r:
            return r.postprocess(half_size=True, user_flip=0).reshape(-1, 3).mean(0)

    np.testing.assert_allclose(mean_rgb(tmp_path / "out.dng"), mean_rgb(path), atol=1.0)
    original, written = dng_tags(path), dng_tags(tmp_path / "out.dng")
    for tag in (50721, 50722, 50778, 50779, 50728):  # ColorMatrix1/2, illuminants, AsShotNeutral
        np.testing.assert_allclose(written[tag], original[tag], atol=1e-6, err_msg=str(tag))


# ----------------------------------------------------------------------------- synthetic

@pytest.mark.parametrize("cfa", CFA_ORDERS)
def test_dng_roundtrip_every_bayer_order(cfa, tmp_path):
    raw = synthetic_raw(cfa)
    write_dng(tmp_path / "x.dng", raw)
    back = read_raw(tmp_path / "x.dng")
    assert_same_raw(raw, back)
    with rawpy.imread(str(tmp_path / "x.dng")) as r:
        desc = r.color_desc.decode()
        assert "".join(desc[c] for c in r.raw_pattern.ravel()) == cfa


def test_dng_without_optional_metadata(tmp_path):
    raw = synthetic_raw("GBRG", wb=None, matrix=False)
    raw.make = raw.model = ""
    write_dng(tmp_path / "bare.dng", raw)
    assert_same_raw(raw, read_raw(tmp_path / "bare.dng"))


def test_both_colour_matrices_and_illuminants_round_trip(tmp_path):
    raw = synthetic_raw("GRBG")
    tungsten = np.array([[0.9, -0.2, -0.1], [-0.5, 1.4, 0.1], [-0.1, 0.2, 0.8]])
    raw = dataclasses.replace(raw, color_matrix=tungsten, illuminant=STANDARD_LIGHT_A,
                              color_matrix2=raw.color_matrix, illuminant2=D65)
    write_dng(tmp_path / "two.dng", raw)
    tags = dng_tags(tmp_path / "two.dng")
    np.testing.assert_allclose(np.reshape(tags[50721], (3, 3)), tungsten)  # ColorMatrix1
    assert tags[50778] == STANDARD_LIGHT_A                                 # CalibrationIlluminant1
    np.testing.assert_allclose(np.reshape(tags[50722], (3, 3)), raw.color_matrix2)
    assert tags[50779] == D65
    back = read_raw(tmp_path / "two.dng")
    assert_same_raw(raw, back)
    assert (back.illuminant, back.illuminant2) == (STANDARD_LIGHT_A, D65)
    info = back.info()
    assert info["color_matrix"] == tungsten.tolist() and info["illuminant"] == STANDARD_LIGHT_A
    assert info["color_matrix2"] == raw.color_matrix2.tolist() and info["illuminant2"] == D65


def test_rawimage_refuses_a_second_matrix_without_a_first():
    with pytest.raises(ValueError, match="ColorMatrix1"):
        dataclasses.replace(synthetic_raw(matrix=False), color_matrix2=np.eye(3))


def test_dng_without_a_known_matrix_gets_documented_defaults(tmp_path):
    import colour

    raw = synthetic_raw("BGGR", wb=None, matrix=False)
    write_dng(tmp_path / "d.dng", raw)
    tags = dng_tags(tmp_path / "d.dng")
    xyz_to_srgb = colour.models.RGB_COLOURSPACE_sRGB.matrix_XYZ_to_RGB
    np.testing.assert_allclose(np.reshape(tags[50721], (3, 3)), xyz_to_srgb, atol=1e-6)
    assert tags[50778] == D65 and 50722 not in tags
    np.testing.assert_allclose(tags[50728], [1, 1, 1])                     # AsShotNeutral
    assert tags[270].startswith("rawdiffusion defaults: ColorMatrix1")    # ImageDescription
    assert "AsShotNeutral" in tags[270]
    back = read_raw(tmp_path / "d.dng")  # read back as what they are: unknown
    assert back.color_matrix is None and back.wb is None
    # a known white balance is written as such; only the matrix is a default
    raw = synthetic_raw("BGGR", wb=(2.0, 1.0, 1.5), matrix=False)
    write_dng(tmp_path / "w.dng", raw)
    tags = dng_tags(tmp_path / "w.dng")
    np.testing.assert_allclose(tags[50728], [0.5, 1, 1 / 1.5], atol=1e-6)
    assert "AsShotNeutral" not in tags[270]
    back = read_raw(tmp_path / "w.dng")
    assert back.color_matrix is None
    np.testing.assert_allclose(back.wb, (2.0, 1.0, 1.5), rtol=1e-6)


def test_dng_size_limit_is_libraw_s(tmp_path):
    raw = synthetic_raw("RGGB", 64, 64)
    for h, w in ((MIN_DNG_SIDE, MIN_DNG_SIDE), (MIN_DNG_SIDE + 1, 40), (40, MIN_DNG_SIDE)):
        small = dataclasses.replace(raw, mosaic=raw.mosaic[:h, :w].copy())
        write_dng(tmp_path / f"{h}x{w}.dng", small)
        with rawpy.imread(str(tmp_path / f"{h}x{w}.dng")) as r:
            assert np.array_equal(r.raw_image_visible, small.mosaic)
            assert r.postprocess(user_flip=0).shape == (h, w, 3)
    for h, w in ((MIN_DNG_SIDE - 1, 40), (40, MIN_DNG_SIDE - 1), (2, 2)):
        small = dataclasses.replace(raw, mosaic=raw.mosaic[:h, :w].copy())
        with pytest.raises(ValueError, match=f"{w}x{h} mosaic is too small.*under 22 pixels"):
            write_dng(tmp_path / "small" / "x.dng", small)
        assert not (tmp_path / "small").exists()
        # what the limit is for: LibRaw refuses such a file
        tifffile.imwrite(tmp_path / "tiny.dng", small.mosaic, photometric=32803, metadata=None,
                         extratags=[(33421, "H", 2, (2, 2)), (33422, "B", 4, b"\x00\x01\x01\x02"),
                                    (50706, "B", 4, b"\x01\x04\x00\x00")])
        with pytest.raises(rawpy.LibRawFileUnsupportedError):
            rawpy.imread(str(tmp_path / "tiny.dng"))


def test_too_small_sidecar_dump_cannot_be_rendered_and_says_why(tmp_path):
    path = write_dump(tmp_path, "small", scene(10, 12, high=1000))
    with pytest.raises(RawFormatError) as info:
        render_srgb(read_raw(path))
    assert str(info.value).startswith(f"{path}: cannot render it: a 12x10 mosaic is too small")
    assert "under 22 pixels a side" in str(info.value)


# ----------------------------------------------------------------------------- DNG metadata

@pytest.mark.parametrize("top, left", [(0, 0), (3, 4), (2, 5), (3, 5), (1, 1)])
def test_black_levels_stay_with_their_colour_when_the_active_area_is_odd(top, left, tmp_path):
    # DNG: the CFA and BlackLevel patterns both start at the ActiveArea's top-left; LibRaw
    # moves the visible area to even offsets and lays the black pattern from there.
    sensor = scene(40, 48)
    path = cfa_dng(tmp_path / "aa.dng", sensor, "GBRG", (64, 66, 68, 70), active_area=(top, left))
    raw = read_raw(path)
    h, w = raw.mosaic.shape
    oy, ox = next((y, x) for y in range(top, top + 2) for x in range(left, left + 2)
                  if np.array_equal(sensor[y:y + h, x:x + w], raw.mosaic))
    pattern, levels = np.array(list("GBRG")).reshape(2, 2), np.reshape((64, 66, 68, 70), (2, 2))
    rows, cols = [(oy + i - top) % 2 for i in (0, 1)], [(ox + j - left) % 2 for j in (0, 1)]
    assert raw.cfa == "".join(pattern[r, c] for r in rows for c in cols)
    assert raw.black_level == tuple(float(levels[r, c]) for r in rows for c in cols)


def test_black_levels_of_the_issue_s_example(tmp_path):
    path = cfa_dng(tmp_path / "aa.dng", scene(40, 48), "GBRG", (64, 66, 68, 70), active_area=(3, 5))
    raw = read_raw(path)
    assert (raw.cfa, raw.black_level) == ("GRBG", (70.0, 68.0, 66.0, 64.0))
    # packing puts each colour's own black level with it: green 1 of GRBG is at (0, 0)
    np.testing.assert_array_equal(bayer.packed_levels(raw.black_level, raw.cfa), [68, 70, 64, 66])


def test_raw_ifd_tags_are_read_where_a_preview_comes_first(tmp_path):
    # As Adobe's converter writes DNGs: IFD 0 a preview with the camera and colour tags, the
    # mosaic in a SubIFD with the CFA, level and ActiveArea tags.
    path = tmp_path / "sub.dng"
    camera = [(50706, "B", 4, b"\x01\x04\x00\x00", True), (272, "s", 0, "Cam", True),
              (50721, "2i", 9, tuple(v for x in np.eye(3).ravel() for v in (int(x), 1)), True),
              (50778, "H", 1, D50, True)]
    mosaic = [(33421, "H", 2, (2, 2), True), (33422, "B", 4, b"\x01\x02\x00\x01", True),  # GBRG
              (50713, "H", 2, (2, 2), True), (50714, "I", 4, (64, 66, 68, 70), True),
              (50717, "I", 1, 4095, True), (50829, "I", 4, (3, 5, 39, 46), True)]
    with tifffile.TiffWriter(path) as tif:
        tif.write(np.zeros((8, 8, 3), np.uint8), photometric="rgb", subfiletype=1, subifds=1,
                  extratags=camera, metadata=None)
        tif.write(scene(40, 48), photometric=32803, subfiletype=0, extratags=mosaic, metadata=None)
    raw = read_raw(path)
    assert (raw.cfa, raw.black_level) == ("GRBG", (70.0, 68.0, 66.0, 64.0))
    assert raw.model == "Cam" and raw.illuminant == D50
    np.testing.assert_array_equal(raw.color_matrix, np.eye(3))


def test_unique_camera_model_names_a_camera_without_make_and_model(tmp_path):
    ucm = (50708, "s", 0, "Blackmagic Pocket Cinema Camera 4K", True)
    raw = read_raw(cfa_dng(tmp_path / "bm.dng", scene(), extra=[ucm]))
    assert (raw.make, raw.model) == ("", "Blackmagic Pocket Cinema Camera 4K")
    assert raw.camera == "Blackmagic Pocket Cinema Camera 4K"
    make = (271, "s", 0, "Blackmagic", True)
    raw = read_raw(cfa_dng(tmp_path / "bm2.dng", scene(), extra=[ucm, make]))
    assert (raw.make, raw.model) == ("Blackmagic", "Pocket Cinema Camera 4K")
    write_dng(tmp_path / "again.dng", raw)  # and a written one reads back the same
    assert (read_raw(tmp_path / "again.dng").make, read_raw(tmp_path / "again.dng").model) == (
        "Blackmagic", "Pocket Cinema Camera 4K")


def test_dng_renders_a_sensible_image(tmp_path):
    # Left half a red surface, right half a blue one, as a camera with these gains sees them.
    h, w, white = 64, 128, 4095
    scene = np.zeros((h, w, 3))
    scene[:, : w // 2] = (0.6, 0.1, 0.05)
    scene[:, w // 2:] = (0.05, 0.15, 0.6)
    wb = (2.0, 1.0, 1.6)
    cam = scene / np.array(wb)  # what the sensor records before white balance
    channel = {"R": 0, "G": 1, "B": 2}
    mosaic = np.zeros((h, w))
    for i, letter in enumerate("RGGB"):
        dy, dx = divmod(i, 2)
        mosaic[dy::2, dx::2] = cam[dy::2, dx::2, channel[letter]]
    raw = synthetic_raw("RGGB", h, w, matrix=False, black=(0, 0, 0, 0), wb=wb)
    raw.mosaic = np.round(mosaic * white).astype(np.uint16)
    write_dng(tmp_path / "rb.dng", raw)
    with rawpy.imread(str(tmp_path / "rb.dng")) as r:
        rgb = r.postprocess(use_camera_wb=True).astype(float)
    left, right = rgb[8:-8, 8: w // 2 - 8].mean((0, 1)), rgb[8:-8, w // 2 + 8: -8].mean((0, 1))
    assert left[0] > 2 * left[2] and left[0] > 2 * left[1]      # red stays red
    assert right[2] > 2 * right[0] and right[2] > right[1]      # blue stays blue


def test_packed_hdf5_and_npy_use_the_reference_layout(tmp_path):
    import h5py

    x = np.random.default_rng(1).uniform(0, 1, (4, 8, 12)).astype(np.float32)
    x[0, 0, 0], x[1, 0, 0] = 1.5, -0.2  # out of range values are clipped
    write_hdf5(tmp_path / "p.h5", x)
    write_npy(tmp_path / "p.npy", x)
    with h5py.File(tmp_path / "p.h5") as f:
        stored = f["raw"][()]
    assert stored.shape == (8, 12, 4) and stored.dtype == np.uint16
    assert stored[0, 0, 0] == 65535 and stored[0, 0, 1] == 0
    assert stored[3, 5, 2] == round(float(x[2, 3, 5]) * 65535)
    assert np.array_equal(np.load(tmp_path / "p.npy"), stored)
    for name in ("p.h5", "p.npy"):
        np.testing.assert_allclose(read_packed(tmp_path / name), np.clip(x, 0, 1), atol=1 / 65535)


# ----------------------------------------------------------------------------- sidecar files

def write_dump(folder, name, mosaic, dtype="uint16 little-endian", cfa="BGGR", **extra):
    path = folder / f"{name}.raw"
    data = mosaic.astype(">u2" if "BE" in dtype else ("<u2" if "16" in dtype else np.uint8))
    path.write_bytes(data.tobytes())
    meta = {"width": mosaic.shape[1], "height": mosaic.shape[0], "dtype": dtype,
            "cfa_pattern": cfa, "black_level": 10, "white_level": 1023, **extra}
    (folder / f"{name}.json").write_text(json.dumps(meta))
    return path


@pytest.mark.parametrize("dtype", ["uint16 little-endian (10-bit)", "uint16 BE", "uint8"])
def test_headerless_dump_with_sidecar(dtype, tmp_path):
    mosaic = np.random.default_rng(0).integers(0, 255, (6, 10)).astype(np.uint16)
    raw = read_raw(write_dump(tmp_path, "d", mosaic, dtype, make="Acme", wb=[1.5, 1, 2]))
    assert np.array_equal(raw.mosaic, mosaic)
    assert (raw.cfa, raw.black_level, raw.white_level) == ("BGGR", (10.0,) * 4, 1023.0)
    assert raw.make == "Acme" and raw.wb == (1.5, 1.0, 2.0)


def test_pgm_with_sidecar(tmp_path):
    mosaic = np.random.default_rng(0).integers(0, 1023, (4, 6)).astype(np.uint16)
    (tmp_path / "s.pgm").write_bytes(b"P5\n# comment\n6 4\n1023\n" + mosaic.astype(">u2").tobytes())
    (tmp_path / "s.json").write_text(json.dumps({"width": 6, "height": 4, "dtype": "uint16 BE",
                                                 "cfa_pattern": "GRBG", "black_level": 25,
                                                 "white_level": 1023}))
    raw = read_raw(tmp_path / "s.pgm")
    assert np.array_equal(raw.mosaic, mosaic) and raw.cfa == "GRBG"


# ----------------------------------------------------------------------------- bad input

def bad_files(tmp_path):
    """name -> (path, words the error must contain)"""
    good = tmp_path / "good.dng"
    write_dng(good, synthetic_raw())
    data = good.read_bytes()
    (tmp_path / "truncated.dng").write_bytes(data[: len(data) // 3])
    (tmp_path / "empty.dng").write_bytes(b"")
    (tmp_path / "text.nef").write_text("not a raw file\n")
    tifffile.imwrite(tmp_path / "linear.dng", np.zeros((8, 8, 3), np.uint16), photometric=34892,
                     extratags=[(50706, "B", 4, b"\x01\x04\x00\x00")], metadata=None)
    xtrans = bytes([1, 1, 0, 1, 1, 2, 1, 1, 2, 1, 1, 0, 2, 0, 1, 0, 2, 1,
                    1, 1, 2, 1, 1, 0, 1, 1, 0, 1, 1, 2, 0, 2, 1, 2, 0, 1])
    tifffile.imwrite(tmp_path / "xtrans.dng", np.zeros((36, 48), np.uint16), photometric=32803,
                     extratags=[(33421, "H", 2, (6, 6)), (33422, "B", 36, xtrans),
                                (50706, "B", 4, b"\x01\x04\x00\x00"), (50717, "I", 1, 4095)],
                     metadata=None)
    write_dump(tmp_path, "short", np.zeros((4, 4)))
    (tmp_path / "short.raw").write_bytes(b"\x00" * 30)  # sidecar promises 32 bytes
    write_dump(tmp_path, "quad", np.zeros((4, 4)), cfa="RGBW")
    (tmp_path / "lonely.pgm").write_bytes(b"P5\n2 2\n255\n\x00\x00\x00\x00")
    return {
        "truncated": (tmp_path / "truncated.dng", "truncated or corrupt"),
        "empty": (tmp_path / "empty.dng", "empty file"),
        "text": (tmp_path / "text.nef", "not a"),
        "linear": (tmp_path / "linear.dng", "not a Bayer mosaic"),
        "xtrans": (tmp_path / "xtrans.dng", "X-Trans"),
        "short": (tmp_path / "short.raw", "30 bytes"),
        "quad": (tmp_path / "quad.json", "not a Bayer order"),
        "lonely": (tmp_path / "lonely.pgm", "needs a JSON sidecar"),
        "missing": (tmp_path / "missing.dng", "no such file"),
    }


def test_bad_files_give_one_line_errors_naming_file_and_reason(tmp_path):
    for name, (path, words) in bad_files(tmp_path).items():
        with pytest.raises(RawFormatError) as info:
            read_raw(path.with_suffix(".raw") if name == "quad" else path)
        message = str(info.value)
        assert str(path) in message, name
        assert words in message, (name, message)
        assert "\n" not in message


IMPOSSIBLE_DNG_LEVELS = {  # name: (BlackLevel tag, WhiteLevel, words of the error)
    "white 0": ((0, "I"), 0, "DNG WhiteLevel 0"),
    "black above white": ((5000, "I"), 4095,
                          "DNG BlackLevel 5000 is not below DNG WhiteLevel 4095"),
    "black equal to white": ((4095, "I"), 4095, "DNG BlackLevel 4095 is not below"),
    "black 1/0": (((1, 0), "2I"), 4095, "DNG BlackLevel inf"),
    "black 0/0": (((0, 0), "2I"), 4095, "DNG BlackLevel nan"),
    "negative black": (((-8, 1), "2i"), 4095, "DNG BlackLevel -8"),
    "huge white": ((0, "I"), 4_000_000_000, "DNG WhiteLevel 4e+09"),
}


@pytest.mark.parametrize("case", sorted(IMPOSSIBLE_DNG_LEVELS))
def test_impossible_dng_levels_are_refused(case, tmp_path):
    (black, kind), white, words = IMPOSSIBLE_DNG_LEVELS[case]
    path = tmp_path / "levels.dng"
    tags = [(33421, "H", 2, (2, 2)), (33422, "B", 4, b"\x00\x01\x01\x02"),
            (50706, "B", 4, b"\x01\x04\x00\x00"), (50717, "I", 1, white),
            (50714, kind, 1, black)]
    tifffile.imwrite(path, scene(), photometric=32803, extratags=tags, metadata=None)
    with pytest.raises(RawFormatError) as info:
        read_raw(path)
    assert str(info.value).startswith(f"{path}: impossible") and words in str(info.value)


@pytest.mark.parametrize("black, white, words", [
    (10, 0, "white_level 0"), (1023, 1023, "black_level 1023 is not below white_level 1023"),
    (-1, 1023, "black_level -1"), ("NaN", 1023, "black_level nan"),
    (10, "Infinity", "white_level inf"), (10, 1e300, "white_level 1e+300"),
    ([10, 10, 10, 2000], 1023, "black_level 2000 is not below"),
])
def test_impossible_sidecar_levels_are_refused(black, white, words, tmp_path):
    path = write_dump(tmp_path, "d", scene(6, 10, high=1000))
    meta = json.loads((tmp_path / "d.json").read_text())
    text = json.dumps({**meta, "black_level": black, "white_level": white})
    (tmp_path / "d.json").write_text(text.replace('"NaN"', "NaN").replace('"Infinity"', "Infinity"))
    with pytest.raises(RawFormatError) as info:
        read_raw(path)
    assert str(info.value).startswith(f"{tmp_path / 'd.json'}: impossible")
    assert words in str(info.value)


def test_rawimage_refuses_impossible_levels():
    with pytest.raises(ValueError, match="black level 70 is not below white level 64"):
        RawImage(mosaic=scene(), cfa="RGGB", black_level=70, white_level=64)
    with pytest.raises(ValueError, match="white level nan"):
        RawImage(mosaic=scene(), cfa="RGGB", black_level=0, white_level=float("nan"))


def test_files_that_decode_to_no_image_are_refused(tmp_path):
    # LibRaw fills what a pruned or truncated file lacks with zeros: a constant mosaic
    cfa_dng(tmp_path / "zeros.dng", np.zeros((48, 64), np.uint16))
    almost = np.zeros((400, 300), np.uint16)
    almost[:3] = scene(3, 300)  # 0.75 % of the pixels decoded
    cfa_dng(tmp_path / "pruned.dng", almost)
    cfa_dng(tmp_path / "flat.dng", scene(48, 64, low=1000, high=1003), black=(0,))  # 3 DN of 4095
    write_dump(tmp_path, "blank", np.full((8, 10), 10))
    for name, words in (("zeros.dng", "100.0% of its pixels are 0"),
                        ("pruned.dng", "99.2% of its pixels are 0"),
                        ("flat.dng", "every pixel lies in 1000..1002"),
                        ("blank.raw", "100.0% of its pixels are 10")):
        with pytest.raises(RawFormatError) as info:
            read_raw(tmp_path / name)
        assert str(info.value).startswith(f"{tmp_path / name}: decodes to no image"), name
        assert words in str(info.value), (name, str(info.value))
    # a real picture may be mostly dark (the Fusion fisheyes): a half-black one is read
    half = scene(48, 64)
    half[:, :32] = 0
    assert read_raw(cfa_dng(tmp_path / "half.dng", half)).mosaic.shape == (48, 64)


def test_plain_tiff_and_directory_sidecar_are_refused(tmp_path):
    tifffile.imwrite(tmp_path / "grey.dng", scene())  # a 16-bit greyscale TIFF, named .dng
    with pytest.raises(RawFormatError, match="grey.dng: a plain TIFF image .no DNGVersion"):
        read_raw(tmp_path / "grey.dng")
    write_dng(tmp_path / "cam.dng", synthetic_raw())
    (tmp_path / "cam.json").mkdir()  # where a sidecar would be
    with pytest.raises(RawFormatError) as info:
        read_raw(tmp_path / "cam.dng")
    assert str(info.value) == (f"{tmp_path / 'cam.json'}: a directory, where the JSON sidecar "
                               "describing cam.dng is expected")
    with pytest.raises(RawFormatError, match="a directory, not a RAW file"):
        read_raw(tmp_path / "cam.json")


def test_cli_info_prints_json_and_one_line_errors(tmp_path):
    good = tmp_path / "good.dng"
    write_dng(good, synthetic_raw("GRBG"))
    (tmp_path / "bad.dng").write_bytes(b"")
    cfa_dng(tmp_path / "levels.dng", scene(), black=(5000,), white=4095)
    proc = subprocess.run([sys.executable, "-m", "rawdiffusion.cli", "info", str(good),
                           str(tmp_path / "bad.dng"), str(tmp_path / "levels.dng"),
                           "--preview", str(tmp_path / "pv")],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    info = json.loads(proc.stdout.strip())
    assert info["cfa"] == "GRBG" and info["black_level"] == [64, 65, 66, 67]
    assert info["make"] == "Testmaker" and info["width"] == 128
    assert (info["illuminant"], info["color_matrix2"], info["illuminant2"]) == (D65, None, None)
    assert proc.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'bad.dng'}: empty file",
        f"error: {tmp_path / 'levels.dng'}: impossible levels: DNG BlackLevel 5000 is not below "
        "DNG WhiteLevel 4095",
        "2 of 3 file(s) could not be read"]
    assert (tmp_path / "pv" / "good.png").is_file()


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_outputs_get_the_mode_open_gives_not_0600(tmp_path, umask):
    """atomic_output's files are created as open() creates files: 0o666 less the umask."""
    import os

    from rawdiffusion.images import write_png
    from rawdiffusion.atomic import atomic_output

    old = os.umask(umask)
    try:
        write_dng(tmp_path / "a.dng", synthetic_raw())
        write_npy(tmp_path / "a.npy", np.zeros((4, 8, 8), np.float32))
        write_hdf5(tmp_path / "a.h5", np.zeros((4, 8, 8), np.float32))
        write_png(tmp_path / "a.png", np.zeros((8, 8, 3), np.uint8))
        with atomic_output(tmp_path / "a.txt") as tmp:
            tmp.write_text("x")
        with open(tmp_path / "plain.txt", "w") as f:
            f.write("x")
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes == dict.fromkeys(["a.dng", "a.npy", "a.h5", "a.png", "a.txt", "plain.txt"],
                                  0o666 & ~umask)


# ----------------------------------------------------------------------------- library noise

def cut_copy(source, tmp_path, keep):
    """A copy of `source` (read in place) cut to its first `keep` bytes (a fraction if < 1)."""
    data = source.read_bytes()
    path = tmp_path / source.name
    path.write_bytes(data[: int(len(data) * keep) if keep < 1 else keep])
    return path


@pytest.mark.parametrize("keep, said", [(0.5, "; Unexpected end of file"), (5000, "")])
def test_a_truncated_dng_is_one_error_line_without_library_noise(keep, said, tmp_path, capfd):
    """LibRaw prints "Unexpected end of file" on the C stderr and tifffile logs an ERROR per
    unreadable tag; only the project's own line may reach the terminal."""
    from rawdiffusion.cli import main

    path = cut_copy(require_shared(SHARED_RAW / "dng/gopro_hero6_GOPR0024.dng"), tmp_path, keep)
    assert main(["info", str(path)]) == 1
    out, err = capfd.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"error: {path}: truncated or corrupt file (LibRaw: Input/output error{said})",
        "1 of 1 file(s) could not be read"]
    with pytest.raises(RawFormatError):  # and the C stderr is back where it was
        read_raw(path)
    os.write(2, b"still here\n")
    assert capfd.readouterr().err == "still here\n"
