"""The colour prior: fitted colour maps from an 8-bit sRGB guide to a camera's packed RAW.

A map is the production model's colour prior (model.UNet's `prior`, whose estimate the network
corrects) and, on its own, a baseline (baselines.py). The guide is linearised with the inverse
sRGB transfer function (IEC 61966-2-1, from colour-science), expanded into terms, and mapped to
the four packed channels by a (terms x 4) matrix W fitted in closed form by least squares on a
prepared dataset's training split. A kind is one or more groups of terms joined by "+", plus a
constant:

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
tiny ridge (1e-6 of the mean diagonal) keeps the normal equations well-conditioned. The two
greens are tied (solve_tied): they share every colour term and the constant, and differ only
through the `local` terms, so a uniform patch never gets G1 != G2 (which renders as a maze
pattern). Where the camera has a colour matrix, synthetic saturated samples whose RAW the
matrix predicts (anchors.py) join the least squares with a small weight, so that the map
extrapolates saturated colours as the camera does rather than as a cubic polynomial does. Maps
fitted before (independent greens, no anchors) are weights of the same shape: they load and
generate exactly as before.
Predictions are clipped to [0, 1]; with `local`, also to the range of the colour terms' estimate
over each pixel's 3x3 neighbourhood (ColourMap.estimate: no halos). Image borders repeat their
edge pixels for `local`.

The fit accumulates one Gram matrix of the terms and targets, [X Y]^T [X Y], band by band: a
least-squares fit of about 100 terms over a few million pixels takes seconds
(benchmarks/prior_fit.py).
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from .anchors import ANCHOR_WEIGHT, anchor_samples
from .bayer import normalise
from .errors import UserError
from .io import colour_science

log = logging.getLogger(__name__)

MAPS = ("linear", "poly2", "poly3", "curves")  # the single-group maps; any sum of groups works
DEGREES = {"linear": 1, "poly2": 2, "poly3": 3}  # the polynomial groups' degrees
GROUPS = (*MAPS, "local")  # a map kind's groups, in the order of its terms
CURVE_KNOTS = 16
LOCAL_OFFSETS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]
MAX_FIT_PIXELS = 1 << 24  # pixels used to fit a map: an even grid of each sample beyond this
RIDGE = 1e-6
ROWS = 256  # guide rows expanded at once: bounds the memory of the terms


class ColourMapError(UserError, ValueError):
    """A colour map kind or fit that cannot be; the message names the kind or dataset."""


@functools.cache
def srgb_to_linear_table() -> np.ndarray:
    """(256,) float64: the linear value of every 8-bit sRGB code (IEC 61966-2-1 decoding,
    colour-science's `cctf_decoding(..., function="sRGB")`)."""
    return np.asarray(colour_science().cctf_decoding(np.arange(256) / 255.0, function="sRGB"),
                      dtype=np.float64)


def curve_table() -> torch.Tensor:
    """(256, CURVE_KNOTS) float64: the `curves` terms of every 8-bit code v: the hat functions
    max(0, 1 - |v / 255 - k / (K - 1)| (K - 1)) of the K = CURVE_KNOTS knots k / (K - 1)."""
    v = torch.arange(256, dtype=torch.float64) / 255
    knots = torch.linspace(0, 1, CURVE_KNOTS, dtype=torch.float64)
    return (1 - (v[:, None] - knots[None, :]).abs() * (CURVE_KNOTS - 1)).clamp(0)


def monomial_exponents(degree: int) -> list[tuple[int, int, int]]:
    """Exponents (i, j, k) of R^i G^j B^k with i + j + k <= degree: the constant first, then
    by degree. 4, 10, 20 terms for degree 1, 2, 3."""
    exps = [e for e in itertools.product(range(degree + 1), repeat=3) if sum(e) <= degree]
    return sorted(exps, key=lambda e: (sum(e), [-x for x in e]))


def map_groups(kind: str) -> tuple[str, ...]:
    """The groups of terms of a colour map kind ("curves+poly3+local" -> ("poly3", "curves",
    "local")), in GROUPS' order. Raises ColourMapError naming the kind and the rule it breaks."""
    groups = str(kind).split("+")
    unknown = [g for g in groups if g not in GROUPS]
    if unknown or len(set(groups)) < len(groups):
        raise ColourMapError(f"colour map kind {kind!r}: one or more of {', '.join(GROUPS)} "
                             "joined by +, each once")
    if sum(g in DEGREES for g in groups) > 1:
        raise ColourMapError(f"colour map kind {kind!r}: at most one of {', '.join(DEGREES)}")
    if groups == ["local"]:
        raise ColourMapError(f"colour map kind {kind!r}: local needs a colour group "
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
    return 1 + sum(group_size(g) for g in map_groups(kind))


def group_size(group: str) -> int:
    """Terms of one group of GROUPS."""
    sizes = {"curves": 3 * CURVE_KNOTS, "local": 3 * len(LOCAL_OFFSETS)}
    return sizes[group] if group in sizes else len(monomial_exponents(DEGREES[group])) - 1


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
        self.n = n = n_terms(kind)
        w = torch.zeros(n, 4, dtype=torch.float64) if weights is None else weights
        if tuple(w.shape) != (n, 4):
            raise ValueError(f"a {self.kind} map has {n} x 4 weights, got {tuple(w.shape)}")
        self.register_buffer("weights", w.to(torch.float64))
        self.register_buffer("table", torch.from_numpy(srgb_to_linear_table()), persistent=False)
        self.register_buffer("hats", curve_table(), persistent=False)

    def features(self, codes: torch.Tensor, top: int = 0, rows: int | None = None,
                 stride: int = 1) -> torch.Tensor:
        """codes: (B, 3, H, W) integer-valued 8-bit guide codes 0..255 (any dtype) ->
        (B, terms, h, w) float64: 1, then each group's terms in GROUPS' order, at the rows
        top, top + stride, ... below top + rows (default: to the last row) and the columns 0,
        stride, ...; `local` terms read the neighbours in `codes` (its border repeated)."""
        return self.terms(codes, self.groups, top, rows, stride)

    def terms(self, codes: torch.Tensor, groups: tuple[str, ...], top: int = 0,
              rows: int | None = None, stride: int = 1,
              out: torch.Tensor | None = None) -> torch.Tensor:
        """`features` with the terms of `groups` only (a subset of this map's, in its order):
        1, then theirs; written into `out` when given ((B, terms, h, w) float64)."""
        lin_all = self.table[codes.long()]  # (B, 3, H, W) linear RGB
        height, width = lin_all.shape[-2:]
        at = (..., slice(top, height if rows is None else top + rows, stride),
              slice(0, width, stride))
        lin = lin_all[at]
        if out is None:
            out = torch.empty((lin.shape[0], 1 + sum(map(group_size, groups)),
                               *lin.shape[-2:]), dtype=torch.float64, device=lin.device)
        out[:, 0] = 1
        k = 1
        for group in groups:
            if group == "curves":  # each channel's K hats, gathered knot-major from the table
                for channel in range(3):
                    out[:, k:k + CURVE_KNOTS] = self.hats.T[:, codes[at][:, channel].long()] \
                        .transpose(0, 1)
                    k += CURVE_KNOTS
            elif group == "local":
                padded = F.pad(lin_all, (1, 1, 1, 1), mode="replicate")
                for dy, dx in LOCAL_OFFSETS:
                    out[:, k:k + 3] = padded[..., 1 + dy:1 + dy + height,
                                             1 + dx:1 + dx + width][at] - lin
                    k += 3
            else:
                r, g, b = lin.unbind(1)
                for i, j, m in monomial_exponents(DEGREES[group])[1:]:
                    out[:, k] = r**i * g**j * b**m
                    k += 1
        return out

    def _windows(self, height: int, rows: int):
        """Bands of `rows` rows: (first row, rows, first and end row read with the halo)."""
        for y in range(0, height, rows):
            yield y, min(rows, height - y), max(0, y - self.halo), min(height, y + rows + self.halo)

    def bands(self, codes: torch.Tensor, rows: int = ROWS, stride: int = 1):
        """The terms of a large guide a band of rows at a time, each computed with its `halo`
        of neighbouring rows, so that they equal `features(codes)` exactly (at every
        `stride`-th row and column; `rows` a multiple of it): yields (first row, (B, terms,
        rows of the band, W))."""
        for y, n, lo, hi in self._windows(codes.shape[-2], rows):
            yield y, self.features(codes[..., lo:hi, :], y - lo, n, stride)

    def estimate(self, terms: torch.Tensor) -> torch.Tensor:
        """The map's estimate from `features` terms (B, terms, H, W) -> (B, 4, H, W) float64,
        clipped to [0, 1]. With `local` terms, each pixel is also clipped to the range of the
        map without them (its colour terms alone) over the pixel's 3x3 neighbourhood: a RAW
        image is not sharpened, so an edge's values lie between those of its two sides, and
        the 3x3 filter must not overshoot them (it does at sharp corners between saturated
        colours, which the training photos rarely contain)."""
        x = torch.einsum("bnhw,nc->bchw", terms, self.weights)
        if "local" in self.groups:
            colour = self.n - 3 * len(LOCAL_OFFSETS)  # local terms come last
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
                   ids: list[str] | None = None, camera=None) -> tuple[ColourMap, dict]:
    """Fit a map of `kind` by least squares on the samples of `split` of a prepared paired
    dataset (datasets.layout.PreparedDataset), its greens tied (solve_tied) and, when `camera`
    (camera.Camera) has a colour matrix, anchored on it (anchors.py). Returns the map and a
    summary of the fit: samples, pixels, stride (the even grid used when the split has more
    than MAX_FIT_PIXELS), the fit's 4-channel PSNR on those pixels (peak 1), how the greens
    were fitted and the anchors (their number, weight and matrix, or why there are none).
    ids: the samples to fit on (default: all of the split), e.g. a training run's chosen
    images. camera: the camera of those samples (None: no anchors). progress: a bar over the
    samples, and a log line (logger rawdiffusion.prior) when the fit starts and ends.
    Raises ColourMapError for an empty split, an RGB-only dataset or an unknown kind.
    """
    if dataset.kind != "paired":
        raise ColourMapError(f"{dataset.root}: a {dataset.kind!r} dataset; fitting a map needs "
                             "paired RAW/RGB samples")
    ids = dataset.split(split) if ids is None else ids
    if not ids:
        raise ColourMapError(f"{dataset.root}: the {split!r} split is empty")
    total, stride = _grid(dataset, ids)
    cmap = ColourMap(kind)
    if progress:
        log.info("fitting the colour map %s (%d terms) on %d %s sample(s), %d pixels%s",
                 cmap.kind, cmap.n, len(ids), split, total,
                 f" on a grid of every {stride}th" if stride > 1 else "")
    start = time.perf_counter()
    A, B, yy, pixels, totals = _normal_equations(dataset, ids, cmap, stride, progress)
    ridge = RIDGE * A.diagonal().mean()
    W = solve_tied(cmap, A, B, ridge)
    anchors = anchor_samples(cmap, W, camera)
    if anchors is None:
        anchored = summary = "none: the camera has no colour matrix"
    else:  # the anchors' sums join the pixels', ANCHOR_WEIGHT of their weight in all
        X, Y, which = anchors
        scale = ANCHOR_WEIGHT * pixels / len(X)
        W = solve_tied(cmap, A + scale * X.T @ X, B + scale * X.T @ Y, ridge)
        anchored = {"samples": len(X), "weight": ANCHOR_WEIGHT, "matrix": which}
        summary = f"{len(X)} on the {which}, weight {ANCHOR_WEIGHT}"
    # Residual sum of squares from the normal equations: sum(Y^2) - 2 W.B + W.AW.
    sse = (yy - 2 * (W * B).sum(0) + (W * (A @ W)).sum(0)).sum().clamp(min=0)
    cmap.weights.copy_(W)
    fit = {"split": split, "samples": len(ids), "pixels": pixels, "stride": stride,
           "clipped_guide_pixels": "included",
           "psnr_rggb_fit": float(-10 * torch.log10(sse / (4 * pixels))),
           "greens": "tied: G1 - G2 from the local terms only", "anchors": anchored,
           "exposures": exposure_offsets(totals, W)}
    if progress:
        log.info("fitted %s in %.1f s, greens tied: PSNR of the fit %.2f dB; anchors: %s",
                 cmap.kind, time.perf_counter() - start, fit["psnr_rggb_fit"], summary)
    return cmap, fit


def solve_tied(cmap: ColourMap, A: torch.Tensor, B: torch.Tensor,
               ridge: torch.Tensor | float) -> torch.Tensor:
    """The weights W (terms x 4) that minimise sum |X W - Y|^2 + ridge |W|^2 from the normal
    equations A = X^T X (n, n), B = X^T Y (n, 4), float64, with the two greens tied: G1 and G2
    share the constant and every colour term, and differ only through the `local` terms (the
    half-pixel offsets of their CFA sites), so that both greens of a uniform patch are equal,
    as both greens of a sensor sit behind the same filter. Exactly the constrained least
    squares: the mean green (G1 + G2) / 2 is fitted with every term, the half difference
    (G1 - G2) / 2 with the local terms alone (none for a map without `local`)."""
    eye = torch.eye(cmap.n, dtype=torch.float64)
    mean = torch.linalg.solve(A + ridge * eye, torch.stack(
        [B[:, 0], (B[:, 1] + B[:, 2]) / 2, B[:, 3]], 1))
    half = torch.zeros(cmap.n, dtype=torch.float64)
    if "local" in cmap.groups:
        at = slice(cmap.n - 3 * len(LOCAL_OFFSETS), cmap.n)  # local terms come last
        half[at] = torch.linalg.solve(A[at, at] + ridge * eye[at, at], (B[at, 1] - B[at, 2]) / 2)
    return torch.stack([mean[:, 0], mean[:, 1] + half, mean[:, 1] - half, mean[:, 2]], 1)


def _normal_equations(dataset, ids: list[str], cmap: ColourMap, stride: int, progress: bool,
                      desc: str = "fit"):
    """X^T X (n, n), X^T Y (n, 4), sum(Y^2) (4,), all float64, the number of pixels, and each
    image's (sum of X, sum of Y), over the pixels of the samples `ids` on the grid of `stride`:
    X the map's terms (pixels, n), Y the normalised packed RAW (pixels, 4). desc: the progress
    bar's word."""
    sums = _Sums(cmap)
    totals = {}  # image id -> (sum of X, sum of Y) over its samples' pixels
    for sample_id in tqdm(ids, desc=f"{desc} {cmap.kind}", unit="sample",
                          disable=not progress, dynamic_ncols=True):
        s = dataset.load(sample_id)
        y = torch.from_numpy(normalise(s.raw, s.black, s.white))
        codes = torch.from_numpy(s.rgb.copy()).permute(2, 0, 1)[None]
        before = sums.totals()
        # Terms on the full-resolution guide (local ones read neighbours), at the grid's pixels.
        for top, n, lo, hi in cmap._windows(codes.shape[-2], stride * max(1, ROWS // stride)):
            sums.add(codes[..., lo:hi, :], top - lo, n, stride, y[:, top:top + n:stride, ::stride])
        image = dataset.image_of(sample_id)
        x0, y0 = totals.get(image, (0, 0))
        totals[image] = tuple(t0 + t - b for t0, t, b in zip((x0, y0), sums.totals(), before))
    return (*sums.normal_equations(), totals)


def _grid(dataset, ids: list[str]) -> tuple[int, int]:
    """The pixels of the samples `ids`, and the stride of the even grid that keeps at most
    MAX_FIT_PIXELS of them."""
    sizes = {s: e["sample_size"] for e in dataset.images.values() for s in e["samples"]}
    total = sum(sizes[i][0] * sizes[i][1] for i in ids)
    return total, max(1, math.ceil(math.sqrt(total / MAX_FIT_PIXELS)))


def measured_exposures(dataset, split: str, cmap: ColourMap,
                       progress: bool = True) -> dict[str, float]:
    """exposure_offsets of the images of `split` of a prepared paired dataset against a fitted
    map `cmap` (a checkpoint's prior), on the pixels its fit would use: image id -> EV.
    ColourMapError for an RGB-only dataset or an empty split."""
    if dataset.kind != "paired":
        raise ColourMapError(f"{dataset.root}: a {dataset.kind!r} dataset; measuring exposures "
                             "needs paired RAW/RGB samples")
    ids = dataset.split(split)
    if not ids:
        raise ColourMapError(f"{dataset.root}: the {split!r} split is empty")
    *_, totals = _normal_equations(dataset, ids, cmap, _grid(dataset, ids)[1], progress,
                                   desc="exposures against")
    return exposure_offsets(totals, cmap.weights)


def exposure_offsets(totals: dict, W: torch.Tensor) -> dict[str, float]:
    """Each training image's exposure against the map's estimate, in EV: log2(sum of its
    normalised packed RAW / sum of the map's (unclipped) estimate X W), over its samples'
    fitted pixels and all four channels; from the sums of its terms and targets (`totals`:
    image id -> (sum of X (n,), sum of Y (4,)), _normal_equations), without another pass.
    The guides' brightness was normalised by LibRaw's auto-brightening, so the map gives each
    photo the training images' typical exposure and these offsets are their spread around it:
    what `--exposure draw` draws from (camera.Camera.exposures). Measured on the images the
    map was fitted to, they understate the spread when there are few: the map absorbs part of
    it. Images whose sums are not positive (black) have none."""
    offsets = {}
    for image, (x, y) in totals.items():
        raw, estimate = float(y.sum()), float((x @ W).sum())
        if raw > 0 and estimate > 0:
            offsets[image] = math.log2(raw / estimate)
    return offsets


class _Sums:
    """The sums of the normal equations, accumulated band by band. The `curves` terms are
    never expanded: a pixel's are a row of the hat table per channel (curve_table), so their
    sums come from counts of codes: sum_p T[c_p] z_p over pixels (T's rows weighted by the sums
    of the other terms z over the pixels of each code) and sum_p T[c_p]^T T[c'_p] (T^T H T, H
    the joint histogram of two channels' codes). The other terms (the "dense" ones, 1 first)
    and Y are summed as [D Y]^T [D Y]. Exact sums, in another order: the same up to rounding."""

    def __init__(self, cmap: ColourMap):
        self.cmap = cmap
        self.dense = tuple(g for g in cmap.groups if g != "curves")
        nd = 1 + sum(map(group_size, self.dense))
        self.zz = torch.zeros(nd + 4, nd + 4, dtype=torch.float64)
        self.by_code = torch.zeros(3, nd + 4, 256, dtype=torch.float64)  # sum of z per code
        self.pairs = torch.zeros(3, 3, 256 * 256, dtype=torch.float64)  # joint histograms

    def add(self, codes: torch.Tensor, top: int, rows: int, stride: int, y: torch.Tensor):
        """The pixels of rows top.. top + rows (every stride-th) of a band of codes (1, 3, H,
        W); y: their targets (4, h, w)."""
        nd = self.zz.shape[0] - 4
        z = torch.empty((nd + 4, *y.shape[-2:]), dtype=torch.float64)
        self.cmap.terms(codes, self.dense, top, rows, stride, out=z[None, :nd])
        z[nd:] = y
        z = z.flatten(1)
        self.zz.addmm_(z, z.T)
        if "curves" in self.cmap.groups:
            grid = codes[0, :, top:top + rows:stride, ::stride].long().flatten(1)  # (3, pixels)
            for c in range(3):
                self.by_code[c].index_add_(1, grid[c], z)
                for c2 in range(c, 3):
                    self.pairs[c, c2] += torch.bincount(grid[c] * 256 + grid[c2],
                                                        minlength=256 * 256)

    def _layout(self):
        """Where the terms sit in the map's order: the dense ones' indices (1 first), and the
        slices of each channel's curve terms (None without curves)."""
        starts = dict(zip(self.cmap.groups, np.cumsum([1] + [group_size(g) for g in
                                                             self.cmap.groups])))
        dense = torch.tensor([0] + [i for g in self.dense
                                    for i in range(starts[g], starts[g] + group_size(g))])
        at = None if "curves" not in self.cmap.groups else [
            slice(starts["curves"] + c * CURVE_KNOTS, starts["curves"] + (c + 1) * CURVE_KNOTS)
            for c in range(3)]
        return dense, at

    def totals(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(sum of X (n,), sum of Y (4,)) over the pixels added so far: the first row of the
        normal equations (the constant term is 1), float64."""
        nd = self.zz.shape[0] - 4
        dense, at = self._layout()
        x = torch.zeros(self.cmap.n, dtype=torch.float64)
        x[dense] = self.zz[0, :nd]
        for c, where in enumerate(at or ()):  # by_code[c, 0]: the histogram of channel c
            x[where] = self.cmap.hats.T @ self.by_code[c, 0]
        return x, self.zz[0, nd:].clone()

    def normal_equations(self):
        """(X^T X, X^T Y, sum(Y^2), pixels) in the map's order of terms."""
        n, nd = self.cmap.n, self.zz.shape[0] - 4
        dense, at = self._layout()
        A = torch.zeros(n, n, dtype=torch.float64)
        B = torch.zeros(n, 4, dtype=torch.float64)
        A[dense[:, None], dense] = self.zz[:nd, :nd]
        B[dense] = self.zz[:nd, nd:]
        if at is not None:
            T = self.cmap.hats  # (256, K)
            for c in range(3):
                A[at[c], dense] = T.T @ self.by_code[c, :nd].T
                A[dense, at[c]] = A[at[c], dense].T
                B[at[c]] = T.T @ self.by_code[c, nd:].T
                for c2 in range(c, 3):
                    A[at[c], at[c2]] = T.T @ self.pairs[c, c2].view(256, 256) @ T
                    A[at[c2], at[c]] = A[at[c], at[c2]].T
        return A, B, self.zz[nd:, nd:].diagonal().clone(), int(self.zz[0, 0])
