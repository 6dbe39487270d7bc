"""The JSON sidecar schema of headerless Bayer dumps (sidecar.Sidecar): every bad value is one line
`<sidecar>: <key>: <what is wrong>`, every sidecar that was valid stays valid."""

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import SHARED_RAW, require_shared
from rawdiffusion.io import RawFormatError, read_raw
from rawdiffusion.sidecar import read_sidecar

GOOD = {"width": 10, "height": 6, "dtype": "uint16 little-endian", "cfa_pattern": "RGGB",
        "black_level": 10, "white_level": 1023}


def dump(folder, name="d", **changes):
    """A 10x6 uint16 dump with a sidecar: GOOD with `changes` (a value of ... drops the key)."""
    mosaic = np.random.default_rng(0).integers(20, 1000, (6, 10)).astype("<u2")
    (folder / f"{name}.raw").write_bytes(mosaic.tobytes())
    meta = {k: v for k, v in {**GOOD, **changes}.items() if v is not ...}
    (folder / f"{name}.json").write_text(json.dumps(meta))
    return folder / f"{name}.raw"


BAD = {  # name: (changes to GOOD, the line after "<sidecar>: ")
    "black null": (dict(black_level=None),
                   "black_level: null: give one number, or four (one per CFA position)"),
    "three blacks": (dict(black_level=[1, 2, 3]),
                     "black_level: 3 values: give one number, or four (one per CFA position)"),
    "black abc": (dict(black_level="abc"), 'black_level: "abc" is not a number'),
    "wb number": (dict(wb=5), "wb: 5: give three gains (R, G, B), or null"),
    "wb two": (dict(wb=[2, 1]), "wb: 2 values: give three gains (R, G, B), or null"),
    "wb four": (dict(wb=[2, 1, 1, 1.5]), "wb: 4 values: give three gains (R, G, B), or null"),
    "wb zero gain": (dict(wb=[2, 0, 1.5]), "wb[1]: input should be greater than 0 (got 0)"),
    "wb abc": (dict(wb=["abc", 1, 1]), 'wb[0]: input should be a valid number, unable to '
                                       'parse string as a number (got "abc")'),
    "negative width": (dict(width=-10), "width: input should be greater than 0 (got -10)"),
    "width abc": (dict(width="abc"), 'width: input should be a valid integer, unable to parse '
                                     'string as an integer (got "abc")'),
    "white abc": (dict(white_level="abc"), 'white_level: input should be a valid number, '
                                           'unable to parse string as a number (got "abc")'),
    "no height": (dict(height=...), "height: field required"),
    "cfa": (dict(cfa_pattern="RGBW"),
            "cfa_pattern: 'RGBW' is not a Bayer order (RGGB, BGGR, GRBG, GBRG)"),
    "dtype": (dict(dtype="float32"), "dtype: 'float32' is neither uint8 nor uint16"),
    "iso zero": (dict(iso=0), "iso: input should be greater than 0 (got 0)"),
    "iso abc": (dict(iso="high"), 'iso: input should be a valid number, unable to parse string '
                                  'as a number (got "high")'),
    "exposure negative": (dict(exposure_time=-0.01),
                          "exposure_time: input should be greater than 0 (got -0.01)"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_sidecar_values_are_one_line_naming_file_and_key(case, tmp_path):
    changes, expected = BAD[case]
    with pytest.raises(RawFormatError) as info:
        read_raw(dump(tmp_path, **changes))
    assert str(info.value) == f"{tmp_path / 'd.json'}: {expected}"


def test_sidecar_that_is_not_an_object(tmp_path):
    path = dump(tmp_path)
    (tmp_path / "d.json").write_text("[1, 2]")
    with pytest.raises(RawFormatError, match=r"d\.json: not a JSON object but \[1, 2\]$"):
        read_raw(path)


def test_valid_variants_keep_reading(tmp_path):
    """What the reader took before the schema: numbers as strings, one black level in a list,
    lower-case CFA orders, numeric makes, null wb, extra provenance keys."""
    raw = read_raw(dump(tmp_path, width="10", height=6.0, black_level=["12"], cfa_pattern="grbg",
                        make=5, model=None, wb=None, source_repo="x/y", notes="anything"))
    assert (raw.cfa, raw.black_level, raw.make, raw.model, raw.wb) == (
        "GRBG", (12.0,) * 4, "5", "", None)
    raw = read_raw(dump(tmp_path, black_level=[1, 2, 3, 4], wb=["2", 1, 1.5]))
    assert raw.black_level == (1.0, 2.0, 3.0, 4.0) and raw.wb == (2.0, 1.0, 1.5)


def test_iso_and_exposure_time_of_a_dump_come_from_its_sidecar(tmp_path):
    """The pixels of a dump do not say its ISO; the sidecar may (noise calibration needs it)."""
    raw = read_raw(dump(tmp_path, iso=800, exposure_time=0.02))
    assert (raw.iso, raw.exposure_time) == (800.0, 0.02)
    assert (raw.info()["iso"], raw.info()["exposure_time"]) == (800.0, 0.02)
    assert read_raw(dump(tmp_path, "plain")).iso is None
    assert read_raw(dump(tmp_path, "null", iso=None, exposure_time=None)).exposure_time is None


def test_real_sidecars_match_the_schema():
    sidecars = sorted(require_shared(SHARED_RAW / "bayer").glob("*.json"))
    assert len(sidecars) == 9
    for side in sidecars:
        meta = read_sidecar(side)
        assert meta.width > 0 and meta.height > 0 and meta.cfa_pattern in side.stem.upper()


def test_info_reports_every_bad_file_and_goes_on(tmp_path):
    files = [dump(tmp_path, "wb", wb=5), dump(tmp_path, "good"),
             dump(tmp_path, "black", black_level=None), tmp_path / "missing.raw"]
    proc = subprocess.run([sys.executable, "-m", "rawdiffusion.cli", "info", *map(str, files)],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["path"] == str(files[1])
    assert proc.stderr.splitlines() == [
        f"error: {tmp_path / 'wb.json'}: wb: 5: give three gains (R, G, B), or null",
        f"error: {tmp_path / 'black.json'}: black_level: null: give one number, or four "
        "(one per CFA position)",
        f"error: {files[3]}: no such file",
        "3 of 4 file(s) could not be read"]
