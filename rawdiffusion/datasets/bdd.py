"""BDD100K: RGB images resized to 416 x 736 with COCO boxes for person (riders included),
bicycle and car -> the RGB-only dataset bdd_h416, to be turned into RAW by a model.

Layout of the download (bdd100k_images_100k.zip and one of the label packages), ROOT being the
bdd100k folder (or its parent):

    ROOT/images/100k/<split>/<name>.jpg
    ROOT/labels/det_20/det_<split>.json                 (2020 detection labels; the reference's)
    ROOT/labels/bdd100k_labels_images_<split>.json      (original 2018 release)

Both label files are lists of frames {"name": "<name>.jpg", "labels": [{"category",
"box2d": {"x1", "y1", "x2", "y2"}, ...}]} ("labels" may be missing or null; labels without box2d,
such as lanes and drivable areas of the 2018 release, are ignored). Categories: person is
"pedestrian" (det_20) or "person" (2018), plus "rider" as the reference does; bicycle is
"bicycle" (det_20) or "bike" (2018); car is "car". When both label files exist det_20 is used.

As in the reference, only images listed in the label file with at least one such box are kept;
images without are left out (their count is recorded in made_by). Image ids are the file stems.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..jobs import run_jobs
from . import coco, layout

log = logging.getLogger(__name__)

SIZE = (416, 736)  # (height, width) of the samples
CLASSES = {"pedestrian": "person", "person": "person", "rider": "person",
           "bicycle": "bicycle", "bike": "bicycle", "car": "car"}
LAYOUT = "images/100k/<split>/*.jpg with labels/det_20/det_<split>.json"


@dataclass(frozen=True)
class Item:
    image: str
    image_id: str
    boxes: tuple  # ((category_id, x1, y1, x2, y2), ...) in the image's pixels

    def __str__(self):  # how a skipped item is reported
        return self.image


def label_file(root: Path, split: str) -> Path:
    candidates = [root / "labels" / "det_20" / f"det_{split}.json",
                  root / "labels" / f"bdd100k_labels_images_{split}.json"]
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(f"{root}: no labels for split {split!r}; expected "
                            + " or ".join(p.relative_to(root).as_posix() for p in candidates))


def read_labels(path) -> list[tuple[str, list]]:
    """A BDD100K label file -> [(image file name, boxes [cat, x1, y1, x2, y2])]."""
    try:
        frames = json.loads(Path(path).read_text())
        result = []
        for frame in frames:
            boxes = []
            for label in frame.get("labels") or []:
                name, box = CLASSES.get(label.get("category")), label.get("box2d")
                if name and box:
                    boxes.append((coco.category_id(name), float(box["x1"]), float(box["y1"]),
                                  float(box["x2"]), float(box["y2"])))
            result.append((str(frame["name"]), boxes))
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise UserError(f"{path}: not a BDD100K label file ({type(e).__name__}: {e})") from None
    return result


def prepare_item(item: Item, out: str) -> dict:
    """One image -> rgb/<id>.png and meta/<id>.json (skipped when done)."""
    meta_path = layout.image_meta_path(out, item.image_id)
    if meta_path.is_file():
        return json.loads(meta_path.read_text())
    rgb = coco.read_image(item.image)
    return coco.save_rgb_image(out, item.image_id, item.image, rgb, item.boxes, SIZE)


def bdd_root(root) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder; expected the BDD100K folder holding "
                                f"{LAYOUT}")
    for candidate in (root, root / "bdd100k"):
        if (candidate / "images").is_dir():
            return candidate
    raise FileNotFoundError(f"{root}: no images folder; expected the BDD100K layout {LAYOUT}")


def prepare_bdd(root, out, splits=("train", "val"), workers: int = 1):
    """`rawdiffusion prepare bdd`: -> bdd_h416 in `out` (kind "rgb"), with
    annotations/<split>.json. Returns (description, failures)."""
    root = bdd_root(root)
    items, labels, without_boxes = {}, {}, {}
    for split in splits:
        images_dir = root / "images" / "100k" / split
        if not images_dir.is_dir():
            raise FileNotFoundError(f"{root}: no images/100k/{split} folder; expected the "
                                    f"BDD100K layout {LAYOUT}")
        labels[split] = label_file(root, split)
        frames = read_labels(labels[split])
        items[split] = sorted((Item(str(images_dir / name), Path(name).stem, tuple(map(tuple, b)))
                               for name, b in frames if b), key=lambda i: i.image_id)
        without_boxes[split] = len(frames) - len(items[split])
        if without_boxes[split]:
            log.info("%s: %d of %d images have no person, bicycle or car and are left out",
                     split, without_boxes[split], len(frames))
    ids = [i.image_id for its in items.values() for i in its]
    twice = sorted(i for i, n in Counter(ids).items() if n > 1)
    if twice:
        raise UserError(f"{root}: image {twice[0]} occurs twice in the label files"
                        + (f" (and {len(twice) - 1} more)" if len(twice) > 1 else ""))
    job = functools.partial(layout.per_image, prepare_item, out=str(out))
    done, failures = run_jobs(job, [i for its in items.values() for i in its], workers=workers,
                              desc="prepare bdd_h416")
    kept = {split: [i.image_id for i in its if i in done] for split, its in items.items()}
    made_by = {"command": "prepare bdd", "root": os.path.abspath(root), "splits": list(splits),
               "labels": {s: os.path.abspath(p) for s, p in labels.items()},
               "size": list(SIZE), "left_out_without_boxes": without_boxes}
    return coco.finish_rgb(out, "bdd_h416", made_by, kept), failures
