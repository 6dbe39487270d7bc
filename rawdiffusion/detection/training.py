"""Training the detector: `rawdiffusion detect train data=NAME [key=value ...]`.

`train` reads top to bottom: the run (its data, normalisation statistics, directory and the
checkpoint to resume), the detector and optimiser, then per iteration the learning rate, a
batch of f-mixed samples (data.Mixture), the loss and the update, and per epoch the
validation (COCO AP on data.val), previews and the checkpoint. Configuration: config.py.

The run directory, <general.out>/<run name>/:

    checkpoint.pt             the last checkpoint (weights, optimiser, iteration, epoch, the
                              configuration, the input's normalisation statistics)
    config.yaml               the resolved configuration
    train.log, stats.jsonl    log messages; one JSON object per log interval and validation
    tb/                       TensorBoard scalars (the same numbers)
    previews/<epoch>.png      validation images with ground truth (green) and detections (red)

Exact resumption. Which images an iteration trains on, and their flips, are functions of
(seed, draw number); the random choices inside Faster R-CNN (the RPN's and ROI heads' anchor
sampling) come from the global generator, seeded per (seed, iteration, rank); the learning
rate is a function of the iteration. Checkpoints are written atomically at epoch ends, so a
rerun continues from the last one to the weights of an uninterrupted run (on CPU, exactly).
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig
from tqdm.contrib.logging import logging_redirect_tqdm

from .. import harness
from ..atomic import atomic_output
from ..datasets.layout import PreparedDataset
from ..diffusion import derived_seed
from ..errors import SetupError
from ..harness import LossMeter, Recorder
from ..processes import barrier
from ..runs import detector_run_dir, open_split
from . import ap, config
from .data import (Batches, Mixture, channel_statistics, collate, generated_items,
                   iterations_per_epoch, real_items, val_items)
from .evaluation import FORMAT, evaluate, read_checkpoint, stats_of, write_previews
from .model import build_detector, check_backbone, parameter_groups

log = logging.getLogger(__name__)

MODEL_NOISE = 4  # purpose of the derived seed of Faster R-CNN's own sampling (data.py: 0..3)


def check(cfg: DictConfig, world: int) -> None:
    """Settings that cannot work, reported before any work is done."""
    d, o = cfg.data, cfg.optim
    harness.check_settings(cfg, world, counts={
        "optim.epochs": o.epochs, "optim.batch_size": o.batch_size,
        "general.save_every": cfg.general.save_every, "log.every": cfg.log.every,
        "log.val_every": cfg.log.val_every, "detector.min_size": cfg.detector.min_size,
        "detector.max_size": cfg.detector.max_size})
    if d.input not in config.INPUTS:
        raise SetupError(f"data.input={d.input!r}: choose one of {', '.join(config.INPUTS)}")
    if not 0 <= d.real_fraction <= 1:
        raise SetupError(f"data.real_fraction={d.real_fraction}: the paper's f, in [0, 1]")
    if d.real_fraction < 1 and d.generated.root is None:
        raise SetupError(f"data.real_fraction={d.real_fraction} draws generated images: add "
                         "data/generated=cityscapes or data/generated=bdd (with data.generated."
                         "pred=<sample.py output folder>)")
    if not 0 <= d.flip <= 1:
        raise SetupError(f"data.flip={d.flip}: a probability, in [0, 1]")
    if d.stats_images is not None and d.stats_images < 1:
        raise SetupError(f"data.stats_images={d.stats_images}: >= 1, or null for all")
    if not o.lr > 0 or o.weight_decay < 0 or o.warmup_iters < 0 or not 0 < o.warmup_factor <= 1:
        raise SetupError("optim: lr must be > 0, weight_decay and warmup_iters >= 0, "
                         "warmup_factor in (0, 1]")
    if cfg.detector.backbone_weights is not None:  # before minutes of statistics
        check_backbone(Path(cfg.detector.backbone_weights))


def learning_rate(o: DictConfig, iteration: int, epoch: int) -> float:
    """The reference's schedule: linear warm-up over optim.warmup_iters iterations from
    warmup_factor x lr, and lr x gamma at each of optim.milestones (epochs) passed."""
    lr = o.lr * o.gamma ** sum(epoch >= m for m in o.milestones)
    if iteration < o.warmup_iters:
        lr *= o.warmup_factor + (1 - o.warmup_factor) * iteration / o.warmup_iters
    return lr


# ----------------------------------------------------------------------------- the run

@dataclass
class Run(harness.Run):
    """A run (harness.Run: settings, process, directory) and what it trains on: the training
    mixture, the validation items and the batches of each epoch."""

    mixture: Mixture
    val_set: PreparedDataset
    val: list
    per_epoch: list[int]

    @property
    def epoch_ends(self) -> list[int]:
        """The number of iterations done at the end of each epoch."""
        return list(itertools.accumulate(self.per_epoch))

    def epoch_of(self, iteration: int) -> int:
        """The epoch (from 0) that iteration `iteration` (from 0) belongs to."""
        return bisect.bisect_right(self.epoch_ends, iteration)


def open_run(cfg: DictConfig, rank: int, world: int, device) -> tuple[Run, dict | None]:
    """The run's data (both splits opened first, so that missing data is reported before any
    work), its directory and its checkpoint's dict when there is one to resume. The statistics
    come from the checkpoint when resuming, else from the training data. A checkpoint of
    another recipe is refused (harness.check_recipe)."""
    d = cfg.data
    real_set = open_split(d.real, "real training", paired=False)
    val_set = open_split(d.val, "validation", paired=False)
    generated_set = open_split(d.generated, "generated training", paired=False) \
        if d.real_fraction < 1 else None
    directory = detector_run_dir(cfg)
    checkpoint = harness.open_checkpoint(directory, read_checkpoint)
    # The real split is read even for f = 0 (zero-shot): an epoch has its length.
    real = real_items(real_set, d.real.split, d.input, d.real.max_items, cfg.general.seed)
    generated = generated_items(generated_set, d.generated.split, d.input, d.generated.pred) \
        if generated_set is not None else []
    if checkpoint is not None:
        stats = stats_of(checkpoint)
    else:
        log.info("normalisation statistics from up to %s images per source",
                 d.stats_images or "all")
        stats = channel_statistics([(real, d.real_fraction), (generated, 1 - d.real_fraction)],
                                   d.stats_images, cfg.general.seed)
    mixture = Mixture(real, generated, d.real_fraction, stats, cfg.general.seed, d.flip)
    resolved = harness.resolved(cfg)
    if d.real_fraction == 1 and d.generated.root is not None:  # unused: not part of the recipe
        log.info("data.real_fraction=1: the generated set (%s) is not used", d.generated.root)
        resolved["data"]["generated"] = dataclasses.asdict(config.GeneratedConfig())
    val = val_items(val_set, d.val.split, d.input)
    per_epoch = iterations_per_epoch(mixture, cfg.optim.batch_size, cfg.optim.epochs, world)
    run = Run(cfg, rank, world, device, directory, resolved, mixture, val_set, val, per_epoch)
    if checkpoint is not None:
        harness.check_recipe(run, checkpoint["config"], config.RESUMABLE, added={})
    return run, checkpoint


@dataclass
class State:
    """What training changes: the detector, the optimiser, the iterations done, and the loss
    and share of real images since they were last recorded (validation time left out)."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    iteration: int = 0
    losses: LossMeter | None = None


def new_state(run: Run) -> State:
    o = run.cfg.optim
    if run.cfg.detector.backbone_weights is None:
        log.warning("detector.backbone_weights is not set: the ResNet-50 backbone starts from "
                    "random weights (the paper's starts from ImageNet; give a local torchvision "
                    "ResNet-50 state dict to match it)")
    torch.manual_seed(derived_seed(run.cfg.general.seed, MODEL_NOISE))  # the initial weights
    model = build_detector(run.cfg.detector.min_size, run.cfg.detector.max_size,
                           run.cfg.detector.backbone_weights).to(run.device)
    optimizer = torch.optim.SGD(parameter_groups(model, o.weight_decay), lr=o.lr,
                                momentum=o.momentum, nesterov=o.nesterov)
    return State(model, optimizer)


def resume(state: State, checkpoint: dict) -> None:
    """Continue from the run's checkpoint (of the same recipe: open_run)."""
    state.model.load_state_dict(checkpoint["model"])
    state.optimizer.load_state_dict(checkpoint["optimizer"])
    state.iteration = checkpoint["iteration"]


def save_state(run: Run, state: State, epoch: int) -> None:
    harness.check_finite(state.model, f"iteration {state.iteration}", lambda: _what_stays(run))
    if run.rank == 0:
        with atomic_output(run.checkpoint) as tmp:
            torch.save({"format": FORMAT, "iteration": state.iteration, "epoch": epoch,
                        "config": run.resolved, "stats": run.mixture.stats.as_dict(),
                        "model": state.model.state_dict(),
                        "optimizer": state.optimizer.state_dict()}, tmp)


def _what_stays(run: Run) -> str:
    """After a diverged loss or weights: the last checkpoint, and what the user can do."""
    kept = (f"{run.checkpoint} keeps the last finished epoch" if run.checkpoint.is_file()
            else "No epoch finished, so there is no checkpoint")
    return (f"{kept}. Check the data and detector.backbone_weights, or train with a lower "
            "optim.lr as a new run (general.run=NAME).")


# ----------------------------------------------------------------------------- training

def main(cfg: DictConfig) -> Path:
    """Train (or resume) the detector run that `cfg` describes; returns its directory."""
    return harness.launch(train, cfg)


def train(cfg: DictConfig, rank: int, world: int, device: torch.device) -> Path:
    check(cfg, world)
    run, checkpoint = open_run(cfg, rank, world, device)
    if checkpoint is not None and checkpoint["iteration"] >= sum(run.per_epoch):
        log.info("%s is trained: %d epochs, %d iterations (optim.epochs=%d)", run.dir,
                 checkpoint["epoch"], checkpoint["iteration"], cfg.optim.epochs)
        return run.dir
    run.write_config()
    start = checkpoint["iteration"] if checkpoint is not None else 0
    with run.records(start) as record:
        state = new_state(run)  # after the Recorder: what it logs goes to train.log too
        if checkpoint is not None:
            resume(state, checkpoint)
            del checkpoint
        run_epochs(run, state, record)
    return run.dir


def run_epochs(run: Run, state: State, record: Recorder | None) -> None:
    """Iterations from state.iteration to the end of optim.epochs: per iteration the learning
    rate and an SGD step, the scalars every log.every, and end_epoch at each epoch's end."""
    cfg, rank, world, device = run.cfg, run.rank, run.world, run.device
    total = sum(run.per_epoch)
    train_model = state.model
    if world > 1:
        train_model = torch.nn.parallel.DistributedDataParallel(
            state.model, device_ids=[device.index] if run.cuda else None)
    loader = torch.utils.data.DataLoader(
        run.mixture, batch_sampler=Batches(run.mixture, cfg.optim.batch_size, cfg.optim.epochs,
                                           state.iteration, rank, world),
        num_workers=run.workers, collate_fn=collate)
    autocast = run.autocast()
    bar = run.progress(total, state.iteration, "it")
    state.losses = LossMeter(("loss", "real_share"), device, state.iteration)
    ends = set(run.epoch_ends)
    with logging_redirect_tqdm(), bar:
        log.info("%s %s at iteration %d of %d (%d epochs): %d real and %d generated training "
                 "images, f=%g, %d validation images, %d process(es) on %s",
                 "resuming" if state.iteration else "starting", run.dir, state.iteration, total,
                 cfg.optim.epochs, len(run.mixture.real), len(run.mixture.generated),
                 cfg.data.real_fraction, len(run.val), world, device)
        for images, targets, real in loader:
            epoch = run.epoch_of(state.iteration)
            lr = learning_rate(cfg.optim, state.iteration, epoch)
            for group in state.optimizer.param_groups:
                group["lr"] = lr
            train_step(run, state, train_model, images, targets, real, autocast)
            bar.update()
            if state.iteration % cfg.log.every == 0 or state.iteration in ends:
                record_scalars(run, state, lr, epoch, record, bar)
            if state.iteration in ends:  # the end of an epoch
                end_epoch(run, state, epoch + 1, record)
        log.info("done: iteration %d, checkpoint %s", state.iteration, run.checkpoint)


def train_step(run: Run, state: State, model, images, targets, real, autocast) -> None:
    """One SGD step on a batch; Faster R-CNN's own sampling is seeded by (seed, iteration,
    rank)."""
    torch.manual_seed(derived_seed(run.cfg.general.seed, MODEL_NOISE, state.iteration,
                                   run.rank))
    model.train()
    images = [x.to(run.device, non_blocking=True) for x in images]
    targets = [{k: v.to(run.device) for k, v in t.items()} for t in targets]
    with autocast:
        losses = model(images, targets)
        loss = sum(losses.values())
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    state.optimizer.step()
    state.losses.add(torch.stack([loss.detach().float(),
                                  torch.tensor(sum(real) / max(len(real), 1), device=run.device)]))
    state.iteration += 1


def record_scalars(run: Run, state: State, lr: float, epoch: int, record, bar) -> None:
    """Mean loss and real share since the last record: to the records and the progress bar.
    Stops (SetupError) when the loss is no longer finite."""
    means, rate = state.losses.read(state.iteration, "iteration", lambda: _what_stays(run))
    values = {"train/loss": means["loss"], "train/real_share": means["real_share"],
              "train/lr": lr, "train/epoch": epoch + 1,
              "train/images_per_s": rate * run.cfg.optim.batch_size} | harness.memory_scalars(run)
    if record:
        record(values, state.iteration)
    bar.set_postfix(loss=f"{means['loss']:.4g}", lr=f"{lr:.3g}", epoch=epoch + 1)


def end_epoch(run: Run, state: State, epochs_done: int, record) -> None:
    """The checkpoint every general.save_every epochs and at the end; then validation and
    previews (first process) every log.val_every epochs and at the end."""
    cfg = run.cfg
    last = epochs_done == cfg.optim.epochs
    if epochs_done % cfg.general.save_every == 0 or last:
        save_state(run, state, epochs_done)
    if run.rank == 0 and run.val and (epochs_done % cfg.log.val_every == 0 or last):
        result, _, outputs, images = evaluate(
            state.model, run.val, run.mixture.stats, run.val_set.root, cfg.data.val.split,
            run.device, cfg.optim.batch_size, keep_images=cfg.log.preview_images,
            bf16=cfg.system.bf16)
        values = {f"val/{k}": result[k] for k in ("AP", "AP50", "AP75") if result[k] is not None}
        values |= {f"val/AP_{name}": c["AP"] for name, c in result["per_class"].items()
                   if c is not None}
        record(values, state.iteration)
        write_previews(run.dir / "previews" / f"{epochs_done:03d}.png", run.val, outputs, images)
        log.info("epoch %d, validation on %d images:\n%s", epochs_done, len(run.val),
                 ap.format_table(result))
        state.losses.restart_clock()  # validation does not count as training time
    barrier()

