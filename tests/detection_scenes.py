"""Synthetic street scenes with known boxes, written in the layouts of NOD (RAW DNGs under NEF
names plus RAW-NOD annotation files) and Cityscapes (leftImg8bit PNGs plus gtFine polygons),
so that the detection pipeline runs end to end from `prepare` on: persons are tall red-brown
rectangles with a round head, bicycles two dark wheels, cars wide blue boxes, on a textured
grey-green ground.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from fake_trees import NOD, NOD_CATEGORIES
from rawdiffusion.io import RawImage, write_dng

NOD_MOSAIC = (192, 288)  # (height, width) of the RAW: h416 packs it to 96 x 144, resized x 4.33
CITYSCAPES = (128, 256)


def scene(height: int, width: int, seed: int) -> tuple[np.ndarray, list[tuple]]:
    """An (height, width, 3) uint8 sRGB scene and its objects [(category id, x0, y0, x1, y1)]
    in pixels (x1, y1 exclusive), 2 to 4 objects that do not overlap."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    ground = 90 + 40 * (yy / height)[..., None] * np.array([0.6, 1.0, 0.5])
    base = np.clip(ground + rng.normal(0, 6, (height, width, 3)), 0, 255).astype(np.uint8)
    image = Image.fromarray(base)
    draw = ImageDraw.Draw(image)
    s = min(height, width) / 128  # object scale
    objects, placed = [], []
    for cat in rng.permutation([1, 2, 3, int(rng.integers(1, 4))])[:int(rng.integers(2, 5))]:
        w, h = {1: (14, 34), 2: (30, 20), 3: (50, 24)}[int(cat)]
        w, h = int(w * s), int(h * s)
        for _ in range(50):  # a free place
            x0, y0 = int(rng.integers(2, width - w - 2)), int(rng.integers(2, height - h - 2))
            if all(x0 >= b[2] + 2 or x0 + w + 2 <= b[0] or y0 >= b[3] + 2 or y0 + h + 2 <= b[1]
                   for b in placed):
                break
        else:
            continue
        box = (x0, y0, x0 + w, y0 + h)
        placed.append(box)
        objects.append((int(cat), *box))
        if cat == 1:  # person: head and body
            r = w // 2
            draw.ellipse((x0, y0, x0 + w - 1, y0 + 2 * r - 1), fill=(220, 180, 150))
            draw.rectangle((x0, y0 + 2 * r, x0 + w - 1, y0 + h - 1), fill=(170, 40, 30))
        elif cat == 2:  # bicycle: two wheels and a frame
            d = h
            draw.ellipse((x0, y0, x0 + d - 1, y0 + h - 1), outline=(20, 20, 20), width=max(2, d // 6))
            draw.ellipse((x0 + w - d, y0, x0 + w - 1, y0 + h - 1), outline=(20, 20, 20),
                         width=max(2, d // 6))
            draw.line((x0 + d // 2, y0 + h // 2, x0 + w - d // 2, y0 + h // 2), fill=(240, 220, 0),
                      width=2)
        else:  # car: body and windows
            draw.rectangle((x0, y0 + h // 3, x0 + w - 1, y0 + h - 1), fill=(30, 60, 200))
            draw.rectangle((x0 + w // 5, y0, x0 + 4 * w // 5 - 1, y0 + h // 3), fill=(150, 200, 240))
    return np.asarray(image), objects


def mosaic_of(rgb: np.ndarray, black: int, white: int) -> np.ndarray:
    """An sRGB scene (H, W, 3) uint8 -> an RGGB mosaic (H, W) uint16 of its linear light."""
    linear = (rgb.astype(np.float64) / 255) ** 2.2
    h, w = rgb.shape[:2]
    mosaic = np.empty((h, w))
    mosaic[0::2, 0::2] = linear[0::2, 0::2, 0] * 0.5
    mosaic[0::2, 1::2] = linear[0::2, 1::2, 1]
    mosaic[1::2, 0::2] = linear[1::2, 0::2, 1]
    mosaic[1::2, 1::2] = linear[1::2, 1::2, 2] * 0.6
    return np.round(black + mosaic * 0.9 * (white - black)).astype(np.uint16)


def nod_scenes(root, camera: str = "nikon", train: int = 6, test: int = 3) -> dict:
    """ROOT/RAW/<Nikon|Sony>/ RAW scenes and their RAW-NOD annotation files in
    ROOT/annotations/<camera folder>/. Returns {split: {image id: objects}}."""
    folder, tag, make, model, pattern, black, white = NOD[camera]
    root = Path(root)
    (root / "annotations" / folder).mkdir(parents=True, exist_ok=True)
    h, w = NOD_MOSAIC
    truth, number = {}, 200
    for split, n in (("train", train), ("test", test)):
        images, annotations, truth[split] = [], [], {}
        for _ in range(n):
            number += 3
            name = pattern.format(number)
            rgb, objects = scene(h, w, seed=number)
            write_dng(root / "RAW" / folder / name, RawImage(
                mosaic=mosaic_of(rgb, black[0], white), cfa="RGGB", black_level=black,
                white_level=white, wb=(2.0, 1.0, 1.6), make=make, model=model))
            image_id = Path(name).stem
            images.append({"id": image_id, "width": w, "height": h, "file_name": name})
            for cat, x0, y0, x1, y1 in objects:
                annotations.append({"id": len(annotations), "image_id": image_id,
                                    "category_id": cat, "bbox": [x0, y0, x1 - x0, y1 - y0],
                                    "area": (x1 - x0) * (y1 - y0), "iscrowd": 0})
            truth[split][image_id] = objects
        doc = {"images": images, "annotations": annotations, "categories": NOD_CATEGORIES}
        (root / "annotations" / folder / f"raw_new_{tag}_{split}.json").write_text(json.dumps(doc))
    return truth


def cityscapes_scenes(root, train: int = 4) -> dict:
    """ROOT/leftImg8bit/train/<city>/ scenes and their gtFine polygons (plus one val image).
    Returns {split: {image id: objects}}."""
    h, w = CITYSCAPES
    names = {1: "person", 2: "bicycle", 3: "car"}
    truth = {}
    for split, n in (("train", train), ("val", 1)):
        truth[split] = {}
        for k in range(n):
            image_id = f"{'aachen' if split == 'train' else 'frankfurt'}_{k:06d}_000019"
            rgb, objects = scene(h, w, seed=1000 + 10 * k + (split == "val"))
            city = image_id.split("_")[0]
            png = Path(root) / "leftImg8bit" / split / city / f"{image_id}_leftImg8bit.png"
            png.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rgb).save(png)
            polygons = [{"label": names[c], "polygon": [[x0, y0], [x1 - 1, y0], [x1 - 1, y1 - 1],
                                                        [x0, y1 - 1]]}
                        for c, x0, y0, x1, y1 in objects]
            poly = Path(root) / "gtFine" / split / city / f"{image_id}_gtFine_polygons.json"
            poly.parent.mkdir(parents=True, exist_ok=True)
            poly.write_text(json.dumps({"imgHeight": h, "imgWidth": w, "objects": polygons}))
            truth[split][image_id] = objects
    return truth
