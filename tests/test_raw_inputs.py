"""RAW inputs that must be refused before anything is decoded, in one line naming the file:
headerless dumps without their sidecar (LibRaw would guess their layout from their size), paths
that are no regular files (FIFOs, devices, symlink loops), images over the pixel limit (checked
from the header or sidecar), dumps whose size does not fit their sidecar (checked from os.stat),
an impossible AsShotNeutral; and file names that are not valid UTF-8, which are read."""

import os
import shutil

import numpy as np
import pytest
import tifffile

from conftest import SHARED_FILES, SHARED_RAW, require_shared, synthetic_raw
from malformed_corpus import bomb_dng, no_hang
from rawdiffusion import sidecar
from rawdiffusion.cli import main
from rawdiffusion.io import (LIBRAW_SIGNATURES, RAW_MAX_PIXELS, RawFormatError, read_raw,
                             write_dng)

NO_SIDECAR = ("not a RAW format LibRaw recognises by its header (TIFF/DNG, NEF, CR2, CR3, ARW, "
              "RAF, ORF, RW2, ...), and its JSON sidecar {side} is missing: a headerless Bayer "
              "dump needs one giving its width, height, dtype, cfa_pattern, black_level and "
              "white_level")


def refused(path, **kw) -> str:
    with pytest.raises(RawFormatError) as info:
        read_raw(path, **kw)
    return str(info.value)


# ----------------------------------------------------------------------------- no sidecar

def test_a_dump_of_a_size_in_libraws_table_is_refused_without_its_sidecar(tmp_path):
    """1024 x 768 bytes is a size LibRaw's table knows: without the check it read this as a
    1024x768 RGGB image with white level 255 and exit status 0."""
    mosaic = np.random.default_rng(0).integers(0, 256, (768, 1024), dtype=np.uint8)
    dump = tmp_path / "dump.raw"
    dump.write_bytes(mosaic.tobytes())
    assert refused(dump) == f"{dump}: " + NO_SIDECAR.format(side=tmp_path / "dump.json")
    # with its sidecar it is read as the sidecar says
    (tmp_path / "dump.json").write_text('{"width": 512, "height": 1536, "dtype": "uint8", '
                                        '"cfa_pattern": "GRBG", "black_level": 4, '
                                        '"white_level": 255}')
    raw = read_raw(dump)
    assert (raw.mosaic.shape, raw.cfa, raw.white_level) == ((1536, 512), "GRBG", 255.0)
    np.testing.assert_array_equal(raw.mosaic, mosaic.reshape(1536, 512))


@pytest.mark.parametrize("name", sorted(n for n in SHARED_FILES if not n.endswith(".dng")))
def test_a_shared_dump_without_its_sidecar_says_the_sidecar_is_missing(name, tmp_path):
    source = require_shared(SHARED_RAW / name)
    lonely = tmp_path / source.name
    lonely.symlink_to(source)  # the real file, without the sidecar beside it
    message = refused(lonely)
    if name.endswith(".pgm"):
        assert message.endswith("needs a JSON sidecar nokia_n900_2592x304_10bit_grbg.json "
                                "giving its CFA order and levels")
    else:
        assert message == f"{lonely}: " + NO_SIDECAR.format(side=lonely.with_suffix(".json"))


@pytest.mark.parametrize("at, magic", LIBRAW_SIGNATURES)
def test_a_file_with_a_header_libraw_knows_goes_to_libraw(at, magic, tmp_path):
    """The header check refuses no real format: a file beginning as one is left to LibRaw,
    whose own answer (here: it cannot decode the junk after the signature) stands."""
    path = tmp_path / "x.raw"
    data = bytearray(np.random.default_rng(at).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    data[at:at + len(magic)] = magic
    path.write_bytes(bytes(data))
    message = refused(path)
    assert "sidecar" not in message and message.startswith(f"{path}: ")


def test_every_shared_dng_has_a_header_libraw_knows(shared_raw):
    for dng in sorted((shared_raw / "dng").glob("*.dng")):
        assert read_raw(dng).mosaic.size > 0


# ----------------------------------------------------------------------------- not files

def test_a_fifo_is_refused_without_being_opened(tmp_path):
    os.mkfifo(tmp_path / "pipe.dng")
    with no_hang(30):  # opening it for reading would block until a writer came
        assert refused(tmp_path / "pipe.dng") == (f"{tmp_path / 'pipe.dng'}: a FIFO (named "
                                                  "pipe), not a RAW file")


def test_a_symlink_loop_and_a_device_are_named_for_what_they_are(tmp_path):
    (tmp_path / "loop.dng").symlink_to(tmp_path / "loop.dng")
    assert refused(tmp_path / "loop.dng") == f"{tmp_path / 'loop.dng'}: a symlink loop"
    assert refused("/dev/zero") == "/dev/zero: a character device, not a RAW file"
    (tmp_path / "gone.dng").symlink_to(tmp_path / "nowhere.dng")
    assert refused(tmp_path / "gone.dng") == (f"{tmp_path / 'gone.dng'}: a dangling symlink "
                                              f"(to {tmp_path / 'nowhere.dng'})")


def test_a_fifo_sidecar_is_refused_without_being_opened(tmp_path):
    (tmp_path / "d.raw").write_bytes(bytes(120))
    os.mkfifo(tmp_path / "d.json")
    with no_hang(30):
        assert refused(tmp_path / "d.raw") == (f"{tmp_path / 'd.json'}: a FIFO (named pipe), "
                                               "where the JSON sidecar describing d.raw is "
                                               "expected")


# ----------------------------------------------------------------------------- pixel limit

def test_a_small_dng_declaring_20000_x_20000_pixels_is_refused_from_its_header(tmp_path):
    bomb = bomb_dng(tmp_path / "bomb.dng", 20000, 20000)
    assert bomb.stat().st_size < 20_000
    assert refused(bomb) == (f"{bomb}: 20000x20000 is 400000000 pixels, over the limit of "
                             f"{RAW_MAX_PIXELS} for RAW files (--max-pixels of info and prepare "
                             "raises it)")
    assert RAW_MAX_PIXELS == 200_000_000


def test_the_raw_pixel_limit_can_be_lowered_and_raised(tmp_path):
    write_dng(tmp_path / "a.dng", synthetic_raw(height=96, width=128))
    assert "over the limit of 12287" in refused(tmp_path / "a.dng", max_pixels=96 * 128 - 1)
    assert read_raw(tmp_path / "a.dng", max_pixels=96 * 128).mosaic.shape == (96, 128)
    bomb = bomb_dng(tmp_path / "bomb.dng", 1000, 800)  # raised above it, LibRaw finds it cut
    assert "over the limit" in refused(bomb, max_pixels=799_999)
    assert "over the limit" not in refused(bomb, max_pixels=800_000)


def test_a_sidecar_declaring_too_many_pixels_is_refused_before_the_dump_is_read(tmp_path):
    (tmp_path / "d.raw").write_bytes(bytes(64))
    (tmp_path / "d.json").write_text('{"width": 30000, "height": 20000, "cfa_pattern": "RGGB", '
                                     '"black_level": 0, "white_level": 1023}')
    assert refused(tmp_path / "d.raw") == (f"{tmp_path / 'd.raw'}: its sidecar declares "
                                           "30000x20000 is 600000000 pixels, over the limit of "
                                           "200000000 for RAW files (--max-pixels of info and "
                                           "prepare raises it)")


def test_a_4_gib_dump_of_the_wrong_size_is_refused_unread(tmp_path, monkeypatch):
    dump = tmp_path / "d.raw"
    with open(dump, "wb") as f:
        f.truncate(4 << 30)  # sparse: takes no disk space
    (tmp_path / "d.json").write_text('{"width": 10, "height": 6, "cfa_pattern": "RGGB", '
                                     '"black_level": 0, "white_level": 1023}')
    opened = []
    monkeypatch.setattr(sidecar, "open", lambda *a, **k: opened.append(a) or open(*a, **k),
                        raising=False)
    assert refused(dump) == (f"{dump}: file is 4294967296 bytes, but the sidecar's 10x6 "
                             "uint16 image needs 120")
    assert opened == []  # the size came from os.stat


# ----------------------------------------------------------------------------- white balance

def _dng_with_neutral(path, neutral, dtype="2I"):
    tags = [(33421, "H", 2, (2, 2)), (33422, "B", 4, b"\x00\x01\x01\x02"),
            (50706, "B", 4, b"\x01\x04\x00\x00"), (50717, "I", 1, 4095),
            (50728, dtype, len(neutral), tuple(x for v in neutral for x in (v, 1000)))]
    scene = np.random.default_rng(0).integers(100, 4000, (48, 64)).astype(np.uint16)
    tifffile.imwrite(path, scene, photometric=32803, extratags=tags, metadata=None)
    return path


@pytest.mark.parametrize("neutral, reason", [
    ((0, 1000, 500), "impossible DNG AsShotNeutral (0, 1, 0.5): every value must be a number "
                     "above 0"),
    ((0, 0, 0), "impossible DNG AsShotNeutral (0, 0, 0): every value must be a number above 0"),
    ((500, 1000), "impossible DNG AsShotNeutral (0.5, 1): 2 values, expected 3 (R, G, B)"),
])
def test_an_impossible_as_shot_neutral_is_refused_naming_the_tag(neutral, reason, tmp_path):
    """Documented choice: refused like impossible levels, not read with other gains."""
    path = _dng_with_neutral(tmp_path / "wb.dng", neutral)
    assert refused(path) == f"{path}: {reason}"


def test_a_possible_as_shot_neutral_gives_the_white_balance(tmp_path):
    raw = read_raw(_dng_with_neutral(tmp_path / "wb.dng", (500, 1000, 800)))
    assert raw.wb == pytest.approx((2.0, 1.0, 1.25))


# ----------------------------------------------------------------------------- file names

def test_a_file_name_that_is_not_utf8_is_read_and_shown_with_its_bytes(tmp_path):
    good = tmp_path / "good.dng"
    write_dng(good, synthetic_raw())
    odd = os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9.dng")  # Latin-1, not UTF-8
    shutil.copyfile(good, odd)
    raw = read_raw(odd)
    np.testing.assert_array_equal(raw.mosaic, read_raw(good).mosaic)
    assert raw.path == odd
    with open(odd, "r+b") as f:
        f.truncate(3000)
    message = refused(odd)
    assert message.startswith(f"{tmp_path}/caf\\xe9.dng: ") and "\n" not in message
    message.encode("utf-8")  # printable


def test_info_reads_a_file_name_that_is_not_utf8(tmp_path, capsys):
    good = tmp_path / "good.dng"
    write_dng(good, synthetic_raw())
    odd = os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9.dng")
    shutil.copyfile(good, odd)
    (tmp_path / "loop.dng").symlink_to(tmp_path / "loop.dng")
    assert main(["info", odd, str(tmp_path / "loop.dng"), str(good)]) == 1
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 2  # both readable files described
    assert err.splitlines() == [f"error: {tmp_path / 'loop.dng'}: a symlink loop",
                                "1 of 3 file(s) could not be read"]


# ----------------------------------------------------------------------------- the header check

def test_the_signature_table_is_libraws_own_offsets():
    """Golden: a few signatures as LibRaw's identify() compares them (memcmp at offsets)."""
    table = dict((magic, at) for at, magic in LIBRAW_SIGNATURES)
    assert table[b"II*\0"] == 0 and table[b"FUJIFILM"] == 0 and table[b"\0MRM"] == 0
    assert table[b"ftypcrx "] == 4 and table[b"HEAPCCDR"] == 6 and table[b"ARECOYK"] == 25
