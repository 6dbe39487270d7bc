"""Reading and writing RAW images.

Every Bayer file that rawpy (LibRaw) opens is read through it; headerless Bayer dumps and PGM
files are read through a JSON sidecar of the same stem that describes them (see
`read_sidecar_raw`). Everything comes back as a `RawImage`: the visible mosaic plus the
metadata needed to normalise it (levels) and to render it (white balance, colour matrix).

Writers: `write_dng` (a standard Bayer DNG that rawpy and other RAW tools open), and the
reference implementation's packed layouts, `write_hdf5` and `write_npy`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

CFA_ORDERS = ("RGGB", "BGGR", "GRBG", "GBRG")
RAW_SUFFIXES = (".dng", ".nef", ".nrw", ".cr2", ".cr3", ".arw", ".srf", ".sr2", ".raf", ".orf",
                ".rw2", ".pef", ".srw", ".3fr", ".iiq", ".mos", ".erf", ".kdc", ".raw", ".pgm")
D65 = 21  # EXIF LightSource code of the D65 illuminant


class RawFormatError(ValueError):
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
    white_level: saturation level in raw digital numbers.
    wb: as-shot white-balance gains (R, G, B) with G = 1, or None when the file has none.
    color_matrix: (3, 3) XYZ -> camera matrix (DNG ColorMatrix semantics), or None.
    illuminant: EXIF LightSource code of the illuminant `color_matrix` was calibrated for.
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

    def __post_init__(self):
        if self.cfa not in CFA_ORDERS:
            raise ValueError(f"CFA order {self.cfa!r} is not one of {', '.join(CFA_ORDERS)}")
        if self.mosaic.ndim != 2:
            raise ValueError(f"mosaic must be 2-D (H, W), got shape {self.mosaic.shape}")
        self.black_level = tuple(float(b) for b in np.broadcast_to(self.black_level, 4))

    @property
    def camera(self) -> str:
        return " ".join(s for s in (self.make, self.model) if s) or "unknown camera"

    def info(self) -> dict:
        """Plain-value summary (what `rawdiffusion info` prints)."""
        h, w = self.mosaic.shape
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
            "color_matrix": None if self.color_matrix is None
            else np.round(self.color_matrix, 6).tolist(),
            "min": int(self.mosaic.min()),
            "max": int(self.mosaic.max()),
        }


# ----------------------------------------------------------------------------- reading

def sidecar_path(path) -> Path:
    return Path(path).with_suffix(".json")


def read_raw(path) -> RawImage:
    """Read a Bayer RAW file: anything rawpy opens, or a headerless/PGM dump with a sidecar.

    Raises RawFormatError (one line naming the file and the reason) for missing, empty,
    truncated or corrupt files, non-Bayer sensors and sidecars that do not fit the file.
    """
    path = Path(path)
    if not path.is_file():
        raise RawFormatError(path, "no such file")
    if path.stat().st_size == 0:
        raise RawFormatError(path, "empty file")
    if sidecar_path(path).is_file() and path.suffix.lower() != ".json":
        return read_sidecar_raw(path)
    if path.suffix.lower() == ".pgm":
        raise RawFormatError(path, f"a PGM file needs a JSON sidecar {sidecar_path(path).name} "
                                   "giving its CFA order and levels")
    return _read_with_rawpy(path)


def _read_with_rawpy(path: Path) -> RawImage:
    import rawpy

    tags = _tiff_tags(path)
    is_dng = 50706 in tags
    if is_dng and tags.get(254, 0) == 0 and tags.get(262) == 34892:
        raise RawFormatError(path, "linear (demosaiced) DNG, not a Bayer mosaic")
    try:
        with rawpy.imread(str(path)) as raw:
            _check_bayer(path, raw)
            # copy: raw_image_visible is a view into LibRaw memory that is freed on close
            mosaic = np.array(raw.raw_image_visible, dtype=np.uint16, copy=True)
            colours = raw.raw_colors_visible[:2, :2].ravel()
            desc = raw.color_desc.decode()
            cfa = "".join(desc[c] for c in colours)
            black = [raw.black_level_per_channel[c] for c in colours]
            white = float(raw.white_level)
            gains = [float(g) for g in raw.camera_whitebalance]
            libraw_matrix = np.array(raw.rgb_xyz_matrix[:3], dtype=np.float64)
    except RawFormatError:
        raise
    except rawpy.LibRawFileUnsupportedError:
        reason = ("a DNG LibRaw cannot decode (unsupported compression or layout)" if is_dng
                  else "not a RAW format LibRaw can read")
        raise RawFormatError(path, reason) from None
    except (rawpy.LibRawIOError, rawpy.LibRawDataError) as e:
        reason = "truncated or corrupt file" if _looks_like_tiff(path) else "not a readable RAW file"
        raise RawFormatError(path, f"{reason} (LibRaw: {_libraw_message(e)})") from None
    except rawpy.LibRawError as e:
        raise RawFormatError(path, f"LibRaw cannot decode it ({_libraw_message(e)})") from None

    if cfa not in CFA_ORDERS:
        raise RawFormatError(path, f"unsupported colour filter layout {cfa!r} (not a Bayer sensor)")
    wb = None
    if gains[1] > 0 and gains[0] > 0 and gains[2] > 0:
        wb = (gains[0] / gains[1], 1.0, gains[2] / gains[1])
    matrix, illuminant = _dng_color_matrix(tags)
    if matrix is None and not is_dng and np.any(libraw_matrix):
        # LibRaw's built-in (Adobe) matrix for this camera, calibrated for D65. Not for DNGs:
        # a DNG's own tags are the whole truth, so a written DNG reads back as it was.
        matrix, illuminant = libraw_matrix, D65
    return RawImage(mosaic=mosaic, cfa=cfa, black_level=tuple(black), white_level=white, wb=wb,
                    color_matrix=matrix, illuminant=illuminant,
                    make=str(tags.get(271, "")).strip(), model=str(tags.get(272, "")).strip(),
                    path=str(path))


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


def _tiff_tags(path: Path) -> dict:
    """Tags of the first IFD (where DNG, NEF, CR2, ARW keep make, model and the DNG colour
    tags), by code, for the TIFF-based formats; {} otherwise."""
    import tifffile

    if not _looks_like_tiff(path):
        return {}
    try:
        with tifffile.TiffFile(path) as tif:
            return {t.code: t.value for t in tif.pages[0].tags.values()}
    except Exception:  # a maker's odd TIFF variant: metadata is optional, the pixels came from LibRaw
        return {}


def _rationals(values) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64).reshape(-1, 2)
    return v[:, 0] / v[:, 1]


def _dng_color_matrix(tags: dict):
    """Prefer the DNG colour matrix calibrated for D65, else ColorMatrix1."""
    found = []
    for matrix_tag, illuminant_tag in ((50721, 50778), (50722, 50779)):
        if matrix_tag in tags:
            m = _rationals(tags[matrix_tag])
            if m.size == 9:
                found.append((m.reshape(3, 3), int(tags.get(illuminant_tag, 0))))
    for m, ill in found:
        if ill == D65:
            return m, ill
    return found[0] if found else (None, D65)


_DTYPE_WORDS = re.compile(r"(uint8|uint16)", re.IGNORECASE)


def _sidecar_dtype(path: Path, text: str) -> np.dtype:
    m = _DTYPE_WORDS.search(text)
    if not m:
        raise RawFormatError(path, f"sidecar dtype {text!r} is neither uint8 nor uint16")
    if m.group(1).lower() == "uint8":
        return np.dtype(np.uint8)
    big = re.search(r"\b(BE|big)", text, re.IGNORECASE) is not None
    return np.dtype(">u2" if big else "<u2")


def read_sidecar_raw(path) -> RawImage:
    """Read a headerless Bayer dump or a PGM (P5) described by a JSON sidecar of the same stem.

    The sidecar gives `width`, `height`, `dtype` ("uint8", "uint16 little-endian",
    "uint16 BE", ...), `cfa_pattern`, `black_level` (one value or four, per CFA position) and
    `white_level`; optionally `make`, `model` and `wb` (R, G, B gains).
    """
    path = Path(path)
    side = sidecar_path(path)
    try:
        meta = json.loads(side.read_text())
        width, height = int(meta["width"]), int(meta["height"])
        cfa = str(meta["cfa_pattern"]).upper()
        black, white = meta["black_level"], float(meta["white_level"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise RawFormatError(side, f"unusable sidecar ({type(e).__name__}: {e})") from None
    if cfa not in CFA_ORDERS:
        raise RawFormatError(side, f"cfa_pattern {cfa!r} is not a Bayer order "
                                   f"({', '.join(CFA_ORDERS)})")
    data = path.read_bytes()
    if path.suffix.lower() == ".pgm":
        mosaic = _decode_pgm(path, data, width, height)
    else:
        dtype = _sidecar_dtype(side, str(meta.get("dtype", "uint16")))
        expected = width * height * dtype.itemsize
        if len(data) != expected:
            raise RawFormatError(path, f"{len(data)} bytes, but the sidecar's {width}x{height} "
                                       f"{dtype.name} image needs {expected}")
        mosaic = np.frombuffer(data, dtype=dtype).reshape(height, width).astype(np.uint16)
    wb = tuple(float(g) for g in meta["wb"]) if meta.get("wb") else None
    return RawImage(mosaic=mosaic, cfa=cfa, black_level=black, white_level=white, wb=wb,
                    make=str(meta.get("make", "")), model=str(meta.get("model", "")),
                    path=str(path))


def _decode_pgm(path: Path, data: bytes, width: int, height: int) -> np.ndarray:
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
    w, h, maxval = (int(f) for f in fields[1:])
    if (w, h) != (width, height):
        raise RawFormatError(path, f"PGM is {w}x{h} but its sidecar says {width}x{height}")
    dtype = np.dtype(">u2" if maxval > 255 else np.uint8)  # PGM stores 16-bit samples MSB first
    expected = w * h * dtype.itemsize
    if len(data) - pos != expected:
        raise RawFormatError(path, f"PGM pixel data is {len(data) - pos} bytes, expected {expected}")
    return np.frombuffer(data, dtype=dtype, offset=pos).reshape(h, w).astype(np.uint16)


# ----------------------------------------------------------------------------- writing

@contextlib.contextmanager
def atomic_output(path):
    """Yield a temporary path next to `path`; rename it to `path` only if the block succeeds.

    A killed or failing writer therefore never leaves a half-written `path` behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _rational_pairs(values, denominator: int) -> tuple[int, ...]:
    return tuple(x for v in values for x in (int(round(float(v) * denominator)), denominator))


def _write_dng_file(path, raw: RawImage) -> None:
    import tifffile

    colour_code = {"R": 0, "G": 1, "B": 2}
    camera = raw.camera
    tags = [
        (33421, "H", 2, (2, 2), True),                                   # CFARepeatPatternDim
        (33422, "B", 4, bytes(colour_code[c] for c in raw.cfa), True),   # CFAPattern
        (50706, "B", 4, b"\x01\x04\x00\x00", True),                     # DNGVersion 1.4
        (50707, "B", 4, b"\x01\x01\x00\x00", True),                     # DNGBackwardVersion 1.1
        (50708, "s", 0, camera, True),                                   # UniqueCameraModel
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
    if raw.wb is not None:  # AsShotNeutral is the camera-space neutral: the inverse gains
        neutral = [raw.wb[1] / g for g in raw.wb]
        tags.append((50728, "2I", 3, _rational_pairs(neutral, 1000000), True))
    if raw.color_matrix is not None:
        matrix = np.asarray(raw.color_matrix, dtype=np.float64).ravel()
        tags.append((50721, "2i", 9, _rational_pairs(matrix, 1000000), True))  # ColorMatrix1
        tags.append((50778, "H", 1, int(raw.illuminant), True))  # CalibrationIlluminant1
    # A real file, not io.BytesIO: numpy's tofile into a BytesIO crashes on large arrays.
    tifffile.imwrite(path, np.ascontiguousarray(raw.mosaic, dtype=np.uint16),
                     photometric=32803, extratags=tags, metadata=None, software="rawdiffusion")


def write_dng(path, raw: RawImage) -> None:
    """Write `raw` as an uncompressed 16-bit Bayer DNG, atomically.

    Holds the CFA pattern, per-position black levels, white level, as-shot white balance
    (AsShotNeutral), the colour matrix when known (ColorMatrix1), make and model; rawpy reads
    back the identical mosaic, pattern and levels.
    """
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


def read_packed(path) -> np.ndarray:
    """Read a packed RAW written by `write_hdf5` or `write_npy`: (4, H, W) float32 in [0, 1]."""
    path = Path(path)
    if path.suffix.lower() in (".h5", ".hdf5"):
        import h5py

        with h5py.File(path, "r") as f:
            data = f["raw"][()]
    else:
        data = np.load(path)
    return (data.astype(np.float32) / 65535.0).transpose(2, 0, 1)


# ----------------------------------------------------------------------------- rendering

def render_srgb(raw: RawImage) -> np.ndarray:
    """Render `raw` to 8-bit sRGB with rawpy's default settings: (H, W, 3) uint8.

    The file itself is rendered when LibRaw can open it (so camera-specific handling applies);
    sidecar dumps are rendered from a temporary DNG of theirs. One deviation from the defaults: the
    file's orientation flag is ignored (user_flip=0) so the image stays pixel-aligned with the
    mosaic; LibRaw's default would mirror or rotate it (the GoPro DNGs here are mirrored).
    """
    import rawpy

    source = raw.path
    if source and Path(source).is_file() and not sidecar_path(source).is_file():
        with rawpy.imread(source) as r:
            rgb = r.postprocess(user_flip=0)
    else:
        with tempfile.TemporaryDirectory(prefix="rawdiffusion-") as tmp:
            _write_dng_file(Path(tmp) / "render.dng", raw)
            with rawpy.imread(str(Path(tmp) / "render.dng")) as r:
                rgb = r.postprocess(user_flip=0)
    if rgb.shape[:2] != raw.mosaic.shape:
        raise RawFormatError(raw.path, f"rendered image is {rgb.shape[1]}x{rgb.shape[0]}, the "
                                       f"mosaic {raw.mosaic.shape[1]}x{raw.mosaic.shape[0]}")
    return rgb
