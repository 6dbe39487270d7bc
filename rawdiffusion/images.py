"""Ordinary images: 8-bit files, area resizing and RAW previews for people to look at."""

from __future__ import annotations


import numpy as np
from PIL import Image

from .io import atomic_output


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


def read_rgb(path) -> np.ndarray:
    """Any image PIL reads (JPEG, PNG, TIFF, ...) -> (H, W, 3) uint8."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def write_png(path, image: np.ndarray) -> None:
    """Write an (H, W) or (H, W, 3) uint8 image as PNG, atomically."""
    with atomic_output(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")


def raw_preview(x: np.ndarray, gamma: float = 1 / 5) -> np.ndarray:
    """Packed RAW (4, h, w) in [0, 1] -> (h, w, 3) uint8 for viewing: greens averaged, no white
    balance, the reference's gamma 1/5 (brightens dark linear data). For looking, not metrics."""
    rgb = np.stack([x[0], (x[1] + x[2]) / 2, x[3]], axis=-1)
    return np.round(np.clip(rgb, 0, 1) ** gamma * 255).astype(np.uint8)
