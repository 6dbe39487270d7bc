"""Whether the demo's DNGs carry a maze pattern: how far their two greens disagree.

    python benchmarks/demo_greens.py demo_out [other_demo_out ...]

For each folder `rawdiffusion demo` wrote (its DNGs), per photo: |G1 - G2| of each 2 x 2 Bayer
cell in % of white (black level 0, white level 100): its mean, its 99th percentile, the share
of cells above 2 %, and its mean over the flat cells (those whose 3 x 3 neighbourhood of
(G1 + G2) / 2 spans less than 1 % of white). On a real sensor G1 and G2 sit behind the same
filter, so they differ by noise and, at edges, by the half-pixel offset of their sites; a
generator that gives them different colour responses draws a maze over flat saturated areas
(issue 20, item 4), which the flat cells' figure shows.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy.ndimage import maximum_filter, minimum_filter

from rawdiffusion.bayer import normalise, pack, packed_levels
from rawdiffusion.demo import PHOTOS
from rawdiffusion.io import read_raw


def greens(x: np.ndarray) -> tuple[float, float, float, float]:
    """Of packed RAW x (4, h, w) in [0, 1]: mean and 99th percentile of |G1 - G2| in % of
    white, % of cells above 2 % of white, and the mean over the flat cells."""
    d = 100 * np.abs(x[1] - x[2])
    g = 100 * (x[1] + x[2]) / 2
    flat = maximum_filter(g, 3) - minimum_filter(g, 3) < 1
    return (float(d.mean()), float(np.percentile(d, 99)), float(100 * (d > 2).mean()),
            float(d[flat].mean()) if flat.any() else float("nan"))


def packed_of(path: Path) -> np.ndarray:
    """The DNG at `path` as packed RAW (4, h, w) in [0, 1]."""
    raw = read_raw(path)
    return normalise(pack(raw.mosaic, raw.cfa), packed_levels(raw.black_level, raw.cfa),
                     raw.white_level)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("demo_out", type=Path, nargs="+",
                        help="folders `rawdiffusion demo` wrote (--out)")
    args = parser.parse_args()
    print("| demo output | photo | mean |G1 - G2| (% of white) | 99th percentile | "
          "% of cells above 2 % | mean in flat cells |")
    print("| --- | --- | --- | --- | --- | --- |")
    for folder in args.demo_out:
        for name in PHOTOS:
            mean, p99, above, flat = greens(packed_of(folder / f"{Path(name).stem}.dng"))
            print(f"| {folder} | {Path(name).stem} | {mean:.3f} | {p99:.2f} | {above:.2f} | "
                  f"{flat:.3f} |")


if __name__ == "__main__":
    main()
