"""Checkpoints: what a trained run leaves, and all that sampling needs.

A checkpoint is a dict of tensors and plain values, loadable with torch.load(weights_only=True):
format, step, config (the training configuration as a dict), model_config (UNet arguments),
model and ema state dicts, optimizer state, and camera: the Bayer order, levels, white balance,
colour matrix, make and model of the training data, so that generated RAW can be written as
that camera's DNG without the dataset.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import torch

from . import bayer
from .io import RawImage, atomic_output
from .model import UNet

FORMAT = "rawdiffusion-checkpoint/1"


def save_checkpoint(path, state: dict) -> None:
    """Write `state` (tensors and plain values only) atomically."""
    with atomic_output(path) as tmp:
        torch.save({"format": FORMAT, **state}, tmp)


def load_checkpoint(path, map_location="cpu") -> dict:
    """A checkpoint's dict; ValueError naming the file when it is not one of ours."""
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such checkpoint") from None
    except Exception as e:  # a truncated file, another program's pickle, ...
        raise ValueError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path}: not a rawdiffusion checkpoint")
    return state


def load_model(path, ema: bool = True, device="cpu") -> tuple[UNet, dict]:
    """The trained network of a checkpoint, in eval mode, and the checkpoint's dict.
    ema: use the EMA weights when the run kept them."""
    state = load_checkpoint(path, map_location=device)
    net = UNet(**state["model_config"]).to(device)
    net.load_state_dict(state["ema"] if ema and state.get("ema") is not None else state["model"])
    return net.for_sampling(), state


def export_checkpoint(path, out) -> int:
    """Write a checkpoint for sharing: the weights sampling uses (EMA when the run kept them) in
    float16, the configs and camera; no optimiser state. Returns the file's size in bytes."""
    state = load_checkpoint(path)
    weights = state["ema"] if state.get("ema") is not None else state["model"]
    save_checkpoint(out, {
        "step": state["step"], "config": state["config"], "model_config": state["model_config"],
        "camera": state["camera"], "ema": None,
        # The colour prior's fitted map stays in float64: its terms cancel to 1e-4 precision.
        "model": {k: v.half() if v.is_floating_point() and not k.startswith("prior.") else v
                  for k, v in weights.items()}})
    return Path(out).stat().st_size


def camera_of(images: dict) -> dict:
    """The camera description of a prepared dataset's image entries (dataset.json "images"):
    its most common Bayer order, make and model, the median levels, the mean white balance
    and the colour calibrations of the first image that has one: color_matrix / illuminant
    (DNG ColorMatrix1, CalibrationIlluminant1) and color_matrix2 / illuminant2 (or None).
    Entries of datasets prepared before illuminants were kept have an illuminant of 0
    (unknown). Plain values, for the checkpoint."""
    entries = list(images.values())
    common = lambda key: Counter(str(e.get(key, "")) for e in entries).most_common(1)[0][0]  # noqa: E731
    wbs = [e["wb"] for e in entries if e.get("wb")]
    calibrated = next((e for e in entries if e.get("color_matrix")), {})
    second = calibrated.get("color_matrix2")
    illuminant = lambda key: int(calibrated.get(key) or 0)  # noqa: E731  (0: unknown)
    return {
        "cfa": common("cfa"),
        "make": common("make"),
        "model": common("model"),
        "black_level": np.median([e["black_level"] for e in entries], axis=0).tolist(),
        "white_level": float(np.median([e["white_level"] for e in entries])),
        "wb": np.mean(wbs, axis=0).tolist() if wbs else None,
        "color_matrix": calibrated.get("color_matrix"),
        "illuminant": illuminant("illuminant") if calibrated else None,
        "color_matrix2": second,
        "illuminant2": illuminant("illuminant2") if second else None,
    }


def camera_raw(camera: dict, x: np.ndarray) -> RawImage:
    """Packed RAW x (4, h, w) in [0, 1] -> a RawImage of `camera` (mosaic 2h x 2w).

    The camera's colour calibrations go to the image as they are, with their illuminants.
    Checkpoints written before illuminants were kept hold one "color_matrix" and no
    "illuminant": its illuminant is unknown (EXIF LightSource 0), never assumed to be D65."""
    cfa = camera["cfa"]
    black = np.asarray(camera["black_level"], dtype=np.float64)  # per packed channel
    mosaic = bayer.unpack(bayer.denormalise(x, black, camera["white_level"]), cfa)
    # RawImage keeps black levels per tile position: invert packed_levels' reordering.
    tile = np.zeros(4)
    for level, (dy, dx) in zip(black, bayer.channel_positions(cfa)):
        tile[2 * dy + dx] = level
    matrix, matrix2 = camera.get("color_matrix"), camera.get("color_matrix2")
    illuminant = lambda key: int(camera.get(key) or 0)  # noqa: E731  (0: unknown)
    return RawImage(mosaic=mosaic, cfa=cfa, black_level=tuple(tile),
                    white_level=camera["white_level"],
                    wb=tuple(camera["wb"]) if camera.get("wb") else None,
                    color_matrix=None if matrix is None else np.asarray(matrix),
                    illuminant=illuminant("illuminant"),
                    color_matrix2=None if matrix is None or matrix2 is None
                    else np.asarray(matrix2),
                    illuminant2=illuminant("illuminant2"),
                    make=camera.get("make", ""), model=camera.get("model", ""))
