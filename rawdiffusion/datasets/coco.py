"""Detection datasets: COCO boxes for person, bicycle and car (the paper's detection
experiment), shared by nod.py, cityscapes.py and bdd.py, and the RGB-only sample writer of the
last two.

Boxes are `[category_id, x0, y0, x1, y1]` in continuous pixel coordinates of the image they
belong to: (x0, y0) the top-left corner, (x1, y1) the bottom-right corner, so a box over pixel
columns 10..19 has x0 = 10, x1 = 20, and resizing an image by s scales its boxes by exactly s.
Written files are COCO: `bbox` [x, y, w, h], category ids 1 person, 2 bicycle, 3 car, integer
image ids 1..N whose `file_name` is the sample id (raw/<id>.npy, rgb/<id>.png).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..atomic import atomic_output
from ..images import read_rgb, resize_area, write_png
from . import layout

CATEGORIES = ("person", "bicycle", "car")  # COCO category ids 1, 2, 3


def category_id(name: str) -> int:
    return CATEGORIES.index(name) + 1


def scale_boxes(boxes, sx: float, sy: float, width: int, height: int,
                dx: float = 0.0, dy: float = 0.0) -> list[list]:
    """Boxes [cat, x0, y0, x1, y1] -> ((x + dx) * sx, (y + dy) * sy), clipped to a width x height
    image; boxes left without area (outside, or degenerate in the source) are dropped."""
    out = []
    for cat, x0, y0, x1, y1 in boxes:
        x0, x1 = (min(max((float(x) + dx) * sx, 0.0), width) for x in (x0, x1))
        y0, y1 = (min(max((float(y) + dy) * sy, 0.0), height) for y in (y0, y1))
        if x1 > x0 and y1 > y0:
            out.append([int(cat), round(x0, 3), round(y0, 3), round(x1, 3), round(y1, 3)])
    return out


def coco_json(images: list[tuple[str, int, int, list]]) -> dict:
    """images: (sample id, width, height, boxes) -> a COCO detection document."""
    coco_images, annotations = [], []
    for image_id, (file_name, width, height, boxes) in enumerate(images, start=1):
        coco_images.append({"id": image_id, "file_name": file_name, "width": int(width),
                            "height": int(height)})
        for cat, x0, y0, x1, y1 in boxes:
            w, h = round(x1 - x0, 3), round(y1 - y0, 3)
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": int(cat), "bbox": [x0, y0, w, h],
                                "area": round(w * h, 3), "iscrowd": 0})
    categories = [{"id": category_id(n), "name": n,
                   "supercategory": "person" if n == "person" else "vehicle"} for n in CATEGORIES]
    return {"images": coco_images, "annotations": annotations, "categories": categories}


def write_annotations(root, split: str, images: list[tuple[str, int, int, list]]) -> Path:
    """Write ROOT/annotations/<split>.json (see `coco_json`)."""
    path = Path(root) / "annotations" / f"{split}.json"
    with atomic_output(path) as tmp:  # compact: BDD100K's train split has about a million boxes
        tmp.write_text(json.dumps(coco_json(images), separators=(",", ":")))
    return path


def read_image(path) -> np.ndarray:
    """An 8-bit image file -> (H, W, 3) uint8; undecodable files raise OSError or ValueError
    (which the job runner reports as a skipped file)."""
    try:
        return read_rgb(path)
    except SyntaxError as e:  # PIL's parsers signal some malformed files this way
        raise ValueError(f"not a readable image ({e})") from None


def save_rgb_image(out, image_id: str, source, rgb: np.ndarray, boxes,
                   size: tuple[int, int]) -> dict:
    """Resize an RGB image (H, W, 3) uint8 to size (height, width) with area interpolation, write
    rgb/<id>.png, and write (last) the image's entry with its boxes scaled to the sample."""
    height, width = size
    h, w = rgb.shape[:2]
    write_png(Path(out) / "rgb" / f"{image_id}.png", resize_area(rgb, height, width))
    entry = {"source": os.path.abspath(source), "width": int(w), "height": int(h),
             "sample_size": [height, width], "samples": [image_id],
             "boxes": scale_boxes(boxes, width / w, height / h, width, height)}
    layout.write_json(layout.image_meta_path(out, image_id), entry)
    return entry


def finish_rgb(out, name: str, made_by: dict, splits: dict[str, list[str]]) -> dict:
    """layout.finish for an RGB detection dataset, plus annotations/<split>.json.

    The boxes live in the per-image entries (so a resumed run rebuilds the annotations) but are
    left out of dataset.json, which would otherwise grow by tens of MB for BDD100K.
    """
    out = Path(out)
    description = layout.finish(out, name, "rgb", made_by, splits)
    for split, ids in splits.items():
        entries = [description["images"][i] for i in ids]
        write_annotations(out, split, [(e["samples"][0], e["sample_size"][1], e["sample_size"][0],
                                        e.get("boxes", [])) for e in entries])
    for entry in description["images"].values():
        entry.pop("boxes", None)
    layout.write_json(out / layout.DESCRIPTION, description)
    return description
