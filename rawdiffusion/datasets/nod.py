"""NOD (Night Object Detection; Morawski et al., BMVC 2021): Nikon D750 NEFs and Sony RX100 VII
ARWs -> paired datasets nod_nikon, nod_sony (3 x 3 patches) and nod_nikon_h416, nod_sony_h416
(whole images resized to 416 x 640, with COCO boxes for person, bicycle, car).

Layout, as the reference reads it (datasets/nod_process.py):

    ROOT/RAW/Nikon/DSC_4705.NEF        ROOT/RAW/Sony/DSC01881.ARW

The splits are the RAW-NOD annotation files (github.com/igor-morawski/RAW-NOD, folder
annotations/<Nikon|Sony>/), looked for in ROOT/annotations/<camera>/, ROOT/RAW-NOD/annotations/
<camera>/ and, beside ROOT as the reference keeps them, ROOT/../RAW-NOD/annotations/<camera>/:

    raw_new_Nikon750_train.json          raw_new_Nikon750_test.json
    raw_new_Sony_RX100m7_train.json      raw_new_Sony_RX100m7_test.json
                                         (published as raw_str_labeled_new_Sony_RX100m7_test.json;
                                          the reference renames it, either name is read here)

Each is COCO-style: images [{id: "DSC_4705", file_name: "DSC_4705.NEF", width, height}],
annotations [{image_id, bbox: [x, y, w, h], category_id}] and COCO's categories (person 1,
bicycle 2, car 3, ...; matched here by name). Train and test are prepared (the reference's
configs never use the val files). Image ids are the file stems, which are the annotation ids, so
`prepare subsample` draws the reference's images.

Boxes (h416). The annotations' width x height may differ from the RAW's visible size; as in the
reference, boxes are taken as centred (shifted by half the size difference), then mapped to the
packed half-resolution image and scaled to 416 x 640. Boxes without area are dropped.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from . import coco
from ..errors import UserError
from .paired import Task, prepare_paired

SIZE = (416, 640)  # (height, width) of the h416 samples
SPLITS = ("train", "test")


@dataclass(frozen=True)
class Camera:
    folder: str   # RAW/<folder> and annotations/<folder>
    tag: str      # the camera's part of the annotation file names
    model: str


CAMERAS = {"nikon": Camera("Nikon", "Nikon750", "Nikon D750"),
           "sony": Camera("Sony", "Sony_RX100m7", "Sony RX100 VII")}


def annotation_names(camera: Camera, split: str) -> list[str]:
    names = [f"raw_new_{camera.tag}_{split}.json"]
    if camera.folder == "Sony" and split == "test":
        names.append(f"raw_str_labeled_new_{camera.tag}_{split}.json")
    return names


def find_annotations(root: Path, camera: Camera) -> dict[str, Path]:
    """{split: annotation file}, from the first candidate folder that holds all splits."""
    candidates = [root / "annotations" / camera.folder,
                  root / "RAW-NOD" / "annotations" / camera.folder,
                  root.parent / "RAW-NOD" / "annotations" / camera.folder]
    for folder in candidates:
        found = {}
        for split in SPLITS:
            for name in annotation_names(camera, split):
                if (folder / name).is_file():
                    found[split] = folder / name
                    break
        if len(found) == len(SPLITS):
            return found
    wanted = ", ".join(annotation_names(camera, s)[0] for s in SPLITS)
    raise FileNotFoundError(
        f"{root}: no NOD annotations for the {camera.model} ({wanted}); expected them (from "
        f"github.com/igor-morawski/RAW-NOD, annotations/{camera.folder}/) in one of "
        + ", ".join(str(c) for c in candidates))


def read_annotations(path) -> list[dict]:
    """A RAW-NOD annotation file -> [{id, file_name, width, height, boxes}], sorted by id, with
    boxes [category_id, x0, y0, x1, y1] for person, bicycle, car in the file's pixel coordinates."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        names = {c["id"]: c["name"] for c in data["categories"]}
        images = {str(im["id"]): {"id": str(im["id"]), "file_name": str(im["file_name"]),
                                  "width": int(im["width"]), "height": int(im["height"]),
                                  "boxes": []} for im in data["images"]}
        for ann in data["annotations"]:
            name = names.get(ann["category_id"])
            image = images.get(str(ann["image_id"]))
            if name in coco.CATEGORIES and image is not None:
                x, y, w, h = (float(v) for v in ann["bbox"])
                image["boxes"].append([coco.category_id(name), x, y, x + w, y + h])
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"{path}: not a NOD (COCO-style) annotation file "
                        f"({type(e).__name__}: {e})") from None
    return sorted(images.values(), key=lambda im: im["id"])


def sample_boxes(image: dict, entry: dict, size: tuple[int, int]) -> list[list]:
    """An annotated image's boxes on its resized sample: centred on the RAW's visible area, halved
    with the packing, scaled to `size` (height, width)."""
    packed_h, packed_w = entry["height"] // 2, entry["width"] // 2
    return coco.scale_boxes(image["boxes"], size[1] / (2 * packed_w), size[0] / (2 * packed_h),
                            size[1], size[0], dx=(entry["width"] - image["width"]) / 2,
                            dy=(entry["height"] - image["height"]) / 2)


def prepare_nod(root, out, camera: str, h416: bool = False, grid: int = 3, workers: int = 1,
                max_pixels: int | None = None):
    """`rawdiffusion prepare nod`: one camera's NOD RAW files -> nod_<camera>[_h416] in `out`.

    Returns (description, failures). With h416, annotations/<split>.json holds the COCO boxes of
    the prepared images (file names are sample ids). max_pixels: the largest RAW image read
    (default io.RAW_MAX_PIXELS).
    """
    if camera not in CAMERAS:
        raise UserError(f"camera {camera!r} is not one of {', '.join(CAMERAS)}")
    cam = CAMERAS[camera]
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder; expected the NOD folder holding "
                                f"RAW/{cam.folder}/")
    raw_dir = root / "RAW" / cam.folder
    if not raw_dir.is_dir():
        raise FileNotFoundError(f"{root}: no RAW/{cam.folder} folder; expected the NOD layout "
                                f"RAW/<Nikon|Sony>/<file_name of the annotations>")
    files = find_annotations(root, cam)
    annotated = {split: read_annotations(path) for split, path in files.items()}
    splits = {split: [Task(str(raw_dir / im["file_name"]), Path(im["file_name"]).stem)
                      for im in images] for split, images in annotated.items()}
    name = f"nod_{camera}" + ("_h416" if h416 else "")
    made_by = {"command": "prepare nod", "root": os.path.abspath(root), "camera": camera,
               "annotations": {s: os.path.abspath(p) for s, p in files.items()}}
    made_by.update({"size": list(SIZE)} if h416 else {"grid": grid})
    description, failures = prepare_paired(splits, out, name, made_by, workers,
                                           grid=None if h416 else grid,
                                           size=SIZE if h416 else None, max_pixels=max_pixels)
    if h416:
        for split, images in annotated.items():
            by_id = {Path(im["file_name"]).stem: im for im in images}
            kept = [i for i, e in description["images"].items() if e["split"] == split]
            coco.write_annotations(out, split, [
                (i, SIZE[1], SIZE[0], sample_boxes(by_id[i], description["images"][i], SIZE))
                for i in kept])
    return description, failures
