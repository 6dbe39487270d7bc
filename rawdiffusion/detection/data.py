"""What feeds the detector: images with boxes from real and generated sources, their
normalisation, the f-mixing of the two sources and the batches of an epoch.

- An `Item` is one image with its COCO boxes: a real RAW sample of a prepared detection dataset
  (raw/<id>.npy with its image's levels), a generated RAW (sample.py's pred/<id>.dng|.h5|.npy,
  already normalised) or, for the RGB baseline, an sRGB image (rgb/<id>.png).
- `load_image`: an item -> float32 (C, H, W) in [0, 1]: C = 4 packed R, G1, G2, B, or C = 3 RGB.
- `ChannelStats` (`channel_statistics`): per channel mean and standard deviation of the training
  data, weighted by how often each source is drawn; `to_detector` normalises with them and
  reduces RAW to 3 channels by averaging the greens (as the paper's detector does).
- `Mixture`: the training Dataset, indexed by draw number. Draw i of epoch e is real with
  probability f (the paper's mixing; f = 1: every real image once per epoch, in a permutation
  seeded by (seed, e)) and otherwise a generated image drawn uniformly; then flipped
  horizontally with probability data.flip. A draw depends only on (seed, draw number). An
  image that cannot be read is reported (a warning naming the file and the reason) and
  replaced by another of its source, drawn the same way, so one bad file does not stop a run.
- `epoch_batches`: an epoch's draws grouped into batches of images of one orientation
  (landscape or portrait), as mmdetection's aspect-ratio batch sampler does; a function of
  the item sizes only, so any iteration's batch is known without replaying training.

Boxes are (n, 4) float32 x0, y0, x1, y1 in pixels of the image (datasets/coco.py), labels (n,)
int64 COCO category ids 1 person, 2 bicycle, 3 car.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import bayer
from ..datasets.coco import CATEGORIES
from ..datasets.errors import DatasetError
from ..datasets.layout import PreparedDataset, read_raw_sample, read_rgb_sample
from ..datasets.subsample import draw_images
from ..diffusion import derived_seed
from ..errors import SetupError, UserError
from ..io import RawFormatError, read_packed, read_raw

log = logging.getLogger(__name__)

PRED_SUFFIXES = (".dng", ".h5", ".npy")  # generation.SUFFIX: what sample.py's pred/ holds
ORDER, DRAW, STATS, REPLACE = 0, 1, 2, 3  # purposes of the derived random streams
REPLACEMENTS = 8  # other images tried in place of one that cannot be read


@dataclass(frozen=True, eq=False)
class Item:
    """One image with its boxes. `kind`: "packed" (raw/<id>.npy of a prepared dataset, raw
    numbers normalised with `black` (4,) and `white`), "pred" (a generated RAW in [0, 1]) or
    "rgb" (an 8-bit sRGB image). width, height: the image's size in pixels (packed pixels for
    RAW)."""

    id: str
    path: Path
    kind: str
    width: int
    height: int
    boxes: np.ndarray  # (n, 4) float32
    labels: np.ndarray  # (n,) int64
    black: tuple = (0.0, 0.0, 0.0, 0.0)
    white: float = 1.0


def read_annotations(root: Path, split: str) -> tuple[dict, dict[str, tuple]]:
    """ROOT/annotations/<split>.json -> (the COCO document, {file_name: (width, height, boxes
    (n, 4), labels (n,))}). Raises DatasetError when the file is missing or not COCO."""
    path = Path(root) / "annotations" / f"{split}.json"
    if not path.is_file():
        raise DatasetError(path, "missing: a detection dataset needs COCO boxes (made by "
                                 "`rawdiffusion prepare nod --h416`, `prepare cityscapes` or "
                                 "`prepare bdd`)")
    try:
        doc = json.loads(path.read_text())
        by_id = {im["id"]: (str(im["file_name"]), int(im["width"]), int(im["height"]), [])
                 for im in doc["images"]}
        dropped = 0
        for a in doc["annotations"]:
            if a["image_id"] not in by_id:
                raise DatasetError(path, f"annotation {a.get('id')!r} is of image_id "
                                         f"{a['image_id']!r}, which is not among its images")
            if a.get("iscrowd", 0):
                continue
            _, width, height, boxes = by_id[a["image_id"]]
            x, y, w, h = (float(v) for v in a["bbox"])
            x0, y0 = max(x, 0.0), max(y, 0.0)
            x1, y1 = min(x + w, float(width)), min(y + h, float(height))
            if a["category_id"] in range(1, len(CATEGORIES) + 1) and x1 > x0 and y1 > y0:
                boxes.append((x0, y0, x1, y1, int(a["category_id"])))  # NaN fails the test
            else:
                dropped += 1
    except (OSError, ValueError, KeyError, TypeError) as e:
        if isinstance(e, DatasetError):
            raise
        raise DatasetError(path, f"not a COCO detection file ({type(e).__name__}: {e})") from None
    if dropped:
        log.warning("%s: %d box(es) left out: of another category than %s, or without area "
                    "inside the image (or not finite)", path, dropped, ", ".join(CATEGORIES))
    images = {}
    for name, width, height, boxes in by_id.values():
        b = np.array(boxes, dtype=np.float32).reshape(-1, 5)
        images[name] = (width, height, b[:, :4].copy(), b[:, 4].astype(np.int64))
    return doc, images


def _items(dataset: PreparedDataset, split: str, kind: str, ids=None) -> list[Item]:
    """The images of `split` that have boxes in its annotations, as items of `kind` (packed or
    rgb), in the split file's order."""
    _, boxes = read_annotations(dataset.root, split)
    items = []
    for sample_id in dataset.split(split):
        if sample_id not in boxes or (ids is not None and sample_id not in ids):
            continue
        width, height, b, labels = boxes[sample_id]
        entry = dataset.images[dataset.image_of(sample_id)]
        folder = "raw" if kind == "packed" else "rgb"
        suffix = ".npy" if kind == "packed" else ".png"
        items.append(Item(sample_id, dataset.data_root / folder / f"{sample_id}{suffix}", kind,
                          width, height, b, labels,
                          tuple(float(v) for v in entry.get("black_level", [0.0] * 4)),
                          float(entry.get("white_level", 1.0))))
    return items


def real_items(dataset: PreparedDataset, split: str, input: str, max_items: int | None,
               seed: int) -> list[Item]:
    """The real training images: `max_items` images of the split drawn as `prepare subsample`
    draws them (datasets/subsample.draw_images with `seed`), or all (None)."""
    if dataset.kind != "paired" and input == "raw":
        raise SetupError(f"{dataset.root}: a {dataset.kind!r} dataset has no RAW; real RAW "
                         "images come from `rawdiffusion prepare nod --h416`")
    images = sorted({dataset.image_of(s) for s in dataset.split(split)})
    ids = None
    if max_items is not None:
        if not 1 <= max_items <= len(images):
            raise SetupError(f"data.real.max_items={max_items}: {dataset.root} has "
                             f"{len(images)} {split} images; choose 1 to {len(images)} or null")
        chosen = set(draw_images(images, max_items, seed))
        ids = {s for i in chosen for s in dataset.images[i]["samples"]}
    return _items(dataset, split, "packed" if input == "raw" else "rgb", ids)


def val_items(dataset: PreparedDataset, split: str, input: str) -> list[Item]:
    """Every image of the evaluation split that has an entry in its annotations."""
    if dataset.kind != "paired" and input == "raw":
        raise SetupError(f"{dataset.root}: a {dataset.kind!r} dataset has no RAW to evaluate "
                         "a RAW detector on")
    return _items(dataset, split, "packed" if input == "raw" else "rgb")


def pred_folder(pred) -> Path:
    """sample.py's output folder or its pred/ subfolder -> the folder holding the files."""
    pred = Path(pred)
    return pred / "pred" if (pred / "pred").is_dir() else pred


def generated_items(dataset: PreparedDataset, split: str, input: str,
                    pred: str | None) -> list[Item]:
    """The generated training images: for RAW, the predictions in `pred` (sample.py's output
    for this RGB dataset's split, any of its formats) of the split's annotated images; for the
    RGB baseline, the RGB dataset's own images. Images without a prediction are left out (a
    warning counts them); none at all is a SetupError."""
    if input == "rgb":
        return _items(dataset, split, "rgb")
    if pred is None:
        raise SetupError("data.generated.pred is not set: give sample.py's output folder for "
                         f"{dataset.root} ({split} split), made by `python sample.py ... "
                         f"dataset/val=<RGB dataset> dataset.val.split={split} save_pred=true "
                         "rgb_only=true`")
    folder = pred_folder(pred)
    if not folder.is_dir():
        raise SetupError(f"data.generated.pred={pred}: no such folder")
    items = []
    for item in _items(dataset, split, "rgb"):
        found = [folder / f"{item.id}{s}" for s in PRED_SUFFIXES if (folder / f"{item.id}{s}")
                 .is_file()]
        if found:
            items.append(Item(item.id, found[0], "pred", item.width, item.height, item.boxes,
                              item.labels))
    missing = len(dataset.split(split)) - len(items)
    if not items:
        raise SetupError(f"{folder}: no generated RAW (<id>.dng, .h5 or .npy) for any image of "
                         f"{dataset.root} ({split} split); generate them with sample.py "
                         f"dataset.val.split={split} save_pred=true rgb_only=true")
    if missing:
        log.warning("%s: %d of the %d images of %s (%s) have no generated RAW; training uses "
                    "the other %d", folder, missing, missing + len(items), dataset.root, split,
                    len(items))
    return items


# ----------------------------------------------------------------------------- images

def load_image(item: Item) -> np.ndarray:
    """An item's image as float32 (C, H, W) in [0, 1]: C = 4 (packed R, G1, G2, B) for RAW,
    3 for RGB. Raises DatasetError (or RawFormatError for a generated DNG) naming the file."""
    if item.kind == "packed":
        raw = read_raw_sample(item.path, "")
        return bayer.normalise(raw, np.asarray(item.black), item.white)
    if item.kind == "rgb":
        return read_rgb_sample(item.path, "").transpose(2, 0, 1).astype(np.float32) / 255
    if item.path.suffix == ".dng":
        raw = read_raw(item.path)
        return bayer.normalise(bayer.pack(raw.mosaic, raw.cfa),
                               bayer.packed_levels(raw.black_level, raw.cfa), raw.white_level)
    try:
        x = read_packed(item.path)
    except (OSError, ValueError, KeyError) as e:
        raise RawFormatError(item.path, f"not a generated packed RAW ({type(e).__name__}: "
                                        f"{e})") from None
    if x.shape[0] != 4:
        raise RawFormatError(item.path, f"shape {x.shape}, expected packed RAW (H, W, 4)")
    return x


def checked_image(item: Item) -> np.ndarray:
    """load_image, and a DatasetError when the image's size is not the one its boxes are for."""
    x = load_image(item)
    if x.shape[-2:] != (item.height, item.width):
        raise DatasetError(item.path, f"{x.shape[-1]}x{x.shape[-2]} pixels, but its boxes are "
                                      f"for {item.width}x{item.height}")
    return x


@dataclass(frozen=True)
class ChannelStats:
    """Per channel mean and standard deviation of [0, 1] images: (C,) each, C = 4 or 3."""

    mean: tuple
    std: tuple

    def as_dict(self) -> dict:
        return {"mean": list(self.mean), "std": list(self.std)}


def channel_statistics(sources: list[tuple[list[Item], float]], max_images: int | None,
                       seed: int) -> ChannelStats:
    """Mean and standard deviation per channel of the training data: each source (items,
    probability of drawing from it) contributes up to `max_images` of its images (a seeded
    choice), weighted by its probability, so that the statistics are those of the mixture the
    detector is trained on. Sources of probability 0 are not read."""
    moments = []  # (weight, E[x], E[x^2]) per source
    for k, (items, weight) in enumerate(sources):
        if weight <= 0 or not items:
            continue
        rng = np.random.default_rng(derived_seed(seed, STATS, k))
        chosen = rng.permutation(len(items))[:max_images]
        sums = None
        for i in chosen:
            x = load_image(items[i]).astype(np.float64)
            s = np.stack([x.mean(axis=(1, 2)), (x * x).mean(axis=(1, 2))])
            sums = s if sums is None else sums + s
        moments.append((weight, *(sums / len(chosen))))
    total = sum(w for w, _, _ in moments)
    mean = sum(w * m for w, m, _ in moments) / total
    second = sum(w * q for w, _, q in moments) / total
    std = np.sqrt(np.maximum(second - mean * mean, 0.0))
    std = np.where(std > 1e-6, std, 1.0)  # a constant channel is only centred
    return ChannelStats(tuple(float(v) for v in mean), tuple(float(v) for v in std))


def to_detector(x: np.ndarray, stats: ChannelStats) -> torch.Tensor:
    """(C, H, W) in [0, 1] -> the detector's input (3, H, W): each channel normalised with the
    training statistics, then for RAW the greens averaged: R, (G1 + G2) / 2, B."""
    mean = np.asarray(stats.mean, dtype=np.float32).reshape(-1, 1, 1)
    std = np.asarray(stats.std, dtype=np.float32).reshape(-1, 1, 1)
    if x.shape[0] != mean.shape[0]:
        raise SetupError(f"an image of {x.shape[0]} channels for a detector of "
                         f"{mean.shape[0]}-channel statistics (data.input differs)")
    x = (x - mean) / std
    if x.shape[0] == 4:
        x = np.stack([x[0], (x[1] + x[2]) / 2, x[3]])
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def preview_rgb(x: np.ndarray) -> np.ndarray:
    """(C, H, W) in [0, 1] -> (H, W, 3) uint8 to look at: RGB as it is, RAW with the greens
    averaged and gamma 1/5 (images.raw_preview)."""
    from ..images import raw_preview

    if x.shape[0] == 4:
        return raw_preview(x)
    return np.round(np.clip(x.transpose(1, 2, 0), 0, 1) * 255).astype(np.uint8)


# ----------------------------------------------------------------------------- training draws

class Mixture(torch.utils.data.Dataset):
    """Training samples by draw number (see the module docstring): each is (image (3, H, W)
    for the detector, target {"boxes": (n, 4) float32, "labels": (n,) int64}, 1 if real else 0).

    `real`, `generated`: the two sources; `f`: the probability of a real draw; `length`: the
    draws of an epoch (the real split's length)."""

    def __init__(self, real: list[Item], generated: list[Item], f: float, stats: ChannelStats,
                 seed: int, flip: float):
        if f > 0 and not real:
            raise SetupError("data.real_fraction > 0 but the real split has no annotated image")
        if f < 1 and not generated:
            raise SetupError(f"data.real_fraction={f} draws generated images, but there are "
                             "none: choose data/generated=cityscapes|bdd with data.generated."
                             "pred=<sample.py output>, or data.real_fraction=1")
        self.real, self.generated, self.f = real, generated, f
        self.stats, self.seed, self.flip = stats, seed, flip
        self.length = len(real) if real else len(generated)
        self.reported: set[Path] = set()  # bad files already named in a warning
        self._orders: tuple[int, np.ndarray | None] = (-1, None)

    def __len__(self) -> int:
        return self.length

    def item(self, draw: int) -> tuple[Item, bool, bool]:
        """The item of a draw, whether to flip it and whether it is real."""
        epoch, i = divmod(draw, self.length)
        rng = np.random.default_rng(derived_seed(self.seed, DRAW, draw))
        real = self.f >= 1 or (self.f > 0 and rng.random() < self.f)
        if real:
            item = self.real[self._order(epoch)[i % len(self.real)]]
        else:
            item = self.generated[int(rng.integers(len(self.generated)))]
        return item, bool(rng.random() < self.flip), bool(real)

    def __getitem__(self, draw: int):
        item, flip, real = self.item(draw)
        x, item = self._readable(item, draw, real)
        x = to_detector(x, self.stats)
        boxes = item.boxes.copy()
        if flip:
            x = x.flip(-1)
            boxes[:, [0, 2]] = item.width - boxes[:, [2, 0]]
        target = {"boxes": torch.from_numpy(boxes), "labels": torch.from_numpy(item.labels)}
        return x, target, int(real)


    def _order(self, epoch: int) -> np.ndarray:
        """The permutation of the real images in `epoch` (kept for the epoch last asked)."""
        if self._orders[0] != epoch:
            rng = np.random.default_rng(derived_seed(self.seed, ORDER, epoch))
            self._orders = (epoch, rng.permutation(len(self.real)))
        return self._orders[1]

    def _readable(self, item: Item, draw: int, real: bool) -> tuple[np.ndarray, Item]:
        """The item's image, or, when it cannot be read (or does not fit its boxes), that of
        another image of the same source drawn with (seed, REPLACE, draw, attempt). Each bad
        file is reported once per process."""
        source, first = self.real if real else self.generated, None
        for attempt in range(REPLACEMENTS + 1):
            try:
                return checked_image(item), item
            except (UserError, OSError) as e:
                first = first or e
                if item.path not in self.reported:
                    self.reported.add(item.path)
                    log.warning("%s; training on other images in its place", e)
                rng = np.random.default_rng(derived_seed(self.seed, REPLACE, draw, attempt))
                item = source[int(rng.integers(len(source)))]
        raise SetupError(f"{first}; nor could {REPLACEMENTS} other images drawn in its place be "
                         "read: check the dataset")


def epoch_batches(mixture: Mixture, epoch: int, batch_size: int, world: int = 1) -> list[list[int]]:
    """The draws of `epoch` in batches of `batch_size` images of one orientation: draws go in
    order to a landscape or a portrait bucket, a full bucket is a batch; what is left at the end
    forms the last batches (of mixed orientation). A last batch smaller than the number of
    processes `world` is dropped (some process would have nothing)."""
    buckets: dict[bool, list[int]] = {True: [], False: []}
    batches = []
    first = epoch * len(mixture)
    for draw in range(first, first + len(mixture)):
        item = mixture.item(draw)[0]
        bucket = buckets[item.width >= item.height]
        bucket.append(draw)
        if len(bucket) == batch_size:
            batches.append(bucket.copy())
            bucket.clear()
    rest = buckets[True] + buckets[False]
    batches += [rest[i:i + batch_size] for i in range(0, len(rest), batch_size)]
    return [b for b in batches if len(b) >= world]


class Batches(torch.utils.data.Sampler):
    """This process's share of each batch from iteration `start` to the end of `epochs`:
    process `rank` of `world` takes every world-th draw of a batch. Yields lists of draws."""

    def __init__(self, mixture: Mixture, batch_size: int, epochs: int, start: int, rank: int,
                 world: int):
        self.mixture, self.batch_size, self.epochs = mixture, batch_size, epochs
        self.start, self.rank, self.world = start, rank, world

    def __iter__(self):
        iteration = 0
        for epoch in range(self.epochs):
            for batch in epoch_batches(self.mixture, epoch, self.batch_size, self.world):
                if iteration >= self.start:
                    yield batch[self.rank::self.world]
                iteration += 1


def iterations_per_epoch(mixture: Mixture, batch_size: int, epochs: int,
                         world: int = 1) -> list[int]:
    """The number of batches of each epoch."""
    return [len(epoch_batches(mixture, e, batch_size, world)) for e in range(epochs)]


def collate(samples):
    """A list of Mixture samples -> (images, targets, real flags) as lists."""
    return tuple(list(s) for s in zip(*samples)) if samples else ([], [], [])

