"""How bright the demo's DNGs look against their photos, as LibRaw renders them with its
defaults and as the figures render them (auto-brightness off: figures.render_for_comparison).

    python benchmarks/demo_brightness.py demo_out [--raw ../shared/data/raw/dng/*.dng]

For each photo of `rawdiffusion demo` (its DNG in demo_out), the ratio of the rendering's mean
to the photo's: in 8-bit code and in linear luminance (Rec. 709 weights on the sRGB values
linearised with IEC 61966-2-1). A faithful RAW gives 1. With --raw, also the gain LibRaw's
auto-brightness gives each RAW file (mean of the default rendering over the one with
auto-brightness off): the training files' gain is the exposure a model learnt its guides at.
"""

from __future__ import annotations

import argparse
from importlib import resources
from pathlib import Path

import colour
import numpy as np

from rawdiffusion.demo import PHOTOS
from rawdiffusion.figures import COMPARISON_RENDERING
from rawdiffusion.images import read_rgb
from rawdiffusion.io import read_raw, render_srgb

REC709 = np.array([0.2126, 0.7152, 0.0722])


def means(rgb: np.ndarray) -> tuple[float, float]:
    """(mean 8-bit code, mean linear luminance) of an (H, W, 3) uint8 sRGB image."""
    linear = colour.models.eotf_sRGB(rgb.astype(np.float64) / 255)
    return float(rgb.mean()), float((linear @ REC709).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("demo_out", type=Path, help="the folder `rawdiffusion demo` wrote")
    parser.add_argument("--raw", type=Path, nargs="*", default=[],
                        help="RAW files whose auto-brightness gain to print")
    args = parser.parse_args()
    print("| photo | LibRaw defaults: code / luminance | auto-brightness off: code / luminance |")
    print("| --- | --- | --- |")
    for name in PHOTOS:
        with resources.as_file(resources.files("skimage") / "data" / name) as path:
            photo = read_rgb(path)
        raw = read_raw(args.demo_out / f"{Path(name).stem}.dng")
        cells = []
        for settings in ({}, COMPARISON_RENDERING):
            rendered = render_srgb(raw, **settings)
            ours = means(rendered)
            theirs = means(photo[:rendered.shape[0], :rendered.shape[1]])
            cells.append(f"{ours[0] / theirs[0]:.3f} / {ours[1] / theirs[1]:.3f}")
        print(f"| {name} | {cells[0]} | {cells[1]} |")
    for path in args.raw:
        raw = read_raw(path)
        gain = render_srgb(raw).mean() / render_srgb(raw, **COMPARISON_RENDERING).mean()
        print(f"{path}: LibRaw's auto-brightness gain {gain:.3f} (in mean 8-bit code)")


if __name__ == "__main__":
    main()
