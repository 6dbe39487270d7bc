"""The Hydra schema of train.py and sample.py: typed sections in Hydra's ConfigStore, and the
named datasets of the paper's released code. Only the Hydra commands read it (hydra_cli.py
composes it).

`python train.py dataset=NAME general.seed=S [section.key=value ...]` composes `train` from
the dataclasses below, `python sample.py ...` composes `sample`; `--cfg job` prints the result,
`--help` every setting with what it means (the `doc` of its field). The training defaults are
the paper's recipe (AdamW 1e-4, linear decay over 70k steps, batch 4, 256 crops). sample.py
holds only what it reads: what names the training run (general, dataset, model.preset),
diffusion_val and its own settings; a training-only override given to it is refused.

Data. Every named dataset is a folder under `general.data_root` (default: $RAWDIFFUSION_DATA,
else ./data) made by one `rawdiffusion prepare ...` command, which the error names when the
folder is missing. The `_subsample` names train on `dataset.train.max_items` images of their
parent's folder (no extra preparation). Any other prepared folder is `dataset=folder
dataset.root=PATH`. As in the paper's released code, `dataset/train=NAME` and
`dataset/val=NAME` pick the two parts separately.

SLURM. `-m` (multirun) hands the jobs to Hydra's submitit launcher, preset for one GPU, as the
released code's `python train.py dataset=fivek_nikon general.seed=0
"hydra.launcher.partition=P" -m`; a plain run never launches it. Jobs that hit the time
limit are requeued and resume.

Resuming. A rerun resumes its run only with the same recipe (harness.recipe_changes): every
field is part of it unless declared with `resumable(...)` (where things are, how often to log),
which RESUMABLE collects. What a configuration names at run time (its splits, its run folder,
its DDIM steps) is runs.py.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, List, Optional

from omegaconf import MISSING

from .settings import DEFAULTS

DATA_ROOT = "${oc.env:RAWDIFFUSION_DATA,data}"

# The prepared datasets of the paper's released code: name -> the command that makes its
# folder (--out is added).
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


def setting(default: Any = dataclasses.MISSING, doc: str = "", *,
            default_factory: Any = dataclasses.MISSING, resumable: bool = False) -> Any:
    """A dataclass field of the schema with what it means (`doc`, which --help prints). Part of
    the recipe that a resumed run must keep (harness.recipe_changes) unless `resumable`."""
    return field(default=default, default_factory=default_factory,
                 metadata={"doc": doc, "resumable": resumable})


def resumable(default: Any = dataclasses.MISSING, doc: str = "", *,
              default_factory: Any = dataclasses.MISSING) -> Any:
    """A `setting` that may change when a run is resumed (RESUMABLE): where things are, how
    often to log; for a section, everything in it."""
    return setting(default, doc, default_factory=default_factory, resumable=True)


# ----------------------------------------------------------------------------- sections

@dataclass
class SplitConfig:
    """A split of a prepared dataset folder."""

    root: str = resumable(MISSING, "the prepared folder (holding dataset.json)")
    split: str = setting("test", "its split, listed in <root>/<split>.txt")
    prepare: Optional[str] = resumable(None, "the command that makes root, quoted when it is "
                                             "missing")


@dataclass
class TrainSplitConfig(SplitConfig):
    """The training split of a prepared dataset folder."""

    split: str = setting("train", "its split, listed in <root>/<split>.txt (part of the "
                                  "recipe here; the val split may change)")
    name: Optional[str] = setting(None, "names the run directory; null: the name in "
                                        "dataset.json")
    # (Every stored dataset sets it: a MISSING one would not override a default.)
    max_items: Optional[int] = setting(
        MISSING, "train on this many images (all samples of each), drawn by a permutation "
                 "seeded with general.seed; an epoch is resampled to the full split's length (the "
                 "paper's small data). null: all")


@dataclass
class DatasetConfig:
    """What trains (dataset.train) and what validates or is sampled (dataset.val)."""

    defaults: List[Any] = field(default_factory=list)
    train: TrainSplitConfig = MISSING  # from dataset/train
    val: SplitConfig = resumable(MISSING)  # from dataset/val


@dataclass
class FolderDatasetConfig(DatasetConfig):
    """dataset=folder: the training and test splits of one prepared folder."""

    root: str = resumable(MISSING, "any folder made by `rawdiffusion prepare ...`")


@dataclass
class GeneralConfig:
    """The seed, and where runs are and what they are called."""

    seed: int = setting(0, "the seed of everything random (initial weights, data order, "
                           "noise); part of the run's name")
    out: str = resumable("runs", "the folder of the run directories")
    run: Optional[str] = resumable(
        None, "the run directory's name; null: <dataset>[-n<max_items>][-<preset>]-s<seed>. "
              "Rerunning a command resumes its run; another recipe needs a new name")
    data_root: str = resumable(DATA_ROOT, "the folder of the named datasets' folders "
                                          "($RAWDIFFUSION_DATA, else ./data)")


@dataclass
class TrainGeneralConfig(GeneralConfig):
    """The seed, where runs are and what they are called, and their checkpoints."""

    save_every: int = resumable(1000, "steps between checkpoints (one is also written at the "
                                      "end)")




@dataclass
class ModelConfig:
    """A preset of model.PRESETS; the network keys, when set, replace its values."""

    preset: str = setting("paper", "paper (the paper's network) or small (for CPUs), of "
                                   "model.PRESETS; part of the run's name when not paper")
    objective: str = setting(
        "diffusion", "diffusion: the paper's x0-predicting diffusion model, sampled with DDIM; "
                     "direct: the same network and loss mapping RGB to RAW in one forward pass "
                     "(diffusion.direct_loss), the control that measures what diffusion adds")
    prior: Optional[str] = setting(
        None, "a colour prior whose estimate the network conditions on and corrects: none (the "
              "paper's model) or a colour map of prior.py (linear, poly2, poly3, curves, or "
              "sums with local, e.g. poly3+curves+local) fitted on the training split. null: "
              "training.DEFAULT_PRIOR for dataset=folder, none for the named datasets of the "
              "paper's released code")
    channels: Optional[int] = setting(None, "base channels of the U-Net; null: the preset's")
    channel_mult: Optional[List[int]] = setting(None, "channels of each resolution, in "
                                                      "multiples of channels; null: the preset's")
    num_blocks: Optional[int] = setting(None, "residual blocks per resolution; null: the "
                                              "preset's")
    attn_ds: Optional[List[int]] = setting(None, "downsampling factors with self-attention; "
                                                 "null: the preset's")
    guide: Optional[str] = setting(None, "the RGB guide's encoder: edsr, rrdb or nafnet; null: "
                                         "the preset's")
    guide_channels: Optional[int] = setting(None, "channels of the guide's encoder; null: the "
                                                  "preset's")
    spade_hidden: Optional[int] = setting(None, "hidden channels of the SPADE blocks; null: "
                                                "the preset's")


@dataclass
class SampleModelConfig:
    """The training run's preset, which names it (runs.run_name)."""

    preset: str = setting("paper", "the training run's model.preset (its name has it when not "
                                   "paper)")


@dataclass
class DiffusionConfig:
    """The loss, w(t) * (w_mse MSE + w_l1 L1 + w_logl1 logL1)."""

    w_mse: float = setting(1.0, "weight of the MSE term")
    w_l1: float = setting(1.0, "weight of the L1 term")
    w_logl1: float = setting(1.0, "weight of the log-L1 term")


@dataclass
class DiffusionValConfig:
    """The sampler's steps, of validation and previews (train.py) or of
    sampling (sample.py)."""

    timestep_respacing: str = setting("ddim24", "ddim<N>: N DDIM steps, 1 to 1000")


@dataclass
class OptimConfig:
    """AdamW with the paper's linear decay of the learning rate."""

    lr: float = setting(1e-4, "learning rate at step 0, in (0, 1]")
    weight_decay: float = setting(0.0, "AdamW's weight decay")
    decay_steps: int = setting(70_000, "the learning rate falls linearly to 0 over these steps")
    max_steps: int = resumable(70_000, "steps to train; may grow between reruns, up to "
                                       "decay_steps: training continues")
    batch_size: int = setting(4, "crops per step, over all processes (DDP splits it)")
    crop: int = setting(256, "side of the random crops of the packed RAW (and RGB), a multiple "
                             "of the U-Net's")
    ema_decay: float = setting(0.0, "exponential moving average of the weights, in [0, 1); 0: "
                                    "none (the paper)")


@dataclass
class SystemConfig:
    """How to run; none of it changes the recipe (bf16 changes the rounding)."""

    threads: Optional[int] = setting(None, "CPU threads of each process; null: its share of the "
                                           "CPUs it may use, at most $OMP_NUM_THREADS (cpus.py)")
    workers: Optional[int] = setting(None, "data loader processes of each process; null: one "
                                           "fewer than its share of the CPUs, at most 4 "
                                           "(cpus.py)")
    bf16: bool = setting(True, "bf16 autocast on CUDA (a CPU run stays float32)")


@dataclass
class TrainSystemConfig(SystemConfig):
    """How to train; none of it changes the recipe (bf16 changes the rounding)."""

    channels_last: bool = setting(True, "channels-last memory format on CUDA")
    checkpointing: bool = setting(False, "gradient checkpointing: less memory, about 30 % "
                                         "slower")
    compile: bool = setting(False, "torch.compile the training model")


@dataclass
class SampleSystemConfig(SystemConfig):
    """How to sample; bf16 changes the rounding of the outputs, nothing else does."""

    bf16: bool = setting(False, "bf16 autocast of the network when generating, on any device "
                                "(off: not measured to pay, as convert --bf16)")


@dataclass
class NoiseConfig:
    """What the camera records of the predictions (sample.py): the scene's white balance, the
    exposure and the checkpoint's camera's noise model at an ISO (sensor.py, noise.py). The
    metrics stay those of the clean output."""

    iso: Any = setting(DEFAULTS.iso, "ISO of the noise added to the written predictions: a "
                                     "number, or draw (one per sample, seeded, from the "
                                     "training images' ISOs); null: none, the clean mean")
    exposure: Any = setting(DEFAULTS.exposure, "EV by which the clean signal is scaled "
                                               "(x 2^EV, clipped at white) before the noise "
                                               "(-2: a quarter of the light), or draw (one per "
                                               "sample, seeded, from the training images')")
    white_balance: Any = setting(DEFAULTS.white_balance, "the scene's as-shot white balance "
                                                         "[R,G,B] (green 1) to which the written "
                                                         "predictions are relit before the "
                                                         "exposure, or draw (one per sample, "
                                                         "seeded, from the training images'); "
                                                         "null: the camera's own")


@dataclass
class LogConfig:
    """How often training records."""

    every: int = setting(50, "steps between scalars (progress bar, TensorBoard, stats.jsonl)")
    preview_every: int = setting(1000, "steps between preview PNGs (RGB | generated RAW | "
                                       "target RAW)")
    val_every: int = setting(5000, "steps between validation metrics (DDIM on center crops)")
    val_images: int = setting(16, "validation images (center crops of the val split's "
                                  "samples)")


# ----------------------------------------------------------------------------- commands

def hydra_settings(job: str, command: str) -> dict:
    """Hydra's settings of a command: it writes nothing of its own (the run directory holds
    config, logs and stats); its run.dir is the working directory, which exists, so Hydra
    makes no folder (general.out is made by the command, which checks it first); the jobs of
    `-m` keep their SLURM logs in <general.out>/slurm."""
    return {"output_subdir": None, "run": {"dir": "."},
            "sweep": {"dir": "${general.out}/slurm", "subdir": "${hydra.job.num}"},
            "job": {"name": job, "chdir": False}, "help": {"app_name": command}}


def command_defaults(group: str, option: str) -> List[Any]:
    """A command's defaults list: `group`=`option`, the SLURM launcher (used by -m only) and
    log messages on stdout."""
    return ["_self_", {group: option}, {"override hydra/launcher": "rawdiffusion_slurm"},
            {"override hydra/job_logging": "stdout"}]


@dataclass
class TrainConfig:
    """`python train.py` (or `rawdiffusion train`): train RAW-Diffusion on a prepared dataset;
    rerun the same command to resume its run.

        python train.py dataset=fivek_nikon general.seed=0
        python train.py dataset=fivek_nikon_subsample dataset.train.max_items=25
        python train.py dataset=folder dataset.root=data/my_camera model.preset=small
        python train.py dataset=fivek_nikon "hydra.launcher.partition=P" -m     # on SLURM
        torchrun --nproc_per_node 4 train.py dataset=nod_sony                  # DDP
    """

    defaults: List[Any] = field(default_factory=lambda: command_defaults("dataset", "nod_nikon"))
    general: TrainGeneralConfig = field(default_factory=TrainGeneralConfig)
    dataset: DatasetConfig = MISSING
    model: ModelConfig = field(default_factory=ModelConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    diffusion_val: DiffusionValConfig = resumable(default_factory=DiffusionValConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    system: TrainSystemConfig = resumable(default_factory=TrainSystemConfig)
    log: LogConfig = resumable(default_factory=LogConfig)
    hydra: Any = field(default_factory=lambda: hydra_settings("train", "rawdiffusion train"))


@dataclass
class SampleConfig:
    """`python sample.py` (or `rawdiffusion sample`): sample the val split with a training run's
    checkpoint (found by the settings that name the run: general, dataset.train, model.preset;
    or checkpoint=PATH), writing the paper's metrics and, with save_pred, the generated RAW.
    Rerun the same command to resume.

        python sample.py dataset=fivek_nikon general.seed=0
        python sample.py dataset=folder dataset.root=data/gopro checkpoint=runs/x/checkpoint.pt
        python sample.py dataset/train=nod_nikon_h416_subsample dataset.train.max_items=100 \\
            dataset/val=bdd_h416 save_pred=true rgb_only=true
        torchrun --nproc_per_node 4 sample.py ...                 # sharded over 4 processes
    """

    defaults: List[Any] = field(default_factory=lambda: command_defaults("dataset", "nod_nikon"))
    general: GeneralConfig = field(default_factory=GeneralConfig)
    dataset: DatasetConfig = MISSING
    model: SampleModelConfig = field(default_factory=SampleModelConfig)
    diffusion_val: DiffusionValConfig = field(default_factory=DiffusionValConfig)
    system: SampleSystemConfig = field(default_factory=SampleSystemConfig)
    checkpoint: Optional[str] = setting(None, "the checkpoint (or baseline file) to sample "
                                              "with; null: <general.out>/<run>/checkpoint.pt")
    save_pred: bool = setting(False, "write the predictions (pred_format) and PNG previews")
    pred_format: str = setting("dng", "dng, hdf5 (the reference's layout) or npy")
    rgb_only: bool = setting(False, "the val split has no RAW: predictions only, no metrics")
    tile: int = setting(DEFAULTS.tile, "samples larger than this are generated in overlapping tiles")
    overlap: int = setting(DEFAULTS.overlap, "overlap of the tiles")
    sampler: str = setting(DEFAULTS.sampler, "ddim, dpmpp2m (DPM-Solver++ 2M) or unipc, for "
                                   "diffusion_val's steps")
    batch_size: int = setting(DEFAULTS.batch_size, "tiles per forward pass, of one sample or several (read by "
                                 "system.workers processes); the outputs do not depend on it, "
                                 "up to float rounding")
    out: Optional[str] = setting(None, "the output folder; null: "
                                       "<run>/samples/<val dataset>-<split>-<respacing>-s<seed>"
                                       "[-iso<N>][-ev<E>]")
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    hydra: Any = field(default_factory=lambda: hydra_settings("sample", "rawdiffusion sample"))


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
    # One GPU for a day per job, as the SLURM settings of the paper's released code; a job that
    # reaches the time limit is requeued and resumes from its last checkpoint. These values go
    # over the submitit plugin's own `submitit_slurm` (its SlurmQueueConf), which Hydra stores
    # when it finds its plugins, so registering imports nothing of the plugin; only `-m`
    # launches it.
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


# Recipe keys added after checkpoints were first made, with the value those checkpoints had.
ADDED = {"model.objective": "diffusion", "model.prior": "none"}
