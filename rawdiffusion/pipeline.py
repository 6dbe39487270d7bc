"""A photo pipeline, calibrated from RAW + photo pairs and undone before generation.

The generators learnt from one rendering of each RAW file, LibRaw's defaults (the canonical
rendering, renderings.CANONICAL). A photo from another pipeline (a camera's own JPEG engine,
another raw developer, an edit) has other tone curves and colours, and costs the colour prior
up to 14 dB (docs/quality.md, "Renderings"). When some RAW files were also saved by that
pipeline (a camera shooting RAW + JPEG), the pipeline can be measured: `fit_pipeline` fits one
global transform that takes the pipeline's photos of those scenes back to their canonical
renderings, and a generator given it (`rawdiffusion convert --pipeline FILE`,
`rawdiffusion.load(pipeline=FILE)`) applies it to every photo's guide before generating. On
the quality benchmark's renderings, a transform fitted on the training images' renderings by
the same recipe brings the GoPro mean to 46.02 dB after gains, 2.0 dB from the canonical
rendering's 48.00 (the prior alone: 44.17; benchmarks/rendering_estimate.py, "pair").

The transform, on 8-bit sRGB codes: a monotone tone curve per channel (KNOTS knots, piecewise
linear on [0, 1]), the IEC 61966-2-1 decoding to linear RGB, a 3x3 matrix and one gain per
channel, and the encoding back to 8-bit codes, clipped. It is global, so what depends on the
scene (automatic white balance or exposure) or on the neighbourhood (sharpening, JPEG) is not
undone. Stored as a small JSON file (`save_pipeline`, `load_pipeline`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .atomic import atomic_output
from .errors import UserError
from .files import misplaced_file
from .images import halve_area, read_rgb

FORMAT = "rawdiffusion-pipeline/1"
KNOTS = 16
FIT_STEPS = 300
FIT_PIXELS = 200_000  # drawn evenly from all pairs' pixels
MAX_SIZE_DIFFERENCE = 0.03  # a photo's width and height may differ this much from its RAW's
POOR_FIT = 25  # dB: below this after the fit, the pairs are likely not the same pictures
# What a pipeline file may hold: fitted ones lie near the identity (gains and matrix entries
# near 1, curves rising from about 0 to about 1); far beyond these it would make garbage.
MAX_GAIN = 100.0
MIN_RISE = 0.05
log = logging.getLogger(__name__)


class PipelineError(UserError, ValueError):
    """A pipeline file or a RAW + photo pair that cannot be used: one line naming the file."""


def decode(v: torch.Tensor) -> torch.Tensor:
    """Encoded sRGB in [0, 1] -> linear (IEC 61966-2-1), differentiable."""
    v = v.clamp(0, 1)
    return torch.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055).clamp(min=1e-12) ** 2.4)


def encode(linear: torch.Tensor) -> torch.Tensor:
    """Linear RGB -> encoded sRGB in [0, 1] (IEC 61966-2-1), clipped."""
    linear = linear.clamp(0, 1)
    return torch.where(linear <= 0.0031308, 12.92 * linear,
                       1.055 * linear.clamp(min=1e-12) ** (1 / 2.4) - 0.055)


@dataclass(frozen=True)
class Pipeline:
    """A photo pipeline's global transform, to be undone (see the module docstring).

    knots: (3, KNOTS) the tone curves' values in [0, 1] at inputs 0, 1/(KNOTS - 1), ..., 1,
    non-decreasing; matrix: (3, 3) applied to linear RGB; gains: (3,) per channel after it;
    float64 tensors. fitted_on: what it was fitted on (the pairs, the fit's PSNR in linear RGB),
    kept in its file. digest: the SHA-256 of the file it was loaded from ("" for none), which
    manifests record."""

    knots: torch.Tensor
    matrix: torch.Tensor
    gains: torch.Tensor
    fitted_on: dict
    digest: str = ""

    def linear(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (..., 3, N) 0..255 (any real dtype) -> the transformed linear RGB, float64,
        not clipped."""
        return transform(self.knots, self.matrix, self.gains, codes.double())

    @torch.no_grad()
    def apply(self, codes: torch.Tensor) -> torch.Tensor:
        """Guides (B, 3, H, W) of 8-bit codes (uint8, or float 0..255) on any device -> the
        same with the pipeline undone, uint8, on that device."""
        b, c, h, w = codes.shape
        flat = codes.reshape(b, c, h * w)
        moved = Pipeline(*(t.to(codes.device) for t in (self.knots, self.matrix, self.gains)),
                         self.fitted_on, self.digest)
        out = (encode(moved.linear(flat)) * 255).round().to(torch.uint8)
        return out.reshape(b, c, h, w)


def transform(knots: torch.Tensor, matrix: torch.Tensor, gains: torch.Tensor,
              codes: torch.Tensor) -> torch.Tensor:
    """The transform of `codes` (..., 3, N) 0..255 float64 -> linear RGB (..., 3, N), not
    clipped: the tone curves `knots` (3, KNOTS) or (..., 3, KNOTS), decoding, `matrix` (3, 3)
    or (..., 3, 3), `gains` (3,) or (..., 3)."""
    p = (codes / 255.0).clamp(0, 1) * (KNOTS - 1)
    i = p.floor().clamp(max=KNOTS - 2).long()
    lookup = knots.expand(*codes.shape[:-1], KNOTS)
    y0, y1 = torch.gather(lookup, -1, i), torch.gather(lookup, -1, i + 1)
    lin = decode(y0 + (p - i) * (y1 - y0))
    return (matrix @ lin) * gains[..., None]


def fit(photos: list[np.ndarray], canonical: list[np.ndarray], seed: int = 0,
        pixels: int = FIT_PIXELS) -> tuple:
    """The transform taking the codes of `photos` closest to those of `canonical` (the same
    scenes' canonical renderings, pixel-aligned: lists of (h, w, 3) uint8) in linear RGB:
    least squares over `pixels` pixels drawn evenly (seeded) from all of them, FIT_STEPS of
    Adam from the identity. Returns (knots, matrix, gains, PSNR of the fit in dB)."""
    src = np.concatenate([p.reshape(-1, 3) for p in photos])
    dst = np.concatenate([c.reshape(-1, 3) for c in canonical])
    at = np.random.default_rng(seed).choice(len(src), min(pixels, len(src)), replace=False)
    x = torch.from_numpy(src[at].T.astype(np.float64))
    y = decode(torch.from_numpy(dst[at].T.astype(np.float64)) / 255)
    steps = torch.full((3, KNOTS - 1), math.log(math.expm1(1 / (KNOTS - 1))), dtype=torch.float64)
    change = torch.zeros(3, 3, dtype=torch.float64)
    log_gains = torch.zeros(3, dtype=torch.float64)
    params = [steps.requires_grad_(), change.requires_grad_(), log_gains.requires_grad_()]
    optimiser = torch.optim.Adam(params, lr=0.02)

    def current():
        rise = F.softplus(steps)  # monotone curves: positive steps from 0
        knots = torch.cat([torch.zeros(3, 1, dtype=torch.float64), rise.cumsum(-1)], -1)
        return knots, torch.eye(3, dtype=torch.float64) + change, log_gains.exp()

    for _ in range(FIT_STEPS):
        loss = (transform(*current(), x).clamp(max=1) - y).square().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        knots, matrix, gains = (t.detach() for t in current())
        mse = (transform(knots, matrix, gains, x).clamp(max=1) - y).square().mean()
    return knots.clamp(max=1), matrix, gains, float(-10 * torch.log10(mse.clamp(min=1e-20)))


def aligned(photo: np.ndarray, rendering: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """A photo (as viewers show it) and its RAW's canonical rendering (as the sensor lies, its
    orientation flag ignored), both (H, W, 3), cut to the same pixels: the photo turned by a
    multiple of 90 degrees and mirrored or not, as the RAW's orientation flag may say (the
    one of the eight closest to the rendering), and both centre-cropped to the smaller size
    where they differ by at most MAX_SIZE_DIFFERENCE per side (a camera's JPEG often drops a
    few border pixels). PipelineError naming the photo otherwise."""
    h, w = rendering.shape[:2]
    fits = []
    for k, mirrored in ((k, m) for k in range(4) for m in (False, True)):
        turned = np.rot90(photo[:, ::-1] if mirrored else photo, k)
        ph, pw = turned.shape[:2]
        if abs(ph - h) <= MAX_SIZE_DIFFERENCE * h and abs(pw - w) <= MAX_SIZE_DIFFERENCE * w:
            a, b = _centre(turned, rendering)
            step = max(1, min(a.shape[:2]) // 64)
            fits.append((np.abs(a[::step, ::step].astype(int) - b[::step, ::step]).mean(), a, b))
    if not fits:
        raise PipelineError(f"{name}: {photo.shape[1]} x {photo.shape[0]} pixels, but its RAW "
                            f"renders {w} x {h}: not the same picture (each side may differ by "
                            f"{MAX_SIZE_DIFFERENCE:.0%} at most, turned or mirrored)")
    _, a, b = min(fits, key=lambda f: f[0])
    return np.ascontiguousarray(a), np.ascontiguousarray(b)


def _centre(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, w = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
    cut = lambda x: x[(x.shape[0] - h) // 2:][:h, (x.shape[1] - w) // 2:][:, :w]  # noqa: E731
    return cut(a), cut(b)


def fit_pipeline(pairs: list[tuple[str, str]], progress=print) -> Pipeline:
    """`rawdiffusion pipeline fit`: the Pipeline of the photos of `pairs` [(RAW file, the
    pipeline's photo of it)], fitted on the guides (halved, as generation sees them) of each
    photo and of its RAW's canonical rendering (renderings.CANONICAL, as `prepare` makes
    guides). io.RawError / images.PhotoError naming a file that cannot be read, PipelineError
    for a photo that is not its RAW's picture."""
    from .io import read_raw
    from .renderings import CANONICAL, render

    seen = set()
    for raw_path, photo_path in pairs:
        key = (Path(raw_path).resolve(), Path(photo_path).resolve())
        if key in seen:
            raise PipelineError(f"{photo_path}: the pair {raw_path} + {photo_path} is given "
                                "twice; it would weigh double")
        seen.add(key)
    photos, canonical = [], []
    for raw_path, photo_path in pairs:
        progress(f"rendering {raw_path} and reading {photo_path}")
        raw = read_raw(raw_path)
        photo, rendering = aligned(read_rgb(photo_path), render(raw, CANONICAL),
                                   str(photo_path))
        if (photo[..., :1] == photo).all():
            raise PipelineError(f"{photo_path}: a greyscale photo: it cannot show the "
                                "pipeline's colours; give its colour photos")
        photos.append(halve_area(photo))
        canonical.append(halve_area(rendering))
    knots, matrix, gains, psnr = fit(photos, canonical)
    before = _psnr(photos, canonical)
    fitted = Pipeline(knots, matrix, gains, {})
    poor = sorted((each, str(photo_path)) for (_, photo_path), p, c
                  in zip(pairs, photos, canonical)
                  if (each := _psnr([_undone(fitted, p)], [c])) < POOR_FIT)
    if poor:  # worst first: one bad pair drags the others' fit down too
        log.warning("the pairs fit poorly (%.1f dB in linear RGB after the fit; below %d, worst "
                    "first: %s): are the photos the same pictures as their RAW files, "
                    "uncropped or cropped evenly?", psnr, POOR_FIT,
                    ", ".join(f"{name} {each:.1f} dB" for each, name in poor))
    return Pipeline(knots, matrix, gains, {
        "pairs": [[str(Path(r).resolve()), str(Path(p).resolve())] for r, p in pairs],
        "fit_psnr": round(psnr, 3), "identity_psnr": round(before, 3),
        "pixels": int(sum(p.shape[0] * p.shape[1] for p in photos))})


def _undone(pipeline: Pipeline, photo: np.ndarray) -> np.ndarray:
    """One photo (h, w, 3) uint8 with `pipeline` undone."""
    codes = torch.from_numpy(np.ascontiguousarray(photo)).permute(2, 0, 1)[None]
    return pipeline.apply(codes)[0].permute(1, 2, 0).numpy()


def _psnr(photos, canonical) -> float:
    """PSNR in linear RGB of the photos as they are against the canonical renderings."""
    table = decode(torch.arange(256, dtype=torch.float64) / 255)
    mse = np.mean([float((table[torch.from_numpy(p.astype(np.int64))]
                          - table[torch.from_numpy(c.astype(np.int64))]).square().mean())
                   for p, c in zip(photos, canonical)])
    return float(-10 * math.log10(max(mse, 1e-20)))


def _has_bool(value) -> bool:
    """Whether a JSON value holds true or false anywhere (torch.tensor takes them as 1 and 0)."""
    if isinstance(value, list):
        return any(_has_bool(v) for v in value)
    return isinstance(value, bool)


def save_pipeline(path, pipeline: Pipeline) -> None:
    """Write the pipeline as JSON (atomically)."""
    data = {"format": FORMAT, "knots": pipeline.knots.tolist(),
            "matrix": pipeline.matrix.tolist(), "gains": pipeline.gains.tolist(),
            "fitted_on": pipeline.fitted_on}
    with atomic_output(path) as tmp:
        Path(tmp).write_text(json.dumps(data, indent=1) + "\n")


def load_pipeline(path) -> Pipeline:
    """A pipeline file written by save_pipeline. PipelineError, one line naming the file, for a
    missing or unreadable file, another format, or values that are not a transform (curves
    of KNOTS non-decreasing values in [0, 1], a finite 3x3 matrix, three finite gains above
    0; a matrix not near singular nor huge, gains within MAX_GAIN of 1, curves that rise: a
    fitted pipeline is close to the identity), or a checkpoint or baseline file given as one."""
    if not str(path):
        raise PipelineError("pipeline: an empty path; give the file `rawdiffusion pipeline fit` "
                            "wrote")
    try:
        content = Path(path).read_bytes()
        if content[:2] == b"PK":  # a zip: torch.save's format
            raise PipelineError(f"{path}: a checkpoint, not a pipeline file; give it as "
                                "--checkpoint (rd.load's first argument)")
        data = json.loads(content.decode())
    except FileNotFoundError:
        raise PipelineError(f"{path}: no such file (a pipeline file is made by `rawdiffusion "
                            "pipeline fit`)") from None
    except IsADirectoryError:
        raise PipelineError(f"{path}: a folder, not a pipeline file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise PipelineError(f"{path}: not a pipeline file ({type(e).__name__}: "
                            f"{str(e)[:200]})") from None
    if misplaced := misplaced_file(data, FORMAT, "pipeline file"):
        raise PipelineError(f"{path}: {misplaced}")
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise PipelineError(f"{path}: not a pipeline file (no \"format\": \"{FORMAT}\"; one is "
                            "made by `rawdiffusion pipeline fit`)")
    shapes = f"lists of numbers of shapes (3, {KNOTS}), (3, 3) and (3,)"
    try:
        has_bool = any(_has_bool(data.get(k)) for k in ("knots", "matrix", "gains"))
    except RecursionError:  # lists nested too deep to be shapes of numbers
        has_bool = False  # torch.tensor refuses them below
    if has_bool:
        raise PipelineError(f"{path}: not a usable pipeline: knots, matrix and gains must be "
                            f"{shapes}, not true or false")
    try:
        knots, matrix, gains = (torch.tensor(data[k], dtype=torch.float64)
                                for k in ("knots", "matrix", "gains"))
    except (KeyError, TypeError, ValueError) as e:
        raise PipelineError(f"{path}: knots, matrix and gains must be {shapes} "
                            f"({type(e).__name__}: {e})") from None
    checks = [(lambda: knots.shape == (3, KNOTS), f"knots: {tuple(knots.shape)}, not (3, {KNOTS})"),
              (lambda: matrix.shape == (3, 3), f"matrix: {tuple(matrix.shape)}, not (3, 3)"),
              (lambda: gains.shape == (3,), f"gains: {tuple(gains.shape)}, not (3,)"),
              (lambda: all(bool(t.isfinite().all()) for t in (knots, matrix, gains)),
               "a value that is not finite"),
              (lambda: bool(((knots >= 0) & (knots <= 1)).all()), "knots outside [0, 1]"),
              (lambda: bool((knots.diff(dim=-1) >= 0).all()), "a tone curve that decreases"),
              (lambda: bool((gains > 0).all()), "a gain not above 0"),
              (lambda: bool((knots[:, -1] - knots[:, 0] >= MIN_RISE).all()),
               f"a tone curve that rises less than {MIN_RISE} (it would make every photo one "
               "colour)"),
              (lambda: bool((matrix.abs() <= MAX_GAIN).all()
                            and abs(float(torch.linalg.det(matrix))) >= 1 / MAX_GAIN),
               f"a matrix with a value beyond {MAX_GAIN:g} or a determinant within "
               f"{1 / MAX_GAIN:g} of 0 (it would lose the photo's colours)"),
              (lambda: bool(((gains >= 1 / MAX_GAIN) & (gains <= MAX_GAIN)).all()),
               f"a gain outside [{1 / MAX_GAIN:g}, {MAX_GAIN:g}]")]
    for holds, problem in checks:  # in order: the shapes first, as the others need them
        if not holds():
            raise PipelineError(f"{path}: not a usable pipeline: {problem}")
    return Pipeline(knots, matrix, gains, data.get("fitted_on") or {},
                    hashlib.sha256(content).hexdigest())
