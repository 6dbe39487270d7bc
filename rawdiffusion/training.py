"""Training RAW-Diffusion: `python train.py dataset=NAME general.seed=S [key=value ...]`.

`main` starts the processes and devices (harness.launch: the skeleton this shares with the
detector's training is harness.py); `train` reads top to bottom: the run (data, run
directory, checkpoint to resume), model and optimiser, resumption, then the loop: per step the
learning rate, a batch, the loss, the update and the EMA (train_step), and at their intervals
the scalars (record_scalars, which also stops a diverged run), previews and validation metrics
(preview_and_validate) and the checkpoint (save_state). What feeds training: training_data.py.
Configuration: config.py.

The run directory, <general.out>/<run name>/:

    checkpoint.pt         the last checkpoint; rerunning the same command resumes from it
    config.yaml           the resolved configuration
    train.log             log messages
    stats.jsonl           one JSON object per log interval and per validation
    tb/                   TensorBoard scalars (the same numbers)
    previews/<step>.png   the first validation batch: RGB | generated RAW | target RAW

Exact resumption. No random state is carried from one step to the next: the order of samples
and every crop and transform are functions of (seed, draw number), and the timesteps and noise
of step s come from a generator seeded with (seed, s, rank). The learning rate is a function of
the step. A checkpoint therefore needs only the weights, the optimiser state and the step, and
a run killed at any moment (checkpoints are written atomically) continues, on CPU, to exactly
the weights of an uninterrupted run.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm.contrib.logging import logging_redirect_tqdm

from . import harness
from .camera import Camera
from .checkpoint import checkpoint_camera, checkpoint_state, load_checkpoint, save_checkpoint
from .config import ADDED, RESUMABLE
from .datasets.layout import PreparedDataset
from .diffusion import OBJECTIVES, Diffusion, derived_seed
from .errors import SetupError
from .harness import CHECKPOINT, LossMeter, Recorder
from .images import raw_preview, write_png
from .metrics import mean_metrics, raw_metrics
from .model import PRESETS, UNet, build_model
from .prior import fit_colour_map, map_groups
from .runs import ddim_steps, open_split, run_name
from .sampling import generate
from .training_data import NOISE, VAL_SEED, Draws, TrainSamples, val_batches

log = logging.getLogger(__name__)

# model.prior of dataset=folder runs when none is given (config.ModelConfig): chosen by the
# quality benchmark on two cameras (docs/quality.md).
DEFAULT_PRIOR = "poly3+curves+local"


# ----------------------------------------------------------------------------- model

def resolve_prior(cfg: DictConfig, state: dict | None) -> str:
    """model.prior as given; when it is not (None): the run's own for a run being resumed
    (`state`, its checkpoint; runs from before the option have none), else DEFAULT_PRIOR for
    dataset=folder and "none" (the paper's model) for the named datasets of the paper's
    released code. Stored
    resolved in the checkpoint."""
    if cfg.model.prior is not None:
        try:  # the groups of a map in their canonical order: "local+curves" is "curves+local"
            return cfg.model.prior if cfg.model.prior == "none" else \
                "+".join(map_groups(cfg.model.prior))
        except ValueError:
            return cfg.model.prior  # model_from_config says what is wrong with it
    if state is not None:
        return state["config"].get("model", {}).get("prior", ADDED["model.prior"])
    return DEFAULT_PRIOR if "root" in cfg.dataset else "none"


def model_from_config(model: DictConfig) -> UNet:
    if model.preset not in PRESETS:
        raise SetupError(f"model.preset={model.preset!r}: choose one of {', '.join(PRESETS)}")
    if model.objective not in OBJECTIVES:
        raise SetupError(f"model.objective={model.objective!r}: choose one of "
                         f"{', '.join(OBJECTIVES)}")
    if model.prior != "none":
        try:
            map_groups(model.prior)
        except ValueError as e:
            raise SetupError(f"model.prior={model.prior!r}: none (the paper's model) or a "
                             f"colour map kind; {e}") from None
    overrides = {k: v for k, v in OmegaConf.to_container(model).items()
                 if k not in ("preset", "objective", "prior") and v is not None}
    return build_model(model.preset, prior=None if model.prior == "none" else model.prior,
                       **overrides)


def write_preview(path, rgb: torch.Tensor, generated: torch.Tensor, target: torch.Tensor):
    """One row per image: RGB | generated RAW | target RAW; all (B, C, H, W) in [-1, 1]."""
    to01 = lambda x: ((x.float().cpu() + 1) / 2).clamp(0, 1).numpy()  # noqa: E731
    rows = [np.concatenate([np.round(c.transpose(1, 2, 0) * 255).astype(np.uint8),
                            raw_preview(g), raw_preview(t)], axis=1)
            for c, g, t in zip(to01(rgb), to01(generated), to01(target))]
    write_png(path, np.concatenate(rows, axis=0))


def validate(net: UNet, diffusion: Diffusion, batches, steps: int, device) -> tuple[dict, list]:
    """Sample every validation batch (noise seeded by its index); returns the mean metrics
    (metrics.raw_metrics on [0, 1]) and the generated batches."""
    results, generated = [], []
    for i, (raw, rgb) in enumerate(batches):
        generator = torch.Generator(device).manual_seed(VAL_SEED + i)
        x0 = generate(net, diffusion, rgb.to(device), steps, generator).cpu()
        generated.append(x0)
        results.append(raw_metrics((x0 + 1) / 2, (raw + 1) / 2))
    return mean_metrics(results), generated


# ----------------------------------------------------------------------------- checks

def check(cfg: DictConfig, world: int) -> None:
    """Settings that cannot work, reported before any work is done."""
    o = cfg.optim
    harness.check_settings(cfg, world, counts={
        "optim.max_steps": o.max_steps, "optim.decay_steps": o.decay_steps,
        "optim.batch_size": o.batch_size, "general.save_every": cfg.general.save_every,
        "log.every": cfg.log.every, "log.preview_every": cfg.log.preview_every,
        "log.val_every": cfg.log.val_every}, hints={
        "dataset.train.max_items": "the number of training images, e.g. 25 as in the paper's "
                                   "small-data experiments",
        "dataset.root": "a folder made by `rawdiffusion prepare ...`"})
    if not 0 <= o.ema_decay < 1:
        raise SetupError(f"optim.ema_decay={o.ema_decay}: must be in [0, 1)")
    if not 0 < o.lr <= 1:  # above, AdamW's first steps overflow float32 from about 3e37
        raise SetupError(f"optim.lr={o.lr}: must be in (0, 1] (the paper's is 1e-4)")
    if not o.weight_decay >= 0:
        raise SetupError(f"optim.weight_decay={o.weight_decay}: must be >= 0")
    if o.max_steps > o.decay_steps:  # the learning rate is 0 from decay_steps on
        raise SetupError(f"optim.max_steps={o.max_steps} is past optim.decay_steps="
                         f"{o.decay_steps}, where the learning rate reaches 0: the steps after it "
                         "would change nothing. To train longer, start a run (general.run=NAME) "
                         "with both set to the new length")


# ----------------------------------------------------------------------------- training

def main(cfg: DictConfig) -> Path:
    """Train (or resume) the run that `cfg` describes; returns its run directory."""
    return harness.launch(train, cfg)


def train(cfg: DictConfig, rank: int, world: int, device: torch.device) -> Path:
    """The loop of one process: set up (or resume) the run, then step until optim.max_steps,
    recording scalars, previews, validation metrics and checkpoints at their intervals."""
    check(cfg, world)
    o = cfg.optim
    run, checkpoint = open_run(cfg, rank, world, device)
    state = new_state(run, fit_prior=checkpoint is None)
    # DDIM steps of previews and validation (None: one pass); a bad respacing stops here.
    val_steps = None if run.direct else ddim_steps(cfg.diffusion_val.timestep_respacing)
    if checkpoint is not None:
        resume(state, checkpoint)
        del checkpoint
    if state.step >= o.max_steps:
        log.info("%s is trained to step %d (optim.max_steps=%d)", run.dir, state.step,
                 o.max_steps)
        return run.dir
    train_net, val, batches = start(run, state)
    generator = torch.Generator(device)
    autocast = run.autocast()
    bar = run.progress(o.max_steps, state.step, "step")
    state.losses = LossMeter(("loss", "mse", "l1", "logl1"), device, state.step)
    with logging_redirect_tqdm(), bar, run.records(state.step) as record:
        log.info("%s %s at step %d of %d: %d training samples (epochs of %d), %d process(es) "
                 "on %s", "resuming" if state.step else "starting", run.dir, state.step,
                 o.max_steps, len(run.samples.ids), run.samples.epoch_length, world, device)
        while state.step < o.max_steps:
            lr = set_learning_rate(state.optimizer, o, state.step)
            train_step(run, state, train_net, next(batches), generator, autocast)
            bar.update()
            step = state.step
            save = step % cfg.general.save_every == 0 or step == o.max_steps
            # Reading the sums waits for the GPU, so only every log.every steps and before a
            # checkpoint: a diverged loss is caught before it can be saved.
            if step % cfg.log.every == 0 or save:
                record_scalars(run, state, lr, record, bar)
            validation = step % cfg.log.val_every == 0 or step == o.max_steps
            if rank == 0 and val and (validation or step % cfg.log.preview_every == 0):
                preview_and_validate(run, state, val, val_steps, validation, record)
            if save:
                save_state(run, state)
        log.info("done: step %d, checkpoint %s", state.step, run.checkpoint)
    return run.dir


@dataclass
class Run(harness.Run):
    """A run (harness.Run: settings with model.prior resolved, process, directory) and what it
    trains on: the training crops and validation split, the camera its checkpoints record,
    the diffusion process."""

    train_set: PreparedDataset
    val_set: PreparedDataset
    samples: TrainSamples
    camera: Camera
    diffusion: Diffusion

    @property
    def direct(self) -> bool:
        return self.cfg.model.objective == "direct"

    @property
    def memory_format(self) -> torch.memory_format:
        if self.cuda and self.cfg.system.channels_last:
            return torch.channels_last
        return torch.preserve_format


@dataclass
class State:
    """What training changes: the network, its EMA (None when optim.ema_decay is 0), the
    optimiser, the number of steps taken and the step of the last checkpoint; and the loss
    terms (loss, mse, l1, logl1) since they were last recorded (sampling time left out)."""

    net: UNet
    ema: UNet | None
    optimizer: torch.optim.Optimizer
    step: int = 0
    saved_step: int = 0
    losses: LossMeter | None = None


def open_run(cfg: DictConfig, rank: int, world: int,
             device: torch.device) -> tuple[Run, dict | None]:
    """The run's data and directory, and its checkpoint's dict when there is one to resume
    (of the same recipe: harness.check_recipe). Sets cfg.model.prior to the resolved prior
    (resolve_prior)."""
    # Data. Both splits are opened first, so that missing data is reported before any work.
    train_set = open_split(cfg.dataset.train, "training")
    val_set = open_split(cfg.dataset.val, "validation")
    name = cfg.dataset.train.name or train_set.description["name"]
    run_dir = Path(cfg.general.out) / run_name(cfg, name)
    # Resumption: the same command finds the same run directory and continues its checkpoint.
    state = harness.open_checkpoint(run_dir, lambda path: load_checkpoint(path, device))
    if state is not None and state.get("optimizer") is None:
        raise SetupError(f"{run_dir / CHECKPOINT}: an exported checkpoint (weights for "
                         "sampling, no optimiser state), which a run cannot resume from; move it "
                         "away, or name a new run with general.run=NAME")
    cfg.model.prior = resolve_prior(cfg, state)
    samples = TrainSamples(train_set, cfg.dataset.train.split, cfg.optim.crop, cfg.general.seed,
                           cfg.dataset.train.max_items)
    # The training data's camera goes into the checkpoint: sampling writes DNGs of it, with
    # its noise model (calibrated from the training images; a resumed run keeps its own).
    camera = Camera.from_training_images({i: e for i, e in train_set.images.items()
                                          if e["split"] == cfg.dataset.train.split})
    stored = checkpoint_camera(state) if state is not None else None
    if stored is not None and stored.noise is not None:
        camera = camera.with_noise(stored.noise)
    if stored is not None:
        camera = camera.with_exposures(stored.exposures)
    run = Run(cfg, rank, world, device, run_dir, harness.resolved(cfg), train_set, val_set,
              samples, camera, Diffusion().to(device))
    if state is not None:
        harness.check_recipe(run, state["config"], RESUMABLE, ADDED)
    return run, state


def new_state(run: Run, fit_prior: bool) -> State:
    """A new network, its EMA copy and the optimiser, on the run's device. fit_prior: fit the
    colour prior of a network that has one (a resumed run loads it with the weights)."""
    cfg, o = run.cfg, run.cfg.optim
    # Model, EMA, optimiser. The seed gives every process the same initial weights.
    torch.manual_seed(cfg.general.seed)
    net = model_from_config(cfg.model)
    if o.crop % net.multiple or o.crop < 2 * net.multiple:
        raise SetupError(f"optim.crop={o.crop}: must be a multiple of {net.multiple} and at "
                         f"least {2 * net.multiple} for model.preset={cfg.model.preset}")
    if hasattr(net, "prior") and fit_prior:
        # The colour prior is fitted once, in closed form, on the training samples; from then
        # on it is part of the weights (a buffer), saved and resumed with them. The training
        # images' exposures against it go into the camera (for --exposure draw).
        cmap, fit = fit_colour_map(run.train_set, cfg.dataset.train.split, cfg.model.prior,
                                   ids=run.samples.ids, camera=run.camera,
                                   progress=run.rank == 0)
        net.prior.weights.copy_(cmap.weights)
        run.camera = run.camera.with_exposures(list(fit["exposures"].values()))
    net.to(run.device)
    net.checkpointing = cfg.system.checkpointing
    if run.memory_format == torch.channels_last:
        net.to(memory_format=run.memory_format)
    ema = copy.deepcopy(net).requires_grad_(False) if o.ema_decay > 0 else None
    optimizer = torch.optim.AdamW(net.parameters(), lr=o.lr, weight_decay=o.weight_decay)
    return State(net, ema, optimizer)


def resume(state: State, checkpoint: dict) -> None:
    """Continue from the run's checkpoint: its weights, optimiser state and step."""
    state.net.load_state_dict(checkpoint["model"])
    state.optimizer.load_state_dict(checkpoint["optimizer"])
    if state.ema is not None:
        state.ema.load_state_dict(checkpoint["ema"])
    state.step = state.saved_step = checkpoint["step"]


def start(run: Run, state: State) -> tuple[torch.nn.Module, list, Iterator]:
    """Before the first step: config.yaml, the network as trained (DDP across processes,
    torch.compile), the validation batches (val_batches) and the iterator of training batches
    from state.step on."""
    cfg, o = run.cfg, run.cfg.optim
    run.write_config()
    train_net = state.net
    if run.world > 1:
        train_net = torch.nn.parallel.DistributedDataParallel(
            state.net, device_ids=[run.device.index] if run.cuda else None)
    if cfg.system.compile:
        train_net = torch.compile(train_net)
    # Every process loads them (a few images), so that a problem stops all processes alike.
    val = val_batches(run.val_set, cfg.dataset.val.split, o.crop, cfg.log.val_images,
                      o.batch_size)
    if not val:
        log.warning("the validation split is empty: no previews or validation metrics")
    if hasattr(state.net, "prior"):  # the loader computes the map's estimate of each crop
        run.samples.prior = copy.deepcopy(state.net.prior).cpu()
    loader = torch.utils.data.DataLoader(
        run.samples, batch_size=o.batch_size // run.world,
        sampler=Draws(state.step, o.batch_size, run.rank, run.world),
        num_workers=run.workers, pin_memory=run.cuda)
    return train_net, val, iter(loader)


def set_learning_rate(optimizer: torch.optim.Optimizer, o: DictConfig, step: int) -> float:
    """The paper's schedule: linear decay from optim.lr to 0 over optim.decay_steps."""
    lr = o.lr * max(0.0, 1 - step / o.decay_steps)
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr


def train_step(run: Run, state: State, train_net: torch.nn.Module, batch, generator,
               autocast) -> None:
    """One optimiser step on `batch` (raw, rgb[, prior] of TrainSamples) and the EMA update;
    adds the loss terms to state.losses and counts the step. The timesteps and noise come from
    `generator` seeded with (seed, NOISE, step, rank)."""
    cfg, optimizer = run.cfg, state.optimizer
    raw, rgb, *prior = (x.to(run.device, non_blocking=True, memory_format=run.memory_format)
                        for x in batch)
    prior = prior[0] if prior else None
    generator.manual_seed(derived_seed(cfg.general.seed, NOISE, state.step, run.rank))
    with autocast:
        model_fn = lambda x_t, t: train_net(x_t, t, rgb=rgb, prior=prior)  # noqa: E731
        weights = (cfg.diffusion.w_mse, cfg.diffusion.w_l1, cfg.diffusion.w_logl1)
        if run.direct:
            loss, terms = run.diffusion.direct_loss(model_fn, raw, *weights)
        else:
            loss, terms = run.diffusion.loss(model_fn, raw, *weights, generator=generator)
        loss = loss.mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    if state.ema is not None:
        with torch.no_grad():
            torch._foreach_lerp_(list(state.ema.parameters()), list(state.net.parameters()),
                                 1 - cfg.optim.ema_decay)
    state.losses.add(torch.stack([loss.detach()] + [terms[k].detach().mean()
                                                    for k in ("mse", "l1", "logl1")]))
    state.step += 1


def record_scalars(run: Run, state: State, lr: float, record: Recorder | None, bar) -> None:
    """The mean loss terms since the last record (over all processes), the learning rate,
    epoch, speed and memory: to the records and the progress bar. Raises SetupError, before
    anything is saved, when the loss is no longer finite."""
    means, rate = state.losses.read(state.step, "step", lambda: _what_stays(run, state))
    values = {f"train/{k}": v for k, v in means.items()} | {
        "train/lr": lr,
        "train/epoch": state.step * run.cfg.optim.batch_size / run.samples.epoch_length,
        "train/steps_per_s": rate} | harness.memory_scalars(run)
    if record:
        record(values, state.step)
    bar.set_postfix(loss=f"{means['loss']:.4g}", lr=f"{lr:.3g}")


def preview_and_validate(run: Run, state: State, val: list, val_steps: int | None,
                         validation: bool, record: Recorder) -> None:
    """The preview of the first validation batch and, when `validation`, the metrics of all of
    them (recorded and logged); with the EMA weights when there are some. The first process
    only. Sampling time does not count as training speed."""
    cfg, step = run.cfg, state.step
    metrics, generated = validate(state.net if state.ema is None else state.ema, run.diffusion,
                                  val if validation else val[:1], val_steps, run.device)
    write_preview(run.dir / "previews" / f"{step:07d}.png", val[0][1], generated[0], val[0][0])
    if validation:
        record({f"val/{k}": v for k, v in metrics.items()}, step)
        log.info("step %d, validation on %d center crop(s) of %d x %d with %s: %s", step,
                 sum(len(r) for r, _ in val), cfg.optim.crop, cfg.optim.crop,
                 "one pass" if run.direct else cfg.diffusion_val.timestep_respacing,
                 ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
    state.losses.restart_clock()


def save_state(run: Run, state: State) -> None:
    """Write the checkpoint (the first process) once the weights are known to be finite."""
    harness.check_finite(state.net, f"step {state.step}", lambda: _what_stays(run, state))
    if run.rank == 0:
        save_checkpoint(run.checkpoint, checkpoint_state(
            state.step, run.resolved, dict(state.net.config), state.net.state_dict(),
            ema=None if state.ema is None else state.ema.state_dict(), camera=run.camera,
            optimizer=state.optimizer.state_dict()))
    state.saved_step = state.step


def _what_stays(run: Run, state: State) -> str:
    """After a diverged loss: the last good checkpoint, and what the user can do. A resumed
    run keeps its recipe (harness.check_recipe), so a lower learning rate needs a new run."""
    if state.saved_step == 0:
        return (f"No checkpoint was saved yet ({run.dir}); rerun with a lower optim.lr, it "
                "starts afresh.")
    return (f"The last good checkpoint (step {state.saved_step}) stays in {run.checkpoint}; "
            "to train with a lower optim.lr, start a new run with general.run=NAME.")
