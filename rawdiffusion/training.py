"""Training RAW-Diffusion: `python train.py dataset=NAME general.seed=S [key=value ...]`.

`main` reads top to bottom: processes and devices, data, model and optimiser, resumption, then
the loop (loss, update, logging, previews, validation, checkpoints). Configuration: config.py.

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

import contextlib
import copy
import itertools
import json
import logging
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from . import config as config_module
from .baselines import ColourMap, fit_colour_map, guide_codes, map_groups
from .bayer import dihedral_inverse, dihedral_packed, normalise
from .config import OBJECTIVES, ddim_steps, open_split, run_name
from .checkpoint import camera_of, load_checkpoint, save_checkpoint
from .data import paired_crop_dihedral
from .datasets.layout import PreparedDataset
from .datasets.subsample import draw_images
from .images import raw_preview, write_png
from .io import atomic_output
from .metrics import mean_metrics, raw_metrics
from .model import PRESETS, UNet, build_model
from .diffusion import Diffusion, derived_seed
from .errors import SetupError, run_reported
from .processes import barrier, mean_over_processes, processes, shard
from .tiling import generate

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"  # in the run directory; its contents: checkpoint.py
VAL_SEED = 123  # validation images and noise are fixed across runs, as in the reference
ORDER, AUGMENT, NOISE = 0, 1, 2  # purposes of the derived random streams
# model.prior of dataset=folder runs when none is given (config.ModelConfig): chosen by the
# quality benchmark on two cameras (README, "Quality").
DEFAULT_PRIOR = "poly3+curves+local"


# ----------------------------------------------------------------------------- data

def to_model_range(raw: np.ndarray, rgb: np.ndarray, black, white) -> tuple[torch.Tensor, ...]:
    """raw (4, h, w) raw numbers, rgb (3, h, w) uint8 -> float32 tensors in [-1, 1], the RAW
    normalised with its image's levels."""
    raw = torch.from_numpy(normalise(raw, black, white)) * 2 - 1
    rgb = torch.from_numpy(rgb.astype(np.float32) / 255) * 2 - 1
    return raw, rgb


class TrainSamples(torch.utils.data.Dataset):
    """Training crops indexed by draw number g = 0, 1, 2, ... (without end).

    Draw g is sample order(e)[i] with e, i = divmod(g, epoch_length), cropped to `crop` and
    transformed by one of the 8 dihedral transforms, all from a generator seeded with
    (seed, g): the data of any step is known without replaying the steps before it.

    max_items keeps that many images of the split (all samples of each), drawn as the
    reference draws them (datasets.subsample.draw_images with `seed`); an epoch still has the
    full split's length, so the few samples repeat, as the reference resamples them.
    Returns raw (4, crop, crop), rgb (3, crop, crop), both in [-1, 1], and, once `prior` is set
    to the network's colour map, the map's estimate (4, crop, crop) in [-1, 1]: computed on the
    crop before its dihedral transform and transformed with the RAW, as the map sees a guide at
    generation time (its `local` terms are not invariant to rotations and flips).
    """

    def __init__(self, dataset: PreparedDataset, split: str, crop: int, seed: int,
                 max_items: int | None = None):
        self.dataset, self.crop, self.seed = dataset, crop, seed
        self.ids = dataset.split(split)
        if not self.ids:
            raise SetupError(f"{dataset.root}: the {split!r} split is empty")
        # A `prepare subsample` folder remembers its parent's length (layout.py).
        made_by = dataset.description.get("made_by") or {}
        self.epoch_length = made_by.get("parent_train_samples", len(self.ids))
        if max_items is not None:
            images = [image for image, entry in dataset.images.items() if entry["split"] == split]
            if not 1 <= max_items <= len(images):
                raise SetupError(f"dataset.train.max_items={max_items}: {dataset.root} has "
                                 f"{len(images)} {split} images; choose 1 to {len(images)}")
            chosen = draw_images(images, max_items, seed)
            keep = {s for image in chosen for s in dataset.images[image]["samples"]}
            self.ids = [s for s in self.ids if s in keep]
        kept = set(self.ids)
        smallest = min(min(e["sample_size"]) for e in dataset.images.values()
                       if kept.intersection(e["samples"]))
        if smallest < crop:
            raise SetupError(f"optim.crop={crop} is larger than some samples of "
                             f"{dataset.root} (down to {smallest} pixels)")
        self._order = (None, None)
        self.prior: ColourMap | None = None

    def __len__(self) -> int:
        return self.epoch_length

    def order(self, epoch: int) -> np.ndarray:
        """Indices into self.ids for one epoch: shuffled passes over them, epoch_length long."""
        if self._order[0] != epoch:
            rng = np.random.default_rng([self.seed, ORDER, epoch])
            passes = -(-self.epoch_length // len(self.ids))
            order = np.concatenate([rng.permutation(len(self.ids)) for _ in range(passes)])
            self._order = (epoch, order[: self.epoch_length])
        return self._order[1]

    def __getitem__(self, g: int):
        epoch, i = divmod(g, self.epoch_length)
        sample = self.dataset.load(self.ids[self.order(epoch)[i]])
        rng = np.random.default_rng([self.seed, AUGMENT, g])
        raw, rgb, k = paired_crop_dihedral(sample.raw, sample.rgb.transpose(2, 0, 1), self.crop,
                                           rng)
        raw, rgb = to_model_range(raw, rgb, sample.black, sample.white)
        if self.prior is None:
            return raw, rgb
        with torch.no_grad():
            codes = torch.from_numpy(dihedral_inverse(rgb.numpy(), k).copy())
            x_prior = self.prior(guide_codes(codes[None]))[0].numpy()
        return raw, rgb, torch.from_numpy(dihedral_packed(x_prior, k).copy()) * 2 - 1


class Draws(torch.utils.data.Sampler):
    """The draw numbers of one process from step `start` on: step s uses draws
    [s * batch, (s + 1) * batch), and process `rank` of `world` takes its equal slice of them,
    so the data of a step does not depend on the number of processes."""

    def __init__(self, start: int, batch: int, rank: int, world: int):
        self.start, self.batch, self.rank, self.world = start, batch, rank, world

    def __iter__(self):
        per = self.batch // self.world
        for step in itertools.count(self.start):
            first = step * self.batch + self.rank * per
            yield from range(first, first + per)


def val_batches(dataset: PreparedDataset, split: str, crop: int, count: int,
                batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """`count` validation images as center crops: a fixed choice of the split's samples (the
    same for every run). Returns [(raw (b, 4, crop, crop), rgb (b, 3, crop, crop))] in [-1, 1]."""
    ids = dataset.split(split)
    if not ids:
        return []
    chosen = [ids[i] for i in np.random.default_rng(VAL_SEED).permutation(len(ids))[:count]]
    raws, rgbs = [], []
    for sample_id in chosen:
        s = dataset.load(sample_id)
        h, w = s.raw.shape[-2:]
        if min(h, w) < crop:
            raise SetupError(f"validation sample {sample_id} is {w}x{h}, smaller than the "
                             f"{crop}x{crop} crop (optim.crop)")
        top, left = (h - crop) // 2, (w - crop) // 2
        window = (slice(top, top + crop), slice(left, left + crop))
        raw, rgb = to_model_range(s.raw[(...,) + window], s.rgb[window].transpose(2, 0, 1),
                                  s.black, s.white)
        raws.append(raw)
        rgbs.append(rgb)
    return [(torch.stack(raws[i:i + batch_size]), torch.stack(rgbs[i:i + batch_size]))
            for i in range(0, len(raws), batch_size)]


# ----------------------------------------------------------------------------- model

def resolve_prior(cfg: DictConfig, state: dict | None) -> str:
    """model.prior as given; when it is not (None): the run's own for a run being resumed
    (`state`, its checkpoint; runs from before the option have none), else DEFAULT_PRIOR for
    dataset=folder and "none" (the paper's model) for the seed's named datasets. Stored
    resolved in the checkpoint."""
    if cfg.model.prior is not None:
        try:  # the groups of a map in their canonical order: "local+curves" is "curves+local"
            return cfg.model.prior if cfg.model.prior == "none" else \
                "+".join(map_groups(cfg.model.prior))
        except ValueError:
            return cfg.model.prior  # model_from_config says what is wrong with it
    if state is not None:
        return state["config"].get("model", {}).get("prior", config_module.ADDED["model.prior"])
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
    missing = [k for k, v in config_module.flatten(OmegaConf.to_container(cfg)).items()
               if v == "???"]
    if missing:
        hints = {"dataset.train.max_items": "the number of training images, e.g. 25 as in the "
                                            "paper's small-data experiments",
                 "dataset.root": "a folder made by `rawdiffusion prepare ...`"}
        raise SetupError("missing setting(s): " + "; ".join(
            f"{k}=... ({hints[k]})" if k in hints else f"{k}=..." for k in missing))
    o = cfg.optim
    if o.batch_size % world:
        raise SetupError(f"optim.batch_size={o.batch_size} is not divisible by the {world} "
                         "processes")
    if min(o.max_steps, o.decay_steps, cfg.general.save_every, cfg.log.every,
           cfg.log.preview_every, cfg.log.val_every) < 1:
        raise SetupError("step counts and intervals (optim, general.save_every, log) must be "
                         ">= 1")
    if not 0 <= o.ema_decay < 1:
        raise SetupError(f"optim.ema_decay={o.ema_decay}: must be in [0, 1)")
    if o.max_steps > o.decay_steps:  # the learning rate is 0 from decay_steps on
        raise SetupError(f"optim.max_steps={o.max_steps} is past optim.decay_steps="
                         f"{o.decay_steps}, where the learning rate reaches 0: the steps after it "
                         "would change nothing. To train longer, start a run (general.run=NAME) "
                         "with both set to the new length")


class Recorder:
    """The first process's records: train.log, TensorBoard scalars and stats.jsonl."""

    def __init__(self, run_dir: Path, step: int):
        from torch.utils.tensorboard import SummaryWriter

        # The package's messages, INFO and up, also go to the run's own log file.
        self.logger, self.level = logging.getLogger("rawdiffusion"), None
        if self.logger.getEffectiveLevel() > logging.INFO:
            self.level = self.logger.level
            self.logger.setLevel(logging.INFO)
        self.handler = logging.FileHandler(run_dir / "train.log")
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        self.logger.addHandler(self.handler)
        # A killed run may have recorded steps after its last checkpoint, the last line
        # perhaps half-written: keep what came before the checkpoint.
        path = run_dir / "stats.jsonl"
        if path.is_file():
            kept = []
            for line in path.read_text().splitlines():
                with contextlib.suppress(json.JSONDecodeError):
                    if json.loads(line)["step"] <= step:
                        kept.append(line + "\n")
            with atomic_output(path) as tmp:
                tmp.write_text("".join(kept))
        self.stats = open(path, "a")
        self.writer = SummaryWriter(run_dir / "tb", purge_step=step + 1)

    def __call__(self, values: dict, step: int) -> None:
        for k, v in values.items():
            self.writer.add_scalar(k, v, step)
        self.stats.write(json.dumps({"step": step, **values}) + "\n")
        self.stats.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.writer.close()
        self.stats.close()
        self.logger.removeHandler(self.handler)
        self.handler.close()
        if self.level is not None:
            self.logger.setLevel(self.level)


# ----------------------------------------------------------------------------- training

def main(cfg: DictConfig) -> Path:
    """Train (or resume) the run that `cfg` describes; returns its run directory."""
    with processes() as device:
        rank, world = shard()
        if rank:
            logging.getLogger().setLevel(logging.WARNING)  # one process reports
        run_dir = train(cfg, rank, world, device)
        barrier()  # finish together: a late process would find its peers gone
        return run_dir


def train(cfg: DictConfig, rank: int, world: int, device: torch.device) -> Path:
    check(cfg, world)
    cuda = device.type == "cuda"
    seed, o = cfg.general.seed, cfg.optim
    # Data. Both splits are opened first, so that missing data is reported before any work.
    train_set = open_split(cfg.dataset.train, "training")
    val_set = open_split(cfg.dataset.val, "validation")
    name = cfg.dataset.train.name or train_set.description["name"]
    run_dir = Path(cfg.general.out) / run_name(cfg, name)
    # Resumption: the same command finds the same run directory and continues its checkpoint.
    checkpoint_path = run_dir / CHECKPOINT
    state = load_checkpoint(checkpoint_path, device) if checkpoint_path.is_file() else None
    cfg.model.prior = resolve_prior(cfg, state)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    samples = TrainSamples(train_set, cfg.dataset.train.split, o.crop, seed,
                           cfg.dataset.train.max_items)
    # The training data's camera goes into the checkpoint: sampling writes DNGs of it.
    camera = camera_of({i: e for i, e in train_set.images.items()
                        if e["split"] == cfg.dataset.train.split})

    # Model, EMA, optimiser. The seed gives every process the same initial weights.
    torch.manual_seed(seed)
    net = model_from_config(cfg.model)
    if o.crop % net.multiple or o.crop < 2 * net.multiple:
        raise SetupError(f"optim.crop={o.crop}: must be a multiple of {net.multiple} and at "
                         f"least {2 * net.multiple} for model.preset={cfg.model.preset}")
    if hasattr(net, "prior") and state is None:
        # The colour prior is fitted once, in closed form, on the training samples; from then
        # on it is part of the weights (a buffer), saved and resumed with them.
        net.prior.weights.copy_(fit_colour_map(train_set, cfg.dataset.train.split,
                                               cfg.model.prior, ids=samples.ids,
                                               progress=rank == 0)[0].weights)
    net.to(device)
    net.checkpointing = cfg.system.checkpointing
    memory_format = torch.preserve_format
    if cuda and cfg.system.channels_last:
        memory_format = torch.channels_last
        net.to(memory_format=memory_format)
    ema = copy.deepcopy(net).requires_grad_(False) if o.ema_decay > 0 else None
    optimizer = torch.optim.AdamW(net.parameters(), lr=o.lr, weight_decay=o.weight_decay)
    diffusion = Diffusion().to(device)
    direct = cfg.model.objective == "direct"
    val_steps = None if direct else ddim_steps(cfg.diffusion_val.timestep_respacing)

    step = 0
    if state is not None:
        changes = config_module.recipe_changes(state["config"], resolved)
        if changes:
            raise SetupError(f"{run_dir} holds a run with another recipe ("
                                + "; ".join(changes) + "). Rerun with its settings to resume "
                             "it, or name a new run with general.run=NAME.")
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        step = state["step"]
        del state
    if step >= o.max_steps:
        log.info("%s is trained to step %d (optim.max_steps=%d)", run_dir, step, o.max_steps)
        return run_dir

    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        with atomic_output(run_dir / "config.yaml") as tmp:
            tmp.write_text(OmegaConf.to_yaml(resolved))

    train_net = net
    if world > 1:
        train_net = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if cuda else None)
    if cfg.system.compile:
        train_net = torch.compile(train_net)
    # Every process loads them (a few images), so that a problem stops all processes alike.
    val = val_batches(val_set, cfg.dataset.val.split, o.crop, cfg.log.val_images, o.batch_size)
    if not val:
        log.warning("the validation split is empty: no previews or validation metrics")
    if hasattr(net, "prior"):  # the loader computes the map's estimate of each crop (TrainSamples)
        samples.prior = copy.deepcopy(net.prior).cpu()
    loader = torch.utils.data.DataLoader(
        samples, batch_size=o.batch_size // world, sampler=Draws(step, o.batch_size, rank, world),
        num_workers=cfg.system.workers, pin_memory=cuda)
    batches = iter(loader)
    generator = torch.Generator(device)
    autocast = torch.autocast("cuda", torch.bfloat16, enabled=cuda and cfg.system.bf16)

    record = Recorder(run_dir, step) if rank == 0 else None
    bar = tqdm(total=o.max_steps, initial=step, disable=rank != 0, unit="step",
               dynamic_ncols=True, desc=run_dir.name)
    sums = torch.zeros(4, device=device)  # loss, mse, l1, logl1 since the last record
    last_step, last_time, saved_step = step, time.perf_counter(), step
    with logging_redirect_tqdm(), bar, record or contextlib.nullcontext():
        log.info("%s %s at step %d of %d: %d training samples (epochs of %d), %d process(es) "
                 "on %s", "resuming" if step else "starting", run_dir, step, o.max_steps,
                 len(samples.ids), samples.epoch_length, world, device)
        while step < o.max_steps:
            # The paper's schedule: linear decay from optim.lr to 0 over optim.decay_steps.
            lr = o.lr * max(0.0, 1 - step / o.decay_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            raw, rgb, *prior = (x.to(device, non_blocking=True, memory_format=memory_format)
                                for x in next(batches))
            prior = prior[0] if prior else None
            generator.manual_seed(derived_seed(seed, NOISE, step, rank))
            with autocast:
                model_fn = lambda x_t, t: train_net(x_t, t, rgb=rgb, prior=prior)  # noqa: E731
                weights = (cfg.diffusion.w_mse, cfg.diffusion.w_l1, cfg.diffusion.w_logl1)
                if direct:
                    loss, terms = diffusion.direct_loss(model_fn, raw, *weights)
                else:
                    loss, terms = diffusion.loss(model_fn, raw, *weights, generator=generator)
                loss = loss.mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if ema is not None:
                with torch.no_grad():
                    torch._foreach_lerp_(list(ema.parameters()), list(net.parameters()),
                                         1 - o.ema_decay)
            sums += torch.stack([loss.detach()] + [terms[k].detach().mean()
                                                   for k in ("mse", "l1", "logl1")])
            step += 1
            bar.update()
            save = step % cfg.general.save_every == 0 or step == o.max_steps

            # Scalars. Reading the sums waits for the GPU, so only every log.every steps and
            # before a checkpoint: a diverged loss is caught before it can be saved.
            if step % cfg.log.every == 0 or save:
                mean = (mean_over_processes(sums) / (step - last_step)).tolist()
                if not all(math.isfinite(v) for v in mean):
                    raise SetupError(
                        f"the loss became {mean[0]} between steps {last_step} and {step}; "
                        f"stopping. The last good checkpoint (step {saved_step}) stays in "
                        f"{checkpoint_path}; lower optim.lr before resuming from it.")
                now = time.perf_counter()
                values = {"train/loss": mean[0], "train/mse": mean[1], "train/l1": mean[2],
                          "train/logl1": mean[3], "train/lr": lr,
                          "train/epoch": step * o.batch_size / samples.epoch_length,
                          "train/steps_per_s": (step - last_step) / (now - last_time)}
                if cuda:
                    values["train/max_memory_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
                if record:
                    record(values, step)
                bar.set_postfix(loss=f"{mean[0]:.4g}", lr=f"{lr:.3g}")
                sums.zero_()
                last_step, last_time = step, now

            # Previews and validation metrics, by the first process, with the EMA weights when
            # there are some. The preview shows the first validation batch.
            validation = step % cfg.log.val_every == 0 or step == o.max_steps
            if rank == 0 and val and (validation or step % cfg.log.preview_every == 0):
                metrics, generated = validate(net if ema is None else ema, diffusion,
                                              val if validation else val[:1], val_steps, device)
                write_preview(run_dir / "previews" / f"{step:07d}.png", val[0][1], generated[0],
                              val[0][0])
                if validation:
                    record({f"val/{k}": v for k, v in metrics.items()}, step)
                    log.info("step %d, validation on %d center %d crops with %s: %s", step,
                             sum(len(r) for r, _ in val), o.crop,
                             "one pass" if direct else cfg.diffusion_val.timestep_respacing,
                             ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
                last_time = time.perf_counter()  # sampling is not training speed

            if save:
                if not all(torch.isfinite(p).all() for p in net.parameters()):
                    raise SetupError(f"the weights are not finite at step {step}; the last "
                                     f"good checkpoint (step {saved_step}) stays in "
                                     f"{checkpoint_path}")
                if rank == 0:
                    save_checkpoint(checkpoint_path, {
                        "step": step, "config": resolved, "model_config": dict(net.config),
                        "model": net.state_dict(),
                        "ema": None if ema is None else ema.state_dict(),
                        "optimizer": optimizer.state_dict(), "camera": camera})
                saved_step = step
        log.info("done: step %d, checkpoint %s", step, checkpoint_path)
    return run_dir


def _hydra_task(cfg: DictConfig) -> None:
    status = run_reported(lambda: main(cfg) and 0)  # a UserError: one line, no traceback
    if status:
        sys.exit(status)


def entry(argv: list[str] | None = None) -> None:
    """The command line of `python train.py` and `rawdiffusion train`: Hydra overrides (argv,
    default sys.argv[1:]), `-m` for SLURM jobs, `--cfg job` to print the configuration."""
    import hydra

    config_module.register()
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    hydra.main(version_base="1.3", config_path=None, config_name="train")(_hydra_task)()
