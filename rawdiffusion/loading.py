"""`rawdiffusion.load`: a generator from a trained checkpoint or a baseline file, its settings
and the file validated before any work.

    import rawdiffusion as rd
    gen = rd.load()                      # the shipped model; or rd.load("run/checkpoint.pt")
    raw = gen(photo)                     # an (H, W, 3) uint8 array, a Pillow image or a path
    raw.write_dng("out.dng")

What `rawdiffusion convert --checkpoint FILE` and `sample.py checkpoint=FILE` generate with;
the defaults are settings.DEFAULTS, convert's.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from importlib import resources
from pathlib import Path

import torch

from .baselines import is_baseline_file, load_baseline
from .camera import Camera
from .checkpoint import CheckpointError, checkpoint_camera, file_digest, load_model, objective_of
from .diffusion import Diffusion
from .errors import SettingError
from .generator import Generator, RawGenerator
from .pipeline import load_pipeline
from .sampling import check_tile
from .settings import DEFAULTS, Settings

# A small model trained on three GoPro DNGs (docs/training.md, "How the shipped model was
# made"; its model card: README.md, "The shipped model"), inside the package.
SHIPPED = "gopro_small.pt"
log = logging.getLogger(__name__)


def shipped_checkpoint() -> Path:
    """The checkpoint inside the installed package."""
    return Path(str(resources.files("rawdiffusion") / "assets" / SHIPPED))


def load(path=None, *, steps: int = DEFAULTS.steps, sampler: str = DEFAULTS.sampler,
         device=None, dtype: torch.dtype = torch.float32, tile: int = DEFAULTS.tile,
         overlap: int = DEFAULTS.overlap, batch_size: int = DEFAULTS.batch_size,
         iso: float | str | None = DEFAULTS.iso, exposure: float = DEFAULTS.exposure,
         white_balance=DEFAULTS.white_balance, pipeline=None) -> Generator:
    """The generator of a trained checkpoint (.pt) or a baseline file (.json, `rawdiffusion
    baseline fit`); path None: the checkpoint shipped in the package (shipped_checkpoint).

    steps: sampling steps (a one-pass network, model.objective=direct, and a baseline take
    none); sampler: "ddim", "dpmpp2m" or "unipc"; device: where the network runs (default:
    the GPU when there is one, else the CPU); dtype: torch.float32, or torch.bfloat16 for bf16
    autocast of the network (the colour prior stays float64), or their names; tile, overlap: the tiles, in
    packed pixels, of guides larger than a tile; batch_size: tiles per forward pass; iso: the
    ISO whose sensor noise the camera's noise model adds to every image (a number, or "draw":
    one per image drawn from the training images' ISOs; None: none, the clean mean);
    exposure: EV by which the clean signal is scaled (x 2^EV, clipped at white) before the
    noise; white_balance: the scene's as-shot white balance, three gains (R, G, B) above 0 as
    LibRaw's camera_whitebalance gives them (kept divided by G), "draw" (one per image drawn
    from the training images'), or None: the camera's own (that of its training scenes'
    lighting); the clean RAW is relit by x_c wb_c / wb'_c before the exposure (sensor.py), and
    each RawImage's `wb` (the DNG's AsShotNeutral 1 / wb) is the one used; pipeline: a
    pipeline file (`rawdiffusion pipeline fit`) whose photo pipeline is undone from every
    photo before generating (pipeline.py), or None.
    Defaults: settings.DEFAULTS, the same as `rawdiffusion convert`'s.
    Raises errors.SettingError naming the argument that cannot work, before reading the file;
    checkpoint.CheckpointError or baselines.BaselineError naming the file and what is wrong
    with it; FileNotFoundError when there is none; pipeline.PipelineError naming a pipeline
    file that cannot be used.
    """
    if pipeline is not None and not isinstance(pipeline, (str, os.PathLike)):
        raise SettingError("pipeline", "the path of a pipeline file (`rawdiffusion pipeline "
                                       "fit`), or None", pipeline)
    name = str(dtype).removeprefix("torch.") if isinstance(dtype, torch.dtype) else dtype
    settings = Settings(steps=steps, sampler=sampler, tile=tile, overlap=overlap,
                        batch_size=batch_size, dtype=name, iso=iso, exposure=exposure,
                        white_balance=white_balance)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return open_generator(shipped_checkpoint() if path is None else path, settings,
                          torch.device(device), pipeline)


def open_generator(path, settings: Settings, device: torch.device,
                   pipeline=None) -> Generator:
    """`load` with its settings checked (settings.Settings): a checkpoint's RawGenerator, or a
    baseline file's baselines.Baseline. The checkpoint is validated before any work
    (checkpoint.load_checkpoint) and must name its camera, as what it generates is written as
    that camera's RAW; its network must take the tile size (sampling.check_tile); an ISO needs
    the camera's noise model (SettingError naming `iso` otherwise), a white balance the
    camera's own, and its draw the training images' (SettingError naming `white_balance`,
    check_camera_white_balance), an exposure draw its training images' exposures (SettingError
    naming `exposure`). Without a white balance or an exposure, the log says once which is
    assumed. pipeline: a pipeline file to undo from the photos (PipelineError naming it when
    it cannot be used), or None."""
    undo = None if pipeline is None else load_pipeline(pipeline)
    if Path(path).is_file() and is_baseline_file(path):
        gen = load_baseline(path, device)
    else:
        net, state = load_model(path, device=device)
        camera = checkpoint_camera(state)
        if camera is None:
            raise CheckpointError(path, "camera: none recorded (a checkpoint that generates "
                                        "needs the Bayer order and levels of the RAW it writes)")
        check_tile(settings.tile, net.multiple)
        steps = None if objective_of(state) == "direct" else settings.steps
        gen = RawGenerator(net, Diffusion().to(device), camera, file_digest(path), steps=steps,
                           tile=settings.tile, overlap=settings.overlap, device=device,
                           batch_size=settings.batch_size, sampler=settings.sampler,
                           bf16=settings.dtype == "bfloat16")
    if settings.iso is not None and gen.camera.noise is None:
        raise SettingError("iso", f"{path} holds no noise model of its camera "
                                  f"({gen.camera.name or 'unnamed'}): files made before noise "
                                  "calibration, or from RAW without an ISO, have none; add one "
                                  "to a checkpoint with `rawdiffusion export CHECKPOINT --calibrate "
                                  "DATASET --out FILE`, or fit a baseline again (DATASET "
                                  "prepared by this version from the camera's RAW files)")
    if settings.iso not in (None, "draw"):
        gen.camera.noise.at(settings.iso)  # the warning of an ISO outside the calibrated range,
        # once, before any work
    check_camera_white_balance(path, gen.camera, settings.white_balance)
    if settings.exposure == 0:
        log.info("exposure 0 EV: the training images' typical exposure (an sRGB photo does not "
                 "tell it, and none is estimated from it)")
    if settings.exposure == "draw" and gen.camera.exposures is None:
        raise SettingError("exposure", f"{path} holds no exposures of its camera's training "
                                       "images to draw from (an unprocessing baseline, a network "
                                       "without a colour prior, or a file made before they were "
                                       "kept: `rawdiffusion export CHECKPOINT --calibrate DATASET "
                                       "--out FILE` adds them to a checkpoint, a map baseline "
                                       "fitted again has them), but takes an exposure given in EV")
    if undo is not None:
        fitted = undo.fitted_on
        log.info("undoing the photo pipeline of %s (fitted on %d RAW + photo pair(s), PSNR "
                 "against their canonical renderings %s -> %s dB)", pipeline,
                 len(fitted.get("pairs", [])), fitted.get("identity_psnr"),
                 fitted.get("fit_psnr"))
    return dataclasses.replace(gen, iso=settings.iso, exposure=settings.exposure,
                               white_balance=settings.white_balance, pipeline=undo)


def check_camera_white_balance(path, camera: Camera, white_balance) -> None:
    """Whether `camera` (that of the file `path`) can take the scene's white balance
    `white_balance` (settings.Settings'): it must know its own (its `wb`), and for "draw" its
    training images' (its `wbs`); SettingError naming `white_balance`, the file and why
    otherwise. Without one (None), logs once that the camera's own is assumed."""
    if white_balance is None:
        if camera.wb is None:
            log.info("the scene's white balance not given, and the camera's own is unknown: "
                     "the RAW is written as generated")
        else:
            log.info("the scene's white balance not given: the camera's own as-shot white "
                     "balance R,G,B %s is assumed (that of its training scenes' lighting)",
                     ",".join(format(g / camera.wb[1], ".4g") for g in camera.wb))
        return
    if camera.wb is None:
        raise SettingError("white_balance", f"{path} holds no white balance of its camera "
                                            f"({camera.name or 'unnamed'}), so what it generates "
                                            "cannot be relit to another")
    if white_balance == "draw" and camera.wbs is None:
        raise SettingError("white_balance", f"{path} holds no white balances of its camera's "
                                            "training images to draw from (files made before "
                                            "they were kept have none: `rawdiffusion export "
                                            "CHECKPOINT --calibrate DATASET --out FILE` adds "
                                            "them, or fit a baseline again), but takes one "
                                            "given as R,G,B")
