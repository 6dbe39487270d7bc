"""The demo's photos through several checkpoints, side by side: docs/demo_before_after.png.

For each of `rawdiffusion demo`'s four photos (scikit-image's astronaut, coffee, chelsea and
rocket), one row: the photo, then for each checkpoint the DNG it generated as LibRaw renders
it with the camera's own metadata (rawpy's defaults, as `convert`'s figures). A checkpoint that
keeps colour gives back the photo's colours; the paper's model turned saturated colours grey.

    python benchmarks/demo_figure.py --checkpoint "paper model (first shipped)" PAPER.pt \\
        --checkpoint "colour prior (shipped)" rawdiffusion/assets/gopro_small.pt

(PAPER.pt: `git show d2de615:rawdiffusion/assets/gopro_small.pt > PAPER.pt`.) Each checkpoint's
demo outputs are kept in --work (a rerun reuses them, as the demo does).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from rawdiffusion.demo import PHOTOS, run_demo
from rawdiffusion.images import halve_area, read_rgb, write_png
from rawdiffusion.io import read_raw, render_srgb

REPO = Path(__file__).resolve().parents[1]
HEIGHT = 160  # pixels of each panel
GAP = 6


def panel(image: np.ndarray) -> np.ndarray:
    """An image scaled to HEIGHT rows, its aspect kept."""
    h, w = image.shape[:2]
    return np.asarray(Image.fromarray(image).resize((round(w * HEIGHT / h), HEIGHT),
                                                    Image.LANCZOS))


def heading(text: str, width: int) -> np.ndarray:
    """A strip of `width` pixels with `text` in Pillow's default font."""
    strip = Image.new("RGB", (width, 18), (32, 32, 32))
    ImageDraw.Draw(strip).text((4, 3), text, fill=(235, 235, 235))
    return np.asarray(strip)


def strip(cells: list[np.ndarray], widths: list[int]) -> np.ndarray:
    """Cells of equal height side by side, each padded to its column's width."""
    padded = [np.pad(c, ((0, 0), (0, w - c.shape[1]), (0, 0)), constant_values=32)
              for c, w in zip(cells, widths)]
    gap = np.full((padded[0].shape[0], GAP, 3), 32, np.uint8)
    return np.concatenate(sum(([c, gap] for c in padded), [])[:-1], axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", nargs=2, action="append", required=True,
                        metavar=("LABEL", "FILE"), help="a column: its heading and checkpoint")
    parser.add_argument("--work", type=Path, default=Path("/tmp/rawdiffusion_demo_figure"))
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "demo_before_after.png")
    args = parser.parse_args()
    from importlib import resources

    photos = resources.files("skimage") / "data"
    columns = [("photo", None)]
    for label, path in args.checkpoint:
        out = args.work / re.sub(r"[^A-Za-z0-9]+", "_", label).strip("_")
        run_demo(out, path)
        columns.append((label, out))
    rows = []
    for name in PHOTOS:
        stem = Path(name).stem
        with resources.as_file(photos / name) as source:
            cells = [panel(halve_area(read_rgb(source)))]
        cells += [panel(halve_area(render_srgb(read_raw(out / f"{stem}.dng"))))
                  for _, out in columns[1:]]
        rows.append(cells)
    widths = [max(row[c].shape[1] for row in rows) for c in range(len(columns))]
    top = strip([heading(label, w) for (label, _), w in zip(columns, widths)], widths)
    body = [strip(r, widths) for r in rows]
    sep = np.full((GAP, top.shape[1], 3), 32, np.uint8)
    write_png(args.out, np.concatenate([top] + sum(([sep, b] for b in body), [])))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
