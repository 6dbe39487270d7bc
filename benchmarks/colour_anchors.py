"""How much weight the colour prior's anchors get: accuracy against saturated colours.

    python benchmarks/colour_anchors.py [--data /tmp/rawdiffusion_quality/gopro]
                                        [--weights 0 0.001 0.003 0.01 0.03 0.1 0.3]
                                        [--out benchmarks/results]

The default prior (poly3+curves+local, greens tied) is fitted on the GoPro DNGs of
../shared/data/raw/dng as `rawdiffusion prepare folder` splits them (prepared into --data when
it is not there yet) with each anchor weight (anchors.ANCHOR_WEIGHT: the anchors' share of the
fitted pixels' weight; 0: no anchors), and measured
- held out, image by image: fitted on one training image and evaluated on the other, both
  ways (the two training DNGs, HERO6 and Fusion front), then fitted on both and evaluated on
  the test image (Fusion back): the paper's 3-channel PSNR and the angular error (degrees)
  over each held-out image's patches, from LibRaw's default rendering (the training guides');
- on the saturated chart (chart.chart_report: eight saturated sRGB patches through the map,
  written as the camera's DNG and rendered back by LibRaw with its metadata): the largest and
  the mean absolute CIELAB hue error, degrees, of the fit on both training images.

The anchor weight is chosen on the held-out training folds and the chart; the test image's
figures are reported beside them, not chosen on. Writes <out>/colour_anchors.md and .json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "raw" / "dng"
KIND = "poly3+curves+local"


def prepared(data: Path):
    """The prepared GoPro dataset at `data` (prepared there first when missing)."""
    from rawdiffusion.datasets.layout import PreparedDataset

    if not (data / "dataset.json").is_file():
        subprocess.run([sys.executable, "-m", "rawdiffusion.cli", "prepare", "folder",
                        "--raw-dir", str(SHARED), "--out", str(data)], check=True)
    return PreparedDataset(data)


def held_out(dataset, cmap, image_id: str) -> tuple[float, float]:
    """Mean 3-channel PSNR (dB) and angular error (degrees) of the map over the patches of
    one image."""
    from rawdiffusion.bayer import normalise
    from rawdiffusion.metrics import raw_metrics

    psnr, angle = [], []
    for sample_id in dataset.images[image_id]["samples"]:
        s = dataset.load(sample_id)
        guide = torch.from_numpy(s.rgb).permute(2, 0, 1)[None]
        with torch.no_grad():
            pred = cmap(guide).float()
        target = torch.from_numpy(normalise(s.raw, s.black, s.white))[None]
        m = raw_metrics(pred, target)
        psnr.append(m["psnr"].item())
        angle.append(m["angular_error"].item())
    return float(np.mean(psnr)), float(np.mean(angle))


def fitted(dataset, images: list[str]):
    """The default prior fitted on the samples of `images`, anchored on their camera."""
    from rawdiffusion.camera import Camera
    from rawdiffusion.prior import fit_colour_map

    entries = {i: dataset.images[i] for i in images}
    ids = [s for i in images for s in dataset.images[i]["samples"]]
    camera = Camera.from_images(entries)
    cmap, _ = fit_colour_map(dataset, "train", KIND, progress=False, ids=ids, camera=camera)
    return cmap, camera


def chart_hues(cmap, camera) -> tuple[float, float, float]:
    """Largest and mean |hue error| (degrees) on the saturated chart, largest G1/G2
    disagreement (% of white)."""
    from rawdiffusion.baselines import Baseline
    from rawdiffusion.chart import chart_report

    rows = chart_report(Baseline(KIND, camera, "benchmark", colour_map=cmap))
    hues = [abs(r["hue_error"]) for r in rows]
    return max(hues), float(np.mean(hues)), 100 * max(r["green_disagreement"] for r in rows)


def measure(dataset, weight: float) -> dict:
    """Every figure of one anchor weight."""
    from rawdiffusion import prior

    prior.ANCHOR_WEIGHT = weight  # read by fit_colour_map at each fit; 0: the unanchored fit
    train = sorted({dataset.image_of(s) for s in dataset.split("train")})
    test = sorted({dataset.image_of(s) for s in dataset.split("test")})
    row = {"weight": weight, "folds": {}}
    for fit_on, held in ((train[0], train[1]), (train[1], train[0])):
        row["folds"][f"{fit_on} -> {held}"] = held_out(dataset, fitted(dataset, [fit_on])[0],
                                                        held)
    cmap, camera = fitted(dataset, train)
    row["test"] = {t: held_out(dataset, cmap, t) for t in test}
    row["chart_max_hue"], row["chart_mean_hue"], row["chart_g1g2"] = chart_hues(cmap, camera)
    return row


def write(rows: list[dict], out: Path, args) -> None:
    folds = list(rows[0]["folds"])
    tests = list(rows[0]["test"])
    head = ["anchor weight"] + [f"held out: {f} PSNR / angle" for f in folds] + \
        [f"test: {t} PSNR / angle" for t in tests] + \
        ["chart: largest / mean hue error (deg)", "chart: largest G1/G2 (% of white)"]
    lines = ["# The colour prior's anchors: weight against saturated colours", "",
             "Made by `python benchmarks/colour_anchors.py` (its docstring says how); "
             f"{KIND}, greens tied; weight 0: no anchors.", "",
             "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        cells = [f"{r['weight']:g}"] + [f"{p:.2f} / {a:.2f}" for p, a in r["folds"].values()] + \
            [f"{p:.2f} / {a:.2f}" for p, a in r["test"].values()] + \
            [f"{r['chart_max_hue']:.1f} / {r['chart_mean_hue']:.1f}", f"{r['chart_g1g2']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    out.mkdir(parents=True, exist_ok=True)
    (out / "colour_anchors.md").write_text("\n".join(lines) + "\n")
    (out / "colour_anchors.json").write_text(json.dumps(
        {"command": " ".join(sys.argv), "data": str(args.data), "rows": rows}, indent=1) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("/tmp/rawdiffusion_quality/gopro"))
    parser.add_argument("--weights", type=float, nargs="+",
                        default=[0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"error: {SHARED}: the shared GoPro DNGs are not there")
    dataset = prepared(args.data)
    rows = []
    for weight in args.weights:
        rows.append(measure(dataset, weight))
        print(f"weight {weight:g}: {rows[-1]}", flush=True)
    write(rows, args.out, args)


if __name__ == "__main__":
    main()
