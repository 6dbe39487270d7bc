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
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io import RawFormatError, atomic_output

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
    import struct
    import zlib

    import rawpy
    from PIL import Image

    return (EOFError, MemoryError, OverflowError, SyntaxError, struct.error, zlib.error,
            rawpy.LibRawError, Image.DecompressionBombError)


def per_image(fn, item, **kwargs):
    """fn(item, **kwargs) for one input of a prepare command, where no exception of one input
    may stop the others: bad-file errors become ImageFailed with their type and message, and
    anything else (a bug) too, with where it was raised, so the report names file and cause.
    Module-level, so that functools.partial(per_image, fn, ...) goes to worker processes."""
    try:
        return fn(item, **kwargs)
    except (OSError, ValueError):
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
    """A file-name-safe id for `path`, unique within `root`: its relative path, '/' -> '__'."""
    rel = Path(os.path.relpath(path, root)).with_suffix("")
    return "__".join(rel.parts)


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
        self.description = json.loads(path.read_text())
        if self.description.get("format") != FORMAT:
            raise ValueError(f"{path}: format {self.description.get('format')!r}, "
                             f"expected {FORMAT!r}")
        parent = self.description.get("parent")
        self.data_root = (self.root / parent).resolve() if parent else self.root
        self.images = self.description["images"]
        self._image_of = {s: i for i, e in self.images.items() for s in e["samples"]}

    @property
    def kind(self) -> str:
        return self.description["kind"]

    def split(self, name: str) -> list[str]:
        path = self.root / f"{name}.txt"
        if not path.is_file():
            raise FileNotFoundError(f"{self.root}: no split {name!r} (have "
                                    f"{', '.join(self.description['splits'])})")
        return path.read_text().split()

    def load(self, sample_id: str) -> Sample:
        from ..images import read_rgb

        entry = self.images[self._image_of[sample_id]]
        raw = None
        if self.kind == "paired":
            raw = np.load(self.data_root / "raw" / f"{sample_id}.npy")
        rgb = read_rgb(self.data_root / "rgb" / f"{sample_id}.png")
        return Sample(sample_id, raw, rgb, np.asarray(entry.get("black_level", [0.0] * 4)),
                      float(entry.get("white_level", 1.0)), entry)
