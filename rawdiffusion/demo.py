"""`rawdiffusion demo`: the main job, on CPU, in a few minutes, with nothing to download.

Converts four photos that scikit-image ships into the RAW of the camera of the checkpoint
shipped with the package (a small model trained on the GoPro DNGs of ../shared/data/raw/dng;
README.md, "The shipped checkpoint", says how it was made): for each photo a DNG, a RAW preview
and a side-by-side figure (photo | RAW preview | the DNG as LibRaw renders it), then one
overview of all four.
"""

from __future__ import annotations

import contextlib
from importlib import resources
from pathlib import Path

import numpy as np

from .allocator import keep_freed_memory
from .convert import convert
from .images import read_rgb, write_png
from .loading import load, shipped_checkpoint
from .processes import merge_manifests
from .settings import DEFAULTS

PHOTOS = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg")


def run_demo(out, checkpoint=None, steps: int = DEFAULTS.steps) -> int:
    """`rawdiffusion demo`: the photos converted with `checkpoint` (default: the shipped one)
    at `steps` (default: convert's) into `out`, on the CPU, with their comparison figures.
    SettingError naming `steps` when it cannot work."""
    out = Path(out)
    checkpoint = Path(checkpoint) if checkpoint else shipped_checkpoint()
    keep_freed_memory()
    gen = load(checkpoint, steps=steps, device="cpu")
    camera = gen.camera
    print(f"checkpoint {checkpoint}: {camera.make} {camera.model}, {camera.cfa}")
    photos = resources.files("skimage") / "data"
    with contextlib.ExitStack() as files:
        # The installed photos themselves, so that the manifest names files a user can find
        # (and a rerun skips what is done); a temporary copy only from a zipped scikit-image.
        sources = [files.enter_context(resources.as_file(photos / name)) for name in PHOTOS]
        done, skipped = convert(sources, out, gen, seed=0, figure=True)
    merge_manifests(out)
    figures = [read_rgb(out / f"{Path(n).stem}_compare.png") for n in PHOTOS]
    width = max(f.shape[1] for f in figures)
    rows = [np.pad(f, ((0, 8), (0, width - f.shape[1]), (0, 0)), constant_values=32)
            for f in figures]
    write_png(out / "overview.png", np.concatenate(rows)[:-8])
    print(f"converted {done} photo(s) ({skipped} already done) into {out}: <name>.dng, "
          f"<name>.png (RAW preview), <name>_compare.png; overview {out / 'overview.png'}")
    return 0

