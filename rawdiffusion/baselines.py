"""Baselines: a camera's RAW from an sRGB guide without a network.

What a user could get without RAW-Diffusion, so that every quality figure has something to beat
(docs/quality.md). Each baseline is a deterministic generator with the interface of a
checkpoint: `rawdiffusion baseline fit DATASET --kind KIND --out FILE` writes a small JSON file
that `convert --checkpoint FILE` and `sample.py checkpoint=FILE` take in a checkpoint's place.

Fitted colour maps (kinds `linear`, `poly2`, `poly3`, `curves`, and sums of these with `local`,
e.g. `curves+poly3+local`): prior.py, which also gives the production model its colour prior.

Unprocessing (kinds `upi`, `upi-camera`): Brooks et al. 2019, unprocess.py; `upi` with generic
parameters, `upi-camera` with the training camera's colour matrix and as-shot white balance.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from .atomic import atomic_output
from .camera import Camera
from .checkpoint import file_digest
from .errors import UserError
from .files import misplaced_file
from .generator import Generator
from .pipeline import Pipeline
from .prior import ColourMap, fit_colour_map, is_map_kind, map_groups
from .unprocess import UnprocessParams, camera_params, generic_params, unprocess

FORMAT = "rawdiffusion-baseline/1"
UPI = ("upi", "upi-camera")


class BaselineError(UserError, ValueError):
    """A baseline file or fit that cannot be used; the message names the file and why."""


# ----------------------------------------------------------------------------- files

def save_baseline(path, kind: str, camera: Camera, colour_map: ColourMap | None = None,
                  params=None, fit: dict | None = None) -> None:
    """Write a baseline file (JSON, atomically): format, kind, the camera whose DNGs it writes
    (Camera.to_dict, as checkpoints store it, with its noise model when it has one), and the
    map's weights or the unprocessing parameters."""
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
class Baseline(Generator):
    """A loaded baseline: a generator (generator.Generator) of the camera of its file, without
    a network. Deterministic: the seeds are taken and not used; steps and sampler are None.
    colour_map: the fitted map of a map kind (prior.ColourMap, moved to `device`), or params:
    the unprocessing parameters of an upi kind."""

    kind: str
    camera: Camera
    digest: str
    colour_map: ColourMap | None = None
    params: UnprocessParams | None = None
    device: torch.device | str = "cpu"
    steps: None = None
    sampler: None = None
    batch_size: int = 1  # guides handed over at once; a baseline's cost is per pixel
    iso: float | str | None = None  # sensor noise (settings.Settings)
    exposure: float | str = 0.0  # EV, or "draw"
    white_balance: tuple[float, float, float] | str | None = None  # the scene's
    pipeline: Pipeline | None = None  # a photo pipeline undone before generating

    def __post_init__(self):
        if self.colour_map is not None:
            self.colour_map.to(self.device)

    @torch.no_grad()
    def _packed(self, codes: list[torch.Tensor], seeds: list[int],
                callback=None) -> list[torch.Tensor]:
        out = []
        for guide in codes:  # (1, 3, h, w) uint8
            if self.colour_map is None:
                x = unprocess(guide[0].permute(1, 2, 0).cpu().numpy(), self.params)
                x = torch.from_numpy(x)[None].to(self.device)
            else:
                x = self.colour_map(guide)
            if not torch.isfinite(x).all():
                raise BaselineError(f"{self.kind} baseline {self.digest}: its parameters give "
                                    "non-finite values")
            out.append(x)
        return out


def load_baseline(path, device="cpu") -> Baseline:
    """A baseline file's generator (its map on `device`); BaselineError naming the file when it
    is not a usable one."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError, RecursionError) as e:  # decoding, syntax, nesting too deep
        raise BaselineError(f"{path}: not a readable baseline file ({type(e).__name__}: "
                            f"{str(e)[:200]})") from None
    if misplaced := misplaced_file(data, FORMAT, "model"):
        raise BaselineError(f"{path}: {misplaced}")
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
            return Baseline(kind, camera, file_digest(path), colour_map=ColourMap(kind, weights),
                            device=device)
        return Baseline(kind, camera, file_digest(path),
                        params=UnprocessParams.from_dict(data["params"]), device=device)
    except (KeyError, TypeError, ValueError) as e:
        raise BaselineError(f"{path}: unusable {kind} baseline ({type(e).__name__}: {e})") from None


def fit_baseline(dataset, kind: str, out, split: str = "train") -> dict:
    """`rawdiffusion baseline fit`: fit (maps) or set up (unprocessing) a baseline of `kind`
    for the camera of `split` of a prepared dataset, and write it to `out`, with the camera's
    noise model calibrated from the split (Camera.from_training_images) and, for a map, its
    training images' exposures against it (prior.exposure_offsets). Returns the file's
    contents but the weights."""
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
    camera = Camera.from_training_images(images)
    colour_map = params = fit = None
    if kind not in UPI:
        colour_map, fit = fit_colour_map(dataset, split, kind, camera=camera)
        camera = camera.with_exposures(list(fit.pop("exposures").values()))
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
