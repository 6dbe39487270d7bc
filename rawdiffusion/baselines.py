"""Baselines: a camera's RAW from an sRGB guide without a network.

What a user could get without RAW-Diffusion, so that every quality figure has something to beat
(README, "Quality"). Each baseline is a deterministic generator with the interface of a
checkpoint: `rawdiffusion baseline fit DATASET --kind KIND --out FILE` writes a small JSON file
that `convert --checkpoint FILE` and `sample.py checkpoint=FILE` take in a checkpoint's place.

Fitted colour maps (kinds `linear`, `poly2`, `poly3`, `curves`, and sums of these with `local`,
e.g. `curves+poly3+local`). The guide is linearised with the inverse sRGB transfer function
(IEC 61966-2-1, from colour-science), expanded into terms, and mapped to the four packed
channels by a (terms x 4) matrix W fitted in closed form by least squares on a prepared
dataset's training split. A kind is one or more groups of terms joined by "+", plus a constant:

    linear   R, G, B                                        (with 1: the 3x4 linear map)
    poly2    all monomials of R, G, B of degree 1 and 2     (9 terms)
    poly3    all monomials of R, G, B of degree 1 to 3      (19 terms)
    curves   per-channel tone curves: 16 piecewise-linear "hat" functions of each 8-bit guide
             channel (48 terms); sum_c h_kc(guide_c): a curve per channel followed by a
             matrix, generalised, and so linear across channels (no cross terms)
    local    the linear R, G, B of the 8 neighbours minus the pixel's own (24 terms): a 3x3
             linear filter per channel, which undoes the sharpening and the half-pixel offset
             of each CFA site that a camera's processing left in the sRGB image

At most one polynomial group, and at least one group besides `local`. The polynomial terms
are those of Finlayson et al. 2015 (colour-science's `polynomial_expansion_Finlayson2015`). The
fit uses every pixel of every training sample (or an even grid of them, at most
`MAX_FIT_PIXELS` in all), normalised with its image's own levels; pixels where the guide is
clipped (255 in a channel) are kept, so the map learns the mean RAW behind a clipped guide; a
tiny ridge (1e-6 of the mean diagonal) keeps the normal equations well-conditioned.
Predictions are clipped to [0, 1]; with `local`, also to the range of the colour terms' estimate
over each pixel's 3x3 neighbourhood (ColourMap.estimate: no halos). Image borders repeat their
edge pixels for `local`.

Unprocessing (kinds `upi`, `upi-camera`): Brooks et al. 2019, unprocess.py; `upi` with generic
parameters, `upi-camera` with the training camera's colour matrix and as-shot white balance.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from .atomic import atomic_output
from .camera import Camera
from .bayer import normalise
from .errors import UserError
from .images import check_guide
from .io import colour_science

FORMAT = "rawdiffusion-baseline/1"
MAPS = ("linear", "poly2", "poly3", "curves")  # the single-group maps; any sum of groups works
UPI = ("upi", "upi-camera")
DEGREES = {"linear": 1, "poly2": 2, "poly3": 3}  # the polynomial groups' degrees
GROUPS = (*MAPS, "local")  # a map kind's groups, in the order of its terms
CURVE_KNOTS = 16
LOCAL_OFFSETS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]
MAX_FIT_PIXELS = 1 << 24  # pixels used to fit a map: an even grid of each sample beyond this
RIDGE = 1e-6
ROWS = 256  # guide rows expanded at once: bounds the memory of the terms


class BaselineError(UserError, ValueError):
    """A baseline file or fit that cannot be used; the message names the file and why."""


@functools.cache
def srgb_to_linear_table() -> np.ndarray:
    """(256,) float64: the linear value of every 8-bit sRGB code (IEC 61966-2-1 decoding,
    colour-science's `cctf_decoding(..., function="sRGB")`)."""
    return np.asarray(colour_science().cctf_decoding(np.arange(256) / 255.0, function="sRGB"),
                      dtype=np.float64)


def monomial_exponents(degree: int) -> list[tuple[int, int, int]]:
    """Exponents (i, j, k) of R^i G^j B^k with i + j + k <= degree: the constant first, then
    by degree. 4, 10, 20 terms for degree 1, 2, 3."""
    exps = [e for e in itertools.product(range(degree + 1), repeat=3) if sum(e) <= degree]
    return sorted(exps, key=lambda e: (sum(e), [-x for x in e]))


def map_groups(kind: str) -> tuple[str, ...]:
    """The groups of terms of a colour map kind ("curves+poly3+local" -> ("poly3", "curves",
    "local")), in GROUPS' order. Raises BaselineError naming the kind and the rule it breaks."""
    groups = str(kind).split("+")
    unknown = [g for g in groups if g not in GROUPS]
    if unknown or len(set(groups)) < len(groups):
        raise BaselineError(f"colour map kind {kind!r}: one or more of {', '.join(GROUPS)} "
                            "joined by +, each once")
    if sum(g in DEGREES for g in groups) > 1:
        raise BaselineError(f"colour map kind {kind!r}: at most one of {', '.join(DEGREES)}")
    if groups == ["local"]:
        raise BaselineError(f"colour map kind {kind!r}: local needs a colour group "
                            f"({', '.join(MAPS)}) beside it")
    return tuple(g for g in GROUPS if g in groups)


def is_map_kind(kind: str) -> bool:
    try:
        map_groups(kind)
    except ValueError:
        return False
    return True


def n_terms(kind: str) -> int:
    """Terms of a colour map kind, the constant included."""
    sizes = {"curves": 3 * CURVE_KNOTS, "local": 3 * len(LOCAL_OFFSETS)}
    return 1 + sum(sizes[g] if g in sizes else len(monomial_exponents(DEGREES[g])) - 1
                   for g in map_groups(kind))


class ColourMap(nn.Module):
    """A fitted colour map: 8-bit sRGB guide -> packed RAW (see the module docstring).

    kind: a colour map kind (map_groups), stored as written in GROUPS' order; the weights W
    (terms x 4) are a buffer, so the map moves with a network and is saved in its state dict.
    `halo`: the rows and columns of neighbours a pixel's terms read (1 with `local`, else 0).
    Raises ValueError for an unknown kind or weights of the wrong shape.
    """

    def __init__(self, kind: str, weights: torch.Tensor | None = None):
        super().__init__()
        self.groups = map_groups(kind)
        self.kind = "+".join(self.groups)
        self.halo = int("local" in self.groups)
        n = n_terms(kind)
        w = torch.zeros(n, 4, dtype=torch.float64) if weights is None else weights
        if tuple(w.shape) != (n, 4):
            raise ValueError(f"a {self.kind} map has {n} x 4 weights, got {tuple(w.shape)}")
        self.register_buffer("weights", w.to(torch.float64))
        self.register_buffer("table", torch.from_numpy(srgb_to_linear_table()), persistent=False)

    def features(self, codes: torch.Tensor) -> torch.Tensor:
        """codes: (B, 3, H, W) integer-valued 8-bit guide codes 0..255 (any dtype) ->
        (B, terms, H, W) float64: 1, then each group's terms in GROUPS' order."""
        lin = self.table[codes.long()]  # (B, 3, H, W) linear RGB
        terms = [torch.ones_like(lin[:, :1])]
        for group in self.groups:
            if group == "curves":
                v = codes.double() / 255
                knots = torch.linspace(0, 1, CURVE_KNOTS, dtype=torch.float64,
                                       device=codes.device)
                hats = 1 - (v[:, :, None] - knots[:, None, None]).abs() * (CURVE_KNOTS - 1)
                terms.append(hats.clamp(0).flatten(1, 2))
            elif group == "local":
                h, w = lin.shape[-2:]
                padded = F.pad(lin, (1, 1, 1, 1), mode="replicate")
                terms += [padded[..., 1 + dy:1 + dy + h, 1 + dx:1 + dx + w] - lin
                          for dy, dx in LOCAL_OFFSETS]
            else:
                r, g, b = lin.unbind(1)
                terms.append(torch.stack([r**i * g**j * b**k for i, j, k
                                          in monomial_exponents(DEGREES[group])[1:]], dim=1))
        return torch.cat(terms, dim=1)

    def _windows(self, height: int, rows: int):
        """Bands of `rows` rows: (first row, rows, first and end row read with the halo)."""
        for y in range(0, height, rows):
            yield y, min(rows, height - y), max(0, y - self.halo), min(height, y + rows + self.halo)

    def bands(self, codes: torch.Tensor, rows: int = ROWS):
        """The terms of a large guide a band of rows at a time, each computed with its `halo`
        of neighbouring rows, so that they equal `features(codes)` exactly: yields
        (first row, (B, terms, rows of the band, W))."""
        for y, n, lo, hi in self._windows(codes.shape[-2], rows):
            yield y, self.features(codes[..., lo:hi, :])[..., y - lo:y - lo + n, :]

    def estimate(self, terms: torch.Tensor) -> torch.Tensor:
        """The map's estimate from `features` terms (B, terms, H, W) -> (B, 4, H, W) float64,
        clipped to [0, 1]. With `local` terms, each pixel is also clipped to the range of the
        map without them (its colour terms alone) over the pixel's 3x3 neighbourhood: a RAW
        image is not sharpened, so an edge's values lie between those of its two sides, and
        the 3x3 filter must not overshoot them (it does at sharp corners between saturated
        colours, which the training photos rarely contain)."""
        x = torch.einsum("bnhw,nc->bchw", terms, self.weights)
        if "local" in self.groups:
            colour = n_terms(self.kind) - 3 * len(LOCAL_OFFSETS)  # local terms come last
            base = F.pad(torch.einsum("bnhw,nc->bchw", terms[:, :colour], self.weights[:colour]),
                         (1, 1, 1, 1), mode="replicate")
            x = torch.minimum(torch.maximum(x, -F.max_pool2d(-base, 3, stride=1)),
                              F.max_pool2d(base, 3, stride=1))
        return x.clamp(0, 1)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        """codes: (B, 3, H, W) 8-bit guide codes 0..255 -> packed RAW (B, 4, H, W) float32 in
        [0, 1] (normalised linear RAW, R, G1, G2, B), computed in bands of ROWS rows (each with
        its halo of neighbours, so exactly as for the whole image)."""
        bands = [self.estimate(self.features(codes[..., lo:hi, :]))[..., y - lo:y - lo + n, :]
                 for y, n, lo, hi in self._windows(codes.shape[-2], ROWS)]
        return torch.cat(bands, dim=-2).float()


def guide_codes(rgb: torch.Tensor) -> torch.Tensor:
    """A guide in the network's range, (B, 3, H, W) in [-1, 1] -> its 8-bit codes 0..255."""
    return ((rgb + 1) * 127.5).round().clamp(0, 255)


def fit_colour_map(dataset, split: str, kind: str, progress: bool = True,
                   ids: list[str] | None = None) -> tuple[ColourMap, dict]:
    """Fit a map of `kind` by least squares on the samples of `split` of a prepared paired
    dataset (datasets.layout.PreparedDataset). Returns the map and a summary of the fit:
    samples, pixels, stride (the even grid used when the split has more than MAX_FIT_PIXELS)
    and the fit's 4-channel PSNR on those pixels (peak 1). ids: the samples to fit on (default:
    all of the split), e.g. a training run's chosen images.
    Raises BaselineError for an empty split or an RGB-only dataset.
    """
    if dataset.kind != "paired":
        raise BaselineError(f"{dataset.root}: a {dataset.kind!r} dataset; fitting a map needs "
                            "paired RAW/RGB samples")
    ids = dataset.split(split) if ids is None else ids
    if not ids:
        raise BaselineError(f"{dataset.root}: the {split!r} split is empty")
    sizes = {s: e["sample_size"] for e in dataset.images.values() for s in e["samples"]}
    total = sum(sizes[i][0] * sizes[i][1] for i in ids)
    stride = max(1, math.ceil(math.sqrt(total / MAX_FIT_PIXELS)))
    cmap = ColourMap(kind)
    n = n_terms(kind)
    A = torch.zeros(n, n, dtype=torch.float64)
    B = torch.zeros(n, 4, dtype=torch.float64)
    yy = torch.zeros(4, dtype=torch.float64)
    pixels = 0
    for sample_id in tqdm(ids, desc=f"fit {cmap.kind}", unit="sample", disable=not progress,
                          dynamic_ncols=True):
        s = dataset.load(sample_id)
        y = torch.from_numpy(normalise(s.raw, s.black, s.white))
        codes = torch.from_numpy(s.rgb.copy()).permute(2, 0, 1)[None]
        # Terms on the full-resolution guide (local ones read neighbours), then the grid.
        for top, terms in cmap.bands(codes, rows=stride * max(1, ROWS // stride)):
            X = terms[0, :, ::stride, ::stride].flatten(1).T  # (pixels, n)
            Y = y[:, top:top + terms.shape[-2]:stride, ::stride].flatten(1).T.double()
            A += X.T @ X
            B += X.T @ Y
            yy += (Y * Y).sum(0)
            pixels += X.shape[0]
    ridge = RIDGE * A.diagonal().mean()
    W = torch.linalg.solve(A + ridge * torch.eye(n, dtype=torch.float64), B)
    # Residual sum of squares from the normal equations: sum(Y^2) - 2 W.B + W.AW.
    sse = (yy - 2 * (W * B).sum(0) + (W * (A @ W)).sum(0)).sum().clamp(min=0)
    cmap.weights.copy_(W)
    fit = {"split": split, "samples": len(ids), "pixels": pixels, "stride": stride,
           "clipped_guide_pixels": "included",
           "psnr_rggb_fit": float(-10 * torch.log10(sse / (4 * pixels)))}
    return cmap, fit


# ----------------------------------------------------------------------------- files

def save_baseline(path, kind: str, camera: Camera, colour_map: ColourMap | None = None,
                  params=None, fit: dict | None = None) -> None:
    """Write a baseline file (JSON, atomically): format, kind, the camera whose DNGs it writes
    (Camera.to_dict, as checkpoints store it), and the map's weights or the unprocessing
    parameters."""
    data = {"format": FORMAT, "kind": kind, "camera": camera.to_dict()}
    if colour_map is not None:
        data["weights"] = colour_map.weights.tolist()
    if params is not None:
        data["params"] = params.to_dict()
    if fit:
        data["fit"] = fit
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1) + "\n")


def is_baseline_file(path) -> bool:
    """Whether `path` is meant as a baseline file (named .json, or JSON text) rather than a
    checkpoint (a zip archive): load_baseline then says what is wrong with it."""
    if Path(path).suffix.lower() == ".json":
        return True
    with open(path, "rb") as f:
        return f.read(64).lstrip()[:1] in (b"{", b"[")


@dataclass
class Baseline:
    """A loaded baseline, used like a checkpoint's convert.RawGenerator: `generate` maps a guide
    to packed RAW. steps is None: a baseline has no sampling steps."""

    kind: str
    camera: Camera
    digest: str
    colour_map: ColourMap | None = None
    params: object = None  # unprocess.UnprocessParams for upi kinds
    steps: None = None
    batch_size: int = 1  # guides handed over at once (generate_many); nothing to batch inside

    @torch.no_grad()
    def generate(self, guide: np.ndarray, seed: int = 0, callback=None) -> np.ndarray:
        """RGB guide (h, w, 3) uint8 -> packed RAW (4, h, w) float32 in [0, 1]. `seed` and
        `callback` are accepted for the generator interface; a baseline is deterministic.
        ValueError for another shape or dtype."""
        check_guide(guide)
        if self.colour_map is None:
            from .unprocess import unprocess

            x = unprocess(guide, self.params)
        else:
            # a copy: the guide may be read-only (read_rgb's is), which from_numpy warns about
            codes = torch.tensor(guide).permute(2, 0, 1)[None]
            x = self.colour_map(codes)[0].numpy()
        if not np.isfinite(x).all():
            raise BaselineError(f"{self.kind} baseline {self.digest}: its parameters give "
                                "non-finite values")
        return x

    def generate_many(self, guides: list[np.ndarray], seeds: list[int],
                      callback=None) -> list[np.ndarray]:
        """`generate` for each guide (a baseline's cost is per pixel: nothing to batch)."""
        return [self.generate(guide) for guide in guides]

    def tile_steps(self, guide_shape: tuple[int, ...]) -> int:
        """0: a baseline reports no steps."""
        return 0


def load_baseline(path) -> Baseline:
    """A baseline file's generator; BaselineError naming the file when it is not a usable one."""
    from .checkpoint import file_digest
    from .unprocess import UnprocessParams

    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError, RecursionError) as e:  # decoding, syntax, nesting too deep
        raise BaselineError(f"{path}: not a readable baseline file ({type(e).__name__}: "
                            f"{str(e)[:200]})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BaselineError(f"{path}: not a rawdiffusion baseline file (format {FORMAT})")
    kind = data.get("kind")
    if kind not in UPI and not is_map_kind(kind):
        raise BaselineError(f"{path}: unknown baseline kind {kind!r}")
    if not isinstance(data.get("camera"), dict) or not data["camera"]:
        raise BaselineError(f"{path}: no camera description")
    problem = Camera.problem(data["camera"])
    if problem:
        raise BaselineError(f"{path}: {problem}")
    camera = Camera.from_dict(data["camera"])
    try:
        if kind not in UPI:
            weights = torch.tensor(data["weights"], dtype=torch.float64)
            if not torch.isfinite(weights).all():
                raise ValueError("weights are not finite")
            return Baseline(kind, camera, file_digest(path), colour_map=ColourMap(kind, weights))
        return Baseline(kind, camera, file_digest(path),
                        params=UnprocessParams.from_dict(data["params"]))
    except (KeyError, TypeError, ValueError) as e:
        raise BaselineError(f"{path}: unusable {kind} baseline ({type(e).__name__}: {e})") from None


def fit_baseline(dataset, kind: str, out, split: str = "train") -> dict:
    """`rawdiffusion baseline fit`: fit (maps) or set up (unprocessing) a baseline of `kind`
    for the camera of `split` of a prepared dataset, and write it to `out`. Returns the file's
    contents but the weights."""
    from .unprocess import camera_params, generic_params

    if kind not in UPI:
        try:
            kind = "+".join(map_groups(kind))
        except ValueError as e:
            raise BaselineError(f"--kind {kind}: {e}; or one of {', '.join(UPI)}") from None
    if Path(out).is_dir() or not Path(out).name:
        raise BaselineError(f"{out}: a folder; --out is the baseline file to write, e.g. "
                            f"{Path(out) / (kind + '.json')}")
    if Path(out).is_file() and not is_baseline_file(out):  # a photo, a checkpoint: not ours
        raise BaselineError(f"{out}: an existing file that is not a baseline file; --out is "
                            "the baseline file to write (.json), choose another name")
    if dataset.kind != "paired":  # RGB-only data has no camera (levels, Bayer order) to write
        raise BaselineError(f"{dataset.root}: a {dataset.kind!r} dataset; a baseline needs "
                            "paired RAW/RGB samples of the camera")
    images = {i: e for i, e in dataset.images.items() if e.get("split") == split}
    if not images:
        raise BaselineError(f"{dataset.root}: no images in the {split!r} split")
    camera = Camera.from_images(images)
    colour_map = params = fit = None
    if kind not in UPI:
        colour_map, fit = fit_colour_map(dataset, split, kind)
    elif kind == "upi":
        params = generic_params()
    else:
        try:
            params = camera_params(camera)
        except ValueError as e:
            raise BaselineError(f"{dataset.root}: {e}") from None
    fit = {**(fit or {}), "dataset": str(Path(dataset.root).resolve())}
    save_baseline(out, kind, camera, colour_map, params, fit)
    return {"kind": kind, "camera": camera.to_dict(), "fit": fit}
