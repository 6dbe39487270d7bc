"""How long the colour prior's least-squares fit takes (prior.fit_colour_map), the fit that
training runs before its first step for a network with a colour prior: anchored on the colour
matrix of the split's camera, as training and `baseline fit` anchor it.

    rawdiffusion prepare folder --raw-dir ../shared/data/raw/dng --out /tmp/gopro
    OMP_NUM_THREADS=1 python benchmarks/prior_fit.py /tmp/gopro [--kind poly3+curves+local]
        [--repeats 3] [--weights OUT.pt]

Prints the fit's summary and the wall time of each repeat (the first includes reading the
samples from disk into the page cache). --weights saves the fitted (terms x 4) weights, to
compare fits of two versions of the code on the same data.
"""

from __future__ import annotations

import argparse
import time

import torch

from rawdiffusion.camera import Camera
from rawdiffusion.datasets.layout import PreparedDataset
from rawdiffusion.prior import fit_colour_map


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", help="a prepared paired dataset folder")
    parser.add_argument("--kind", default="poly3+curves+local")
    parser.add_argument("--split", default="train")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--weights", help="save the fitted weights here (torch.save)")
    args = parser.parse_args()
    dataset = PreparedDataset(args.dataset)
    camera = Camera.from_images({i: e for i, e in dataset.images.items()
                                 if e.get("split") == args.split})
    for repeat in range(args.repeats):
        start = time.perf_counter()
        cmap, fit = fit_colour_map(dataset, args.split, args.kind, progress=False, camera=camera)
        print(f"fit {repeat + 1}: {time.perf_counter() - start:.2f} s  {fit}  "
              f"threads {torch.get_num_threads()}", flush=True)
    if args.weights:
        torch.save(cmap.weights, args.weights)


if __name__ == "__main__":
    main()
