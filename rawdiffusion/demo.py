"""`rawdiffusion demo`: the main job, on CPU, in a few minutes, with nothing to download.

Converts four photos that scikit-image ships into the RAW of the camera of the checkpoint
shipped with the package (a small model trained on three GoPro DNGs; docs/training.md, "How
the shipped model was made", says how): for each photo a DNG, a RAW preview and a labelled
side-by-side figure (photo | the DNG as LibRaw renders it | the RAW data; figures.py), then one
overview of all four under the same labels.
"""

from __future__ import annotations

import contextlib
from importlib import resources
from pathlib import Path

import numpy as np

from .allocator import keep_freed_memory
from .convert import convert
from .figures import PHOTO, RAW_DATA, RENDERED, render_for_comparison, table
from .images import read_rgb, write_png
from .loading import load, shipped_checkpoint
from .processes import merge_manifests
from .settings import DEFAULTS

PHOTOS = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg")
OVERVIEW_HEIGHT = 200  # pixels of each image in overview.png


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
        write_png(out / "overview.png", overview(sources, out))
    merge_manifests(out)
    print(f"converted {done} photo(s) ({skipped} already done) into {out}: <name>.dng, "
          f"<name>.png (RAW preview), <name>_compare.png; overview {out / 'overview.png'}")
    return 0


def overview(sources: list[Path], out: Path) -> np.ndarray:
    """One row per photo of `sources` (photo | its DNG in `out` as LibRaw renders it | the RAW
    preview), each OVERVIEW_HEIGHT pixels high, under the figures' column labels."""
    rows = [[read_rgb(source), render_for_comparison(out / f"{source.stem}.dng"),
             read_rgb(out / f"{source.stem}.png")] for source in sources]
    return table(rows, [PHOTO, RENDERED, RAW_DATA], OVERVIEW_HEIGHT)
