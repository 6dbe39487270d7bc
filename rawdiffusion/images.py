"""Ordinary images: photos of any bit depth read as 8-bit sRGB, area resizing, and RAW previews
for people to look at."""

from __future__ import annotations

import contextlib
import threading
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from .atomic import atomic_output
from .errors import UserError
from .files import not_a_file, shown

# Float samples are read as [0, 1]: values beyond it by less than half an 8-bit code still
# round to 0 or 255 (no clipping); further out, they were meant on another scale.
FLOAT_SLACK = 0.5 / 255


def resize_area(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Area-interpolated resize of (H, W) or (H, W, C): each output pixel averages the input
    area it covers (PIL's BOX filter, which is OpenCV's INTER_AREA when shrinking). Integer
    input comes back rounded in its own dtype; float input as float32.
    """
    planes = np.moveaxis(np.atleast_3d(image), -1, 0)
    out = np.stack([np.asarray(Image.fromarray(p.astype(np.float32), mode="F")
                               .resize((width, height), Image.Resampling.BOX)) for p in planes],
                   axis=-1)
    if image.ndim == 2:
        out = out[..., 0]
    if image.dtype.kind in "ui":
        info = np.iinfo(image.dtype)
        return np.clip(np.round(out), info.min, info.max).astype(image.dtype)
    return out.astype(np.float32)


def halve_area(image: np.ndarray) -> np.ndarray:
    """(H, W, C) -> (H // 2, W // 2, C) by averaging 2x2 blocks (odd sizes cropped), rounding
    half up for integers: exactly OpenCV's INTER_AREA at scale 1/2."""
    h, w = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
    blocks = image[:h, :w].astype(np.uint32 if image.dtype.kind in "ui" else np.float64)
    total = blocks[0::2, 0::2] + blocks[0::2, 1::2] + blocks[1::2, 0::2] + blocks[1::2, 1::2]
    if image.dtype.kind in "ui":
        return ((total + 2) // 4).astype(image.dtype)
    return (total / 4).astype(image.dtype)


def read_rgb(path, max_pixels: int | None = None) -> np.ndarray:
    """Any image Pillow reads (JPEG, PNG, TIFF, ...) -> (H, W, 3) uint8 sRGB codes, turned as its
    EXIF orientation says (as viewers show it).

    Samples are scaled to 8 bits: 16-bit ones as round(v / 65535 * 255), floats as round(v *
    255), which must lie in [0, 1] (up to half a code: FLOAT_SLACK); greyscale gives three equal
    channels, alpha is dropped. TIFFs of more
    than 8 bits a sample are read with tifffile, as Pillow opens no float colour and keeps only
    the high byte of 16-bit colour; 16-bit colour PNGs (which only Pillow reads here) keep that
    high byte, at most one code from the rounded value. max_pixels: the largest width x height
    read (default Pillow's Image.MAX_IMAGE_PIXELS, about 89 MP). Raises PhotoError, naming the
    file and the reason: also for a path that is no regular file (a FIFO, a device, a
    directory, a symlink loop: it is not opened) and float samples that are NaN, infinite or
    outside [0, 1] (a photo scaled 0..255, say).
    """
    path = Path(path)
    problem = not_a_file(path, "photo")
    if problem:
        raise PhotoError(path, problem)
    limit = Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    return _turned(*(_read_tiff if _wide_tiff(path) else _read_pillow)(path, limit))


def image_rgb(image: Image.Image, name: str = "photo") -> np.ndarray:
    """A Pillow image as read_rgb reads a file of it: (H, W, 3) uint8 sRGB codes, turned as
    its EXIF orientation says, 16-bit and float samples scaled to 8 bits. PhotoError naming
    `name` for samples it cannot scale."""
    return _turned(*_pillow_rgb(name, image))


def _turned(rgb: np.ndarray, orientation: int) -> np.ndarray:
    """rgb turned as the EXIF orientation code says (ImageOps.exif_transpose's table)."""
    method = _TRANSPOSE.get(orientation)
    return rgb if method is None else np.asarray(Image.fromarray(rgb).transpose(method))


def check_guide(guide) -> None:
    """An RGB guide is (h, w, 3) uint8 with h, w >= 1: ValueError (a caller's mistake) saying
    what it got otherwise."""
    shape, dtype = np.shape(guide), getattr(guide, "dtype", None)
    if len(shape) != 3 or shape[-1] != 3 or min(shape) < 1 or dtype != np.uint8:
        raise ValueError(f"expected an RGB guide (h, w, 3) uint8, got shape {shape} dtype {dtype}")


class PhotoError(UserError, ValueError):
    """A photo that cannot be read: one line naming the file and the reason."""

    def __init__(self, path, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"{shown(path)}: {reason}")


_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
              4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
              6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}
_ORIENTATION = 0x0112  # the EXIF (and TIFF) tag
_PILLOW_LIMIT = threading.Lock()


@contextlib.contextmanager
def _decoding(path):
    """What the decoders raise for a file they cannot read, as one PhotoError."""
    try:
        yield
    except PhotoError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as e:
        raise PhotoError(path, f"not a readable image ({type(e).__name__}: {e})") from None


def _check_size(path, width: int, height: int, limit: int | None) -> None:
    if limit is not None and width * height > limit:
        raise PhotoError(path, f"{width}x{height} is {width * height} pixels, over the limit of "
                               f"{limit} (convert --max-pixels raises it)")


def _open_unlimited(path) -> Image.Image:
    """Image.open without Pillow's own size check, which ends in a DecompressionBombError at
    twice its limit, whatever the caller allows; read_rgb checks the size itself."""
    with _PILLOW_LIMIT, warnings.catch_warnings():  # the lock: threads share Pillow's limit
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            return Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _read_pillow(path: Path, limit: int | None) -> tuple[np.ndarray, int]:
    with _decoding(path):
        im = _open_unlimited(path)
    with im:
        _check_size(path, *im.size, limit)
        return _pillow_rgb(path, im)


def _pillow_rgb(path, im: Image.Image) -> tuple[np.ndarray, int]:
    """An opened image's 8-bit RGB and its EXIF orientation code."""
    with _decoding(path):
        orientation = im.getexif().get(_ORIENTATION, 1)
        im.load()
        if not (im.mode in ("I", "F") or im.mode.startswith("I;16")):
            return np.asarray(im.convert("RGB")), orientation  # 8-bit, palette, alpha, ...
    return _grey(path, np.asarray(im), 65535), orientation  # 16-bit grey or float


def _grey(path, plane: np.ndarray, maximum: int) -> np.ndarray:
    """(H, W) samples in [0, maximum] (integers) or [0, 1] (floats) -> (H, W, 3) uint8."""
    return np.repeat(_eight_bit(path, plane, maximum)[..., None], 3, axis=-1)


def _eight_bit(path, samples: np.ndarray, maximum: int) -> np.ndarray:
    if samples.dtype.kind == "f":
        _check_floats(path, samples)
        return np.round(np.clip(samples, 0, 1) * 255).astype(np.uint8)
    if samples.min(initial=0) < 0 or samples.max(initial=0) > maximum:
        # Pillow's 32-bit "I" images (PNM of more than 8 bits) hold 0..65535, TIFFs go to tifffile
        raise PhotoError(path, f"{samples.dtype} samples outside 0..{maximum}: range unknown")
    # float32, a quarter of float64's memory, rounds 16-bit samples exactly: v / 257 is never
    # within 1/514 of a half
    return np.round(samples.astype(np.float32) * np.float32(255 / maximum)).astype(np.uint8)


def _check_floats(path, samples: np.ndarray) -> None:
    """PhotoError for float samples that are not all finite numbers in [0, 1] (FLOAT_SLACK)."""
    if np.isnan(samples).any():
        raise PhotoError(path, "float samples that are NaN")
    if np.isinf(samples).any():
        raise PhotoError(path, "float samples that are infinite")
    low, high = float(samples.min(initial=0)), float(samples.max(initial=0))
    if low < -FLOAT_SLACK or high > 1 + FLOAT_SLACK:
        raise PhotoError(path, f"float samples from {low:g} to {high:g}: float photos are read "
                               "as [0, 1] (0 black, 1 white); scale it to that range")


def _wide_tiff(path: Path) -> bool:
    """A TIFF of more than 8 bits a sample (read with tifffile); False for anything else."""
    import tifffile  # when used: 0.4 s, for TIFFs of more than 8 bits only

    with _decoding(path):
        with open(path, "rb") as f:
            if f.read(4) not in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):
                return False
        with tifffile.TiffFile(path) as tif:
            return tif.pages.first.bitspersample > 8


def _read_tiff(path: Path, limit: int | None) -> tuple[np.ndarray, int]:
    import tifffile  # when used: 0.4 s, for TIFFs of more than 8 bits only

    with _decoding(path), tifffile.TiffFile(path) as tif:
        page = tif.pages.first
        _check_size(path, page.imagewidth, page.imagelength, limit)
        tag = page.tags.get(_ORIENTATION)
        photometric, bits, axes = page.photometric, page.bitspersample, page.axes
        samples = page.asarray()
    if axes.startswith("S"):  # planar: one plane per sample
        samples = np.moveaxis(samples, 0, -1)
    if samples.dtype.kind not in "uf":
        raise PhotoError(path, f"TIFF of {samples.dtype} samples: range unknown")
    maximum = 2 ** bits - 1
    if photometric == tifffile.PHOTOMETRIC.RGB:
        rgb = _eight_bit(path, samples[..., :3], maximum)
    elif photometric in (tifffile.PHOTOMETRIC.MINISBLACK, tifffile.PHOTOMETRIC.MINISWHITE):
        rgb = _grey(path, samples if samples.ndim == 2 else samples[..., 0], maximum)
        if photometric == tifffile.PHOTOMETRIC.MINISWHITE:
            rgb = 255 - rgb
    else:
        raise PhotoError(path, f"{bits}-bit TIFF of photometric {photometric.name}: not read")
    return rgb, 1 if tag is None else tag.value


def write_png(path, image: np.ndarray) -> None:
    """Write an (H, W) or (H, W, 3) uint8 image as PNG, atomically."""
    with atomic_output(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")


def raw_preview(x: np.ndarray, gamma: float = 1 / 5) -> np.ndarray:
    """Packed RAW (4, h, w) in [0, 1] -> (h, w, 3) uint8 for viewing: greens averaged, no white
    balance, the reference's gamma 1/5 (brightens dark linear data). For looking, not metrics."""
    rgb = np.stack([x[0], (x[1] + x[2]) / 2, x[3]], axis=-1)
    return np.round(np.clip(rgb, 0, 1) ** gamma * 255).astype(np.uint8)
