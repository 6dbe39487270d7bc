"""Reading, writing and round-tripping RAW files (synthetic and the real ones in ../shared)."""

import json
import subprocess
import sys

import numpy as np
import pytest
import rawpy
import tifffile

from conftest import SHARED_FILES, require_shared, SHARED_RAW, synthetic_raw
from rawdiffusion import bayer
from rawdiffusion.io import (CFA_ORDERS, RawFormatError, read_packed, read_raw, render_srgb,
                             write_dng, write_hdf5, write_npy)


def assert_same_raw(a, b):
    assert np.array_equal(a.mosaic, b.mosaic)
    assert a.mosaic.dtype == b.mosaic.dtype == np.uint16
    assert (a.cfa, a.black_level, a.white_level) == (b.cfa, b.black_level, b.white_level)
    assert (a.make, a.model) == (b.make, b.model)
    assert (a.wb is None) == (b.wb is None)
    if a.wb is not None:
        np.testing.assert_allclose(a.wb, b.wb, rtol=1e-6)
    assert (a.color_matrix is None) == (b.color_matrix is None)
    if a.color_matrix is not None:
        np.testing.assert_allclose(a.color_matrix, b.color_matrix, atol=1e-6)


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
    np.testing.assert_allclose(raw.wb, (1 / 0.522449, 1.0, 1 / 0.571429), rtol=1e-4)
    assert raw.color_matrix.shape == (3, 3)
    # The file says "mirrored" (Orientation 2); the guide must stay aligned with the mosaic.
    rgb = render_srgb(raw)
    green = bayer.pack(raw.mosaic, raw.cfa)[1].astype(float)
    rendered_green = rgb[0::2, 1::2, 1].astype(float)
    assert np.corrcoef(green.ravel(), rendered_green.ravel())[0, 1] > 0.9


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


def test_cli_info_prints_json_and_one_line_errors(tmp_path):
    good = tmp_path / "good.dng"
    write_dng(good, synthetic_raw("GRBG"))
    (tmp_path / "bad.dng").write_bytes(b"")
    proc = subprocess.run([sys.executable, "-m", "rawdiffusion.cli", "info", str(good),
                           str(tmp_path / "bad.dng"), "--preview", str(tmp_path / "pv")],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    info = json.loads(proc.stdout.strip())
    assert info["cfa"] == "GRBG" and info["black_level"] == [64, 65, 66, 67]
    assert info["make"] == "Testmaker" and info["width"] == 128
    assert proc.stderr.strip() == f"error: {tmp_path / 'bad.dng'}: empty file"
    assert (tmp_path / "pv" / "good.png").is_file()
