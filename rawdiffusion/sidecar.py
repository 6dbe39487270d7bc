"""Headerless Bayer dumps and PGM files described by a JSON sidecar of the same stem.

`io.read_raw` reads a file through its sidecar (`sidecar_path`: <stem>.json) when there is
one: `read_dump` gives the mosaic and the validated sidecar, from which io makes the RawImage.
The sidecar's schema (`Sidecar`) is declared once with pydantic instead of checks scattered
over the reader: every key's type and range is stated, and a bad value is reported with the
key it came from (RawFormatError '<sidecar>: <key>: <what is wrong>'), never as a
numpy broadcast message or a traceback. Extra keys (provenance, notes) are allowed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated

import numpy as np
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

from .bayer import CFA_ORDERS, level_problem
from .errors import RawFormatError
from .files import RAW_MAX_PIXELS, pixel_problem
from .schemas import Gain, as_json, schema_problem, three_gains


_DTYPE_WORDS = re.compile(r"(uint8|uint16)", re.IGNORECASE)
MAX_SIDECAR_BYTES = 1 << 20  # a sidecar is a few hundred bytes; more is not one
MAX_PGM_HEADER = 1 << 16  # magic, size, maxval and comments: what is read to find the pixels
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]


def _sidecar_dtype(path: Path, text: str) -> np.dtype:
    m = _DTYPE_WORDS.search(text)
    if not m:
        raise RawFormatError(path, f"dtype: {text!r} is neither uint8 nor uint16")
    if m.group(1).lower() == "uint8":
        return np.dtype(np.uint8)
    big = re.search(r"\b(BE|big)", text, re.IGNORECASE) is not None
    return np.dtype(">u2" if big else "<u2")


def _levels(value):
    """black_level: one number for all four CFA positions, or four (row-major, like cfa)."""
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            return (float(value),) * 4
        except ValueError:
            raise PydanticCustomError("custom", f"{as_json(value)} is not a number") from None
    if isinstance(value, (list, tuple)) and len(value) == 4:
        return value
    got = f"{len(value)} values" if isinstance(value, (list, tuple)) else as_json(value)
    raise PydanticCustomError("custom", f"{got}: give one number, or four (one per CFA position)")


def _bayer_order(value: str) -> str:
    if value.upper() not in CFA_ORDERS:
        raise PydanticCustomError("custom", f"{value!r} is not a Bayer order "
                                         f"({', '.join(CFA_ORDERS)})")
    return value.upper()


class Sidecar(BaseModel):
    """The JSON sidecar of a headerless Bayer dump or PGM (see read_sidecar_raw). Levels are
    checked together with level_problem: whether black < white needs both keys."""

    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True)
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    dtype: str = "uint16"
    cfa_pattern: Annotated[str, AfterValidator(_bayer_order)]
    black_level: Annotated[tuple[float, float, float, float], BeforeValidator(_levels)]
    white_level: float
    wb: Annotated[tuple[Gain, Gain, Gain] | None, BeforeValidator(three_gains)] = None
    make: str | None = None
    model: str | None = None
    iso: Positive | None = None            # EXIF ISO speed of the capture
    exposure_time: Positive | None = None  # seconds


def sidecar_path(path) -> Path:
    """Where the JSON sidecar describing a RAW file would be: <stem>.json beside it."""
    return Path(path).with_suffix(".json")


def read_sidecar(side) -> Sidecar:
    """The validated sidecar `side`; RawFormatError '<side>: <key>: <what is wrong>', also for
    a file over MAX_SIDECAR_BYTES (1 MiB), which is not read."""
    size = Path(side).stat().st_size
    if size > MAX_SIDECAR_BYTES:
        raise RawFormatError(side, f"{size} bytes, too large for a JSON sidecar (at most "
                                   f"{MAX_SIDECAR_BYTES}); is it the right file?")
    try:
        meta = json.loads(Path(side).read_text())
    except (OSError, ValueError, RecursionError) as e:  # RecursionError: nesting too deep
        raise RawFormatError(side, f"unusable sidecar ({type(e).__name__}: {e})") from None
    if not isinstance(meta, dict):
        raise RawFormatError(side, f"not a JSON object but {as_json(meta)[:40]}")
    try:
        return Sidecar.model_validate(meta)
    except ValidationError as e:
        raise RawFormatError(side, schema_problem(e)) from None


def read_dump(path, max_pixels: int = RAW_MAX_PIXELS) -> tuple[Sidecar, np.ndarray]:
    """A headerless Bayer dump or a PGM (P5) described by a JSON sidecar of the same stem: its
    validated sidecar and its mosaic, (height, width) uint16.

    The sidecar (schema: `Sidecar`) gives `width`, `height` (positive integers), `dtype`
    ("uint8", "uint16 little-endian", "uint16 BE", ...), `cfa_pattern` (a Bayer order, any
    case), `black_level` (one number or four, per CFA position) and `white_level`; optionally
    `make`, `model`, `wb` (three positive R, G, B gains, or null), `iso` and `exposure_time`
    (seconds; both numbers above 0, or null: what the noise calibration of noise.py needs,
    which a dump's pixels do not say). Levels must satisfy
    0 <= black < white <= 65535. Other keys are ignored. RawFormatError, naming the sidecar
    or the file, for a sidecar that does not fit the file.

    Before any pixel is read, width x height is checked against `max_pixels` and the file's
    size (os.stat) against what the sidecar declares: a file of the wrong size is refused
    unread, however large.
    """
    path = Path(path)
    side = sidecar_path(path)
    meta = read_sidecar(side)
    width, height, black, white = meta.width, meta.height, meta.black_level, meta.white_level
    problem = level_problem(black, white, ("black_level", "white_level"))
    if problem:
        raise RawFormatError(side, problem)
    problem = pixel_problem(width, height, max_pixels)
    if problem:
        raise RawFormatError(path, f"its sidecar declares {problem}")
    size = path.stat().st_size
    if path.suffix.lower() == ".pgm":
        with open(path, "rb") as f:
            dtype, offset = _pgm_layout(path, f.read(MAX_PGM_HEADER), width, height)
    else:
        dtype, offset = _sidecar_dtype(side, meta.dtype), 0
    expected = width * height * dtype.itemsize
    if size - offset != expected:
        what = "PGM pixel data is" if offset else "file is"
        raise RawFormatError(path, f"{what} {size - offset} bytes, but the sidecar's "
                                   f"{width}x{height} {dtype.name} image needs {expected}")
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read(expected)
    if len(data) != expected:  # cut since it was measured
        raise RawFormatError(path, f"ended after {offset + len(data)} bytes while being read")
    return meta, np.frombuffer(data, dtype=dtype).reshape(height, width).astype(np.uint16)


def _pgm_layout(path: Path, data: bytes, width: int, height: int) -> tuple[np.dtype, int]:
    """(sample dtype, offset of the pixel data) of a binary PGM whose size the sidecar gives."""
    # P5 header: magic, width, height, maxval separated by whitespace (comments start with #)
    fields, pos = [], 0
    while len(fields) < 4:
        m = re.compile(rb"\s*(#[^\n]*\n\s*)*(\S+)").match(data, pos)
        if not m:
            raise RawFormatError(path, "truncated PGM header")
        fields.append(m.group(2))
        pos = m.end()
    pos += 1  # the single whitespace byte after maxval
    if fields[0] != b"P5":
        raise RawFormatError(path, f"not a binary PGM (magic {fields[0][:8]!r}, expected P5)")
    try:
        w, h, maxval = (int(f) for f in fields[1:])
    except ValueError:
        raise RawFormatError(path, f"unreadable PGM header {b' '.join(fields)[:40]!r}") from None
    if (w, h) != (width, height):
        raise RawFormatError(path, f"PGM is {w}x{h} but its sidecar says {width}x{height}")
    return np.dtype(">u2" if maxval > 255 else np.uint8), pos  # 16-bit samples are MSB first
