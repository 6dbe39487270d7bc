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

rawpy, tifffile, h5py and colour-science are imported by the functions that use them (about
two seconds together): most commands and `import rawdiffusion` users need one of them or none.
"""

from __future__ import annotations

import contextlib
import fractions
import functools
import logging
import os
import struct
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import bayer
from .atomic import atomic_output
from .bayer import CFA_ORDERS, level_problem
from .errors import RawFormatError
from .files import RAW_MAX_PIXELS, not_a_file, pixel_problem, shown
from .sidecar import read_dump, sidecar_path

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
# The signatures by which LibRaw's identify() recognises a format (LibRaw
# src/metadata/identify.cpp): (offset, bytes). A file with none of them LibRaw can only guess
# from its size (its table of cameras' headerless dumps), and a dump of another camera that has
# one of those sizes would be misread without a word.
LIBRAW_SIGNATURES = (
    (0, b"II*\0"), (0, b"MM\0*"), (0, b"II+\0"), (0, b"MM\0+"),  # TIFF: DNG, NEF, CR2, ARW, ...
    (0, b"IIRO"), (0, b"IIRS"), (0, b"MMOR"), (0, b"IIU\0"),      # ORF, RW2
    (6, b"HEAPCCDR"), (4, b"ftypcrx "), (4, b"ftypqt   "),         # CRW, CR3, QuickTime
    (0, b"FUJIFILM"), (0, b"\0MRM"), (0, b"FOVb"), (0, b"NOKIARAW"),  # RAF, MRW, X3F, Nokia
    (0, b"\xff\xd8\xff"), (0, b"RIFF"), (25, b"ARECOYK"), (0, b"PXN\0"), (0, b"qktk\0"),
    (0, b"qktn\0"), (0, b"\0\x01\0\x01\0@"), (0, b"DSC-Image"), (0, b"PWAD"), (0, b"CI"),
    (0, b"BRCM"))
PHASE_ONE_MARKS = (b"IIII", b"MMMM")  # anywhere in the first 32 bytes (IIQ and kin)
SIDECAR_KEYS = "width, height, dtype, cfa_pattern, black_level and white_level"
EXIF_PLACEHOLDER = 34664  # a code no TIFF tag uses, written where ExifIFD (34665) is to go


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
    iso, exposure_time: the EXIF ISO speed and exposure time in seconds (> 0), or None.
    noise_profile: the DNG NoiseProfile, pairs (S, O) of variance = S x + O in normalised
        units, one pair for all colour planes or one per plane (R, G, B); or None.
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
    iso: float | None = None
    exposure_time: float | None = None
    noise_profile: tuple[tuple[float, float], ...] | None = None

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
        self.iso = _positive_or_none(self.iso, "iso")
        self.exposure_time = _positive_or_none(self.exposure_time, "exposure_time")
        if self.noise_profile is not None:
            pairs = np.asarray(self.noise_profile, dtype=np.float64)
            if pairs.shape not in ((1, 2), (3, 2)) or not np.all(np.isfinite(pairs)) \
                    or np.any(pairs < 0):
                raise ValueError(f"noise_profile must be 1 or 3 pairs (S, O) of numbers >= 0, "
                                 f"got {pairs.tolist()}")
            self.noise_profile = tuple((float(a), float(b)) for a, b in pairs)

    @property
    def camera(self) -> str:
        return " ".join(s for s in (self.make, self.model) if s) or UNKNOWN_CAMERA

    @property
    def packed(self) -> np.ndarray:
        """(4, H // 2, W // 2) float32 in [0, 1]: the mosaic packed into R, G1, G2, B planes
        (bayer.pack; an odd last row or column is left out) and normalised by its levels,
        (raw - black_c) / (white - black_c) clipped to [0, 1] (bayer.normalise)."""
        return bayer.normalise(bayer.pack(self.mosaic, self.cfa),
                               bayer.packed_levels(self.black_level, self.cfa), self.white_level)

    def write_dng(self, path) -> None:
        """This image as an uncompressed 16-bit Bayer DNG at `path`, atomically (`write_dng`).
        ValueError for a mosaic under MIN_DNG_SIDE (22) pixels a side."""
        write_dng(path, self)

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
            "iso": self.iso,
            "exposure_time": self.exposure_time,
            "noise_profile": None if self.noise_profile is None else
            [list(pair) for pair in self.noise_profile],
            "min": int(self.mosaic.min()),
            "max": int(self.mosaic.max()),
        }


def _positive_or_none(value, name: str) -> float | None:
    if value is None:
        return None
    value = float(value)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a number above 0 or None, got {value}")
    return value


def _matrix_or_none(m, name: str) -> np.ndarray | None:
    if m is None:
        return None
    m = np.asarray(m, dtype=np.float64)
    if m.shape != (3, 3) or not np.all(np.isfinite(m)):
        raise ValueError(f"{name} must be a finite 3x3 XYZ -> camera matrix, got {m.tolist()}")
    return m


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

def read_raw(path, max_pixels: int | None = None) -> RawImage:
    """Read a Bayer RAW file: anything rawpy opens by its header, or a headerless/PGM dump with
    a sidecar.

    max_pixels: the most pixels (width x height as the header or sidecar declares them, margins
    included) read; default RAW_MAX_PIXELS (200 million). Checked before any pixel is decoded.

    Raises RawFormatError (one line naming the file and the reason) for missing, empty,
    truncated or corrupt files, paths that are no regular files (directories, FIFOs, devices,
    symlink loops: nothing but regular files is opened), files over the pixel limit, files
    without a header LibRaw recognises and without a sidecar (LibRaw would guess their layout
    from their size), non-Bayer sensors, plain TIFF images, sidecars that do not fit the file,
    impossible levels or white balance (in the file's tags, its sidecar or as decoded) and
    mosaics that hold no image.
    """
    path = Path(path)
    limit = RAW_MAX_PIXELS if max_pixels is None else max_pixels
    problem = not_a_file(path, "RAW file")
    if problem:
        raise RawFormatError(path, problem)
    if path.stat().st_size == 0:
        raise RawFormatError(path, "empty file")
    side = sidecar_path(path)
    if path.suffix.lower() != ".json" and (side.exists() or side.is_symlink()):
        problem = not_a_file(side)
        if problem:
            raise RawFormatError(side, f"{problem}, where the JSON sidecar describing "
                                       f"{shown(path.name)} is expected")
        return _read_dump(path, limit)
    if path.suffix.lower() == ".pgm":
        raise RawFormatError(path, f"a PGM file needs a JSON sidecar {shown(side.name)} "
                                   "giving its CFA order and levels")
    if not _libraw_recognises(path):
        raise RawFormatError(path, "not a RAW format LibRaw recognises by its header (TIFF/DNG, "
                                   "NEF, CR2, CR3, ARW, RAF, ORF, RW2, ...), and its JSON "
                                   f"sidecar {shown(side)} is missing: a headerless Bayer dump "
                                   f"needs one giving its {SIDECAR_KEYS}")
    return _read_with_rawpy(path, limit)


def _libraw_recognises(path: Path) -> bool:
    """Whether the file begins with a signature by which LibRaw identifies its format
    (LIBRAW_SIGNATURES), rather than guessing one from the file's size."""
    with open(path, "rb") as f:
        head = f.read(64)
    return (any(head[at:at + len(magic)] == magic for at, magic in LIBRAW_SIGNATURES)
            or any(mark in head[:32] for mark in PHASE_ONE_MARKS))


@contextlib.contextmanager
def libraw_open(path):
    """rawpy.imread(path) as a context: (the RawPy, the name LibRaw was given). rawpy hands
    LibRaw the name encoded as UTF-8, which a name in another encoding is not; such a file is
    opened here and given to LibRaw as /proc/self/fd/N (Linux)."""
    import rawpy

    name = os.fspath(path)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        if not os.path.isdir("/proc/self/fd"):
            raise RawFormatError(path, "its name is not valid UTF-8, which LibRaw cannot open "
                                       "on this system: rename the file") from None
        fd = os.open(path, os.O_RDONLY)
        try:
            with rawpy.imread(f"/proc/self/fd/{fd}") as raw:
                yield raw, f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    with rawpy.imread(name) as raw:
        yield raw, name


def _read_dump(path: Path, limit: int) -> RawImage:
    """A headerless Bayer dump or PGM through its sidecar (sidecar.read_dump), of at most
    `limit` pixels."""
    meta, mosaic = read_dump(path, limit)
    problem = no_image_problem(mosaic, meta.black_level, meta.white_level)
    if problem:
        raise RawFormatError(path, problem)
    return RawImage(mosaic=mosaic, cfa=meta.cfa_pattern, black_level=meta.black_level,
                    white_level=meta.white_level, wb=meta.wb, make=meta.make or "",
                    model=meta.model or "", path=str(path), iso=meta.iso,
                    exposure_time=meta.exposure_time)


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


def _libraw_said(lines: list[str], name) -> str:
    """LibRaw's own messages, without the file name it starts them with: "; <message>"."""
    said = [line.removeprefix(f"{name}: ") for line in lines]
    return "".join(f"; {line}" for line in dict.fromkeys(said))


def _read_with_rawpy(path: Path, limit: int) -> RawImage:
    """A RAW file that LibRaw decodes, with the DNG tags read beside it (tifffile): the tags
    say what LibRaw would misread, and hold the colour calibration exactly as written."""
    tags, raw_tags = _tiff_ifds(path)
    is_dng = tags is not None and 50706 in tags
    _refuse_by_tags(path, tags, raw_tags, is_dng)
    tags = tags or {}
    decoded = _decode_with_libraw(path, is_dng, limit)
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
    iso, exposure_time = _exposure(tags, decoded)
    unique = str(tags.get(50708, "")).strip()
    if unique and unique != UNKNOWN_CAMERA and not model:  # CinemaDNGs, some converters
        model = unique[len(make):].strip() if make and unique.startswith(make) else unique
    return RawImage(mosaic=mosaic, cfa=cfa, black_level=tuple(black), white_level=white, wb=wb,
                    color_matrix=m1, illuminant=ill1, color_matrix2=m2, illuminant2=ill2,
                    make=make, model=model, path=str(path), iso=iso, exposure_time=exposure_time,
                    noise_profile=_noise_profile(raw_tags, tags) if is_dng else None)


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
        problem = _dng_level_problem(raw_tags) or _as_shot_neutral_problem(tags)
        if problem:
            raise RawFormatError(path, problem)


def _decode_with_libraw(path: Path, is_dng: bool, limit: int) -> dict:
    """What LibRaw reads of the file: mosaic (H, W) uint16, cfa, tile (2, 2) colour indices,
    per_colour black levels, margins, white, gains (camera white balance), libraw_matrix
    (3, 3); its failures as RawFormatError with LibRaw's own words. The size LibRaw read from
    the header is checked against `limit` before it decodes (unpacks) any pixel."""
    import rawpy  # when used: start-up time (module docstring)

    said: list[str] = []
    name = path
    try:
        with c_stderr_to(said), libraw_open(path) as (raw, name):
            sizes = raw.sizes  # from the header: nothing is unpacked yet
            problem = pixel_problem(sizes.raw_width, sizes.raw_height, limit)
            if problem:
                raise RawFormatError(path, problem)
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
                "libraw_matrix": np.array(raw.rgb_xyz_matrix[:3], dtype=np.float64),
                "iso": float(raw.other.iso_speed), "shutter": float(raw.other.shutter_speed)}
    except RawFormatError:
        raise
    except rawpy.LibRawFileUnsupportedError:
        reason = ("a DNG LibRaw cannot decode (unsupported compression or layout)" if is_dng
                  else "not a RAW format LibRaw can read")
        raise RawFormatError(path, reason) from None
    except (rawpy.LibRawIOError, rawpy.LibRawDataError) as e:
        reason = "truncated or corrupt file" if _looks_like_tiff(path) else "not a readable RAW file"
        raise RawFormatError(path, f"{reason} (LibRaw: {_libraw_message(e)}"
                                   f"{_libraw_said(said, name)})") from None
    except rawpy.LibRawError as e:
        raise RawFormatError(path, f"LibRaw cannot decode it ({_libraw_message(e)}"
                                   f"{_libraw_said(said, name)})") from None


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
    import rawpy  # when used: start-up time (module docstring)

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
    import tifffile  # when used: start-up time (module docstring)

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


def _as_shot_neutral_problem(tags: dict) -> str | None:
    """An impossible AsShotNeutral tag: the DNG specification's camera-space neutral is one
    positive number per colour plane (3 for a Bayer RGB sensor). LibRaw makes gains of 0 of a
    zero (its camera_whitebalance [0, 1, 0, 0] for (0, 1, 0.5)), and reading the file without
    white balance would drop what it says without a word; such a file is refused, as impossible
    levels are."""
    if tags.get(50728) is None:
        return None
    neutral = _numbers(tags[50728])
    shown_values = ", ".join(f"{v:g}" for v in neutral[:4])
    if neutral.size != 3:
        return (f"impossible DNG AsShotNeutral ({shown_values}{', ...' if neutral.size > 4 else ''}"
                f"): {neutral.size} values, expected 3 (R, G, B)")
    if not np.all(np.isfinite(neutral)) or np.any(neutral <= 0):
        return (f"impossible DNG AsShotNeutral ({shown_values}): every value must be a number "
                "above 0")
    return None


def _as_shot_neutral(tags: dict) -> np.ndarray | None:
    """AsShotNeutral (camera-space neutral, G = 1 usually), or None when the file has none;
    checked by _as_shot_neutral_problem before."""
    return None if tags.get(50728) is None else _numbers(tags[50728])


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


def _positive_number(value) -> float | None:
    """The first number of a tag's value (a number, or a sequence of them), when it is a finite
    number above 0; else None."""
    if isinstance(value, (tuple, list)):
        value = value[0] if value else None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) and value > 0 else None


def _exposure(tags: dict, decoded: dict) -> tuple[float | None, float | None]:
    """(ISO, exposure time in s) of a file, None where unknown: its EXIF tags (in the EXIF IFD,
    as DNG, NEF, CR2 and ARW hold them, or in IFD 0, as TIFF/EP allows), else what LibRaw
    read (every format it opens, also those that are not TIFF-based)."""
    exif = tags.get(34665) if isinstance(tags.get(34665), dict) else {}
    iso = _positive_number(exif.get("ISOSpeedRatings", tags.get(34855)))
    if iso == 65535:  # EXIF 2.3: an ISO too large for ISOSpeedRatings' SHORT is in ISOSpeed
        iso = _positive_number(exif.get("ISOSpeed")) or iso
    time = exif.get("ExposureTime")  # tifffile gives the EXIF IFD's rationals as (num, den)
    if isinstance(time, (tuple, list)) and len(time) == 2:
        time = time[0] / time[1] if time[1] else None
    time = _positive_number(time) or _positive_number(tags.get(33434))
    return (iso or _positive_number(decoded["iso"]),
            time or _positive_number(decoded["shutter"]))


def _noise_profile(*tag_sets: dict) -> tuple[tuple[float, float], ...] | None:
    """A DNG's NoiseProfile (tag 51041, in the raw IFD or IFD 0): pairs (S, O), one for all
    planes or one per plane of a Bayer CFA's three. None when absent or not of that form
    (optional metadata: the image reads without it)."""
    for tags in tag_sets:
        if tags.get(51041) is None:
            continue
        values = _numbers(tags[51041])
        if values.size in (2, 6) and np.all(np.isfinite(values)) and np.all(values >= 0):
            return tuple((float(a), float(b)) for a, b in values.reshape(-1, 2))
        return None
    return None


# ----------------------------------------------------------------------------- writing

def _rational_pairs(values, denominator: int) -> tuple[int, ...]:
    return tuple(x for v in values for x in (int(round(float(v) * denominator)), denominator))


def colour_science():
    """The colour-science package, imported on first use (it takes about a second) without its
    warning that matplotlib, needed only for its plots, is missing."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message='"Matplotlib" related API')
        import colour  # when used: start-up time (module docstring)
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
    import tifffile  # when used: start-up time (module docstring)

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
    if raw.noise_profile is not None:                                    # NoiseProfile
        values = [v for pair in raw.noise_profile for v in pair]
        tags.append((51041, "d", len(values), values, True))
    exif = _exif_entries(raw)
    if exif:  # ExifIFD's place: _append_exif_ifd makes it the tag (tifffile filters 34665)
        tags.append((EXIF_PLACEHOLDER, "I", 1, 0, True))
    # A real file, not io.BytesIO: numpy's tofile into a BytesIO crashes on large arrays.
    tifffile.imwrite(path, np.ascontiguousarray(raw.mosaic, dtype=np.uint16), byteorder="<",
                     photometric=32803, extratags=tags, metadata=None, software="rawdiffusion")
    if exif:
        _append_exif_ifd(path, exif)


def _exif_entries(raw: RawImage) -> list[tuple[int, int, int, bytes]]:
    """The EXIF IFD's entries (tag, TIFF type, count, little-endian value) for raw's ISO and
    exposure time (EXIF 2.3), or [] when it has neither."""
    entries = []
    if raw.exposure_time is not None:                                   # ExposureTime
        time = fractions.Fraction(raw.exposure_time).limit_denominator(1_000_000)
        entries.append((33434, 5, 1, struct.pack("<II", time.numerator, time.denominator)))
    if raw.iso is not None:
        iso = int(round(raw.iso))                                        # ISOSpeedRatings
        entries.append((34855, 3, 1, struct.pack("<H", min(iso, 65535))))
        if iso > 65535:  # too large for the SHORT: SensitivityType 3 (ISO speed), ISOSpeed
            entries += [(34864, 3, 1, struct.pack("<H", 3)), (34867, 4, 1, struct.pack("<I", iso))]
    if entries:
        entries.append((36864, 7, 4, b"0230"))                           # ExifVersion 2.3
    return sorted(entries)


def _append_exif_ifd(path, entries: list[tuple[int, int, int, bytes]]) -> None:
    """Append an EXIF IFD of `entries` to the little-endian classic TIFF at `path`, and turn
    IFD 0's EXIF_PLACEHOLDER entry (a LONG) into the ExifIFD tag (34665) pointing at it:
    tifffile writes no EXIF IFD and no tag 34665, and LibRaw reads a DNG's ISO from the EXIF IFD
    only. The placeholder's code is 34665's predecessor, so the entries stay in ascending
    order (TIFF 6.0, Sec. 2, IFD layout; EXIF 2.3, Sec. 4.6.3)."""
    with open(path, "r+b") as f:
        first = struct.unpack("<I", f.read(8)[4:])[0]
        f.seek(first)
        count = struct.unpack("<H", f.read(2))[0]
        ifd0 = f.read(12 * count)
        entry = next(first + 2 + 12 * i for i in range(count)
                     if struct.unpack_from("<H", ifd0, 12 * i)[0] == EXIF_PLACEHOLDER)
        start = f.seek(0, os.SEEK_END)
        start += start % 2  # IFDs begin on a word boundary
        data_at = start + 2 + 12 * len(entries) + 4
        table, data = struct.pack("<H", len(entries)), b""
        for tag, kind, n, value in entries:
            if len(value) <= 4:
                table += struct.pack("<HHI", tag, kind, n) + value.ljust(4, b"\0")
            else:
                table += struct.pack("<HHII", tag, kind, n, data_at + len(data))
                data += value + b"\0" * (len(value) % 2)
        f.seek(start)
        f.write(table + struct.pack("<I", 0) + data)  # no next IFD
        f.seek(entry)
        f.write(struct.pack("<HHII", 34665, 4, 1, start))


def write_dng(path, raw: RawImage) -> None:
    """Write `raw` as an uncompressed 16-bit Bayer DNG, atomically.

    Holds the CFA pattern, per-position black levels, white level, make and model, the as-shot
    white balance (AsShotNeutral) and both colour calibrations as `raw` has them (ColorMatrix1
    with CalibrationIlluminant1, ColorMatrix2 with CalibrationIlluminant2), so that LibRaw and
    other renderers derive the same daylight balance as from the original file. rawpy reads
    back the identical mosaic, pattern, levels and metadata. When `raw` has them: its
    NoiseProfile (51041, doubles), and an EXIF IFD with its ISO (ISOSpeedRatings, or 65535
    with ISOSpeed above that) and ExposureTime, where LibRaw and exiftool read them.

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
    import h5py  # when used: start-up time (module docstring)

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
        import h5py  # when used: start-up time (module docstring)

        with h5py.File(path, "r") as f:
            data = f["raw"][()]
    else:
        data = load_npy(path)
    return (data.astype(np.float32) / 65535.0).transpose(2, 0, 1)


# ----------------------------------------------------------------------------- rendering

def render_srgb(raw: RawImage, **settings) -> np.ndarray:
    """Render `raw` to 8-bit sRGB with rawpy's default settings: (H, W, 3) uint8.

    `settings`: other `rawpy.postprocess` keyword arguments (white balance, demosaic, gamma,
    output colour space, output_bps=16 for uint16, no_auto_bright=True ...): renderings.py's
    recipes and figures.py's comparison rendering; none gives the canonical rendering that
    `prepare` makes guides with.

    The file itself is rendered when LibRaw can open it (so camera-specific handling applies);
    sidecar dumps are rendered from a temporary DNG of theirs. One deviation from the defaults: the
    file's orientation flag is ignored (user_flip=0) so the image stays pixel-aligned with the
    mosaic; LibRaw's default would mirror or rotate it (the GoPro DNGs here are mirrored).
    Sidecar dumps without `wb` render with write_dng's defaults: neutral gains, raw RGB as sRGB.
    """
    import rawpy  # when used: start-up time (module docstring)

    source = name = raw.path
    said: list[str] = []
    try:
        if source and Path(source).is_file() and not sidecar_path(source).is_file():
            with c_stderr_to(said), libraw_open(source) as (r, name):
                rgb = r.postprocess(user_flip=0, **settings)
        else:
            try:
                _check_dng_size(raw)
            except ValueError as e:
                raise RawFormatError(raw.path or raw.camera, f"cannot render it: {e}") from None
            with tempfile.TemporaryDirectory(prefix="rawdiffusion-") as tmp:
                _write_dng_file(Path(tmp) / "render.dng", raw)
                name = str(Path(tmp) / "render.dng")
                with c_stderr_to(said), rawpy.imread(name) as r:
                    rgb = r.postprocess(user_flip=0, **settings)
    except rawpy.LibRawError as e:  # a file that changed since it was read, say
        raise RawFormatError(raw.path or raw.camera, f"LibRaw cannot render it "
                             f"({_libraw_message(e)}{_libraw_said(said, name)})") from None
    if rgb.shape[:2] != raw.mosaic.shape:
        raise RawFormatError(raw.path, f"rendered image is {rgb.shape[1]}x{rgb.shape[0]}, the "
                                       f"mosaic {raw.mosaic.shape[1]}x{raw.mosaic.shape[0]}")
    return rgb
