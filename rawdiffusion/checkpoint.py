"""Checkpoints: what a trained run leaves, and all that sampling needs.

A checkpoint is a dict of tensors and plain values, loadable with torch.load(weights_only=True):
format, step, config (the training configuration as a dict), model_config (UNet arguments),
model and ema state dicts, optimizer state, and camera: the Bayer order, levels, white balance,
colour matrix, make and model of the training data, so that generated RAW can be written as
that camera's DNG without the dataset, and its sensor's noise model when the training images
gave one (camera.Camera.noise).
"""

from __future__ import annotations

import hashlib
import inspect
import pickle
import re
import zipfile
from collections import Counter
from pathlib import Path

import torch

from .atomic import atomic_output
from .camera import Camera
from .diffusion import OBJECTIVES
from .errors import UserError
from .model import GUIDES, PRESETS, UNet
from .prior import ColourMap, map_groups, measured_exposures

FORMAT = "rawdiffusion-checkpoint/1"
# What every checkpoint holds besides "format", with its type; "ema" is None or a state dict.
REQUIRED = {"step": int, "config": dict, "model_config": dict, "model": dict, "camera": dict}


class CheckpointError(UserError, ValueError):
    """A file that is not a usable checkpoint: one line naming the file and why, reported by
    every entry point as `error: ...` with exit status 2."""

    def __init__(self, path, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"{path}: {reason}")


def file_digest(path) -> str:
    """The file's SHA-256 (64 hex digits): names a checkpoint in manifests."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def same_checkpoint(recorded: str | None, digest: str) -> bool:
    """Whether a record's checkpoint digest names the file of `digest`: its full SHA-256, or the
    first 16 hex digits of it, all that versions before the full digest recorded."""
    return recorded is not None and (recorded == digest
                                     or len(recorded) == 16 and digest.startswith(recorded))


def checkpoint_state(step: int, config: dict, model_config: dict, model: dict,
                     ema: dict | None, camera: Camera | None,
                     optimizer: dict | None = None) -> dict:
    """What a checkpoint holds but its format (save_checkpoint adds it): the step, the training
    configuration, the UNet arguments, the model and EMA state dicts (ema None: the run kept
    none), the camera as its plain dict (Camera.to_dict; {} for None, a network of no camera)
    and, when given, the optimiser's state dict (a training checkpoint; an exported one has
    none)."""
    state = {"step": step, "config": config, "model_config": model_config, "model": model,
             "ema": ema}
    if optimizer is not None:
        state["optimizer"] = optimizer
    state["camera"] = {} if camera is None else camera.to_dict()
    return state


def objective_of(state: dict) -> str:
    """A checkpoint's training objective: "diffusion" (the paper's) or "direct" (the one-pass
    control); checkpoints from before the option are diffusion models."""
    return state.get("config", {}).get("model", {}).get("objective", "diffusion")


def checkpoint_camera(state: dict) -> Camera | None:
    """The camera of a loaded (validated) checkpoint dict; None when it records none ({}, as
    networks saved by tests)."""
    return Camera.from_dict(state["camera"]) if state["camera"] else None


def save_checkpoint(path, state: dict) -> None:
    """Write `state` (tensors and plain values only) atomically."""
    with atomic_output(path) as tmp:
        torch.save({"format": FORMAT, **state}, tmp)


def load_checkpoint(path, map_location="cpu") -> dict:
    """A checkpoint's dict, validated before any work: its container, keys, model_config, the
    weights' shapes for that model_config and their finiteness, and the camera. Raises
    CheckpointError (one line naming the file and what is wrong), FileNotFoundError when
    there is no file. Nothing in the file is executed: torch.load(weights_only=True) unpickles
    tensors and plain values only, and files that are not PyTorch zip archives (plain pickles,
    random bytes) are refused before unpickling."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():  # a broken link: _container_problem says
        raise FileNotFoundError(f"{path}: no such checkpoint")
    problem = _container_problem(path)
    if problem:
        raise CheckpointError(path, f"not a readable checkpoint: {problem}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:  # torch's several-paragraph "Weights only load failed"
        raise CheckpointError(path, f"not a readable checkpoint: {_unsafe_content(e)}") from None
    except Exception as e:  # a damaged archive, ...
        raise CheckpointError(path, f"not a readable checkpoint ({type(e).__name__}: "
                                    f"{_first_sentence(e)})") from None
    problem = checkpoint_problem(state)
    if problem:
        raise CheckpointError(path, problem)
    return state


def _container_problem(path: Path) -> str | None:
    """Why `path` cannot be what torch.save writes (a zip archive holding data.pkl), or None.
    Only a regular file is opened (a FIFO would block, /dev/zero never end): of a file of
    known size, zipfile reads the end record and central directory, a bounded tail."""
    from .files import not_a_file

    problem = not_a_file(path, "checkpoint file")
    if problem:
        return problem
    with open(path, "rb") as f:
        head = f.read(1)
    if not head:
        return "an empty file"
    if not zipfile.is_zipfile(path):
        if head == b"\x80":  # pickle protocol 2 and later
            return "a plain pickle, not a PyTorch zip archive (left unpickled)"
        return "not a PyTorch zip archive (truncated, or another kind of file)"
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        return f"a damaged zip archive ({e})"
    if not any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
        return "a zip archive without the data.pkl of a PyTorch checkpoint"
    return None


def _unsafe_content(error: Exception) -> str:
    """What weights_only loading refused (from its error): the global it found, in words."""
    found = re.search(r"GLOBAL ([\w.]+)", str(error))
    what = found.group(1) if found else "objects"
    return (f"it holds {what}, not only tensors and plain values (refused unexecuted: "
            "checkpoints load with weights_only=True)")


def _first_sentence(error: Exception) -> str:
    text = " ".join(str(error).split())
    return text.split(". ")[0][:200]


def checkpoint_problem(state) -> str | None:
    """What is wrong with a loaded checkpoint dict (one line, no file name), or None."""
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        return "not a rawdiffusion checkpoint (no format " + repr(FORMAT) + ")"
    for key, kind in REQUIRED.items():
        if key not in state:
            return f"incomplete checkpoint: no {key!r}"
        if not isinstance(state[key], kind) or isinstance(state[key], bool):
            return f"{key}: a {type(state[key]).__name__}, expected a {kind.__name__}"
    shapes, problem = _network_shapes(state["model_config"], state["config"])
    return (problem or _weights_problem(state, shapes)
            or (Camera.problem(state["camera"]) if state["camera"] else None))


def _network_shapes(model_config: dict, config: dict) -> tuple[dict, str | None]:
    """The state-dict shapes of UNet(**model_config), built without memory, or a problem."""
    arguments = set(inspect.signature(UNet).parameters)
    unknown = sorted(set(model_config) - arguments)
    missing = sorted(arguments - set(model_config) - {"prior"})
    if unknown or missing:
        return {}, (f"model_config: unknown key {unknown[0]!r}" if unknown else
                    f"model_config: no {missing[0]!r}")
    if model_config["guide"] not in GUIDES:
        return {}, (f"model_config: guide {model_config['guide']!r} is not one of "
                    f"{', '.join(GUIDES)}")
    preset = (config.get("model") or {}).get("preset") if isinstance(config.get("model"),
                                                                       dict) else None
    if preset is not None and preset not in PRESETS:
        return {}, f"config: model.preset {preset!r} is not one of {', '.join(PRESETS)}"
    objective = (config.get("model") or {}).get("objective", "diffusion") \
        if isinstance(config.get("model"), dict) else "diffusion"
    if objective not in OBJECTIVES:  # what objective_of reads
        return {}, f"config: model.objective {objective!r} is not one of {', '.join(OBJECTIVES)}"
    try:
        if model_config.get("prior") is not None:
            map_groups(model_config["prior"])
        with torch.device("meta"):  # shapes only: no memory, no initialisation work
            net = UNet(**model_config)
    except Exception as e:  # numbers of the wrong type or size, an unknown prior
        return {}, f"model_config: {_first_sentence(e)}"
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}, None


def _weights_problem(state: dict, shapes: dict) -> str | None:
    """Missing, extra, misshapen or non-finite weights in "model" and "ema"."""
    for name in ("model", "ema"):
        weights = state.get(name)
        if name == "ema" and weights is None:
            continue
        if not isinstance(weights, dict):
            return f"{name}: a {type(weights).__name__}, expected a state dict"
        missing = [k for k in shapes if k not in weights]
        extra = [k for k in weights if k not in shapes]
        if missing or extra:
            return (f"{name}: no {missing[0]!r} ({len(missing)} weight(s) of model_config's "
                    "network missing)" if missing else
                    f"{name}: {extra[0]!r} is no weight of model_config's network")
        for key, value in weights.items():
            if not isinstance(value, torch.Tensor):
                return f"{name}: {key!r} is a {type(value).__name__}, not a tensor"
            if tuple(value.shape) != shapes[key]:
                return (f"{name}: {key!r} has shape {tuple(value.shape)}, model_config's "
                        f"network {shapes[key]}")
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                return f"{name}: {key!r} holds non-finite values (NaN or inf)"
    return None


def load_model(path, ema: bool = True, device="cpu") -> tuple[UNet, dict]:
    """The trained network of a checkpoint, in eval mode, and the checkpoint's dict.
    ema: use the EMA weights when the run kept them. CheckpointError as load_checkpoint."""
    state = load_checkpoint(path, map_location=device)
    net = UNet(**state["model_config"]).to(device)
    net.load_state_dict(state["ema"] if ema and state.get("ema") is not None else state["model"])
    return net.for_sampling(), state


def _calibrated(path, camera: Camera, dataset, weights: dict, model_config: dict) -> Camera:
    """export_checkpoint's camera calibrated on the training split of `dataset`."""
    images = {i: e for i, e in dataset.images.items() if e.get("split") == "train"}
    models = Counter(f"{e.get('make', '')} {e.get('model', '')}".strip() or "unnamed"
                     for e in images.values())
    if not any((str(e.get("make", "")), str(e.get("model", ""))) == (camera.make, camera.model)
               for e in images.values()):
        found = ", ".join(f"{m} ({n})" for m, n in models.most_common()) or "none"
        raise UserError(f"{path}: the dataset's training images are of {found}, none of its "
                        f"camera ({camera.name or 'unnamed'}): calibrate from that camera's RAW")
    calibrated = camera.calibrated_on(images)
    if calibrated.noise is None and camera.noise is not None:
        calibrated = calibrated.with_noise(camera.noise)  # kept: the images give none
    if calibrated.noise is None and calibrated.wbs is None:
        raise UserError(f"{path}: the dataset's training images of {camera.name} give neither a "
                        "noise model (no ISO) nor white balances: nothing to store")
    if model_config.get("prior") is not None:  # their exposures against the network's prior
        prior = ColourMap(model_config["prior"], weights["prior.weights"].double())
        calibrated = calibrated.with_exposures(list(measured_exposures(dataset, "train",
                                                                       prior).values()))
    return calibrated


def export_checkpoint(path, out, dataset=None) -> int:
    """Write a checkpoint for sharing: the weights sampling uses (EMA when the run kept them) in
    float16, the configs and camera; no optimiser state. dataset: a prepared paired dataset
    (datasets.layout.PreparedDataset) from whose training split to calibrate the camera as
    training now does (Camera.calibrated_on: its noise model and its training images' white
    balances; with a colour prior, their exposures against it: prior.measured_exposures),
    stored in place of what it had, for a checkpoint made before; a noise model the images
    cannot give (no ISO) stays as the checkpoint had it, with calibrated_on's warning.
    UserError when none of the images is of the checkpoint's camera (make and model), or they
    give neither a noise model nor white balances. Returns the file's size in bytes."""
    state = load_checkpoint(path)
    camera = checkpoint_camera(state)
    weights = state["ema"] if state.get("ema") is not None else state["model"]
    if dataset is not None:
        if camera is None:
            raise CheckpointError(path, "camera: none recorded, so nothing to calibrate")
        camera = _calibrated(path, camera, dataset, weights, state["model_config"])
    # The colour prior's fitted map stays in float64: its terms cancel to 1e-4 precision.
    half = {k: v.half() if v.is_floating_point() and not k.startswith("prior.") else v
            for k, v in weights.items()}
    save_checkpoint(out, checkpoint_state(state["step"], state["config"],
                                          state["model_config"], half, ema=None,
                                          camera=camera))
    return Path(out).stat().st_size
