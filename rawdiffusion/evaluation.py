"""Sampling a prepared dataset's split with a checkpoint: the paper's metrics and predictions.

What sample.py (and `rawdiffusion sample`) runs. Every sample of the split is generated with
DDIM from its own seeded noise (the run seed and the sample's index), in overlapping tiles when
it is larger than the tile size. For paired data the metrics of metrics.raw_metrics are written
per image (metrics.csv) and averaged (metrics.json); predictions are written when asked (DNG
by default, with that image's Bayer order and levels, or the reference's HDF5 / .npy) with PNG
previews. RGB-only data (Cityscapes, BDD100K) gives predictions only, written as the
checkpoint's camera.

Like convert.convert it is sharded over torchrun processes, and resumable: finished samples
are recorded in per-process parts (results.part<rank>.jsonl) and skipped when rerun.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from . import bayer
from .atomic import atomic_output, make_folder
from .baselines import is_baseline_file
from .camera import Camera
from .cpus import default_workers, set_threads
from .datasets.layout import PreparedDataset
from .diffusion import derived_seed
from .errors import SettingError, SetupError
from .generation import (FORMATS, Job, made_with, prediction_files, run, same_generation,
                         write_prediction)
from .generator import Generator
from .loading import load
from .metrics import ANGULAR_THRESHOLD, raw_metrics
from .processes import barrier, processes, read_records, shard
from .runs import ddim_steps, open_split, run_name

log = logging.getLogger(__name__)
METRICS = ("mse", "psnr", "ssim", "pearson", "psnr_rggb", "ssim_rggb", "angular_error",
           "psnr_highlight", "psnr_rest", "highlight_fraction")


def evaluate(dataset: PreparedDataset, split: str, gen: Generator, out: Path, seed: int,
             save_pred: bool = False, fmt: str = "dng", rgb_only: bool = False,
             workers: int = 0) -> dict:
    """Sample `split` of `dataset` into `out`; returns the averaged metrics ({} for RGB only).

    Writes out/metrics.csv (one row per sample), out/metrics.json (means, with the protocol),
    and with save_pred out/pred/<id>.<fmt> + out/pred/<id>.png. The samples are the items of a
    generation.Job (generation.run): read by `workers` processes (0: this one), handed to the
    model gen.batch_size at a time, predictions written by two threads while the next samples
    are generated; finished samples are recorded in results.part<rank>.jsonl and skipped when
    rerun, if the same generation made them (another checkpoint or baseline, step count,
    sampler or seed sampled into the same folder redoes them) and their predictions are
    intact. A sample that cannot be read ends the run with its one line. With sensor noise or
    the scene's white balance (the generator's ISO, exposure or white balance,
    generator.Generator.recorded) the predictions are written as recorded, with their ISO and
    white balance in the records; the metrics stay those of the clean output.
    """
    rgb_only = rgb_only or dataset.kind == "rgb"
    if rgb_only and not save_pred:
        raise SetupError("rgb_only=true computes no metrics: add save_pred=true to keep the "
                         "generated RAW")
    if not gen.clean and not save_pred:
        raise SetupError("noise.iso, noise.exposure and noise.white_balance shape the written "
                         "predictions only (the metrics are the clean output's): add "
                         "save_pred=true")
    ids = dataset.split(split)
    make_folder(out, f"output folder {out}")
    run(_Samples(ids, out, dataset, split, gen.camera, save_pred, fmt, rgb_only), gen, seed,
        workers)
    barrier()  # every process's part is complete before the summary is written
    if shard()[0] != 0:
        return {}
    return _summarise(out, ids, read_records(out, "results", "id"), rgb_only, gen, seed)


@dataclass
class _Samples(Job):
    """sample.py's generation.Job: the samples `keys` of a prepared dataset's split."""

    keys: list[str]
    out: Path
    dataset: PreparedDataset
    split: str
    camera: Camera  # the generator's: that of RGB-only samples' predictions
    save_pred: bool
    fmt: str
    rgb_only: bool
    key: str = "id"
    stem: str = "results"
    skip_bad: bool = False
    unit: str = "sample"

    @property
    def desc(self) -> str:
        return f"sample {self.split}"

    def previous(self) -> dict[str, dict]:
        return read_records(self.out, "results", "id")

    def planned(self, mine: list[int], todo: list[int]) -> None:
        log.info("%s/%s: %d samples, %d to generate in this process (%d done before)",
                 self.dataset.root, self.split, len(self.keys), len(todo),
                 len(mine) - len(todo))

    def read(self, index: int):
        sample = self.dataset.load(self.keys[index])
        return sample, sample.rgb

    def files(self, index: int) -> list[Path]:
        return prediction_files(self.out / "pred" / self.keys[index], self.fmt) \
            if self.save_pred else []

    def write(self, index: int, sample, x, iso: float | None,
              wb: tuple[float, float, float] | None) -> dict:
        if self.save_pred:
            camera = self.camera if self.rgb_only else Camera.from_images(
                {sample.id: sample.image}).with_noise(self.camera.noise)
            write_prediction(self.out / "pred" / sample.id, x, camera, self.fmt, iso, wb)
        return {}

    def record(self, index: int, sample, x) -> dict:
        return {} if self.rgb_only else _metrics(sample, x)


def _metrics(sample, x) -> dict:
    """metrics.raw_metrics of a packed RAW x (4, h, w) in [0, 1] against the sample's RAW."""
    target = bayer.normalise(sample.raw, sample.black, sample.white)
    guide = torch.tensor(sample.rgb).permute(2, 0, 1)[None]  # (1, 3, h, w) uint8
    values = raw_metrics(torch.from_numpy(x)[None], torch.from_numpy(target)[None], guide)
    return {k: v.item() for k, v in values.items()}


def _summarise(out: Path, ids: list[str], results: dict, rgb_only: bool, gen: Generator,
               seed: int) -> dict:
    rows = [results[i] for k, i in enumerate(ids)
            if same_generation(results.get(i), gen, derived_seed(seed, k))]
    if rgb_only:
        return {}
    with atomic_output(out / "metrics.csv") as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", *METRICS])
        for r in rows:
            writer.writerow([r["id"], *(f"{r.get(k, math.nan):.6g}" for k in METRICS)])
    # Per image, a metric can have no value (NaN: psnr_highlight of an image without clipped
    # pixels; absent: a record written before the metric existed). Means skip those, and are
    # null in metrics.json when no image has a value.
    means = {}
    for k in METRICS:
        values = [r[k] for r in rows if k in r and not math.isnan(r[k])]
        means[k] = sum(values) / len(values) if values else None
    made = made_with(gen)
    summary = {"images": len(rows), "steps": made["steps"], "sampler": made["sampler"],
               "checkpoint": made["checkpoint"], **means,
               "protocol": "normalised linear RAW in [0, 1], no white balance or gamma; mse, "
                           "psnr, ssim (Gaussian 11, sigma 1.5, data range 1), pearson on "
                           "R, (G1+G2)/2, B; psnr_rggb, ssim_rggb on the 4 packed channels; "
                           "angular_error: mean angle in degrees between the R, (G1+G2)/2, B "
                           "vectors over pixels whose target R, G, B all exceed "
                           f"{ANGULAR_THRESHOLD}; psnr_highlight, psnr_rest: psnr over the "
                           "pixels where the 8-bit sRGB guide is clipped (255 in any channel) "
                           "and over the others, highlight_fraction the share of such pixels; "
                           "per image, then averaged over the images that have a value (null "
                           "when none has)"}
    with atomic_output(out / "metrics.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=1) + "\n")
    return summary


# ----------------------------------------------------------------------------- sample.py

def _generator(cfg, checkpoint, device, steps: int) -> Generator:
    """The generator of sample.py's settings; a noise setting that cannot work is said with its
    key (noise.iso, noise.exposure, noise.white_balance)."""
    try:
        return load(checkpoint, device=device, steps=steps, tile=cfg.tile, overlap=cfg.overlap,
                    batch_size=cfg.batch_size, sampler=cfg.sampler,
                    dtype=torch.bfloat16 if cfg.system.bf16 else torch.float32,
                    iso=cfg.noise.iso, exposure=cfg.noise.exposure,
                    white_balance=cfg.noise.white_balance)
    except SettingError as e:
        if e.name not in ("iso", "exposure", "white_balance"):
            raise
        raise SetupError(f"noise.{e.name}={cfg.noise[e.name]}: {e.reason}") from None


def samples_dir(cfg, checkpoint: Path, steps: int | None = 24) -> Path:
    """<run>/samples/<val>-<split>-<respacing>-s<seed>, the run being the checkpoint's folder;
    for a checkpoint shipped inside the package, <general.out>/<its name> instead, and for a
    baseline file <its folder>/<its name>. steps None (a baseline or one-pass network, which
    does not sample in steps): "onepass" instead of the respacing; another sampler than DDIM
    is named after it (ddim4-unipc); sensor noise (noise.iso, noise.exposure) adds -iso<N>
    (-isodraw) and -ev<E> (-evdraw), and the scene's white balance (noise.white_balance)
    -wb<R>,<G>,<B> as given (-wbdraw), so that clean and noisy predictions are kept side by side."""
    run = checkpoint.parent
    if checkpoint.resolve().is_relative_to(Path(__file__).resolve().parent):
        run = Path(cfg.general.out) / checkpoint.stem
    elif checkpoint.is_file() and is_baseline_file(checkpoint):
        run = checkpoint.parent / checkpoint.stem
    method = "onepass" if steps is None else cfg.diffusion_val.timestep_respacing
    if steps is not None and cfg.sampler != "ddim":
        method += f"-{cfg.sampler}"
    iso, exposure = cfg.noise.iso, cfg.noise.exposure
    number = lambda v: v if v == "draw" else format(v, "g")  # noqa: E731
    noise = ((f"-iso{number(iso)}" if iso is not None else "")
             + (f"-ev{number(exposure)}" if exposure else "")
             + _wb_suffix(cfg.noise.get("white_balance")))
    return run / "samples" / (f"{Path(cfg.dataset.val.root).name}-{cfg.dataset.val.split}-"
                              f"{method}-s{cfg.general.seed}{noise}")


def _wb_suffix(wb) -> str:
    """samples_dir's -wb<R>,<G>,<B> (-wbdraw) of noise.white_balance; "" for none."""
    if wb is None:
        return ""
    return "-wbdraw" if wb == "draw" else "-wb" + ",".join(format(float(g), "g") for g in wb)


def main(cfg) -> dict:
    """Sample the configured val split with the configured run's checkpoint (see SampleConfig)."""
    set_threads(cfg.system.threads, "system.threads")
    workers = default_workers() if cfg.system.workers is None else cfg.system.workers
    if workers < 0:
        raise SetupError(f"system.workers={workers}: must be >= 0 (0: read samples in the main "
                         "process)")
    if cfg.pred_format not in FORMATS:
        raise SetupError(f"pred_format={cfg.pred_format!r}: choose one of {', '.join(FORMATS)}")
    steps = ddim_steps(cfg.diffusion_val.timestep_respacing, cfg.sampler)
    val = open_split(cfg.dataset.val, "sampling", paired=not cfg.rgb_only)
    checkpoint = cfg.checkpoint
    if checkpoint is None:
        name = cfg.dataset.train.name or PreparedDataset(cfg.dataset.train.root).description["name"]
        checkpoint = Path(cfg.general.out) / run_name(cfg, name) / "checkpoint.pt"
        if not checkpoint.is_file():
            raise SetupError(f"no checkpoint at {checkpoint}: train this configuration first "
                             "(python train.py with the same overrides) or give checkpoint=PATH")
    with processes() as device:
        gen = _generator(cfg, checkpoint, device, steps)
        out = Path(cfg.out) if cfg.out else samples_dir(cfg, Path(checkpoint), gen.steps)
        summary = evaluate(val, cfg.dataset.val.split, gen, out, cfg.general.seed,
                           save_pred=cfg.save_pred, fmt=cfg.pred_format, rgb_only=cfg.rgb_only,
                           workers=workers)
        if summary:
            log.info("%s: %s", out / "metrics.json", ", ".join(
                f"{k} {summary[k]:.4f}" if summary[k] is not None else f"{k} -"
                for k in METRICS))
        elif shard()[0] == 0:
            log.info("predictions in %s", out / "pred")
        barrier()
        return summary

