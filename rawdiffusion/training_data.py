"""What feeds training: the training crops, their order over processes, and the validation crops.

- `paired_crop_dihedral`: one random crop and dihedral transform, the same for a packed RAW
  (4, h, w) and its RGB guide (3, h, w).
- `to_model_range`: raw numbers and uint8 RGB -> float32 tensors in [-1, 1].
- `TrainSamples`: the Dataset of training crops, indexed by draw number; each draw is
  raw (4, crop, crop), rgb (3, crop, crop) and, for a network with a colour prior, the prior's
  estimate (4, crop, crop), all in [-1, 1]. A draw is a function of (seed, draw number) only.
- `Draws`: the Sampler giving each process its share of the draws of each step.
- `val_batches`: the fixed validation center crops, [(raw (b, 4, crop, crop),
  rgb (b, 3, crop, crop))] in [-1, 1].
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

from .prior import ColourMap, guide_codes
from .bayer import dihedral, dihedral_inverse, dihedral_packed, normalise
from .datasets.layout import PreparedDataset
from .datasets.subsample import draw_images
from .errors import SetupError

VAL_SEED = 123  # validation images and noise are fixed across runs, as in the reference
ORDER, AUGMENT, NOISE = 0, 1, 2  # purposes of the derived random streams (NOISE: training.py)


def paired_crop_dihedral(raw: np.ndarray, rgb: np.ndarray, size: int,
                         rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int]:
    """Random size x size crop and one of the 8 dihedral transforms, the same for both images.

    raw: (4, h, w) packed RAW (R, G1, G2, B); rgb: (3, h, w) guide of the same h, w.
    Each of the 8 transforms (identity, 3 rotations, 4 reflections) has probability 1/8; the
    packed channels keep their meaning (bayer.dihedral_packed swaps G1/G2 where needed).
    Returns (raw crop, rgb crop, transform index k).
    """
    if raw.shape[-2:] != rgb.shape[-2:]:
        raise ValueError(f"RAW {raw.shape} and RGB {rgb.shape} differ in size")
    h, w = raw.shape[-2:]
    if h < size or w < size:
        raise ValueError(f"sample of {w}x{h} is smaller than the {size}x{size} crop")
    top, left = int(rng.integers(h - size + 1)), int(rng.integers(w - size + 1))
    k = int(rng.integers(8))
    window = (..., slice(top, top + size), slice(left, left + size))
    raw = np.ascontiguousarray(dihedral_packed(raw[window], k))
    rgb = np.ascontiguousarray(dihedral(rgb[window], k))
    return raw, rgb, k


def to_model_range(raw: np.ndarray, rgb: np.ndarray, black, white) -> tuple[torch.Tensor, ...]:
    """raw (4, h, w) raw numbers, rgb (3, h, w) uint8 -> float32 tensors in [-1, 1], the RAW
    normalised with its image's levels."""
    raw = torch.from_numpy(normalise(raw, black, white)) * 2 - 1
    rgb = torch.from_numpy(rgb.astype(np.float32) / 255) * 2 - 1
    return raw, rgb


class TrainSamples(torch.utils.data.Dataset):
    """Training crops indexed by draw number g = 0, 1, 2, ... (without end).

    Draw g is sample order(e)[i] with e, i = divmod(g, epoch_length), cropped to `crop` and
    transformed by one of the 8 dihedral transforms, all from a generator seeded with
    (seed, g): the data of any step is known without replaying the steps before it.

    max_items keeps that many images of the split (all samples of each), drawn as the
    reference draws them (datasets.subsample.draw_images with `seed`); an epoch still has the
    full split's length, so the few samples repeat, as the reference resamples them.
    Returns raw (4, crop, crop), rgb (3, crop, crop), both in [-1, 1], and, once `prior` is set
    to the network's colour map, the map's estimate (4, crop, crop) in [-1, 1]: computed on the
    crop before its dihedral transform and transformed with the RAW, as the map sees a guide at
    generation time (its `local` terms are not invariant to rotations and flips).
    """

    def __init__(self, dataset: PreparedDataset, split: str, crop: int, seed: int,
                 max_items: int | None = None):
        self.dataset, self.crop, self.seed = dataset, crop, seed
        self.ids = dataset.split(split)
        if not self.ids:
            raise SetupError(f"{dataset.root}: the {split!r} split is empty")
        # A `prepare subsample` folder remembers its parent's length (layout.py).
        made_by = dataset.description.get("made_by") or {}
        self.epoch_length = made_by.get("parent_train_samples", len(self.ids))
        if max_items is not None:
            images = [image for image, entry in dataset.images.items() if entry["split"] == split]
            if not 1 <= max_items <= len(images):
                raise SetupError(f"dataset.train.max_items={max_items}: {dataset.root} has "
                                 f"{len(images)} {split} images; choose 1 to {len(images)}")
            chosen = draw_images(images, max_items, seed)
            keep = {s for image in chosen for s in dataset.images[image]["samples"]}
            self.ids = [s for s in self.ids if s in keep]
        kept = set(self.ids)
        smallest = min(min(e["sample_size"]) for e in dataset.images.values()
                       if kept.intersection(e["samples"]))
        if smallest < crop:
            raise SetupError(f"optim.crop={crop} is larger than some samples of "
                             f"{dataset.root} (down to {smallest} pixels)")
        self._order = (None, None)
        self.prior: ColourMap | None = None

    def __len__(self) -> int:
        return self.epoch_length

    def order(self, epoch: int) -> np.ndarray:
        """Indices into self.ids for one epoch: shuffled passes over them, epoch_length long."""
        if self._order[0] != epoch:
            rng = np.random.default_rng([self.seed, ORDER, epoch])
            passes = -(-self.epoch_length // len(self.ids))
            order = np.concatenate([rng.permutation(len(self.ids)) for _ in range(passes)])
            self._order = (epoch, order[: self.epoch_length])
        return self._order[1]

    def __getitem__(self, g: int):
        epoch, i = divmod(g, self.epoch_length)
        sample = self.dataset.load(self.ids[self.order(epoch)[i]])
        rng = np.random.default_rng([self.seed, AUGMENT, g])
        raw, rgb, k = paired_crop_dihedral(sample.raw, sample.rgb.transpose(2, 0, 1), self.crop,
                                           rng)
        raw, rgb = to_model_range(raw, rgb, sample.black, sample.white)
        if self.prior is None:
            return raw, rgb
        with torch.no_grad():
            codes = torch.from_numpy(dihedral_inverse(rgb.numpy(), k).copy())
            x_prior = self.prior(guide_codes(codes[None]))[0].numpy()
        return raw, rgb, torch.from_numpy(dihedral_packed(x_prior, k).copy()) * 2 - 1


class Draws(torch.utils.data.Sampler):
    """The draw numbers of one process from step `start` on: step s uses draws
    [s * batch, (s + 1) * batch), and process `rank` of `world` takes its equal slice of them,
    so the data of a step does not depend on the number of processes."""

    def __init__(self, start: int, batch: int, rank: int, world: int):
        self.start, self.batch, self.rank, self.world = start, batch, rank, world

    def __iter__(self):
        per = self.batch // self.world
        for step in itertools.count(self.start):
            first = step * self.batch + self.rank * per
            yield from range(first, first + per)


def val_batches(dataset: PreparedDataset, split: str, crop: int, count: int,
                batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """`count` validation images as center crops: a fixed choice of the split's samples (the
    same for every run). Returns [(raw (b, 4, crop, crop), rgb (b, 3, crop, crop))] in [-1, 1]."""
    ids = dataset.split(split)
    if not ids:
        return []
    chosen = [ids[i] for i in np.random.default_rng(VAL_SEED).permutation(len(ids))[:count]]
    raws, rgbs = [], []
    for sample_id in chosen:
        s = dataset.load(sample_id)
        h, w = s.raw.shape[-2:]
        if min(h, w) < crop:
            raise SetupError(f"validation sample {sample_id} is {w}x{h}, smaller than the "
                             f"{crop}x{crop} crop (optim.crop)")
        top, left = (h - crop) // 2, (w - crop) // 2
        window = (slice(top, top + crop), slice(left, left + crop))
        raw, rgb = to_model_range(s.raw[(...,) + window], s.rgb[window].transpose(2, 0, 1),
                                  s.black, s.white)
        raws.append(raw)
        rgbs.append(rgb)
    return [(torch.stack(raws[i:i + batch_size]), torch.stack(rgbs[i:i + batch_size]))
            for i in range(0, len(raws), batch_size)]
