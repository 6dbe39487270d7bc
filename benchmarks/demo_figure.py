"""The demo's photos through several checkpoints, side by side: docs/demo_before_after.png.

For each of `rawdiffusion demo`'s four photos (scikit-image's astronaut, coffee, chelsea and
rocket), one row: the photo, then for each checkpoint the DNG it generated as LibRaw renders
it with the camera's own metadata and auto-brightness off, as `convert`'s figures do
(figures.render_for_comparison), under labels that say so. A checkpoint that keeps colour
gives back the photo's colours; the paper's model turned saturated colours grey.

    python benchmarks/demo_figure.py --checkpoint "paper model (first shipped)" PAPER.pt \\
        --checkpoint "colour prior (shipped)" rawdiffusion/assets/gopro_small.pt

(PAPER.pt: `git show d2de615:rawdiffusion/assets/gopro_small.pt > PAPER.pt`.) Each checkpoint's
demo outputs are kept in --work (a rerun reuses them, as the demo does).
"""

from __future__ import annotations

import argparse
import re
from importlib import resources
from pathlib import Path

from rawdiffusion.demo import PHOTOS, run_demo
from rawdiffusion.figures import PHOTO, RENDERED, render_for_comparison, table
from rawdiffusion.images import halve_area, read_rgb, write_png

REPO = Path(__file__).resolve().parents[1]
HEIGHT = 160  # pixels of each image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", nargs=2, action="append", required=True,
                        metavar=("LABEL", "FILE"), help="a column: its heading and checkpoint")
    parser.add_argument("--work", type=Path, default=Path("/tmp/rawdiffusion_demo_figure"))
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "demo_before_after.png")
    args = parser.parse_args()
    photos = resources.files("skimage") / "data"
    labels, outs = [PHOTO], []
    for label, path in args.checkpoint:
        out = args.work / re.sub(r"[^A-Za-z0-9]+", "_", label).strip("_")
        run_demo(out, path)
        labels.append(f"{label}: {RENDERED}")
        outs.append(out)
    rows = []
    for name in PHOTOS:
        with resources.as_file(photos / name) as source:
            row = [halve_area(read_rgb(source))]
        rows.append(row + [halve_area(render_for_comparison(out / f"{Path(name).stem}.dng"))
                           for out in outs])
    write_png(args.out, table(rows, labels, HEIGHT))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
