"""Baselines: a camera's RAW from an sRGB guide without a network.

What a user could get without RAW-Diffusion, so that every quality figure has something to beat
(README, "Quality"). Each baseline is a deterministic generator with the interface of a
checkpoint: `rawdiffusion baseline fit DATASET --kind KIND --out FILE` writes a small JSON file
that `convert --checkpoint FILE` and `sample.py checkpoint=FILE` take in a checkpoint's place.

Fitted colour maps (kinds `linear`, `poly2`, `poly3`, `curves`). The guide is linearised with the
inverse sRGB transfer function (IEC 61966-2-1, from colour-science), expanded into terms, and
mapped to the four packed channels by a (terms x 4) matrix W fitted in closed form by least
squares on a prepared dataset's training split:

    linear   R, G, B, 1                                     (the 3x4 linear map)
    poly2    all monomials of R, G, B up to degree 2        (10 terms)
    poly3    all monomials of R, G, B up to degree 3        (20 terms)
    curves   per-channel tone curves: 16 piecewise-linear "hat" functions of each 8-bit guide
             channel, plus 1 (49 terms); sum_c h_kc(guide_c): a curve per channel followed by
             a matrix, generalised, and so linear across channels (no cross terms)

The polynomial terms are those of Finlayson et al. 2015 (colour-science's
`polynomial_expansion_Finlayson2015`) plus a constant. The fit uses every pixel of every
training sample (or an even grid of them, at most `MAX_FIT_PIXELS` in all), normalised with its
image's own levels; pixels where the guide is clipped (255 in a channel) are kept, so the map
learns the mean RAW behind a clipped guide; a tiny ridge (1e-6 of the mean diagonal) keeps the
normal equations well-conditioned. Predictions are clipped to [0, 1].

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
from tqdm import tqdm

from .bayer import normalise
from .io import atomic_output, colour_science

FORMAT = "rawdiffusion-baseline/1"
MAPS = ("linear", "poly2", "poly3", "curves")
UPI = ("upi", "upi-camera")
KINDS = MAPS + UPI
DEGREES = {"linear": 1, "poly2": 2, "poly3": 3}  # the polynomial maps' degrees
CURVE_KNOTS = 16
MAX_FIT_PIXELS = 1 << 24  # pixels used to fit a map: an even grid of each sample beyond this
RIDGE = 1e-6


class BaselineError(ValueError):
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


def n_terms(kind: str) -> int:
    if kind == "curves":
        return 3 * CURVE_KNOTS + 1
    return len(monomial_exponents(DEGREES[kind]))


class ColourMap(nn.Module):
    """A fitted colour map: 8-bit sRGB guide -> packed RAW, per pixel (see the module docstring).

    kind: one of MAPS; the weights W (terms x 4) are a buffer, so the map moves with a network
    and is saved in its state dict.
    """

    def __init__(self, kind: str, weights: torch.Tensor | None = None):
        super().__init__()
        if kind not in MAPS:
            raise ValueError(f"colour map kind {kind!r}: choose one of {', '.join(MAPS)}")
        self.kind = kind
        n = n_terms(kind)
        w = torch.zeros(n, 4, dtype=torch.float64) if weights is None else weights
        if tuple(w.shape) != (n, 4):
            raise ValueError(f"a {kind} map has {n} x 4 weights, got {tuple(w.shape)}")
        self.register_buffer("weights", w.to(torch.float64))
        self.register_buffer("table", torch.from_numpy(srgb_to_linear_table()), persistent=False)

    def features(self, codes: torch.Tensor) -> torch.Tensor:
        """codes: (B, 3, H, W) integer-valued 8-bit guide codes 0..255 (any dtype) ->
        (B, terms, H, W) float64."""
        if self.kind == "curves":
            v = codes.double() / 255  # (B, 3, H, W)
            knots = torch.linspace(0, 1, CURVE_KNOTS, dtype=torch.float64, device=codes.device)
            hats = (1 - (v[:, :, None] - knots[:, None, None]).abs() * (CURVE_KNOTS - 1)).clamp(0)
            ones = torch.ones_like(v[:, :1])
            return torch.cat([ones, hats.flatten(1, 2)], dim=1)
        lin = self.table[codes.long()]  # (B, 3, H, W) linear RGB
        r, g, b = lin.unbind(1)
        return torch.stack([r**i * g**j * b**k
                            for i, j, k in monomial_exponents(DEGREES[self.kind])], dim=1)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        """codes: (B, 3, H, W) 8-bit guide codes 0..255 -> packed RAW (B, 4, H, W) float32 in
        [0, 1] (normalised linear RAW, R, G1, G2, B)."""
        x = torch.einsum("bnhw,nc->bchw", self.features(codes), self.weights)
        return x.clamp(0, 1).float()


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
    for sample_id in tqdm(ids, desc=f"fit {kind}", unit="sample", disable=not progress,
                          dynamic_ncols=True):
        s = dataset.load(sample_id)
        y = torch.from_numpy(normalise(s.raw, s.black, s.white)[:, ::stride, ::stride].copy())
        codes = torch.from_numpy(s.rgb[::stride, ::stride].copy()).permute(2, 0, 1)[None]
        X = cmap.features(codes)[0].flatten(1).T  # (pixels, n)
        Y = y.flatten(1).T.double()               # (pixels, 4)
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

def save_baseline(path, kind: str, camera: dict, colour_map: ColourMap | None = None,
                  params=None, fit: dict | None = None) -> None:
    """Write a baseline file (JSON, atomically): format, kind, the camera whose DNGs it writes
    (a checkpoint's camera dict), and the map's weights or the unprocessing parameters."""
    data = {"format": FORMAT, "kind": kind, "camera": camera}
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
    """A loaded baseline, used like a checkpoint's generation.Generator: `packed` maps a guide
    to packed RAW. steps is None: a baseline has no sampling steps."""

    kind: str
    camera: dict
    digest: str
    colour_map: ColourMap | None = None
    params: object = None  # unprocess.UnprocessParams for upi kinds
    steps: None = None
    rows: int = 256  # guide rows per chunk: bounds the memory of the expanded terms

    @torch.no_grad()
    def packed(self, guide: np.ndarray, seed: int = 0, callback=None) -> np.ndarray:
        """RGB guide (h, w, 3) uint8 -> packed RAW (4, h, w) float32 in [0, 1]. `seed` and
        `callback` are accepted for the generator interface; a baseline is deterministic."""
        if self.colour_map is None:
            from .unprocess import unprocess

            x = unprocess(guide, self.params)
        else:
            # a copy: the guide may be read-only (read_rgb's is), which from_numpy warns about
            codes = torch.tensor(guide).permute(2, 0, 1)[None]
            x = torch.cat([self.colour_map(codes[..., y:y + self.rows, :])
                           for y in range(0, codes.shape[-2], self.rows)], dim=-2)[0].numpy()
        if not np.isfinite(x).all():
            raise BaselineError(f"{self.kind} baseline {self.digest}: its parameters give "
                                "non-finite values")
        return x


def load_baseline(path) -> Baseline:
    """A baseline file's generator; BaselineError naming the file when it is not a usable one."""
    from .generation import file_digest
    from .unprocess import UnprocessParams

    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BaselineError(f"{path}: not a readable baseline file ({type(e).__name__}: {e})") \
            from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BaselineError(f"{path}: not a rawdiffusion baseline file (format {FORMAT})")
    kind = data.get("kind")
    if kind not in KINDS:
        raise BaselineError(f"{path}: unknown baseline kind {kind!r}")
    if not isinstance(data.get("camera"), dict):
        raise BaselineError(f"{path}: no camera description")
    try:
        if kind in MAPS:
            weights = torch.tensor(data["weights"], dtype=torch.float64)
            if not torch.isfinite(weights).all():
                raise ValueError("weights are not finite")
            return Baseline(kind, data["camera"], file_digest(path),
                            colour_map=ColourMap(kind, weights))
        return Baseline(kind, data["camera"], file_digest(path),
                        params=UnprocessParams.from_dict(data["params"]))
    except (KeyError, TypeError, ValueError) as e:
        raise BaselineError(f"{path}: unusable {kind} baseline ({type(e).__name__}: {e})") from None


def fit_baseline(dataset, kind: str, out, split: str = "train") -> dict:
    """`rawdiffusion baseline fit`: fit (maps) or set up (unprocessing) a baseline of `kind`
    for the camera of `split` of a prepared dataset, and write it to `out`. Returns the file's
    contents but the weights."""
    from .checkpoint import camera_of
    from .unprocess import camera_params, generic_params

    if kind not in KINDS:
        raise BaselineError(f"--kind {kind}: choose one of {', '.join(KINDS)}")
    if Path(out).is_dir() or not Path(out).name:
        raise BaselineError(f"{out}: a folder; --out is the baseline file to write, e.g. "
                            f"{Path(out) / (kind + '.json')}")
    if dataset.kind != "paired":  # RGB-only data has no camera (levels, Bayer order) to write
        raise BaselineError(f"{dataset.root}: a {dataset.kind!r} dataset; a baseline needs "
                            "paired RAW/RGB samples of the camera")
    images = {i: e for i, e in dataset.images.items() if e.get("split") == split}
    if not images:
        raise BaselineError(f"{dataset.root}: no images in the {split!r} split")
    camera = camera_of(images)
    colour_map = params = fit = None
    if kind in MAPS:
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
    return {"kind": kind, "camera": camera, "fit": fit}
