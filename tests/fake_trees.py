"""Small fake copies of the public datasets, in their real folder layouts and file formats
(see the docstrings of rawdiffusion/datasets/{fivek,nod,cityscapes,bdd}.py for the layouts).

RAW files are DNGs written by rawdiffusion.io.write_dng with the cameras' make and model; LibRaw
identifies formats by content, so a DNG under a .NEF or .ARW name reads like the real thing.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
from PIL import Image

from conftest import synthetic_raw
from rawdiffusion.io import write_dng

MOSAIC = (192, 288)  # (height, width): packed 96 x 144, a 3 x 3 grid of 32 x 32 patches


def fake_raw(make: str, model: str, seed: int, black=(0, 0, 0, 0), white=16383, cfa="RGGB"):
    raw = synthetic_raw(cfa, *MOSAIC, seed=seed, white=white, black=black)
    return dataclasses.replace(raw, make=make, model=model)


# ----------------------------------------------------------------------------- FiveK

FIVEK_CAMERAS = {
    "nikon": ("NIKON CORPORATION", "NIKON D700", (0, 0, 0, 0), 16383),
    "canon": ("Canon", "Canon EOS 5D", (127, 127, 127, 127), 4095),
    "other": ("Canon", "Canon EOS 5D Mark II", (1024, 1024, 1024, 1024), 15000),
}


def fivek_tree(root, counts=None) -> dict[str, list[Path]]:
    """ROOT/raw_photos/HQa*/photos/aNNNN-<name>.dng; returns {camera: [paths]} (sorted).

    Numbers interleave the cameras and three HQa folders, so that selection and sorting matter:
    as in the real tree, sorting by path (HQa1400to2100 < HQa1to700 < HQa701to1400) is not
    sorting by number.
    """
    counts = counts or {"nikon": 7, "canon": 3, "other": 1}
    order = [c for n in range(max(counts.values())) for c in counts if n < counts[c]]
    files: dict[str, list[Path]] = {c: [] for c in counts}
    folders = ("HQa1to700", "HQa701to1400", "HQa1400to2100")
    for k, camera in enumerate(order, start=1):
        number, folder = 700 * (k % 3) + k, folders[k % 3]
        path = Path(root) / "raw_photos" / folder / "photos" / f"a{number:04d}-x_DSC{k:04d}.dng"
        make, model, black, white = FIVEK_CAMERAS[camera]
        write_dng(path, fake_raw(make, model, seed=k, black=black, white=white))
        files[camera].append(path)
    return {c: sorted(p) for c, p in files.items()}


# ----------------------------------------------------------------------------- NOD

NOD = {"nikon": ("Nikon", "Nikon750", "NIKON CORPORATION", "NIKON D750", "DSC_{:04d}.NEF",
                 (600, 600, 600, 600), 16383),
       "sony": ("Sony", "Sony_RX100m7", "SONY", "DSC-RX100M7", "DSC{:05d}.ARW",
                (800, 800, 800, 800), 16380)}
NOD_CATEGORIES = [{"supercategory": "person", "id": 1, "name": "person"},
                  {"supercategory": "vehicle", "id": 2, "name": "bicycle"},
                  {"supercategory": "vehicle", "id": 3, "name": "car"},
                  {"supercategory": "vehicle", "id": 4, "name": "motorcycle"}]
NOD_ANNOTATED = (280, 188)  # (width, height) in the annotation files: 8 x 4 less than the RAW


def nod_tree(root, camera: str, train=4, test=2, annotations_dir=None,
             sony_test_name="raw_str_labeled_new_Sony_RX100m7_test.json") -> dict:
    """ROOT/RAW/<Nikon|Sony>/<files> and the RAW-NOD annotation files (in ROOT/annotations/<cam>
    unless `annotations_dir` is given). Returns {split: [image ids]}."""
    folder, tag, make, model, pattern, black, white = NOD[camera]
    root = Path(root)
    annotations_dir = Path(annotations_dir or root / "annotations" / folder)
    annotations_dir.mkdir(parents=True, exist_ok=True)
    ids, number = {}, 100
    for split, n in (("train", train), ("test", test)):
        images, anns = [], []
        for _ in range(n):
            number += 7
            name = pattern.format(number)
            write_dng(root / "RAW" / folder / name, fake_raw(make, model, number, black, white))
            image_id = Path(name).stem
            images.append({"id": image_id, "width": NOD_ANNOTATED[0],
                           "height": NOD_ANNOTATED[1], "file_name": name, "license": 1})
            for bbox, cat in (([20, 30, 40, 50], 1), ([100, 60, 30, 20], 2),
                              ([150, 90, 90, 60], 3), ([10, 10, 20, 20], 4),  # motorcycle
                              ([60, 60, 2, 0], 1)):                           # no area
                anns.append({"image_id": image_id, "bbox": bbox, "category_id": cat,
                             "id": len(anns), "iscrowd": 0, "area": bbox[2] * bbox[3]})
        images.reverse()  # the files list images in no particular order
        doc = {"info": {"description": "fake RAW-NOD"}, "licenses": [{"id": 1, "name": "x"}],
               "images": images, "categories": NOD_CATEGORIES, "annotations": anns}
        name = f"raw_new_{tag}_{split}.json"
        if camera == "sony" and split == "test" and sony_test_name:
            name = sony_test_name
        (annotations_dir / name).write_text(json.dumps(doc))
        ids[split] = sorted(im["id"] for im in images)
    return ids


# ----------------------------------------------------------------------------- Cityscapes

CITYSCAPES_SIZE = (128, 256)  # (height, width): the real 1024 x 2048 scaled by 1/8


def rect(x0, y0, x1, y1):
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


# Objects in drawing order, with the visible box each one should get (None: no box).
CITYSCAPES_OBJECTS = [
    ({"label": "road", "polygon": rect(0, 70, 255, 127)}, None),
    ({"label": "car", "polygon": rect(40, 60, 100, 100)}, (3, 40, 60, 90, 101)),  # right hidden
    ({"label": "license plate", "polygon": rect(40, 60, 60, 100)}, None),  # never drawn
    ({"label": "person", "polygon": rect(90, 50, 120, 110)}, (1, 90, 50, 121, 111)),
    ({"label": "rider", "polygon": rect(150, 40, 170, 90)}, (1, 150, 40, 171, 80)),  # bottom hidden
    ({"label": "bicycle", "polygon": rect(150, 80, 180, 110)}, (2, 150, 80, 181, 111)),
    ({"label": "cargroup", "polygon": rect(200, 60, 250, 100)}, None),  # a group: no box
    ({"label": "person", "polygon": rect(5, 5, 15, 15), "deleted": 1}, None),
    ({"label": "person", "polygon": rect(220, 5, 230, 15)}, None),  # hidden by the building
    ({"label": "building", "polygon": rect(210, 0, 240, 30)}, None),
]


def cityscapes_tree(root, images=None) -> dict[str, list[str]]:
    """ROOT/leftImg8bit/<split>/<city>/*_leftImg8bit.png and ROOT/gtFine/<split>/<city>/
    *_gtFine_polygons.json. Returns {split: [image ids]}."""
    images = images or {"train": ["aachen_000000_000019", "aachen_000001_000019",
                                  "bochum_000000_000313"],
                        "val": ["frankfurt_000000_000294"]}
    h, w = CITYSCAPES_SIZE
    rng = np.random.default_rng(0)
    for split, ids in images.items():
        for image_id in ids:
            city = image_id.split("_")[0]
            png = Path(root) / "leftImg8bit" / split / city / f"{image_id}_leftImg8bit.png"
            png.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(png)
            poly = Path(root) / "gtFine" / split / city / f"{image_id}_gtFine_polygons.json"
            poly.parent.mkdir(parents=True, exist_ok=True)
            poly.write_text(json.dumps({"imgHeight": h, "imgWidth": w,
                                        "objects": [o for o, _ in CITYSCAPES_OBJECTS]}))
    return {s: sorted(ids) for s, ids in images.items()}


# ----------------------------------------------------------------------------- BDD100K

BDD_SIZE = (72, 128)  # (height, width): the real 720 x 1280 scaled by 1/10
DET20 = {"person": "pedestrian", "bicycle": "bicycle"}
ORIGINAL = {"person": "person", "bicycle": "bike"}


def bdd_frames(style: str) -> dict[str, list[dict]]:
    """Label frames per split; `style` "det_20" or "original" (2018) category names."""
    names = DET20 if style == "det_20" else ORIGINAL

    def box(category, x1, y1, x2, y2):
        return {"id": "1", "category": category, "attributes": {"occluded": False},
                "box2d": {"x1": x1, "y1": y1, "x2": x2, "y2": y2}}

    first = [box("car", 12.8, 7.2, 64.0, 36.0), box(names["person"], 70, 20, 80, 50),
             box("rider", 90, 20, 100, 50), box(names["bicycle"], 88, 40, 104, 60),
             box("truck", 0, 0, 10, 10), box("car", 120, 60, 140, 80)]  # partly outside
    if style == "original":
        first.append({"category": "drivable area", "poly2d": [{"vertices": [[0, 0], [1, 1]]}]})
    sign = box("traffic sign", 1, 1, 5, 5)
    return {"train": [{"name": "0000f77c-6257be58.jpg", "labels": first},
                      {"name": "00a0f008-3c67908e.jpg", "labels": [sign]},
                      {"name": "00a04f65-af2ab984.jpg", "labels": None},
                      {"name": "0a0a0b1a-7c39d841.jpg", "labels": [box("car", 0, 0, 30, 20)]}],
            "val": [{"name": "b1c66a42-6f7d68ca.jpg", "labels": [box("car", 5, 5, 25, 25)]}]}


def bdd_tree(root, style="det_20") -> dict[str, list[dict]]:
    """ROOT/images/100k/<split>/*.jpg and the label file of `style`. Returns the frames."""
    frames = bdd_frames(style)
    rng = np.random.default_rng(1)
    for split, fs in frames.items():
        for frame in fs:
            jpg = Path(root) / "images" / "100k" / split / frame["name"]
            jpg.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (*BDD_SIZE, 3), dtype=np.uint8)).save(jpg)
        if style == "det_20":
            path = Path(root) / "labels" / "det_20" / f"det_{split}.json"
        else:
            path = Path(root) / "labels" / f"bdd100k_labels_images_{split}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(fs))
    return frames


def truncate(path) -> Path:
    """Cut a file to half its size (a broken download)."""
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: len(data) // 2])
    return Path(path)
