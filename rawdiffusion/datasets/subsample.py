"""A few training images of a prepared dataset (the reference's *_subsample datasets: 25 or 100
training images, the paper's few-image experiments).

The subsample is a folder with dataset.json and split files only; its "parent" names the source
dataset, whose raw/ and rgb/ it reads (layout.py). Training images are drawn as the reference
draws them (datasets/fivek_subsample.py, nod_subsample.py): the sorted training image ids are
permuted by numpy's `default_rng(seed).permutation` and the first `max_items` are kept, each with
all of its samples. Image ids sort like the reference's keys (FiveK and NOD ids are the file
stems), so the same seed picks the same images. The other splits are kept whole; COCO annotations
of the source are restricted to the kept training images. The source's number of training
samples is recorded (made_by.parent_train_samples) so that training can resample an epoch to the
full set's length, as the reference does.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from . import layout
from ..errors import UserError
from .errors import DatasetError


def draw_images(train_ids, max_items: int, seed: int) -> list[str]:
    """The `max_items` training image ids the reference would draw with `seed`."""
    return [str(i) for i in np.random.default_rng(seed).permutation(sorted(train_ids))[:max_items]]


def prepare_subsample(dataset, out, max_items: int, seed: int = 0) -> dict:
    """`rawdiffusion prepare subsample`: `max_items` training images of `dataset` -> `out`.

    Returns the subsample's description.
    """
    source = layout.PreparedDataset(dataset)
    out = Path(out)
    if out.resolve() == source.root.resolve():
        raise UserError(f"{out}: the subsample must go to another folder than its dataset")
    existing = out / layout.DESCRIPTION
    if existing.is_file() and "parent" not in json.loads(existing.read_text()):
        raise UserError(f"{out}: holds a prepared dataset; choose another folder for the "
                        "subsample")
    train_ids = [i for i, e in source.images.items() if e["split"] == "train"]
    if not train_ids:
        raise UserError(f"{source.root}: no training images to subsample")
    if not 1 <= max_items <= len(train_ids):
        raise UserError(f"max_items {max_items}: {source.root} has {len(train_ids)} training "
                        f"images; choose 1 to {len(train_ids)}")
    chosen = set(draw_images(train_ids, max_items, seed))
    images = {i: e for i, e in source.images.items() if e["split"] != "train" or i in chosen}
    kept_samples = {s for e in images.values() for s in e["samples"]}
    parent = source.description
    description = {
        "format": layout.FORMAT,
        "name": f"{parent['name']}_subsample",
        "kind": parent["kind"],
        "parent": os.path.relpath(source.data_root, out.resolve()),
        "made_by": {"command": "prepare subsample", "dataset": str(source.root.resolve()),
                    "max_items": max_items, "seed": seed,
                    "parent_train_samples": len(source.split("train")),
                    "parent_made_by": parent.get("made_by")},
        "splits": {s: sum(e["split"] == s for e in images.values()) for s in parent["splits"]},
        "images": images,
    }
    for split in parent["splits"]:
        layout.write_lines(out / f"{split}.txt",
                           [s for s in source.split(split) if s in kept_samples])
    for path in sorted((source.root / "annotations").glob("*.json")):
        try:
            annotations = json.loads(path.read_text())
            if path.stem == "train":
                annotations = restrict(annotations, kept_samples)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise DatasetError(path, f"not a COCO annotation file ({type(e).__name__}: "
                                     f"{e})") from None
        layout.write_json(out / "annotations" / path.name, annotations)
    layout.write_json(out / layout.DESCRIPTION, description)
    return description


def restrict(annotations: dict, samples: set[str]) -> dict:
    """A COCO document restricted to the images whose file_name is one of `samples`."""
    images = [im for im in annotations["images"] if im["file_name"] in samples]
    ids = {im["id"] for im in images}
    return {**annotations, "images": images,
            "annotations": [a for a in annotations["annotations"] if a["image_id"] in ids]}
