"""Figures for people to look at: images side by side under column labels, and the rendering
of a generated DNG that is compared with its photo (convert --figure, the demo's overview,
benchmarks/demo_figure.py).

Labels are drawn with Pillow's default font (ImageFont.load_default: no font file), each
wrapped to its column's width, in a band above the images.

The comparison's rendering. LibRaw's default rendering (rawpy.postprocess(), which `prepare`
makes the training guides with) scales every image by its own auto-brightness: so that 1 %
of its pixels clip (LibRaw's auto_bright_thr, 0.01). A generated RAW of a photo whose
brightest 1 % is not white (the demo's cat and rocket) is brightened by it, by 29 % and 25 %
in mean 8-bit code against the photo. The figures render with auto-brightness off
(no_auto_bright: LibRaw's scale 1), the exposure at which the shipped model's training guides
were rendered: each of its three GoPro files clips more than 1 % of its pixels, so LibRaw's
auto-brightness left its scale at 1. A faithful RAW then looks like its photo (the demo's four
photos: within 2 % in mean code). A model trained on guides that auto-brightness brightened
generates RAW that this rendering shows darker by that gain, as its RAW is.
"""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .io import read_raw, render_srgb

COMPARISON_RENDERING = {"no_auto_bright": True}  # rawpy.postprocess settings (module docstring)
PHOTO = "photo"
RENDERED = ("the DNG as LibRaw renders it (the camera's white balance and colours, "
            "auto-brightness off)")
RAW_DATA = ("the RAW data itself, as the sensor records it: no white balance, gamma 1/5 "
            "(pale green is normal)")
BACKGROUND = 32  # grey level of the bands and gaps
TEXT = (235, 235, 235)
FONT_SIZE = 12
GAP = 8  # pixels between images
PAD = 4  # pixels around a label's text


def render_for_comparison(dng) -> np.ndarray:
    """The DNG file `dng` rendered by LibRaw as the figures show it: (H, W, 3) uint8 sRGB,
    LibRaw's defaults with auto-brightness off (COMPARISON_RENDERING, module docstring).
    io.RawFormatError naming the file when LibRaw cannot read or render it."""
    return render_srgb(read_raw(dng), **COMPARISON_RENDERING)


@functools.cache
def font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's default font at FONT_SIZE pixels (no font file)."""
    return ImageFont.load_default(FONT_SIZE)


def wrapped(text: str, width: int) -> list[str]:
    """`text` broken between words into lines no wider than `width` pixels in font() (a word
    wider than that alone on its line)."""
    draw = ImageDraw.Draw(Image.new("L", (1, 1)))
    lines: list[str] = []
    for word in text.split():
        if lines and draw.textlength(f"{lines[-1]} {word}", font=font()) <= width:
            lines[-1] += f" {word}"
        else:
            lines.append(word)
    return lines


def label_band(labels: list[str], widths: list[int], gap: int = GAP) -> np.ndarray:
    """A band of labels over columns `widths` pixels wide and `gap` apart: (h, total width, 3)
    uint8, each label wrapped to its column, h fitting the longest."""
    line_height = sum(font().getmetrics()) + 2
    texts = [wrapped(label, w - 2 * PAD) for label, w in zip(labels, widths)]
    height = max(len(t) for t in texts) * line_height + 2 * PAD
    band = Image.new("RGB", (sum(widths) + gap * (len(widths) - 1), height), (BACKGROUND,) * 3)
    draw = ImageDraw.Draw(band)
    left = 0
    for lines, w in zip(texts, widths):
        draw.multiline_text((left + PAD, PAD), "\n".join(lines), fill=TEXT, font=font(),
                            spacing=line_height - sum(font().getmetrics()))
        left += w + gap
    return np.asarray(band)


def side_by_side(cells: list[np.ndarray], widths: list[int] | None = None,
                 gap: int = GAP) -> np.ndarray:
    """(h, w_i, 3) uint8 images of one height side by side, `gap` apart, each padded on its
    right to its column's width (widths; default its own)."""
    widths = widths or [c.shape[1] for c in cells]
    padded = [np.pad(c, ((0, 0), (0, w - c.shape[1]), (0, 0)), constant_values=BACKGROUND)
              for c, w in zip(cells, widths)]
    space = np.full((padded[0].shape[0], gap, 3), BACKGROUND, np.uint8)
    return np.concatenate(sum(([c, space] for c in padded), [])[:-1], axis=1)


def labelled(cells: list[np.ndarray], labels: list[str], gap: int = GAP) -> np.ndarray:
    """Images of one height side by side under their labels (label_band)."""
    widths = [c.shape[1] for c in cells]
    return np.concatenate([label_band(labels, widths, gap), side_by_side(cells, widths, gap)])


def scaled(image: np.ndarray, height: int) -> np.ndarray:
    """`image` resized (Lanczos) to `height` rows, its aspect ratio kept."""
    h, w = image.shape[:2]
    return np.asarray(Image.fromarray(image).resize((round(w * height / h), height),
                                                    Image.LANCZOS))


def table(rows: list[list[np.ndarray]], labels: list[str], height: int,
          gap: int = GAP) -> np.ndarray:
    """Rows of images, each scaled to `height` rows, in columns as wide as their widest image,
    under one band of column labels: (H, W, 3) uint8."""
    rows = [[scaled(cell, height) for cell in row] for row in rows]
    widths = [max(row[c].shape[1] for row in rows) for c in range(len(labels))]
    parts = [label_band(labels, widths, gap)]
    for row in rows:
        parts += [np.full((gap, parts[0].shape[1], 3), BACKGROUND, np.uint8),
                  side_by_side(row, widths, gap)]
    return np.concatenate(parts)
