"""The on-disk layout of a prepared dataset, shared by every `rawdiffusion prepare` command and
read by training and sampling.

    ROOT/
      dataset.json          description: name, kind, how it was made, and one entry per image
                            (source file, camera, Bayer order, levels, split, sample ids)
      <split>.txt           sample ids of each split (train.txt, test.txt, val.txt, ...)
      raw/<id>.npy          packed RAW sample: (4, h, w) uint16 raw numbers in R, G1, G2, B
                            order (see bayer.py), black level NOT subtracted
      rgb/<id>.png          RGB guide of the same h x w, 8-bit sRGB
      meta/<image>.json     per-image entry, written last: its presence marks the image done
      annotations/<split>.json   COCO boxes (person, bicycle, car) for detection datasets

A sample is one patch of an image (FiveK-style 3 x 3 grid) or a whole resized image. Normalise a
sample with its image's `black_level` (per packed channel) and `white_level`:
(raw - black) / (white - black), clipped to [0, 1]. RGB-only datasets (Cityscapes, BDD100K) have
no raw/ folder and `kind: "rgb"`. A subsample (`prepare subsample`) holds only dataset.json and
split files and names its `parent`, whose raw/ and rgb/ it reads.
"""

from __future__ import annotations

import json
import os
import struct
import traceback
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..atomic import atomic_output
from ..errors import UserError
from ..images import read_rgb
from ..io import RawFormatError, load_npy
from .errors import DatasetError, SampleError

FORMAT = "rawdiffusion-dataset/1"
DESCRIPTION = "dataset.json"


def write_json(path, data) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1) + "\n")


def write_lines(path, lines) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text("".join(f"{line}\n" for line in lines))


class ImageFailed(RawFormatError):
    """One input of a prepare command that could not be prepared: the job runner reports its
    reason next to the file and goes on with the others."""


def bad_file_errors() -> tuple[type[Exception], ...]:
    """What a truncated or corrupt input can raise besides OSError and ValueError (which the job
    runner reports as they are): the decoders' own errors and impossible sizes."""
    import rawpy  # imported when used: half a second, which only prepare's workers need

    return (EOFError, MemoryError, OverflowError, SyntaxError, struct.error, zlib.error,
            rawpy.LibRawError, Image.DecompressionBombError)


def per_image(fn, item, **kwargs):
    """fn(item, **kwargs) for one input of a prepare command, where no exception of one input
    may stop the others: bad-file errors become ImageFailed with their type and message, and
    anything else (a bug) too, with where it was raised, so the report names file and cause.
    Module-level, so that functools.partial(per_image, fn, ...) goes to worker processes."""
    try:
        return fn(item, **kwargs)
    except (OSError, ValueError, UserError):
        raise  # reported by the job runner as they are
    except bad_file_errors() as e:
        raise ImageFailed(item, f"{type(e).__name__}: {e}") from None
    except Exception as e:
        frame = traceback.extract_tb(e.__traceback__)[-1]
        raise ImageFailed(item, f"unexpected {type(e).__name__} at {Path(frame.filename).name}:"
                                f"{frame.lineno}: {e} (a bug; please report it)") from None


def image_meta_path(root, image_id: str) -> Path:
    return Path(root) / "meta" / f"{image_id}.json"


def image_id_for(path, root) -> str:
    """A file-name-safe id for `path`, unique within `root`: its relative path, '/' -> '__'.
    Bytes of a name that are not valid UTF-8 are written \\xNN (files.shown), so that the id
    can go into the UTF-8 split files."""
    from ..files import shown

    rel = Path(os.path.relpath(path, root)).with_suffix("")
    return shown("__".join(rel.parts))


def prepared_images(root) -> set[str]:
    """The ids of the images whose entry root/meta/<id>.json exists: those a prepare command
    skips when rerun."""
    meta = Path(root) / "meta"
    return {p.stem for p in meta.glob("*.json")} if meta.is_dir() else set()


def finish(root, name: str, kind: str, made_by: dict, splits: dict[str, list[str]]) -> dict:
    """Collect the per-image entries of `root`/meta into dataset.json and write the split files.

    splits: {split name: [image ids in order]}; the sample ids listed per split follow it.
    """
    root = Path(root)
    images = {}
    for split, ids in splits.items():
        for image_id in ids:
            entry = json.loads(image_meta_path(root, image_id).read_text())
            entry["split"] = split
            images[image_id] = entry
    description = {"format": FORMAT, "name": name, "kind": kind, "made_by": made_by,
                   "splits": {s: len(ids) for s, ids in splits.items()}, "images": images}
    for split, ids in splits.items():
        write_lines(root / f"{split}.txt", [s for i in ids for s in images[i]["samples"]])
    write_json(root / DESCRIPTION, description)
    return description


def read_description(path) -> dict:
    """ROOT/dataset.json, checked for what readers index: kind, splits, images with their split
    and samples. Anything else (another tool's JSON, a cut file) is a DatasetError."""
    try:
        description = json.loads(Path(path).read_text())
    except (OSError, ValueError, RecursionError) as e:  # decoding, syntax, nesting too deep
        raise DatasetError(path, f"unreadable ({type(e).__name__}: {e})") from None
    got = description.get("format") if isinstance(description, dict) else description
    if got != FORMAT:
        raise DatasetError(path, f"format {str(got)[:40]!r}, expected {FORMAT!r}; not a "
                                 "prepared dataset (make one with `rawdiffusion prepare ...`)")
    problem = description_problem(description)
    if problem:
        raise DatasetError(path, f"{problem}; rerun the prepare command that made it")
    return description


def description_problem(d: dict) -> str | None:
    """What makes a dataset description unusable, or None."""
    if not isinstance(d.get("name"), str):
        return "no dataset name"
    if d.get("kind") not in ("paired", "rgb"):
        return f"kind {d.get('kind')!r}, expected 'paired' or 'rgb'"
    for key in ("splits", "images"):
        if not isinstance(d.get(key), dict):
            return f"no {key!r} object"
    for image_id, e in d["images"].items():
        if not isinstance(e, dict) or not isinstance(e.get("split"), str):
            return f"image {image_id!r} has no split"
        if not isinstance(e.get("samples"), list):
            return f"image {image_id!r} has no list of samples"
    return None


def read_raw_sample(path, remake: str) -> np.ndarray:
    """raw/<id>.npy: (4, h, w) uint16, or a SampleError naming the file, ending in `remake`."""
    try:
        raw = load_npy(path)
    except (OSError, ValueError, EOFError) as e:  # a cut file: "Failed to read all data", "EOF"
        raise SampleError(path, f"unreadable sample ({type(e).__name__}: {e}){remake}") from None
    if raw.dtype != np.uint16:
        raise SampleError(path, f"dtype {raw.dtype}, expected uint16 raw numbers as prepare "
                                f"writes them{remake}")
    if raw.ndim != 3 or raw.shape[0] != 4:
        raise SampleError(path, f"shape {raw.shape}, expected a packed RAW (4, h, w){remake}")
    return raw


def read_rgb_sample(path, remake: str) -> np.ndarray:
    """rgb/<id>.png: (h, w, 3) uint8, or a SampleError naming the file, ending in `remake`."""
    try:
        return read_rgb(path)
    except (OSError, ValueError) as e:  # images.PhotoError names the file already
        raise SampleError(path, str(e).removeprefix(f"{path}: ") + remake) from None


@dataclass
class Sample:
    """One training/evaluation sample as stored: raw (4, h, w) uint16 or None; rgb (h, w, 3)
    uint8; black (4,) per packed channel; white; the id and its image's entry."""

    id: str
    raw: np.ndarray | None
    rgb: np.ndarray
    black: np.ndarray
    white: float
    image: dict


class PreparedDataset:
    """Read access to a prepared dataset folder (see the module docstring)."""

    def __init__(self, root):
        self.root = Path(root)
        path = self.root / DESCRIPTION
        if not path.is_file():
            raise FileNotFoundError(f"{self.root}: no {DESCRIPTION}; not a prepared dataset "
                                    "(make one with `rawdiffusion prepare ...`)")
        self.description = read_description(path)
        parent = self.description.get("parent")
        self.data_root = (self.root / parent).resolve() if parent else self.root
        self.images = self.description["images"]
        self._image_of = {s: i for i, e in self.images.items() for s in e["samples"]}

    @property
    def kind(self) -> str:
        return self.description["kind"]

    def split(self, name: str) -> list[str]:
        """The sample ids of split `name` (<root>/<name>.txt); FileNotFoundError for a split
        the dataset does not have, DatasetError when dataset.json lists it but its file is
        gone."""
        path = self.root / f"{name}.txt"
        if not path.is_file():
            known = self.description["splits"]
            if name in known:  # dataset.json lists it, its file is gone
                raise DatasetError(path, f"missing, though {DESCRIPTION} lists a {name!r} "
                                         "split; prepare the dataset again")
            raise FileNotFoundError(f"{self.root}: no split {name!r} (have "
                                    f"{', '.join(known)})")
        return path.read_text().split()

    def image_of(self, sample_id: str) -> str:
        """The id of the image a sample was cut from (KeyError for an unknown sample)."""
        return self._image_of[sample_id]

    def load(self, sample_id: str) -> Sample:
        """One sample; a file that cannot be read, or a RAW sample whose size is not its
        guide's, is a SampleError saying how to remake it (prepare skips images whose entry
        exists, so the entry goes first)."""
        image_id = self._image_of[sample_id]
        entry = self.images[image_id]
        remake = (f"; delete {image_meta_path(self.data_root, image_id)} and rerun the prepare "
                  "command to remake that image")
        raw = None
        if self.kind == "paired":
            raw = read_raw_sample(self.data_root / "raw" / f"{sample_id}.npy", remake)
        rgb = read_rgb_sample(self.data_root / "rgb" / f"{sample_id}.png", remake)
        if raw is not None and raw.shape[1:] != rgb.shape[:2]:
            raise SampleError(self.data_root / "raw" / f"{sample_id}.npy",
                              f"{raw.shape[2]}x{raw.shape[1]} pixels, but its guide "
                              f"rgb/{sample_id}.png is {rgb.shape[1]}x{rgb.shape[0]}{remake}")
        return Sample(sample_id, raw, rgb, np.asarray(entry.get("black_level", [0.0] * 4)),
                      float(entry.get("white_level", 1.0)), entry)
