"""MIT-Adobe FiveK: the DNGs of one camera -> a paired dataset (fivek_nikon, fivek_canon).

Layout of the download (fivek_dataset.tar from data.csail.mit.edu/graphics/fivek):

    ROOT/raw_photos/HQa1to700/photos/a0001-jmac_DSC1459.dng
    ROOT/raw_photos/HQa701to1400/photos/...   ...   ROOT/raw_photos/HQa4201to5000/photos/...

As the reference does: every DNG under raw_photos/ is selected by its EXIF model (Nikon D700 or
Canon EOS 5D; read from the TIFF tags only, no pixels decoded), the selected files are sorted by
path and split with scikit-learn's train_test_split (15 % test, seed 2817), and every image is
cut into a 3 x 3 grid of patches (paired.prepare_paired). Image ids are the file stems
(a0001-jmac_DSC1459), so sorting ids sorts by FiveK number, as `prepare subsample` expects.

Levels. The reference normalises with constants (Nikon D700: black 0, white 16383; Canon EOS 5D:
127 subtracted at preparation, then white 4095). Here each image's own DNG BlackLevel and
WhiteLevel are recorded in its entry and samples keep raw numbers (layout.py), so nothing is lost.
For the Canon this is equivalent to the reference's subtraction only in its offset: the file's
BlackLevel (per CFA position) takes the place of the constant 127, while the divisor is the
file's white - black rather than 4095, so normalised values agree with the reference's up to a
per-file scale of (white - black) / 4095 (and to the difference between 127 and the file's black
level). The reference's constants can still be applied downstream: the raw numbers are unchanged.

Orientation. The reference rotates the packed RAW to match rawpy's rotated rendering; here the RGB
guide is rendered with the file's orientation flag ignored, so RAW and RGB stay aligned in sensor
orientation without rotating anything.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import tifffile

from ..errors import UserError
from ..io import RawFormatError, tifffile_quiet
from ..jobs import run_jobs
from . import layout
from .paired import Task, prepare_paired, regular_files, split_with_skipped

MODELS = {"nikon": "NIKON D700", "canon": "Canon EOS 5D"}  # EXIF Model, exactly as in the files
LAYOUT = "raw_photos/HQa*/photos/*.dng"


def find_dngs(root) -> list[Path]:
    """The entries named *.dng under ROOT/raw_photos (files or not: see paired.regular_files),
    sorted by path (as the reference sorts them)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder; expected the MIT-Adobe FiveK folder "
                                f"holding {LAYOUT}")
    photos = root / "raw_photos"
    if not photos.is_dir():
        raise FileNotFoundError(f"{root}: no raw_photos folder; expected the FiveK layout "
                                f"{LAYOUT}")
    files = [p for p in photos.rglob("*") if p.suffix.lower() == ".dng"]
    if not files:
        raise FileNotFoundError(f"{photos}: no DNG files; expected the FiveK layout {LAYOUT}")
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def camera_model(path: str) -> str:
    """The EXIF Model tag (272) of a TIFF-based RAW file's first IFD, without decoding pixels."""
    try:
        with tifffile_quiet(), tifffile.TiffFile(path) as tif:
            tag = tif.pages[0].tags.get(272)
            model = None if tag is None else str(tag.value).strip()
    except (tifffile.TiffFileError, OSError, ValueError, IndexError) as e:
        raise RawFormatError(path, f"not a readable DNG ({type(e).__name__}: {e})") from None
    if model is None:
        raise RawFormatError(path, "no EXIF Model tag, cannot tell its camera")
    return model


def prepare_fivek(root, out, camera: str, test_fraction: float = 0.15, split_seed: int = 2817,
                  grid: int = 3, workers: int = 1, max_pixels: int | None = None):
    """`rawdiffusion prepare fivek`: one camera's FiveK DNGs -> dataset fivek_<camera> in `out`.

    Returns (description, failures); failures include entries named *.dng that are no files
    (a directory, a broken symlink, ...), DNGs whose tags cannot be read (their camera is
    unknown, so they are left out of both splits) and selected files that fail to decode.
    max_pixels: the largest RAW image read (default io.RAW_MAX_PIXELS).
    """
    if camera not in MODELS:
        raise UserError(f"camera {camera!r} is not one of {', '.join(MODELS)}")
    model = MODELS[camera]
    files, skipped = regular_files(find_dngs(root))
    # Tag reading is a few hundred microseconds per file: in this process, not worth workers.
    models, failures = run_jobs(functools.partial(layout.per_image, camera_model),
                                [str(p) for p in files], workers=1, desc="read camera models")
    selected = [p for p in files if models.get(str(p)) == model]
    if not selected:
        raise FileNotFoundError(f"{root}: none of the {len(files)} DNG files is from a {model}")
    train, test = split_with_skipped(selected, skipped, test_fraction, split_seed)
    made_by = {"command": "prepare fivek", "root": os.path.abspath(root), "camera": camera,
               "model": model, "test_fraction": test_fraction, "split_seed": split_seed,
               "grid": grid}
    splits = {"train": [Task(str(p), p.stem) for p in train],
              "test": [Task(str(p), p.stem) for p in test]}
    description, more = prepare_paired(splits, out, f"fivek_{camera}", made_by, workers, grid=grid,
                                       max_pixels=max_pixels)
    return description, skipped + failures + more

