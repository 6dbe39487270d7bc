"""Renderings of a RAW file: the same scene as other camera pipelines would have shown it.

The guides of a prepared dataset are one rendering of each RAW file, LibRaw's defaults (see
datasets/paired.py). Photos from other pipelines differ in white balance, brightness,
demosaicing, tone curve, colour handling, and in what was done to the 8-bit picture afterwards
(JPEG, sharpening, denoising, edits). A rendering here is a small named *recipe*, a plain dict
(JSON values only) applied to the whole RAW image at full resolution:

    {"name": "jpeg75",
     "libraw": {...},   # rawpy.postprocess settings (LIBRAW_DEFAULTS: the canonical ones)
     "tone": None,      # None: LibRaw's own 8-bit gamma; else a curve of LibRaw's linear output
     "ops": [{"op": "jpeg", "quality": 75}, ...]}   # photo operations, in order (OPS)

`render(raw, recipe)` gives the (H, W, 3) uint8 sRGB image; `guide(raw, recipe)` halves it with
the area interpolation of `prepare` (images.halve_area), so that `patches(guide, grid)` cuts the
very patches of the prepared RAW samples: pixel (y, x) of a patch of any rendering sees the same
scene point as the packed RAW sample. CANONICAL (no settings, no tone, no ops) is exactly
`prepare`'s guide, the orientation flag ignored and headerless dumps rendered through a
temporary DNG (io.render_srgb).

Two sets of recipes: BENCHMARK, fixed and named, which benchmarks/quality.py evaluates; and the
training distribution, `draw_recipe(rng)`, a seeded random draw from the same families with
other parameters (continuous parameters drawn from ranges, discrete ones from other members of
the family where the family has several), which never returns a benchmark recipe.
"""

from __future__ import annotations

import hashlib
import io as bytes_io
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from .datasets.paired import grid_boxes
from .errors import UserError
from .images import halve_area
from .io import RawImage, colour_science, render_srgb

# rawpy.postprocess settings a recipe can change, with LibRaw's defaults (the canonical ones).
LIBRAW_DEFAULTS = {"white_balance": "daylight",  # daylight (LibRaw's default) | camera | auto
                   "auto_bright": True,          # LibRaw's histogram brightening (1 % to white)
                   "bright": 1.0,                # LibRaw's brightness factor
                   "demosaic": "AHD",            # rawpy.DemosaicAlgorithm name
                   "colour_space": "sRGB",       # rawpy.ColorSpace name of LibRaw's output
                   "converted": False}           # True: colour_space converted to sRGB properly
SRGB_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 weights, as Pillow's ImageEnhance.Color


class RecipeError(UserError, ValueError):
    """A recipe that cannot be applied; the message names the recipe and the reason."""


# ----------------------------------------------------------------------------- LibRaw stage

def postprocess_settings(recipe: dict) -> dict:
    """The rawpy.postprocess keyword arguments of a recipe's LibRaw stage ({} for the canonical
    settings). With a `tone` or a `converted` colour space LibRaw outputs 16-bit linear values
    (gamma (1, 1)), which the tone curve then encodes."""
    import rawpy  # loads LibRaw: only when rendering, as io.py does

    settings = {**LIBRAW_DEFAULTS, **recipe.get("libraw", {})}
    unknown = set(settings) - set(LIBRAW_DEFAULTS)
    if unknown:
        raise RecipeError(f"recipe {recipe.get('name')!r}: unknown LibRaw settings "
                          f"{sorted(unknown)}; known: {', '.join(LIBRAW_DEFAULTS)}")
    kwargs = {}
    if settings["white_balance"] == "camera":
        kwargs["use_camera_wb"] = True
    elif settings["white_balance"] == "auto":
        kwargs["use_auto_wb"] = True
    elif settings["white_balance"] != "daylight":
        raise RecipeError(f"recipe {recipe.get('name')!r}: white_balance "
                          f"{settings['white_balance']!r}: daylight, camera or auto")
    if not settings["auto_bright"]:
        kwargs["no_auto_bright"] = True
    if settings["bright"] != 1.0:
        kwargs["bright"] = float(settings["bright"])
    if settings["demosaic"] != "AHD":
        kwargs["demosaic_algorithm"] = rawpy.DemosaicAlgorithm[settings["demosaic"]]
    if settings["colour_space"] != "sRGB":
        kwargs["output_color"] = rawpy.ColorSpace[settings["colour_space"]]
    if recipe.get("tone") is not None or settings["converted"]:
        kwargs.update(gamma=(1, 1), output_bps=16)
    return kwargs


def libraw_stage(raw: RawImage, recipe: dict) -> np.ndarray:
    """LibRaw's rendering of `raw` by the recipe's settings and tone: (H, W, 3) float32 in
    [0, 1], sRGB-encoded (8-bit codes / 255 when LibRaw encodes, so the canonical recipe keeps
    its exact codes)."""
    kwargs = postprocess_settings(recipe)
    image = render_srgb(raw, **kwargs)
    if "output_bps" not in kwargs:
        return image.astype(np.float32) / 255
    linear = image.astype(np.float32) / 65535
    settings = {**LIBRAW_DEFAULTS, **recipe.get("libraw", {})}
    if settings["converted"]:
        colour = colour_science()
        space = colour.RGB_COLOURSPACES[_COLOUR_SPACE_NAMES[settings["colour_space"]]]
        linear = colour.RGB_to_RGB(linear, space, colour.RGB_COLOURSPACES["sRGB"],
                                   chromatic_adaptation_transform="Bradford").astype(np.float32)
    return tone_curve(np.clip(linear, 0, 1), recipe.get("tone") or {"curve": "srgb"})


# LibRaw's output spaces as colour-science names them (rawpy.ColorSpace names as keys).
_COLOUR_SPACE_NAMES = {"sRGB": "sRGB", "Adobe": "Adobe RGB (1998)", "Wide": "Adobe Wide Gamut RGB",
                       "ProPhoto": "ProPhoto RGB", "Rec2020": "ITU-R BT.2020",
                       "P3D65": "Display P3"}


def tone_curve(linear: np.ndarray, tone: dict) -> np.ndarray:
    """Linear RGB in [0, 1] -> sRGB-encoded display values in [0, 1] by a tone curve:
    {"curve": "srgb"} the IEC 61966-2-1 encoding; {"curve": "gamma", "gamma": g} v ** (1 / g);
    {"curve": "filmic", "exposure": e, "white": w} Hable's filmic curve (the "Uncharted 2"
    operator, shoulder and toe of a film response) of e * v, normalised so that w is white,
    then sRGB-encoded."""
    colour = colour_science()
    curve = tone.get("curve")
    if curve == "srgb":
        out = colour.models.eotf_inverse_sRGB(linear)
    elif curve == "gamma":
        out = linear ** (1 / float(tone["gamma"]))
    elif curve == "filmic":
        hable = lambda v: ((v * (0.15 * v + 0.05) + 0.004)  # noqa: E731
                           / (v * (0.15 * v + 0.5) + 0.06)) - 0.02 / 0.3
        white = float(tone["white"])
        out = colour.models.eotf_inverse_sRGB(
            np.clip(hable(linear * float(tone["exposure"])) / hable(white), 0, 1))
    else:
        raise RecipeError(f"tone curve {curve!r}: srgb, gamma or filmic")
    return np.clip(out, 0, 1).astype(np.float32)


# ----------------------------------------------------------------------------- photo operations

def to_codes(v: np.ndarray) -> np.ndarray:
    """sRGB-encoded float values in [0, 1] -> 8-bit codes (rounded, clipped)."""
    return np.round(np.clip(v, 0, 1) * 255).astype(np.uint8)


def _pillow(v: np.ndarray, fn) -> np.ndarray:
    """An operation on the 8-bit picture, as a photo editor runs it: quantised first."""
    return np.asarray(fn(Image.fromarray(to_codes(v))), dtype=np.float32) / 255


def _jpeg(image: Image.Image, quality: int, subsampling: int) -> Image.Image:
    buffer = bytes_io.BytesIO()
    image.save(buffer, format="JPEG", quality=int(quality), subsampling=int(subsampling))
    return Image.open(buffer).convert("RGB")


def _in_linear(v: np.ndarray, gains) -> np.ndarray:
    """Multiply the linear RGB (sRGB decoded, IEC 61966-2-1) by `gains`, encode again."""
    colour = colour_science()
    linear = colour.models.eotf_sRGB(v) * np.asarray(gains, dtype=np.float32)
    return colour.models.eotf_inverse_sRGB(np.clip(linear, 0, 1)).astype(np.float32)


def _s_curve(v: np.ndarray, strength: float) -> np.ndarray:
    """A logistic S curve through (0, 0), (0.5, 0.5) and (1, 1); `strength` its slope."""
    s = lambda x: 1 / (1 + np.exp(-strength * (x - 0.5)))  # noqa: E731
    return (s(v) - s(0.0)) / (s(1.0) - s(0.0))


def _luma(v: np.ndarray) -> np.ndarray:
    return (v * np.asarray(SRGB_LUMA, dtype=np.float32)).sum(-1, keepdims=True)


# Each operation: sRGB-encoded (H, W, 3) float32 in [0, 1] and its parameters -> the same.
OPS = {
    # JPEG at a quality 1..95 with chroma subsampling 0 (4:4:4), 1 (4:2:2) or 2 (4:2:0)
    "jpeg": lambda v, quality, subsampling=2: _pillow(
        v, lambda im: _jpeg(im, quality, subsampling)),
    # Pillow's unsharp mask: Gaussian radius in pixels, percent strength, threshold in codes
    "unsharp": lambda v, radius, percent, threshold=0: _pillow(
        v, lambda im: im.filter(ImageFilter.UnsharpMask(radius, int(percent), int(threshold)))),
    # denoising the 8-bit picture: Pillow's median filter (size 3, 5) or Gaussian blur (radius)
    "median": lambda v, size: _pillow(v, lambda im: im.filter(ImageFilter.MedianFilter(int(size)))),
    "blur": lambda v, radius: _pillow(v, lambda im: im.filter(ImageFilter.GaussianBlur(radius))),
    # contrast about mid-grey: v -> 0.5 + (v - 0.5) (1 + amount), on the encoded values
    "contrast": lambda v, amount: np.clip(0.5 + (v - 0.5) * (1 + amount), 0, 1),
    # an S-shaped tone curve of the encoded values (no clipping)
    "curve": lambda v, strength: _s_curve(v, strength).astype(np.float32),
    # a midtone gamma of the encoded values: v -> v ** gamma
    "gamma": lambda v, gamma: v ** np.float32(gamma),
    # saturation: away from (or towards) the BT.601 luma, like Pillow's ImageEnhance.Color
    "saturation": lambda v, amount: np.clip(_luma(v) + (v - _luma(v)) * (1 + amount), 0, 1),
    # exposure in EV and white balance gains (R, G, B), both in linear RGB
    "exposure": lambda v, ev: _in_linear(v, [2.0 ** ev] * 3),
    "white_balance": lambda v, gains: _in_linear(v, gains),
}


def apply_ops(v: np.ndarray, recipe: dict) -> np.ndarray:
    """The recipe's photo operations, in order, on sRGB-encoded (H, W, 3) float32 in [0, 1].
    RecipeError for an unknown operation or parameters it does not take."""
    for op in recipe.get("ops", []):
        params = {k: x for k, x in op.items() if k != "op"}
        if op.get("op") not in OPS:
            raise RecipeError(f"recipe {recipe.get('name')!r}: unknown operation "
                              f"{op.get('op')!r}; known: {', '.join(OPS)}")
        try:
            v = OPS[op["op"]](v, **params)
        except TypeError as e:
            raise RecipeError(f"recipe {recipe.get('name')!r}: operation {op['op']}: "
                              f"{e}") from None
    return v.astype(np.float32)


# ----------------------------------------------------------------------------- rendering

def render(raw: RawImage, recipe: dict) -> np.ndarray:
    """The rendering of `raw` by `recipe` at full resolution: (H, W, 3) uint8 sRGB, H, W the
    mosaic's. The canonical recipe gives io.render_srgb(raw) exactly. Deterministic: the same
    recipe gives the same bytes. RecipeError for a recipe that cannot be applied."""
    return to_codes(apply_ops(libraw_stage(raw, recipe), recipe))


def render_many(raw: RawImage, recipes: list[dict]):
    """`render` of several recipes, LibRaw run once per distinct LibRaw stage (settings and
    tone): yields (recipe, (H, W, 3) uint8) in the order of `recipes`."""
    stage_key = lambda r: json.dumps([r.get("libraw", {}), r.get("tone")], sort_keys=True)  # noqa: E731
    stages: dict[str, np.ndarray] = {}
    for recipe in recipes:
        key = stage_key(recipe)
        if key not in stages:
            stages.clear()  # one full-resolution stage kept at a time: recipes come grouped
            stages[key] = libraw_stage(raw, recipe)
        yield recipe, to_codes(apply_ops(stages[key], recipe))


def guide(rendering: np.ndarray, raw: RawImage) -> np.ndarray:
    """A full-resolution rendering (H, W, 3) of `raw` -> the guide at the packed size
    (H // 2, W // 2, 3), halved with area interpolation exactly as `prepare` halves its own."""
    h, w = raw.mosaic.shape[0] // 2, raw.mosaic.shape[1] // 2
    return halve_area(rendering[: 2 * h, : 2 * w])


def patches(guide_image: np.ndarray, grid: int) -> list[np.ndarray]:
    """The grid x grid patches `prepare` cuts from a guide of the packed size, row-major (sample
    k of an image is patch k): each aligned pixel for pixel with the prepared RAW sample."""
    h, w = guide_image.shape[:2]
    return [np.ascontiguousarray(guide_image[y:y + ph, x:x + pw])
            for y, x, ph, pw in grid_boxes(h, w, grid)]


def recipe_key(recipe: dict) -> str:
    """What a recipe does, without its name, as canonical JSON: two recipes with the same key
    give the same rendering."""
    settings = {**LIBRAW_DEFAULTS, **recipe.get("libraw", {})}
    tone = recipe.get("tone") or ({"curve": "srgb"} if settings["converted"] else None)
    return json.dumps({"libraw": settings, "tone": tone,
                       "ops": recipe.get("ops", [])}, sort_keys=True)


# ----------------------------------------------------------------------------- recipe sets

def _recipe(name: str, libraw: dict | None = None, tone: dict | None = None,
            ops: list | None = None) -> dict:
    return {"name": name, "libraw": libraw or {}, "tone": tone, "ops": ops or []}


CANONICAL = _recipe("libraw-default")
# The benchmark's renderings, fixed: the canonical one first (the paper's protocol), then one
# member of each family, then a camera-like combination. The first measurements
# (JPEG 90 / 75, unsharp mask 2 px 80 %, white balance x(1.15, 1, 0.87), saturation +25 %,
# contrast +20 %, exposure +-1/3 EV) are among them.
BENCHMARK = (
    CANONICAL,
    _recipe("camera-wb", {"white_balance": "camera"}),
    _recipe("auto-wb", {"white_balance": "auto"}),
    _recipe("no-auto-bright", {"auto_bright": False}),
    _recipe("demosaic-linear", {"demosaic": "LINEAR"}),
    _recipe("demosaic-dcb", {"demosaic": "DCB"}),
    _recipe("srgb-curve", tone={"curve": "srgb"}),
    _recipe("filmic", tone={"curve": "filmic", "exposure": 4.0, "white": 4.0}),
    _recipe("adobe-as-srgb", {"colour_space": "Adobe"}),
    _recipe("prophoto-converted", {"colour_space": "ProPhoto", "converted": True}),
    _recipe("jpeg90", ops=[{"op": "jpeg", "quality": 90}]),
    _recipe("jpeg75", ops=[{"op": "jpeg", "quality": 75}]),
    _recipe("unsharp", ops=[{"op": "unsharp", "radius": 2.0, "percent": 80}]),
    _recipe("median3", ops=[{"op": "median", "size": 3}]),
    _recipe("contrast+20", ops=[{"op": "contrast", "amount": 0.2}]),
    _recipe("saturation+25", ops=[{"op": "saturation", "amount": 0.25}]),
    _recipe("exposure+0.33ev", ops=[{"op": "exposure", "ev": 1 / 3}]),
    _recipe("exposure-0.33ev", ops=[{"op": "exposure", "ev": -1 / 3}]),
    _recipe("wb-warm", ops=[{"op": "white_balance", "gains": [1.15, 1.0, 0.87]}]),
    _recipe("camera-like", {"white_balance": "camera"},
            {"curve": "filmic", "exposure": 4.0, "white": 4.0},
            [{"op": "saturation", "amount": 0.15},
             {"op": "unsharp", "radius": 1.0, "percent": 60},
             {"op": "jpeg", "quality": 85}]),
)

# The training distribution's discrete choices: members of the benchmark's families that the
# benchmark does not use where the family has several (demosaic, colour handling, tone).
TRAINING_DEMOSAIC = ("AHD", "VNG", "PPG", "AAHD", "DHT")
TRAINING_COLOUR = (("P3D65", False), ("Rec2020", False), ("Adobe", True), ("Wide", True),
                   ("Rec2020", True))
JPEG_QUALITIES = (55, 97)  # training range; the benchmark's qualities are left out


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return round(float(rng.uniform(lo, hi)), 3)


def _draw_libraw(rng: np.random.Generator) -> tuple[dict, dict | None]:
    libraw = {"white_balance": str(rng.choice(["daylight", "camera", "auto"], p=[.5, .3, .2])),
              "demosaic": TRAINING_DEMOSAIC[rng.integers(len(TRAINING_DEMOSAIC))]}
    if rng.random() < 0.15:
        libraw["auto_bright"] = False
    elif rng.random() < 0.3:
        libraw["bright"] = _u(rng, 0.7, 1.5)
    if rng.random() < 0.2:
        space, converted = TRAINING_COLOUR[rng.integers(len(TRAINING_COLOUR))]
        libraw.update(colour_space=space, converted=converted)
    tone = None
    kind = rng.random()
    if kind < 0.2:
        tone = {"curve": "gamma", "gamma": _u(rng, 1.8, 2.6)}
    elif kind < 0.4:
        white = _u(rng, 2.0, 8.0)
        tone = {"curve": "filmic", "exposure": round(white * _u(rng, 0.8, 1.2), 3), "white": white}
    elif kind < 0.5:
        tone = {"curve": "srgb"}
    return libraw, tone


def _draw_ops(rng: np.random.Generator) -> list[dict]:
    ops = []
    if rng.random() < 0.3:
        ops.append({"op": "exposure", "ev": _u(rng, -0.8, 0.8)})
    if rng.random() < 0.3:
        ops.append({"op": "white_balance", "gains": [round(float(np.exp(rng.uniform(-.25, .25))), 3),
                                                     1.0,
                                                     round(float(np.exp(rng.uniform(-.25, .25))), 3)]})
    tone = rng.random()
    if tone < 0.2:
        ops.append({"op": "contrast", "amount": _u(rng, -0.25, 0.35)})
    elif tone < 0.35:
        ops.append({"op": "curve", "strength": _u(rng, 2.0, 8.0)})
    elif tone < 0.45:
        ops.append({"op": "gamma", "gamma": _u(rng, 0.8, 1.25)})
    if rng.random() < 0.3:
        ops.append({"op": "saturation", "amount": _u(rng, -0.3, 0.45)})
    if rng.random() < 0.15:
        ops.append({"op": "median", "size": 5} if rng.random() < 0.3
                   else {"op": "blur", "radius": _u(rng, 0.3, 1.2)})
    if rng.random() < 0.3:
        ops.append({"op": "unsharp", "radius": _u(rng, 0.5, 3.0),
                    "percent": int(rng.integers(30, 151)), "threshold": int(rng.integers(0, 4))})
    if rng.random() < 0.6:
        benchmark = {op["quality"] for r in BENCHMARK for op in r["ops"] if op["op"] == "jpeg"}
        quality = int(rng.choice([q for q in range(JPEG_QUALITIES[0], JPEG_QUALITIES[1] + 1)
                                  if q not in benchmark]))
        ops.append({"op": "jpeg", "quality": quality, "subsampling": int(rng.choice([0, 2]))})
    return ops


def draw_recipe(rng: np.random.Generator) -> dict:
    """One recipe of the training distribution, drawn with `rng` (seed it for reproducible
    draws): LibRaw settings, a tone curve and photo operations, each family with its own
    probability, with other parameters than BENCHMARK's; a draw that equals a non-canonical
    benchmark recipe (recipe_key) is drawn again. The canonical rendering is not drawn: it is
    the prepared guide itself. Named "train-" + a short hash of what it does."""
    held_out = {recipe_key(r) for r in BENCHMARK}
    while True:
        libraw, tone = _draw_libraw(rng)
        recipe = _recipe("", libraw, tone, _draw_ops(rng))
        key = recipe_key(recipe)
        if key not in held_out:
            recipe["name"] = "train-" + hashlib.sha256(key.encode()).hexdigest()[:8]
            return recipe


def training_recipes(count: int, seed: int) -> list[dict]:
    """`count` recipes of the training distribution, drawn from np.random.default_rng(seed)."""
    rng = np.random.default_rng(seed)
    return [draw_recipe(rng) for _ in range(count)]


def rendered_guides(dataset, split: str, recipes: list[dict], out) -> dict[str, dict]:
    """Every sample of `split` of a prepared paired dataset (datasets.layout.PreparedDataset,
    prepared with a grid of patches) as each recipe renders it: out/<recipe name>/<sample
    id>.png, (h, w, 3) uint8 aligned with the sample's RAW. Each image's RAW file (its entry's
    `source`) is read again and rendered at full resolution; images whose patches all exist are
    skipped, so a rerun costs nothing. Returns {recipe name: {sample id: path}}.
    RecipeError for a dataset not cut into a grid (NOD h416, RGB-only data) or whose source
    files have changed size."""
    from .images import write_png
    from .io import read_raw

    grid = (dataset.description.get("made_by") or {}).get("grid")
    if dataset.kind != "paired" or not grid:
        raise RecipeError(f"{dataset.root}: renderings need a paired dataset cut into a grid of "
                          "patches (prepare folder, fivek, nod without --h416)")
    names = [r["name"] for r in recipes]
    if len(set(names)) < len(names):
        raise RecipeError("two recipes share a name; their renderings would share files")
    ids = set(dataset.split(split))
    paths = {n: {} for n in names}
    for entry in dataset.images.values():
        samples = [s for s in entry["samples"] if s in ids]
        if not samples:
            continue
        for n in names:
            paths[n].update({s: Path(out) / n / f"{s}.png" for s in samples})
        if all(paths[n][s].is_file() for n in names for s in samples):
            continue
        raw = read_raw(entry["source"])
        for recipe, image in render_many(raw, recipes):
            cut = patches(guide(image, raw), grid)
            if len(cut) != len(entry["samples"]):
                raise RecipeError(f"{entry['source']}: {len(cut)} patches, the dataset has "
                                  f"{len(entry['samples'])}; prepare it again")
            for sample_id, patch in zip(entry["samples"], cut):
                if sample_id in ids:
                    write_png(paths[recipe["name"]][sample_id], patch)
    return paths
