"""Reading and writing RAW images.

Every Bayer file that rawpy (LibRaw) opens is read through it; headerless Bayer dumps and PGM
files are read through a JSON sidecar of the same stem that describes them (sidecar.py).
Everything comes back as a `RawImage`: the visible mosaic plus the metadata needed to normalise
it (levels) and to render it (white balance, colour matrices with their calibration
illuminants).

Readers refuse, with a RawFormatError naming the file and the reason, what cannot be a usable
Bayer image: impossible levels, a mosaic that holds no image, a plain TIFF, a non-Bayer sensor.

Writers: `write_dng` (a standard Bayer DNG that rawpy and other RAW tools open), and the
reference implementation's packed layouts, `write_hdf5` and `write_npy`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import numpy as np
from pydantic import Field, ValidationError
from pydantic_core import PydanticCustomError

from .atomic import atomic_output
from .errors import UserError

CFA_ORDERS = ("RGGB", "BGGR", "GRBG", "GBRG")
RAW_SUFFIXES = (".dng", ".nef", ".nrw", ".cr2", ".cr3", ".arw", ".srf", ".sr2", ".raf", ".orf",
                ".rw2", ".pef", ".srw", ".3fr", ".iiq", ".mos", ".erf", ".kdc", ".raw", ".pgm")
# EXIF LightSource codes, as DNG's CalibrationIlluminant1/2 use them (DNG 1.6, EXIF 2.3)
UNKNOWN_ILLUMINANT, TUNGSTEN, STANDARD_LIGHT_A, D65, D50 = 0, 3, 17, 21, 23
MIN_DNG_SIDE = 22  # LibRaw (dcraw's identify) opens no raw image under 22 pixels a side
# Above this share of pixels at one value, or with all pixels within this share of the level
# range, a decoded mosaic holds no image (what LibRaw makes of pruned or metadata-only files).
CONSTANT_SHARE, CONSTANT_SPREAD = 0.99, 0.001
# The ImageDescription of a DNG whose colour tags are write_dng's defaults, not calibration.
DEFAULTS_NOTE = "rawdiffusion defaults:"
UNKNOWN_CAMERA = "unknown camera"  # RawImage.camera, and so UniqueCameraModel, without make/model
NPY_MAGIC = b"\x93NUMPY"  # the first bytes of every .npy file (numpy.lib.format)


class RawFormatError(UserError, ValueError):
    """A file that cannot be used as a Bayer RAW image; the message names the file and why."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


@dataclass
class RawImage:
    """One Bayer RAW image.

    mosaic: (H, W) uint16, the visible sensor area in raw digital numbers.
    cfa: colours of the 2x2 tile at the mosaic's top-left, row-major, one of CFA_ORDERS.
    black_level: 4 black levels, one per position of that 2x2 tile (row-major, like `cfa`).
    white_level: saturation level in raw digital numbers; 0 <= black < white <= 65535.
    wb: as-shot white-balance gains (R, G, B) with G = 1, or None when the file has none.
    color_matrix, illuminant: (3, 3) XYZ -> camera matrix (DNG ColorMatrix1) and the EXIF
        LightSource code of the illuminant it was calibrated for (CalibrationIlluminant1:
        17 standard light A, 3 tungsten, 21 D65, 23 D50, 0 unknown, ...); None when unknown.
    color_matrix2, illuminant2: the second calibration (ColorMatrix2, CalibrationIlluminant2)
        when the camera has one, else None and 0. DNG renderers (LibRaw, Adobe) interpolate
        between the two or pick one by illuminant, so both are kept as the file had them.
    """

    mosaic: np.ndarray
    cfa: str
    black_level: tuple[float, float, float, float]
    white_level: float
    wb: tuple[float, float, float] | None = None
    color_matrix: np.ndarray | None = None
    illuminant: int = D65
    make: str = ""
    model: str = ""
    path: str = field(default="", compare=False)
    color_matrix2: np.ndarray | None = None
    illuminant2: int = UNKNOWN_ILLUMINANT

    def __post_init__(self):
        if self.cfa not in CFA_ORDERS:
            raise ValueError(f"CFA order {self.cfa!r} is not one of {', '.join(CFA_ORDERS)}")
        if self.mosaic.ndim != 2:
            raise ValueError(f"mosaic must be 2-D (H, W), got shape {self.mosaic.shape}")
        self.black_level = tuple(float(b) for b in np.broadcast_to(self.black_level, 4))
        self.white_level = float(self.white_level)
        problem = level_problem(self.black_level, self.white_level)
        if problem:
            raise ValueError(problem)
        self.color_matrix = _matrix_or_none(self.color_matrix, "color_matrix")
        self.color_matrix2 = _matrix_or_none(self.color_matrix2, "color_matrix2")
        if self.color_matrix2 is not None and self.color_matrix is None:
            raise ValueError("color_matrix2 without color_matrix (DNG's ColorMatrix2 needs a "
                             "ColorMatrix1)")
        self.illuminant, self.illuminant2 = int(self.illuminant), int(self.illuminant2)

    @property
    def camera(self) -> str:
        return " ".join(s for s in (self.make, self.model) if s) or UNKNOWN_CAMERA

    def info(self) -> dict:
        """Plain-value summary (what `rawdiffusion info` prints)."""
        h, w = self.mosaic.shape
        matrix = lambda m: None if m is None else np.round(m, 6).tolist()  # noqa: E731
        return {
            "path": self.path,
            "make": self.make,
            "model": self.model,
            "width": w,
            "height": h,
            "cfa": self.cfa,
            "black_level": list(self.black_level),
            "white_level": self.white_level,
            "wb": None if self.wb is None else [round(g, 6) for g in self.wb],
            "color_matrix": matrix(self.color_matrix),
            "illuminant": None if self.color_matrix is None else self.illuminant,
            "color_matrix2": matrix(self.color_matrix2),
            "illuminant2": None if self.color_matrix2 is None else self.illuminant2,
            "min": int(self.mosaic.min()),
            "max": int(self.mosaic.max()),
        }


def _matrix_or_none(m, name: str) -> np.ndarray | None:
    if m is None:
        return None
    m = np.asarray(m, dtype=np.float64)
    if m.shape != (3, 3) or not np.all(np.isfinite(m)):
        raise ValueError(f"{name} must be a finite 3x3 XYZ -> camera matrix, got {m.tolist()}")
    return m


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


def no_image_problem(mosaic: np.ndarray, black_level, white_level) -> str | None:
    """Why a decoded mosaic holds no image (constant, or nearly: what LibRaw makes of pruned,
    truncated or metadata-only files, filling the missing data with zeros), or None."""
    if mosaic.size == 0:
        return "decodes to no image: an empty mosaic"
    counts = np.bincount(np.asarray(mosaic, dtype=np.uint16).ravel())
    mode = int(counts.argmax())
    share = counts[mode] / mosaic.size
    if share >= CONSTANT_SHARE:
        return (f"decodes to no image: {share:.1%} of its pixels are {mode} (a pruned, "
                "truncated or metadata-only file?)")
    nonzero = np.flatnonzero(counts)
    spread = int(nonzero[-1] - nonzero[0])
    if spread <= CONSTANT_SPREAD * (white_level - max(black_level)):
        return (f"decodes to no image: every pixel lies in {nonzero[0]}..{nonzero[-1]}, "
                f"{CONSTANT_SPREAD:.1%} of its level range or less")
    return None


# ----------------------------------------------------------------------------- reading

def sidecar_path(path) -> Path:
    return Path(path).with_suffix(".json")


def read_raw(path) -> RawImage:
    """Read a Bayer RAW file: anything rawpy opens, or a headerless/PGM dump with a sidecar.

    Raises RawFormatError (one line naming the file and the reason) for missing, empty,
    truncated or corrupt files, non-Bayer sensors, plain TIFF images, sidecars that do not fit
    the file, impossible levels (in the file's tags, its sidecar or as decoded) and mosaics that
    hold no image.
    """
    path = Path(path)
    if path.is_dir():
        raise RawFormatError(path, "a directory, not a RAW file")
    if not path.exists():
        raise RawFormatError(path, "no such file")
    if not path.is_file():
        raise RawFormatError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise RawFormatError(path, "empty file")
    side = sidecar_path(path)
    if path.suffix.lower() != ".json" and (side.exists() or side.is_symlink()):
        if not side.is_file():
            what = "a directory" if side.is_dir() else "not a regular file"
            raise RawFormatError(side, f"{what}, where the JSON sidecar describing "
                                       f"{path.name} is expected")
        from .sidecar import read_sidecar_raw  # sidecar.py builds on this module's RawImage

        return read_sidecar_raw(path)
    if path.suffix.lower() == ".pgm":
        raise RawFormatError(path, f"a PGM file needs a JSON sidecar {side.name} "
                                   "giving its CFA order and levels")
    return _read_with_rawpy(path)


@contextlib.contextmanager
def c_stderr_to(lines: list[str]):
    """Keep what C libraries write to file descriptor 2 (LibRaw's "<file>: Unexpected end of
    file") off the terminal while the block runs; append its lines to `lines` on the way out, so
    that an error can say them in its one line. Not for threads that print meanwhile."""
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all: nothing to keep off it
        yield lines
        return
    sys.stderr.flush()  # what Python printed before goes where it was meant to
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode(errors="replace")
            lines.extend(line.strip() for line in text.splitlines() if line.strip())


@contextlib.contextmanager
def tifffile_quiet():
    """Keep tifffile's ERROR log lines about a damaged file's tags off the terminal: callers
    turn what they could not read into one error of their own (or do without the tags)."""
    logger = logging.getLogger("tifffile")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _libraw_said(lines: list[str], path: Path) -> str:
    """LibRaw's own messages, without the file name it starts them with: "; <message>"."""
    said = [line.removeprefix(f"{path}: ") for line in lines]
    return "".join(f"; {line}" for line in dict.fromkeys(said))


def _read_with_rawpy(path: Path) -> RawImage:
    """A RAW file that LibRaw decodes, with the DNG tags read beside it (tifffile): the tags
    say what LibRaw would misread, and hold the colour calibration exactly as written."""
    tags, raw_tags = _tiff_ifds(path)
    is_dng = tags is not None and 50706 in tags
    _refuse_by_tags(path, tags, raw_tags, is_dng)
    tags = tags or {}
    decoded = _decode_with_libraw(path, is_dng)
    mosaic, cfa = decoded["mosaic"], decoded["cfa"]
    if cfa not in CFA_ORDERS:
        raise RawFormatError(path, f"unsupported colour filter layout {cfa!r} (not a Bayer sensor)")
    black = _black_by_position(decoded, raw_tags if is_dng else {})
    white = decoded["white"]
    problem = level_problem(black, white) or no_image_problem(mosaic, black, white)
    if problem:
        raise RawFormatError(path, problem)
    wb, calibrations = _colour_calibration(path, tags, is_dng, decoded)
    (m1, ill1), (m2, ill2) = (calibrations + [(None, UNKNOWN_ILLUMINANT)] * 2)[:2]
    make, model = (str(tags.get(code, "")).strip() for code in (271, 272))
    unique = str(tags.get(50708, "")).strip()
    if unique and unique != UNKNOWN_CAMERA and not model:  # CinemaDNGs, some converters
        model = unique[len(make):].strip() if make and unique.startswith(make) else unique
    return RawImage(mosaic=mosaic, cfa=cfa, black_level=tuple(black), white_level=white, wb=wb,
                    color_matrix=m1, illuminant=ill1, color_matrix2=m2, illuminant2=ill2,
                    make=make, model=model, path=str(path))


def _refuse_by_tags(path: Path, tags: dict | None, raw_tags: dict, is_dng: bool) -> None:
    """RawFormatError for what the TIFF tags show LibRaw would misread or cannot hold."""
    if tags is not None and not is_dng and 271 not in tags and 32803 not in (
            tags.get(262), raw_tags.get(262)):
        # LibRaw would read a grey TIFF's samples as an RGGB mosaic
        raise RawFormatError(path, "a plain TIFF image (no DNGVersion tag, no camera make, no "
                                   "colour filter array), not a camera RAW file")
    if is_dng and raw_tags.get(262) == 34892:
        raise RawFormatError(path, "linear (demosaiced) DNG, not a Bayer mosaic")
    if is_dng:
        problem = _dng_level_problem(raw_tags)
        if problem:
            raise RawFormatError(path, problem)


def _decode_with_libraw(path: Path, is_dng: bool) -> dict:
    """What LibRaw reads of the file: mosaic (H, W) uint16, cfa, tile (2, 2) colour indices,
    per_colour black levels, margins, white, gains (camera white balance), libraw_matrix
    (3, 3); its failures as RawFormatError with LibRaw's own words."""
    import rawpy

    said: list[str] = []
    try:
        with c_stderr_to(said), rawpy.imread(str(path)) as raw:
            _check_bayer(path, raw)
            tile = raw.raw_colors_visible[:2, :2]
            desc = raw.color_desc.decode()
            return {
                # copy: raw_image_visible is a view into LibRaw memory that is freed on close
                "mosaic": np.array(raw.raw_image_visible, dtype=np.uint16, copy=True),
                "tile": tile, "cfa": "".join(desc[c] for c in tile.ravel()),
                "per_colour": list(raw.black_level_per_channel),
                "margins": (raw.sizes.top_margin, raw.sizes.left_margin),
                "white": float(raw.white_level),
                "gains": [float(g) for g in raw.camera_whitebalance],
                "libraw_matrix": np.array(raw.rgb_xyz_matrix[:3], dtype=np.float64)}
    except RawFormatError:
        raise
    except rawpy.LibRawFileUnsupportedError:
        reason = ("a DNG LibRaw cannot decode (unsupported compression or layout)" if is_dng
                  else "not a RAW format LibRaw can read")
        raise RawFormatError(path, reason) from None
    except (rawpy.LibRawIOError, rawpy.LibRawDataError) as e:
        reason = "truncated or corrupt file" if _looks_like_tiff(path) else "not a readable RAW file"
        raise RawFormatError(path, f"{reason} (LibRaw: {_libraw_message(e)}"
                                   f"{_libraw_said(said, path)})") from None
    except rawpy.LibRawError as e:
        raise RawFormatError(path, f"LibRaw cannot decode it ({_libraw_message(e)}"
                                   f"{_libraw_said(said, path)})") from None


def _black_by_position(decoded: dict, dng_raw_tags: dict) -> list[float]:
    """The black level of each of the four 2x2 CFA positions (row-major)."""
    # LibRaw lays the DNG BlackLevel pattern from its visible top-left, but the pattern starts
    # at the ActiveArea's top-left (DNG spec), and LibRaw moves the visible area to even
    # offsets: ActiveArea (3, 5) becomes margins (4, 6). Shift the pattern by the difference,
    # so that each position keeps the black level of its own colour filter.
    dy, dx = 0, 0
    area = dng_raw_tags.get(50829)
    if area is not None and len(area) == 4:
        top, left = (int(v) for v in area[:2])
        margins = decoded["margins"]
        dy, dx = (margins[0] - top) % 2, (margins[1] - left) % 2
    tile, per_colour = decoded["tile"], decoded["per_colour"]
    return [per_colour[tile[(i + dy) % 2, (j + dx) % 2]] for i in range(2) for j in range(2)]


def _colour_calibration(path: Path, tags: dict, is_dng: bool, decoded: dict):
    """(white balance gains or None, [(XYZ -> camera matrix, EXIF illuminant)] up to two): a
    DNG's own tags, else LibRaw's camera white balance and built-in matrix."""
    wb = None
    gains = decoded["gains"]
    neutral = _as_shot_neutral(tags) if is_dng else None
    if neutral is not None:  # the file's own numbers, not LibRaw's float32 copy of them
        wb = (neutral[1] / neutral[0], 1.0, neutral[1] / neutral[2])
    elif gains[1] > 0 and gains[0] > 0 and gains[2] > 0:
        wb = (gains[0] / gains[1], 1.0, gains[2] / gains[1])
    try:
        calibrations = _dng_calibrations(tags) if is_dng else []
    except ValueError as e:
        raise RawFormatError(path, str(e)) from None
    if not is_dng and np.any(decoded["libraw_matrix"]):
        # LibRaw's built-in (Adobe) matrix for this camera, calibrated for D65. Not for DNGs:
        # a DNG's own tags are the whole truth, so a written DNG reads back as it was.
        calibrations = [(decoded["libraw_matrix"], D65)]
    defaults = _written_defaults(tags)
    if "ColorMatrix1" in defaults:
        calibrations = []
    if "AsShotNeutral" in defaults:
        wb = None
    return wb, calibrations


def _check_bayer(path: Path, raw) -> None:
    import rawpy

    if raw.raw_type != rawpy.RawType.Flat:
        raise RawFormatError(path, "not a Bayer mosaic (linear/demosaiced DNG or Foveon-type "
                                   "sensor with several values per pixel)")
    pattern = np.asarray(raw.raw_pattern)
    if pattern.shape == (6, 6):
        raise RawFormatError(path, "X-Trans sensor (6x6 colour filter), not a Bayer mosaic")
    if pattern.shape != (2, 2):
        raise RawFormatError(path, f"{pattern.shape[0]}x{pattern.shape[1]} colour filter, "
                                   "not a 2x2 Bayer mosaic")


def _libraw_message(e: Exception) -> str:
    msg = e.args[0] if e.args else str(e)
    return msg.decode(errors="replace") if isinstance(msg, bytes) else str(msg)


def _looks_like_tiff(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) in (b"II*\x00", b"MM\x00*")


def _tag_value(tag):
    """A TIFF tag's value; (S)RATIONALs as a tuple of floats (nan or inf where a denominator
    is 0, so that impossible values are seen, not hidden)."""
    if int(tag.dtype) in (5, 10):  # RATIONAL, SRATIONAL: numerator, denominator pairs
        v = np.asarray(tag.value, dtype=np.float64).reshape(-1, 2)
        with np.errstate(divide="ignore", invalid="ignore"):
            return tuple(float(x) for x in v[:, 0] / v[:, 1])
    return tag.value


def _tiff_ifds(path: Path) -> tuple[dict | None, dict]:
    """Tags by code of the first IFD (where DNG, NEF, CR2, ARW keep make, model and the DNG
    colour tags) and of the raw IFD (the full-resolution image, NewSubfileType 0, which holds
    the CFA, level and ActiveArea tags: IFD 0 itself, or one of its SubIFDs in DNGs that put a
    preview first). (None, {}) for files that are not TIFF-based or that tifffile cannot parse."""
    import tifffile

    if not _looks_like_tiff(path):
        return None, {}
    try:
        with tifffile_quiet(), tifffile.TiffFile(path) as tif:
            first = tif.pages[0]
            tags = {t.code: _tag_value(t) for t in first.tags.values()}
            raw_tags = tags
            if tags.get(254, 0) != 0:
                for sub in first.pages or []:
                    sub_tags = {t.code: _tag_value(t) for t in sub.tags.values()}
                    if sub_tags.get(254, 0) == 0:
                        raw_tags = sub_tags
                        break
            return tags, raw_tags
    except Exception:  # a maker's odd TIFF variant: metadata is optional, the pixels came from LibRaw
        return None, {}


def _numbers(value) -> np.ndarray:
    return np.atleast_1d(np.asarray(value, dtype=np.float64)).ravel()


def _dng_level_problem(raw_tags: dict) -> str | None:
    """Impossible BlackLevel / WhiteLevel tags, as the file states them (LibRaw replaces some,
    e.g. WhiteLevel 0 by 65535, and reads a BlackLevel of 1/0 as 1)."""
    black = _numbers(raw_tags.get(50714, 0))
    white = _numbers(raw_tags.get(50717, 65535))
    names = ("DNG BlackLevel", "DNG WhiteLevel")
    return level_problem(black, white.min(), names) or level_problem(black, white.max(), names)


def _as_shot_neutral(tags: dict) -> np.ndarray | None:
    """AsShotNeutral (camera-space neutral, G = 1 usually) when present and usable."""
    if tags.get(50728) is None:
        return None
    neutral = _numbers(tags[50728])
    if neutral.size != 3 or not np.all(np.isfinite(neutral)) or np.any(neutral <= 0):
        return None
    return neutral


def _dng_calibrations(tags: dict) -> list[tuple[np.ndarray, int]]:
    """[(ColorMatrix1, CalibrationIlluminant1), (ColorMatrix2, CalibrationIlluminant2)], as
    many as the file has, in its order. ValueError for a matrix that is not 9 finite numbers."""
    found = []
    for n, (matrix_tag, illuminant_tag) in enumerate(((50721, 50778), (50722, 50779)), 1):
        if tags.get(matrix_tag) is None:
            continue
        m = _numbers(tags[matrix_tag])
        if m.size != 9 or not np.all(np.isfinite(m)):
            raise ValueError(f"ColorMatrix{n} is not a 3x3 matrix of numbers "
                             f"({m.size} values: {m.tolist()[:9]})")
        found.append((m.reshape(3, 3), int(_numbers(tags.get(illuminant_tag, 0))[0])))
    return found


def _written_defaults(tags: dict | None) -> set[str]:
    """The colour tags write_dng filled with defaults (it says so in ImageDescription)."""
    text = str((tags or {}).get(270, ""))
    if not text.startswith(DEFAULTS_NOTE):
        return set()
    listed = text[len(DEFAULTS_NOTE):].split(";")[0]
    return {name for name in ("ColorMatrix1", "AsShotNeutral") if name in listed}


# ----------------------------------------------------------------------------- schemas
# What the pydantic schemas of sidecars (sidecar.Sidecar) and of a checkpoint's camera
# (checkpoint.py) share: gains, and a bad value's one-line report naming its key.

def as_json(value) -> str:
    """A value as it is quoted in an error message: JSON, or its repr where JSON has none."""
    return json.dumps(value, default=repr)


def three_gains(value):
    """wb: three gains (R, G, B), or null for none."""
    if value is None or (isinstance(value, (list, tuple)) and len(value) == 3):
        return value
    got = f"{len(value)} values" if isinstance(value, (list, tuple)) else as_json(value)
    raise PydanticCustomError("custom", f"{got}: give three gains (R, G, B), or null")


Gain = Annotated[float, Field(gt=0, allow_inf_nan=False)]


def schema_problem(error: ValidationError, prefix: str = "") -> str:
    """'key: what is wrong' of every error of a pydantic schema, in one line; keys after
    `prefix` (as "camera.")."""
    problems = []
    for e in error.errors(include_url=False):
        key = prefix + "".join(f"[{p}]" if isinstance(p, int) else f".{p}"
                               for p in e["loc"]).lstrip(".")
        what = e["msg"][:1].lower() + e["msg"][1:]
        if e["type"] not in ("missing", "custom"):
            what += f" (got {as_json(e['input'])})"
        problems.append(f"{key}: {what}")
    return "; ".join(problems)


# ----------------------------------------------------------------------------- writing

def _rational_pairs(values, denominator: int) -> tuple[int, ...]:
    return tuple(x for v in values for x in (int(round(float(v) * denominator)), denominator))


def colour_science():
    """The colour-science package, imported on first use (it takes about a second) without its
    warning that matplotlib, needed only for its plots, is missing."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message='"Matplotlib" related API')
        import colour
    return colour


@functools.cache
def default_color_matrix() -> np.ndarray:
    """The XYZ -> camera matrix written for cameras without a known one: XYZ -> linear sRGB
    (D65), from colour-science, i.e. a camera whose raw RGB is linear sRGB. Renderers then
    show the white-balanced raw channels as sRGB, unchanged."""
    return np.array(colour_science().models.RGB_COLOURSPACE_sRGB.matrix_XYZ_to_RGB, dtype=np.float64)


def _check_dng_size(raw: RawImage) -> None:
    h, w = raw.mosaic.shape
    if min(h, w) < MIN_DNG_SIDE:
        raise ValueError(f"a {w}x{h} mosaic is too small for a DNG: LibRaw and the tools built "
                         f"on it open none under {MIN_DNG_SIDE} pixels a side")


def _write_dng_file(path, raw: RawImage) -> None:
    import tifffile

    _check_dng_size(raw)
    colour_code = {"R": 0, "G": 1, "B": 2}
    tags = [
        (33421, "H", 2, (2, 2), True),                                   # CFARepeatPatternDim
        (33422, "B", 4, bytes(colour_code[c] for c in raw.cfa), True),   # CFAPattern
        (50706, "B", 4, b"\x01\x04\x00\x00", True),                     # DNGVersion 1.4
        (50707, "B", 4, b"\x01\x01\x00\x00", True),                     # DNGBackwardVersion 1.1
        (50708, "s", 0, raw.camera, True),                               # UniqueCameraModel
        (50710, "B", 3, b"\x00\x01\x02", True),                          # CFAPlaneColor R, G, B
        (50711, "H", 1, 1, True),                                        # CFALayout: rectangular
        (50713, "H", 2, (2, 2), True),                                   # BlackLevelRepeatDim
        (50714, "2I", 4, _rational_pairs(raw.black_level, 10000), True),  # BlackLevel
        (50717, "I", 1, int(round(raw.white_level)), True),              # WhiteLevel
    ]
    if raw.make:
        tags.append((271, "s", 0, raw.make, True))
    if raw.model:
        tags.append((272, "s", 0, raw.model, True))
    # The DNG specification requires ColorMatrix1 and AsShotNeutral (or AsShotWhiteXY) of
    # colour images; without them renderers guess. Unknown ones get documented defaults, and
    # ImageDescription says which, so that read_raw reads them back as unknown.
    defaults = []
    calibrations = [(raw.color_matrix, raw.illuminant), (raw.color_matrix2, raw.illuminant2)]
    if raw.color_matrix is None:
        calibrations = [(default_color_matrix(), D65)]
        defaults.append("ColorMatrix1 (XYZ to linear sRGB, D65)")
    for (matrix_tag, illuminant_tag), (matrix, illuminant) in zip(
            ((50721, 50778), (50722, 50779)), calibrations):
        if matrix is not None:  # ColorMatrix1/2, CalibrationIlluminant1/2, as they were
            values = np.asarray(matrix, dtype=np.float64).ravel()
            tags.append((matrix_tag, "2i", 9, _rational_pairs(values, 1000000), True))
            tags.append((illuminant_tag, "H", 1, int(illuminant), True))
    if raw.wb is not None:  # AsShotNeutral is the camera-space neutral: the inverse gains
        neutral = [raw.wb[1] / g for g in raw.wb]
    else:
        neutral = [1.0, 1.0, 1.0]
        defaults.append("AsShotNeutral (1, 1, 1)")
    tags.append((50728, "2I", 3, _rational_pairs(neutral, 1000000), True))
    if defaults:
        note = f"{DEFAULTS_NOTE} {', '.join(defaults)}; not known for this camera"
        tags.append((270, "s", 0, note, True))                           # ImageDescription
    # A real file, not io.BytesIO: numpy's tofile into a BytesIO crashes on large arrays.
    tifffile.imwrite(path, np.ascontiguousarray(raw.mosaic, dtype=np.uint16),
                     photometric=32803, extratags=tags, metadata=None, software="rawdiffusion")


def write_dng(path, raw: RawImage) -> None:
    """Write `raw` as an uncompressed 16-bit Bayer DNG, atomically.

    Holds the CFA pattern, per-position black levels, white level, make and model, the as-shot
    white balance (AsShotNeutral) and both colour calibrations as `raw` has them (ColorMatrix1
    with CalibrationIlluminant1, ColorMatrix2 with CalibrationIlluminant2), so that LibRaw and
    other renderers derive the same daylight balance as from the original file. rawpy reads
    back the identical mosaic, pattern, levels and metadata.

    A camera without a known matrix gets `default_color_matrix()` (XYZ -> linear sRGB, labelled
    D65) as ColorMatrix1, and no white balance gets AsShotNeutral (1, 1, 1): the DNG
    specification requires both of colour images. ImageDescription then begins with
    "rawdiffusion defaults:" and names them; read_raw reads such tags back as unknown (None).

    ValueError for a mosaic under MIN_DNG_SIDE (22) pixels a side, which LibRaw cannot open.
    """
    _check_dng_size(raw)
    with atomic_output(path) as tmp:
        _write_dng_file(tmp, raw)


def _packed_uint16(packed: np.ndarray) -> np.ndarray:
    """(4, H, W) in [0, 1] -> (H, W, 4) uint16 holding value * 65535 (the reference's layout)."""
    packed = np.asarray(packed)
    if packed.ndim != 3 or packed.shape[0] != 4:
        raise ValueError(f"packed RAW must be (4, H, W), got shape {packed.shape}")
    scaled = np.clip(packed, 0.0, 1.0) * 65535.0
    return np.round(scaled).astype(np.uint16).transpose(1, 2, 0)


def write_hdf5(path, packed: np.ndarray) -> None:
    """Write packed RAW (4, H, W) in [0, 1] as the reference does: dataset `raw`, H x W x 4
    uint16 of value * 65535."""
    import h5py

    with atomic_output(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("raw", data=_packed_uint16(packed))


def write_npy(path, packed: np.ndarray) -> None:
    """Write packed RAW (4, H, W) in [0, 1] as .npy with the same H x W x 4 uint16 layout."""
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, _packed_uint16(packed))


def load_npy(path) -> np.ndarray:
    """np.load of a .npy file that holds plain numbers (no pickled objects). Raises ValueError
    "not a NumPy .npy file" for a file without the format's magic string (numpy itself would
    say the file holds pickled data and suggest loading it unsafely), numpy's ValueError or
    EOFError for a damaged header or cut data, OSError when the file cannot be read.
    Source: the NPY format specification (numpy.lib.format)."""
    with open(path, "rb") as f:
        if f.read(len(NPY_MAGIC)) != NPY_MAGIC:
            raise ValueError("not a NumPy .npy file (it lacks the format's header)")
        f.seek(0)
        return np.load(f)


def read_packed(path) -> np.ndarray:
    """Read a packed RAW written by `write_hdf5` or `write_npy`: (4, H, W) float32 in [0, 1]."""
    path = Path(path)
    if path.suffix.lower() in (".h5", ".hdf5"):
        import h5py

        with h5py.File(path, "r") as f:
            data = f["raw"][()]
    else:
        data = load_npy(path)
    return (data.astype(np.float32) / 65535.0).transpose(2, 0, 1)


# ----------------------------------------------------------------------------- rendering

def render_srgb(raw: RawImage, **settings) -> np.ndarray:
    """Render `raw` to 8-bit sRGB with rawpy's default settings: (H, W, 3) uint8.

    `settings`: other `rawpy.postprocess` keyword arguments (white balance, demosaic, gamma,
    output colour space, output_bps=16 for uint16, ...), for renderings.py; none gives the
    canonical rendering that `prepare` makes guides with.

    The file itself is rendered when LibRaw can open it (so camera-specific handling applies);
    sidecar dumps are rendered from a temporary DNG of theirs. One deviation from the defaults: the
    file's orientation flag is ignored (user_flip=0) so the image stays pixel-aligned with the
    mosaic; LibRaw's default would mirror or rotate it (the GoPro DNGs here are mirrored).
    Sidecar dumps without `wb` render with write_dng's defaults: neutral gains, raw RGB as sRGB.
    """
    import rawpy

    source = raw.path
    said: list[str] = []
    try:
        if source and Path(source).is_file() and not sidecar_path(source).is_file():
            with c_stderr_to(said), rawpy.imread(source) as r:
                rgb = r.postprocess(user_flip=0, **settings)
        else:
            try:
                _check_dng_size(raw)
            except ValueError as e:
                raise RawFormatError(raw.path or raw.camera, f"cannot render it: {e}") from None
            with tempfile.TemporaryDirectory(prefix="rawdiffusion-") as tmp:
                _write_dng_file(Path(tmp) / "render.dng", raw)
                with c_stderr_to(said), rawpy.imread(str(Path(tmp) / "render.dng")) as r:
                    rgb = r.postprocess(user_flip=0, **settings)
    except rawpy.LibRawError as e:  # a file that changed since it was read, say
        raise RawFormatError(raw.path or raw.camera, f"LibRaw cannot render it "
                             f"({_libraw_message(e)}{_libraw_said(said, source)})") from None
    if rgb.shape[:2] != raw.mosaic.shape:
        raise RawFormatError(raw.path, f"rendered image is {rgb.shape[1]}x{rgb.shape[0]}, the "
                                       f"mosaic {raw.mosaic.shape[1]}x{raw.mosaic.shape[0]}")
    return rgb
