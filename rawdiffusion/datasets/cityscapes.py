"""Cityscapes: RGB images resized to 416 x 832 with COCO boxes for person (riders included),
bicycle and car -> the RGB-only dataset cityscapes_h416, to be turned into RAW by a model.

Layout of the download (leftImg8bit_trainvaltest.zip, gtFine_trainvaltest.zip):

    ROOT/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    ROOT/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_polygons.json

Polygon files: {"imgHeight", "imgWidth", "objects": [{"label", "polygon": [[x, y], ...],
optionally "deleted"}]}, objects in drawing order (later ones occlude earlier ones). The
reference takes boxes from gtFine_instanceIds.png, which cityscapesScripts (json2instanceImg)
renders from these polygons: every object filled in order, deleted objects and license plates
(label id -1) not drawn. Here the polygons are rendered the same way and each person, rider,
bicycle and car box is the extent of its visible pixels, so boxes match the reference's (an
object hidden completely gets none); groups (cargroup, ...) occlude but get no box, as there.
Image ids are the file stems without _leftImg8bit (unique over all splits). All images are kept,
with or without boxes, as in the reference.
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..errors import UserError
from ..jobs import run_jobs
from . import coco, layout

SIZE = (416, 832)  # (height, width) of the samples
CLASSES = {"person": "person", "rider": "person", "bicycle": "bicycle", "car": "car"}
NOT_DRAWN = {"license plate"}  # label id -1 in cityscapesScripts' labels.py
SUFFIX = "_leftImg8bit"
LAYOUT = "leftImg8bit/<split>/<city>/*_leftImg8bit.png"


@dataclass(frozen=True)
class Item:
    image: str      # the leftImg8bit PNG
    polygons: str   # its gtFine polygon JSON
    image_id: str

    def __str__(self):  # how a skipped item is reported
        return self.image


def visible_boxes(annotation: dict) -> list[list]:
    """Boxes [category_id, x0, y0, x1, y1] (label pixels) of the visible part of every person,
    rider, bicycle and car of a Cityscapes polygon annotation."""
    width, height = int(annotation["imgWidth"]), int(annotation["imgHeight"])
    canvas = Image.new("I", (width, height), 0)  # 0: unlabelled; object k is drawn as k
    draw = ImageDraw.Draw(canvas)
    wanted = {}
    for k, obj in enumerate(annotation["objects"], start=1):
        points = [(float(x), float(y)) for x, y in obj["polygon"]]
        if obj.get("deleted") or obj["label"] in NOT_DRAWN or len(points) < 2:
            continue
        draw.polygon(points, fill=k)
        if obj["label"] in CLASSES:
            xs, ys = [p[0] for p in points], [p[1] for p in points]
            wanted[k] = (coco.category_id(CLASSES[obj["label"]]),
                         max(math.floor(min(xs)), 0), max(math.floor(min(ys)), 0),
                         min(math.ceil(max(xs)) + 1, width), min(math.ceil(max(ys)) + 1, height))
    ids = np.asarray(canvas)
    boxes = []
    for k, (cat, left, top, right, bottom) in wanted.items():
        mine = ids[top:bottom, left:right] == k  # an object's pixels lie inside its polygon's box
        rows, cols = np.flatnonzero(mine.any(axis=1)), np.flatnonzero(mine.any(axis=0))
        if rows.size:
            boxes.append([cat, left + int(cols[0]), top + int(rows[0]),
                          left + int(cols[-1]) + 1, top + int(rows[-1]) + 1])
    return boxes


def prepare_item(item: Item, out: str) -> dict:
    """One image and its polygons -> rgb/<id>.png and meta/<id>.json (skipped when done)."""
    meta_path = layout.image_meta_path(out, item.image_id)
    if meta_path.is_file():
        return json.loads(meta_path.read_text())
    rgb = coco.read_image(item.image)
    try:
        annotation = json.loads(Path(item.polygons).read_text())
        boxes = visible_boxes(annotation)
        label_size = (int(annotation["imgHeight"]), int(annotation["imgWidth"]))
    except (KeyError, TypeError) as e:  # JSON syntax errors are ValueErrors already
        raise ValueError(f"{item.polygons}: not a Cityscapes polygon file "
                         f"({type(e).__name__}: {e})") from None
    if label_size != rgb.shape[:2]:
        raise ValueError(f"{item.polygons} is for a {label_size[1]}x{label_size[0]} image, the "
                         f"image is {rgb.shape[1]}x{rgb.shape[0]}")
    return coco.save_rgb_image(out, item.image_id, item.image, rgb, boxes, SIZE)


def find_items(root: Path, split: str) -> list[Item]:
    images_dir, labels_dir = root / "leftImg8bit" / split, root / "gtFine" / split
    for folder, what in ((images_dir, LAYOUT),
                         (labels_dir, "gtFine/<split>/<city>/*_gtFine_polygons.json")):
        if not folder.is_dir():
            raise FileNotFoundError(f"{root}: no {folder.relative_to(root).as_posix()} folder; "
                                    f"expected the Cityscapes layout {what}")
    images = sorted(images_dir.glob(f"*/*{SUFFIX}.png"))
    if not images:
        raise FileNotFoundError(f"{images_dir}: no *{SUFFIX}.png files; expected the Cityscapes "
                                f"layout {LAYOUT}")
    items = []
    for path in images:
        stem = path.name[: -len(f"{SUFFIX}.png")]
        polygons = labels_dir / path.parent.name / f"{stem}_gtFine_polygons.json"
        items.append(Item(str(path), str(polygons), stem))
    return items


def prepare_cityscapes(root, out, splits=("train", "val"), workers: int = 1):
    """`rawdiffusion prepare cityscapes`: -> cityscapes_h416 in `out` (kind "rgb"), with
    annotations/<split>.json. Returns (description, failures)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder; expected the Cityscapes folder holding "
                                f"leftImg8bit/ and gtFine/")
    items = {split: find_items(root, split) for split in splits}
    ids = [i.image_id for its in items.values() for i in its]
    twice = sorted(i for i, n in Counter(ids).items() if n > 1)
    if twice:
        raise UserError(f"{root}: image {twice[0]} occurs in two splits"
                        + (f" (and {len(twice) - 1} more)" if len(twice) > 1 else ""))
    job = functools.partial(layout.per_image, prepare_item, out=str(out))
    done, failures = run_jobs(job, [i for its in items.values() for i in its], workers=workers,
                              desc="prepare cityscapes_h416")
    kept = {split: [i.image_id for i in its if i in done] for split, its in items.items()}
    made_by = {"command": "prepare cityscapes", "root": os.path.abspath(root),
               "splits": list(splits), "size": list(SIZE)}
    return coco.finish_rgb(out, "cityscapes_h416", made_by, kept), failures
