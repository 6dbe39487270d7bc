"""`rawdiffusion demo`: the main job on data the project makes itself, on CPU, in seconds.

1. Makes four Bayer DNGs (one per Bayer order) from photos that scikit-image ships, by a
   simple inverse camera pipeline (inverse sRGB curve, inverse white balance, mosaic, 12-bit
   with a black level, shot noise). They are synthetic, not any real camera's.
2. Describes them as `rawdiffusion info` does (info.jsonl).
3. Prepares them into a paired training dataset as `rawdiffusion prepare folder` does.
4. Draws overview.png: for each file, the photo, the DNG as LibRaw renders it, the packed RAW
   (greens averaged, gamma 1/5), and one prepared RGB/RAW patch pair.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from . import bayer
from .datasets.paired import prepare_folder
from .images import raw_preview, read_rgb, write_png
from .io import CFA_ORDERS, RawImage, read_raw, render_srgb, write_dng

PHOTOS = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg")
WB = (2.1, 1.0, 1.6)  # the demo camera's as-shot gains R, G, B
BLACK, WHITE = 64, 4095


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] -> linear light (IEC 61966-2-1)."""
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def synthetic_raw(rgb: np.ndarray, cfa: str, seed: int) -> RawImage:
    """(H, W, 3) uint8 sRGB -> a 12-bit Bayer RawImage of order `cfa` (inverse pipeline)."""
    h, w = rgb.shape[0] // 2 * 2, rgb.shape[1] // 2 * 2
    linear = srgb_to_linear(rgb[:h, :w].astype(np.float64) / 255) / np.array(WB)
    channel = {"R": 0, "G": 1, "B": 2}
    mosaic = np.empty((h, w))
    for i, letter in enumerate(cfa):
        dy, dx = divmod(i, 2)
        mosaic[dy::2, dx::2] = linear[dy::2, dx::2, channel[letter]]
    electrons = np.random.default_rng(seed).poisson(mosaic * 2000) / 2000  # shot noise
    digital = np.clip(electrons * (WHITE - BLACK) + BLACK, 0, WHITE)
    return RawImage(mosaic=np.round(digital).astype(np.uint16), cfa=cfa, black_level=BLACK,
                    white_level=WHITE, wb=WB, make="rawdiffusion", model="demo camera")


def _labelled(image: np.ndarray, text: str, height: int = 160) -> Image.Image:
    im = Image.fromarray(image)
    im = im.resize((max(1, round(im.width * height / im.height)), height), Image.Resampling.BOX)
    ImageDraw.Draw(im).text((4, 4), text, fill=(255, 255, 0))
    return im


def _sheet(rows: list[list[Image.Image]]) -> Image.Image:
    gap = 4
    width = max(sum(im.width for im in row) + gap * (len(row) - 1) for row in rows)
    height = sum(row[0].height for row in rows) + gap * (len(rows) - 1)
    sheet = Image.new("RGB", (width, height), (32, 32, 32))
    y = 0
    for row in rows:
        x = 0
        for im in row:
            sheet.paste(im, (x, y))
            x += im.width + gap
        y += row[0].height + gap
    return sheet


def run_demo(out) -> int:
    out = Path(out)
    raw_dir = out / "raw"
    photos = resources.files("skimage") / "data"
    originals = {}
    for i, (name, cfa) in enumerate(zip(PHOTOS, CFA_ORDERS)):
        with resources.as_file(photos / name) as path:
            originals[cfa] = read_rgb(path)
        write_dng(raw_dir / f"{Path(name).stem}_{cfa.lower()}.dng",
                  synthetic_raw(originals[cfa], cfa, seed=i))
    print(f"wrote {len(PHOTOS)} synthetic Bayer DNGs to {raw_dir}")

    raws = {p: read_raw(p) for p in sorted(raw_dir.glob("*.dng"))}
    (out / "info.jsonl").write_text("".join(json.dumps(r.info()) + "\n" for r in raws.values()))
    print(f"described them in {out / 'info.jsonl'}")

    description, failures = prepare_folder(raw_dir, out / "dataset", name="demo",
                                           test_fraction=0.25, grid=2)
    print(f"prepared {sum(description['splits'].values())} images into {out / 'dataset'} "
          f"({', '.join(f'{n} {s}' for s, n in description['splits'].items())})")

    rows = []
    for path, raw in raws.items():
        packed = bayer.pack(raw.mosaic, raw.cfa)
        levels = bayer.packed_levels(raw.black_level, raw.cfa)
        x = bayer.normalise(packed, levels, raw.white_level)
        image_id = path.stem
        sample = description["images"][image_id]["samples"][0]
        patch_rgb = read_rgb(out / "dataset" / "rgb" / f"{sample}.png")
        patch_raw = bayer.normalise(np.load(out / "dataset" / "raw" / f"{sample}.npy"),
                                    levels, raw.white_level)
        rows.append([_labelled(originals[raw.cfa], f"photo -> {raw.cfa}"),
                     _labelled(render_srgb(raw), "DNG rendered by LibRaw"),
                     _labelled(raw_preview(x), "packed RAW (gamma 1/5)"),
                     _labelled(patch_rgb, "guide patch"),
                     _labelled(raw_preview(patch_raw), "RAW patch")])
    overview = out / "overview.png"
    write_png(overview, np.asarray(_sheet(rows)))
    print(f"drew {overview}")
    return 1 if failures else 0
