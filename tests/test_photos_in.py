"""Photos in (images.read_rgb): every bit depth and sample format as 8-bit sRGB codes, EXIF
orientation as viewers apply it, and a size limit that refuses in one line."""

import struct
import zlib

import numpy as np
import pytest
import tifffile
from PIL import Image, ImageOps

from rawdiffusion.images import FLOAT_SLACK, PhotoError, read_rgb

RAMP16 = np.array([[0, 1, 128, 129, 255, 256], [32767, 32768, 40000, 65279, 65534, 65535]],
                  dtype=np.uint16)
# round(v / 65535 * 255), worked out by hand for the ramp (v / 257 is never a half)
RAMP8 = np.array([[0, 0, 0, 1, 1, 1], [127, 128, 156, 254, 255, 255]], dtype=np.uint8)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png16(path, samples: np.ndarray, colour_type: int) -> None:
    """A 16-bit PNG written by hand (Pillow writes no 16-bit colour): samples (H, W, C)."""
    h, w = samples.shape[:2]
    rows = b"".join(b"\0" + samples[y].astype(">u2").tobytes() for y in range(h))
    header = struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
                     + _chunk(b"IDAT", zlib.compress(rows)) + _chunk(b"IEND", b""))


def claim_size(path, width: int, height: int) -> None:
    """Rewrite a PNG's IHDR to claim width x height (and fix its CRC): no pixels allocated."""
    data = bytearray(path.read_bytes())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))


def test_16_bit_greyscale_png_is_scaled_not_clipped(tmp_path):
    Image.fromarray(RAMP16).save(tmp_path / "g.png")  # Pillow writes I;16 as a 16-bit PNG
    rgb = read_rgb(tmp_path / "g.png")
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 6, 3)
    np.testing.assert_array_equal(rgb, np.repeat(RAMP8[..., None], 3, axis=-1))


def test_16_bit_greyscale_png_written_by_hand(tmp_path):
    png16(tmp_path / "g.png", RAMP16[..., None], colour_type=0)
    np.testing.assert_array_equal(read_rgb(tmp_path / "g.png")[..., 1], RAMP8)


@pytest.mark.parametrize("planar", ["contig", "separate"])
def test_16_bit_rgb_tiff_is_scaled_exactly(tmp_path, planar):
    rgb16 = np.stack([RAMP16, RAMP16[::-1], RAMP16[:, ::-1]], axis=-1)
    tifffile.imwrite(tmp_path / "c.tif", rgb16 if planar == "contig" else np.moveaxis(rgb16, -1, 0),
                     photometric="rgb", planarconfig=planar)
    expected = np.stack([RAMP8, RAMP8[::-1], RAMP8[:, ::-1]], axis=-1)
    np.testing.assert_array_equal(read_rgb(tmp_path / "c.tif"), expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64])
def test_float_tiff_is_taken_as_0_to_1(tmp_path, dtype):
    # beyond [0, 1] by less than half a code (rounding in whoever wrote it): still 0 and 255
    slack = 0.9 * FLOAT_SLACK
    values = np.array([[-slack, 0.0, 0.25, 0.5, 1.0, 1 + slack]], dtype=dtype)
    expected = np.array([[0, 0, 64, 128, 255, 255]], dtype=np.uint8)
    tifffile.imwrite(tmp_path / "grey.tif", values)
    np.testing.assert_array_equal(read_rgb(tmp_path / "grey.tif"),
                                  np.repeat(expected[..., None], 3, axis=-1))
    tifffile.imwrite(tmp_path / "rgb.tif", np.stack([values] * 3, axis=-1), photometric="rgb")
    np.testing.assert_array_equal(read_rgb(tmp_path / "rgb.tif")[..., 2], expected)


@pytest.mark.parametrize("values, reason", [
    ([0.0, 0.5, 255.0], "float samples from 0 to 255: float photos are read as [0, 1] (0 black, "
                        "1 white); scale it to that range"),
    ([-0.5, 0.5, 1.0], "float samples from -0.5 to 1: float photos are read as [0, 1] (0 black, "
                       "1 white); scale it to that range"),
    ([0.0, np.inf, 1.0], "float samples that are infinite"),
    ([0.0, -np.inf, 1.0], "float samples that are infinite"),
    ([0.0, np.nan, 1.0], "float samples that are NaN"),
])
def test_float_tiff_outside_0_to_1_is_refused_in_one_line(tmp_path, values, reason):
    """A photo scaled 0..255 would come out all white, infinities clipped: refused instead."""
    plane = np.array([values], dtype=np.float32)
    for name, data, kw in (("grey.tif", plane, {}),
                           ("rgb.tif", np.stack([plane] * 3, axis=-1), {"photometric": "rgb"})):
        tifffile.imwrite(tmp_path / name, data, **kw)
        with pytest.raises(PhotoError) as e:
            read_rgb(tmp_path / name)
        assert str(e.value) == f"{tmp_path / name}: {reason}"


def test_palette_grey_alpha_rgba_and_bilevel_become_rgb(tmp_path):
    rgb = np.array([[[255, 0, 0], [0, 128, 255]]], dtype=np.uint8)
    Image.fromarray(rgb).quantize(2).save(tmp_path / "p.png")  # an exact 2-colour palette
    Image.fromarray(np.dstack([rgb, np.full((1, 2), 7, np.uint8)])).save(tmp_path / "rgba.png")
    Image.fromarray(np.array([[10, 200]], np.uint8)).convert("LA").save(tmp_path / "la.png")
    Image.fromarray(np.array([[0, 255]], np.uint8)).convert("1").save(tmp_path / "b.png")
    np.testing.assert_array_equal(read_rgb(tmp_path / "p.png"), rgb)
    np.testing.assert_array_equal(read_rgb(tmp_path / "rgba.png"), rgb)  # alpha dropped
    np.testing.assert_array_equal(read_rgb(tmp_path / "la.png")[0], [[10] * 3, [200] * 3])
    np.testing.assert_array_equal(read_rgb(tmp_path / "b.png")[0], [[0] * 3, [255] * 3])


def test_signed_integer_tiff_is_refused_naming_file_and_reason(tmp_path):
    tifffile.imwrite(tmp_path / "s.tif", np.zeros((4, 4), np.int16))
    with pytest.raises(PhotoError, match=r"s\.tif: TIFF of int16 samples: range unknown"):
        read_rgb(tmp_path / "s.tif")


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_viewers_do(tmp_path, orientation):
    pixels = np.random.default_rng(orientation).integers(0, 256, (4, 6, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(tmp_path / "o.png", exif=exif)
    with Image.open(tmp_path / "o.png") as im:
        viewed = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    rgb = read_rgb(tmp_path / "o.png")
    np.testing.assert_array_equal(rgb, viewed)
    assert rgb.shape == ((6, 4, 3) if orientation >= 5 else (4, 6, 3))


def test_orientation_6_turns_a_tall_jpeg_upright(tmp_path):
    top_white = np.zeros((40, 64, 3), np.uint8)  # landscape as stored, white at the top
    top_white[:8] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view"
    Image.fromarray(top_white).save(tmp_path / "o.jpg", exif=exif, quality=95)
    rgb = read_rgb(tmp_path / "o.jpg")
    assert rgb.shape == (64, 40, 3)
    assert rgb[:, -8:].mean() > 240 and rgb[:, :-8].mean() < 15  # the white band on the right


def test_orientation_of_a_16_bit_tiff(tmp_path):
    tifffile.imwrite(tmp_path / "o.tif", RAMP16, extratags=[(0x0112, "H", 1, 8, True)])
    np.testing.assert_array_equal(read_rgb(tmp_path / "o.tif")[..., 0], np.rot90(RAMP8))


@pytest.mark.parametrize("side", [20000, 100000])
def test_an_oversized_png_is_refused_in_one_line(tmp_path, side):
    Image.fromarray(np.zeros((1, 1), np.uint8)).save(tmp_path / "big.png")
    claim_size(tmp_path / "big.png", side, side)
    with pytest.raises(PhotoError) as e:
        read_rgb(tmp_path / "big.png")
    message = str(e.value)
    assert message == (f"{tmp_path / 'big.png'}: {side}x{side} is {side * side} pixels, over the "
                       f"limit of {Image.MAX_IMAGE_PIXELS} (convert --max-pixels raises it)")
    assert Image.MAX_IMAGE_PIXELS == 89478485  # Pillow's own limit, left as it was


def test_the_limit_can_be_raised_and_lowered(tmp_path):
    Image.fromarray(np.zeros((10, 30, 3), np.uint8)).save(tmp_path / "a.png")
    assert read_rgb(tmp_path / "a.png", max_pixels=300).shape == (10, 30, 3)
    with pytest.raises(PhotoError, match="30x10 is 300 pixels, over the limit of 299"):
        read_rgb(tmp_path / "a.png", max_pixels=299)
    tifffile.imwrite(tmp_path / "a.tif", np.zeros((10, 30), np.uint16))
    with pytest.raises(PhotoError, match="30x10 is 300 pixels, over the limit of 299"):
        read_rgb(tmp_path / "a.tif", max_pixels=299)


def test_past_twice_pillows_limit_when_raised(tmp_path, monkeypatch):
    """Pillow itself refuses past twice its limit; a raised --max-pixels must still read."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    Image.fromarray(np.full((20, 30), 9, np.uint8)).save(tmp_path / "a.png")
    assert read_rgb(tmp_path / "a.png", max_pixels=600)[0, 0].tolist() == [9, 9, 9]
    with pytest.raises(PhotoError, match="over the limit of 100"):
        read_rgb(tmp_path / "a.png")
    assert Image.MAX_IMAGE_PIXELS == 100


def test_not_an_image_is_one_line_naming_the_file(tmp_path):
    (tmp_path / "x.png").write_bytes(b"not a png")
    with pytest.raises(PhotoError, match=r"x\.png: not a readable image \(Unidentified"):
        read_rgb(tmp_path / "x.png")


def test_a_missing_file_or_a_truncated_tiff_is_one_line(tmp_path):
    with pytest.raises(PhotoError, match=r"gone\.png: no such file$"):
        read_rgb(tmp_path / "gone.png")
    tifffile.imwrite(tmp_path / "t.tif", np.zeros((64, 64), np.uint16))
    (tmp_path / "t.tif").write_bytes((tmp_path / "t.tif").read_bytes()[:100])
    with pytest.raises(PhotoError, match=r"t\.tif: not a readable image"):
        read_rgb(tmp_path / "t.tif")


def test_a_fifo_or_a_symlink_loop_is_refused_without_being_opened(tmp_path):
    import os

    from malformed_corpus import no_hang

    os.mkfifo(tmp_path / "pipe.png")
    (tmp_path / "loop.png").symlink_to(tmp_path / "loop.png")
    with no_hang(30), pytest.raises(PhotoError) as e:  # opening a FIFO would block
        read_rgb(tmp_path / "pipe.png")
    assert str(e.value) == f"{tmp_path / 'pipe.png'}: a FIFO (named pipe), not a photo"
    with pytest.raises(PhotoError) as e:
        read_rgb(tmp_path / "loop.png")
    assert str(e.value) == f"{tmp_path / 'loop.png'}: a symlink loop"
