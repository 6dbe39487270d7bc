"""The training configuration: typed sections in Hydra's ConfigStore, and the seed's datasets.

`python train.py dataset=NAME general.seed=S [section.key=value ...]` composes `train` from
the dataclasses below; `python train.py --cfg job` prints the result. The defaults are the
paper's recipe (AdamW 1e-4, linear decay over 70k steps, batch 4, 256 crops).

Data. Every named dataset is a folder under `general.data_root` (default: $RAWDIFFUSION_DATA,
else ./data) made by one `rawdiffusion prepare ...` command, which the error names when the
folder is missing. The `_subsample` names train on `dataset.train.max_items` images of their
parent's folder (no extra preparation). Any other prepared folder is `dataset=folder
dataset.root=PATH`. As in the seed, `dataset/train=NAME` and `dataset/val=NAME` pick the two
parts separately.

SLURM. `-m` (multirun) hands the jobs to Hydra's submitit launcher, preset for one GPU, as the
seed's `python train.py dataset=fivek_nikon general.seed=0 "hydra.launcher.partition=P" -m`;
a plain run never launches it. Jobs that hit the time limit are requeued and resume.

Resuming. A rerun resumes its run only with the same recipe (`recipe_changes`): every field is
part of it unless declared with `resumable(...)` (where things are, how often to log), which
RESUMABLE collects. What a configuration names at run time (its splits, its run folder, its
DDIM steps) is runs.py.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, List, Optional

from omegaconf import MISSING

DATA_ROOT = "${oc.env:RAWDIFFUSION_DATA,data}"

# The seed's prepared datasets: name -> the command that makes its folder (--out is added).
SOURCES = {
    "fivek_nikon": "rawdiffusion prepare fivek --root FIVEK_DIR --camera nikon",
    "fivek_canon": "rawdiffusion prepare fivek --root FIVEK_DIR --camera canon",
    "nod_nikon": "rawdiffusion prepare nod --root NOD_DIR --camera nikon",
    "nod_sony": "rawdiffusion prepare nod --root NOD_DIR --camera sony",
    "nod_nikon_h416": "rawdiffusion prepare nod --root NOD_DIR --camera nikon --h416",
    "nod_sony_h416": "rawdiffusion prepare nod --root NOD_DIR --camera sony --h416",
}
SUBSAMPLE = "_subsample"
# RGB-only datasets to convert into RAW (sample.py dataset/val=NAME rgb_only=true).
RGB_SOURCES = {
    "cityscapes_h416": "rawdiffusion prepare cityscapes --root CITYSCAPES_DIR",
    "bdd_h416": "rawdiffusion prepare bdd --root BDD100K_DIR",
}


def resumable(default: Any = dataclasses.MISSING, *,
              default_factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field that may change when a run is resumed (RESUMABLE): where things are,
    how often to log; for a section, everything in it. Any other field is part of the recipe,
    which a resumed run must keep (recipe_changes)."""
    return field(default=default, default_factory=default_factory,
                 metadata={"resumable": True})


@dataclass
class SplitConfig:
    """One split of a prepared dataset folder."""

    root: str = resumable(MISSING)  # the prepared folder (holding dataset.json)
    split: str = "test"  # its split file, <root>/<split>.txt
    # The command that makes `root`, quoted when it is missing.
    prepare: Optional[str] = resumable(None)


@dataclass
class TrainSplitConfig(SplitConfig):
    split: str = "train"  # part of the recipe here (the val split is resumable)
    name: Optional[str] = None  # names the run directory; None: the name in dataset.json
    # Train on this many images (all samples of each), drawn by a permutation seeded with
    # general.seed; an epoch is resampled to the full split's length (the paper's small data).
    # None: all. (Every stored option sets it: a MISSING one would not override a default.)
    max_items: Optional[int] = MISSING


@dataclass
class DatasetConfig:
    defaults: List[Any] = field(default_factory=list)
    train: TrainSplitConfig = MISSING  # from dataset/train
    val: SplitConfig = resumable(MISSING)  # from dataset/val


@dataclass
class FolderDatasetConfig(DatasetConfig):
    root: str = resumable(MISSING)  # any folder made by `rawdiffusion prepare ...`


@dataclass
class GeneralConfig:
    seed: int = 0
    out: str = resumable("runs")  # run directories are made in here
    # The run directory's name; None: <dataset>[-n<max_items>][-<preset>]-s<seed>. Rerunning a
    # command resumes its run; a changed recipe needs a new name (the error says so).
    run: Optional[str] = resumable(None)
    data_root: str = resumable(DATA_ROOT)  # the named datasets' folders are in here
    # Steps between checkpoints (one is also written at the end).
    save_every: int = resumable(1000)




@dataclass
class ModelConfig:
    """A preset of model.PRESETS; the network keys, when set, replace the preset's values.

    objective: "diffusion", the paper's x0-predicting diffusion model sampled with DDIM, or
    "direct", the one-pass control: the same network and loss mapping RGB to RAW in one forward
    pass (diffusion.direct_loss), to measure what diffusion adds.
    """

    preset: str = "paper"
    objective: str = "diffusion"
    # A colour prior (model.py): none, the paper's model, or a colour map kind of prior.py
    # (linear, poly2, poly3, curves, or sums with local, e.g. poly3+curves+local) fitted on the
    # training split, whose estimate the network conditions on and corrects. None:
    # training.DEFAULT_PRIOR for dataset=folder runs, none for the seed's named datasets (so the
    # seed's commands keep their meaning).
    prior: Optional[str] = None
    channels: Optional[int] = None
    channel_mult: Optional[List[int]] = None
    num_blocks: Optional[int] = None
    attn_ds: Optional[List[int]] = None
    guide: Optional[str] = None  # edsr, rrdb, nafnet
    guide_channels: Optional[int] = None
    spade_hidden: Optional[int] = None


@dataclass
class DiffusionConfig:
    """Weights of the loss terms: w(t) * (w_mse MSE + w_l1 L1 + w_logl1 logL1)."""

    w_mse: float = 1.0
    w_l1: float = 1.0
    w_logl1: float = 1.0


@dataclass
class DiffusionValConfig:
    timestep_respacing: str = "ddim24"  # DDIM sampler of validation and previews: ddim<N>


@dataclass
class OptimConfig:
    lr: float = 1e-4
    weight_decay: float = 0.0
    decay_steps: int = 70_000  # the learning rate falls linearly to 0 over these steps
    max_steps: int = resumable(70_000)  # may grow between reruns: training continues
    batch_size: int = 4  # global; DDP splits it over the processes
    crop: int = 256  # random crops of the packed RAW (and RGB), a multiple of the U-Net's
    ema_decay: float = 0.0  # exponential moving average of the weights; 0: none (the paper)


@dataclass
class SystemConfig:
    """How to run: none of these change the recipe (bf16 changes rounding)."""

    bf16: bool = True  # bf16 autocast on CUDA (CPU runs in float32)
    channels_last: bool = True  # on CUDA
    checkpointing: bool = False  # gradient checkpointing: less memory, about 30 % slower
    compile: bool = False  # torch.compile the training model
    workers: int = 4  # data loader processes per training process


@dataclass
class LogConfig:
    every: int = 50  # steps between scalars (progress bar, TensorBoard, stats.jsonl)
    preview_every: int = 1000  # steps between preview PNGs (RGB | generated RAW | target RAW)
    val_every: int = 5000  # steps between validation metrics (DDIM on center crops)
    val_images: int = 16  # validation images (center crops of the val split's samples)


def _hydra_settings() -> dict:
    return {
        # Hydra writes nothing of its own: the run directory holds config, logs and stats. Its
        # run.dir is the working directory, which exists: Hydra makes no folder (general.out is
        # made by training, which checks it first).
        "output_subdir": None,
        "run": {"dir": "."},
        "sweep": {"dir": "${general.out}/slurm", "subdir": "${hydra.job.num}"},
        "job": {"name": "train", "chdir": False},
        "help": {"app_name": "rawdiffusion train"},
    }


@dataclass
class TrainConfig:
    defaults: List[Any] = field(default_factory=lambda: [
        "_self_",
        {"dataset": "nod_nikon"},  # the seed's default
        {"override hydra/launcher": "rawdiffusion_slurm"},
        {"override hydra/job_logging": "stdout"},
    ])
    general: GeneralConfig = field(default_factory=GeneralConfig)
    dataset: DatasetConfig = MISSING
    model: ModelConfig = field(default_factory=ModelConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    diffusion_val: DiffusionValConfig = resumable(default_factory=DiffusionValConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    system: SystemConfig = resumable(default_factory=SystemConfig)
    log: LogConfig = resumable(default_factory=LogConfig)
    hydra: Any = field(default_factory=_hydra_settings)


@dataclass
class SampleConfig(TrainConfig):
    """sample.py: the training configuration plus what to sample and write.

    Sampling reads general (seed; out and run to find the run), dataset (val: what it samples;
    train: the run's name, as runs.run_name makes it from dataset.train.max_items and
    model.preset), model.preset and diffusion_val (its DDIM steps). It keeps the training-only
    sections too (the rest of model, diffusion, optim, system, log), unread: sample.py takes
    the training command's overrides as they are (README), so each must name a key here.
    """

    checkpoint: Optional[str] = None  # None: <general.out>/<run>/checkpoint.pt of this config
    save_pred: bool = False  # write predictions (pred_format) and PNG previews
    pred_format: str = "dng"  # dng, hdf5 (the reference's layout) or npy
    rgb_only: bool = False  # the val split has no RAW: predictions only, no metrics
    tile: int = 256  # samples larger than this are generated in overlapping tiles
    overlap: int = 64
    sampler: str = "ddim"  # settings.SAMPLERS, for diffusion_val's steps
    # Tiles per forward pass, of one sample or several (samples read by system.workers
    # processes); the outputs do not depend on it, up to float rounding.
    batch_size: int = 1
    out: Optional[str] = None  # None: <run>/samples/<val dataset>-<split>-<respacing>-s<seed>


def register() -> None:
    """Store the configs in Hydra's ConfigStore (before composing; storing again is harmless)."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="train", node=TrainConfig)
    cs.store(name="sample", node=SampleConfig)
    for name, command in SOURCES.items():
        root = f"${{general.data_root}}/{name}"
        prepare = f"{command} --out ${{.root}}"
        cs.store(group="dataset/train", name=name, node=TrainSplitConfig(
            root=root, prepare=prepare, max_items=None, name=name))
        cs.store(group="dataset/train", name=name + SUBSAMPLE, node=TrainSplitConfig(
            root=root, prepare=prepare, max_items=MISSING, name=name + SUBSAMPLE))
        cs.store(group="dataset/val", name=name, node=SplitConfig(root=root, prepare=prepare))
        for train in (name, name + SUBSAMPLE):
            cs.store(group="dataset", name=train, node=DatasetConfig(
                defaults=[{"train": train}, {"val": name}, "_self_"]))
    for name, command in RGB_SOURCES.items():  # generation targets: sample.py's dataset/val
        root = f"${{general.data_root}}/{name}"
        cs.store(group="dataset/val", name=name, node=SplitConfig(
            root=root, split="val", prepare=f"{command} --out ${{.root}}"))
    cs.store(group="dataset", name="folder", node=FolderDatasetConfig(
        train=TrainSplitConfig(root="${..root}", max_items=None),
        val=SplitConfig(root="${..root}")))
    # One GPU for a day per job, as the seed's SLURM settings; a job that reaches the time
    # limit is requeued and resumes from its last checkpoint. These values go over the submitit
    # plugin's own `submitit_slurm` (its SlurmQueueConf), which Hydra stores when it finds its
    # plugins, so registering imports nothing of the plugin; only `-m` launches it.
    cs.store(group="hydra/launcher", name="rawdiffusion_slurm", node={
        "defaults": ["submitit_slurm", "_self_"],
        "timeout_min": 1440, "gpus_per_node": 1, "tasks_per_node": 1, "cpus_per_task": 6,
        "mem_gb": 32, "max_num_timeout": 5})


def resumable_keys(section: type, prefix: str = "") -> tuple[str, ...]:
    """The keys of the fields declared `resumable` in a config dataclass and the sections it
    holds, e.g. "general.out", or "log" for a whole section. A section's fields are those of
    its type and of that type's subclasses in this module (dataset=folder's dataset.root)."""
    keys: list[str] = []
    types = typing.get_type_hints(section)
    for f in dataclasses.fields(section):
        if f.metadata.get("resumable"):
            keys.append(prefix + f.name)
        elif isinstance(types[f.name], type) and dataclasses.is_dataclass(types[f.name]):
            for kind in _with_subclasses(types[f.name]):
                keys += [k for k in resumable_keys(kind, f"{prefix}{f.name}.") if k not in keys]
    return tuple(keys)


def _with_subclasses(cls: type) -> list[type]:
    return [cls] + [s for sub in cls.__subclasses__() if sub.__module__ == __name__
                    for s in _with_subclasses(sub)]


# Keys that may change when a run is resumed: where things are and how often to log. Anything
# else (seed, model, loss, optimiser, data selection) would silently mix two recipes.
RESUMABLE = resumable_keys(TrainConfig)


def flatten(d: dict, prefix: str = "") -> dict:
    """{"a": {"b": 1}} -> {"a.b": 1}"""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


# Recipe keys added after checkpoints were first made, with the value those checkpoints had.
ADDED = {"model.objective": "diffusion", "model.prior": "none"}


def recipe_changes(old: dict, new: dict, resumable: tuple[str, ...] = RESUMABLE,
                   added: dict | None = None) -> list[str]:
    """The keys, other than `resumable` ones, whose values differ between two resolved
    configs: "optim.lr: 0.0001 -> 0.0002". A key in `added` (default ADDED) that `old` lacks has
    its `added` value."""
    a, b = {**(ADDED if added is None else added), **flatten(old)}, flatten(new)
    changed = []
    for key in sorted(set(a) | set(b)):
        if any(key == r or key.startswith(r + ".") for r in resumable):
            continue
        if a.get(key) != b.get(key):
            changed.append(f"{key}: {a.get(key)!r} -> {b.get(key)!r}")
    return changed
