"""Whether the demo's DNGs carry a maze pattern: how far their two greens disagree.

    python benchmarks/demo_greens.py demo_out [other_demo_out ...] \
        [--prepared DATASET --checkpoint FILE ...]

For each folder `rawdiffusion demo` wrote (its DNGs), per photo: |G1 - G2| of each 2 x 2 Bayer
cell in % of white (black level 0, white level 100): its mean, its 99th percentile, the share
of cells above 2 %, and its mean over the flat cells (those whose 3 x 3 neighbourhood of
(G1 + G2) / 2 spans less than 1 % of white). On a real sensor G1 and G2 sit behind the same
filter, so they differ by noise and, at edges, by the half-pixel offset of their sites; a
generator that gives them different colour responses draws a maze over flat saturated areas
(issue 20, item 4), which the flat cells' figure shows. With --prepared (a dataset `rawdiffusion
prepare` made of real RAW), the same over its test patches, real and as each --checkpoint
generates them from their guides (1 step, convert's seeds): how far a real sensor's greens
differ in the same scenes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy.ndimage import maximum_filter, minimum_filter

from rawdiffusion.bayer import normalise, pack, packed_levels
from rawdiffusion.datasets.layout import PreparedDataset
from rawdiffusion.demo import PHOTOS
from rawdiffusion.diffusion import derived_seed
from rawdiffusion.io import read_raw
from rawdiffusion.loading import load


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


def test_patches(root: Path, checkpoints: list[Path]) -> dict[str, np.ndarray]:
    """{"real" or checkpoint: greens() averaged over the test patches of dataset `root`}."""
    dataset = PreparedDataset(root)
    gens = {str(c): load(c, device="cpu", steps=1) for c in checkpoints}
    rows = {"real": []}
    for k, sample_id in enumerate(dataset.split("test")):
        s = dataset.load(sample_id)
        rows["real"].append(greens(normalise(s.raw, s.black, s.white)))
        for name, gen in gens.items():
            x = gen.generate_from_guide(s.rgb, seed=derived_seed(0, k))
            rows.setdefault(name, []).append(greens(x))
    return {k: np.nanmean(v, axis=0) for k, v in rows.items()}


def row(label: str, photo: str, figures) -> str:
    mean, p99, above, flat = figures
    return f"| {label} | {photo} | {mean:.3f} | {p99:.2f} | {above:.2f} | {flat:.3f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("demo_out", type=Path, nargs="+",
                        help="folders `rawdiffusion demo` wrote (--out)")
    parser.add_argument("--prepared", type=Path, help="a prepared dataset of real RAW")
    parser.add_argument("--checkpoint", type=Path, nargs="*", default=[],
                        help="checkpoints or baseline files to generate its test patches with")
    args = parser.parse_args()
    print("| demo output | photo | mean |G1 - G2| (% of white) | 99th percentile | "
          "% of cells above 2 % | mean in flat cells |")
    print("| --- | --- | --- | --- | --- | --- |")
    for folder in args.demo_out:
        for name in PHOTOS:
            print(row(str(folder), Path(name).stem,
                      greens(packed_of(folder / f"{Path(name).stem}.dng"))))
    if args.prepared:
        for label, figures in test_patches(args.prepared, args.checkpoint).items():
            print(row(label, f"{args.prepared.name} test patches", figures))


if __name__ == "__main__":
    main()
