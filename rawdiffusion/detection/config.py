"""The detector's configuration: typed sections in Hydra's ConfigStore and the named datasets.

`rawdiffusion detect train data=nod_nikon [key=value ...]` composes `detect_train` from the
dataclasses below; `rawdiffusion detect train --cfg job` prints the result. The defaults are
the reference's recipe (REFERENCE.md, "Object detection"): Faster R-CNN R50-FPN, input 640 x
416, 48 epochs of SGD (lr 0.02, Nesterov momentum 0.9, weight decay 1e-4 except on norms and
biases), 500 warm-up iterations from 0.001 x lr, lr x 0.1 at epochs 32 and 44, batch 8, on 100
real RAW images of the NOD h416 train split, validated on its test split every epoch.

Data. `data=nod_nikon` (or nod_sony) names the real camera: its training split
(`data.real`) and its test split (`data.val`), both in the folder `rawdiffusion prepare nod
--h416` makes. `data/generated=cityscapes` (or bdd) adds generated RAW: `data.generated.pred`
is sample.py's output folder for the RGB dataset's split, whose boxes are the RGB dataset's
annotations. Each training sample is real with probability `data.real_fraction` (the paper's
f) and generated otherwise; an epoch has the length of the real split.

SLURM. As for training, `-m` hands the job to Hydra's submitit launcher (one GPU a job; a job
that reaches the time limit is requeued and resumes); a plain run never launches it.

Resuming. As for the diffusion model (config.recipe_changes): a rerun resumes its run only
with the same recipe; fields declared `resumable` (where things are, how often to log, the
number of epochs, which may grow) may change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional

from omegaconf import MISSING

from ..config import DATA_ROOT, RGB_SOURCES, SOURCES, resumable, resumable_keys
from ..config import register as register_training

INPUTS = ("raw", "rgb")  # data.input: packed RAW reduced to 3 channels, or the sRGB image

# data=<name>: the real camera, whose h416 dataset holds the training and test splits.
CAMERAS = {"nod_nikon": "nod_nikon_h416", "nod_sony": "nod_sony_h416"}
# data/generated=<name>: the RGB dataset whose generated RAW joins training (default none).
GENERATED = {"cityscapes": "cityscapes_h416", "bdd": "bdd_h416"}


@dataclass
class RealConfig:
    """Real images with boxes: a split of a prepared detection dataset (prepare nod --h416)."""

    root: str = resumable(MISSING)
    split: str = "train"
    # Train on this many images, drawn as `prepare subsample` draws them with general.seed (the
    # paper's 100); None: all.
    max_items: Optional[int] = 100
    prepare: Optional[str] = resumable(None)  # the command that makes `root`, quoted if missing


@dataclass
class GeneratedConfig:
    """Generated RAW with the boxes of the RGB dataset it was generated from."""

    # The RGB dataset (prepare cityscapes / bdd): annotations/<split>.json, and rgb/ for
    # data.input=rgb. None: no generated data (data.real_fraction must be 1).
    root: Optional[str] = resumable(None)
    split: str = "train"
    # sample.py's output folder for that split (holding pred/<id>.dng|.h5|.npy), or its pred/
    # folder itself. Not read for data.input=rgb.
    pred: Optional[str] = resumable(None)
    prepare: Optional[str] = resumable(None)
    name: Optional[str] = None  # names the run directory; None: the RGB dataset's name


@dataclass
class ValConfig:
    root: str = resumable(MISSING)
    split: str = "test"
    prepare: Optional[str] = resumable(None)


@dataclass
class DataConfig:
    defaults: List[Any] = field(default_factory=list)
    input: str = "raw"  # INPUTS: raw, or rgb for the RGB baseline (the sRGB images)
    real_fraction: float = 1.0  # the paper's f: the probability that a sample is real
    real: RealConfig = MISSING
    generated: GeneratedConfig = field(default_factory=GeneratedConfig)
    val: ValConfig = resumable(MISSING)
    # Images per source read to compute the normalisation statistics (per channel mean and
    # standard deviation, stored in the checkpoint); None: all.
    stats_images: Optional[int] = 200
    flip: float = 0.5  # probability of a horizontal flip of a training sample


@dataclass
class DetectorConfig:
    """torchvision's Faster R-CNN with a ResNet-50 FPN backbone, all stages trainable."""

    # Images are resized (keeping their aspect ratio) to the largest size whose shorter side is
    # at most min_size and longer side at most max_size: NOD h416 and Cityscapes/BDD100K at 416
    # high go in at 640 x 416, 640 x 320 and 640 x 362.
    min_size: int = 416
    max_size: int = 640
    # A torchvision ResNet-50 state dict (e.g. resnet50-0676ba61.pth, ImageNet IMAGENET1K_V1)
    # to start the backbone from; None: random weights. Nothing is downloaded.
    backbone_weights: Optional[str] = None


@dataclass
class DetectOptimConfig:
    epochs: int = resumable(48)  # may grow between reruns: training continues
    batch_size: int = 8  # global; DDP splits it over the processes
    lr: float = 0.02
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4  # not on norms and biases
    warmup_iters: int = 500  # linear warm-up from warmup_factor x lr
    warmup_factor: float = 0.001
    milestones: List[int] = field(default_factory=lambda: [32, 44])  # epochs: lr x gamma
    gamma: float = 0.1


@dataclass
class DetectGeneralConfig:
    seed: int = 0
    out: str = resumable("runs/detect")  # run directories are made in here
    # The run directory's name; None: <real>-n<max_items>[-<generated>-f<f>][-rgb]-s<seed>.
    run: Optional[str] = resumable(None)
    data_root: str = resumable(DATA_ROOT)  # the named datasets' folders are in here
    save_every: int = resumable(1)  # epochs between checkpoints (one is also written at the end)


@dataclass
class DetectSystemConfig:
    bf16: bool = True  # bf16 autocast on CUDA (CPU runs in float32)
    # Data loader processes per process; None: one fewer than its share of the CPUs, at most 4
    # (cpus.default_workers).
    workers: Optional[int] = None
    # CPU threads of each process; None: its share of the CPUs it may use, at most
    # $OMP_NUM_THREADS when set (cpus.default_threads).
    threads: Optional[int] = None


@dataclass
class DetectLogConfig:
    every: int = 20  # iterations between scalars (progress bar, TensorBoard, stats.jsonl)
    val_every: int = 1  # epochs between validations (COCO AP on data.val) and previews
    preview_images: int = 4  # validation images drawn with their boxes in previews/


def _hydra_settings(name: str) -> dict:
    """As training's (config._hydra_settings): Hydra writes nothing of its own; SLURM jobs of
    `-m` keep their logs in <general.out>/slurm."""
    return {"output_subdir": None, "run": {"dir": "."},
            "sweep": {"dir": "${general.out}/slurm", "subdir": "${hydra.job.num}"},
            "job": {"name": name, "chdir": False},
            "help": {"app_name": f"rawdiffusion detect {name.removeprefix('detect_')}"}}


@dataclass
class DetectTrainConfig:
    defaults: List[Any] = field(default_factory=lambda: [
        "_self_", {"data": "nod_nikon"},
        {"override hydra/launcher": "rawdiffusion_slurm"},  # used by -m only, as training's
        {"override hydra/job_logging": "stdout"}])
    general: DetectGeneralConfig = field(default_factory=DetectGeneralConfig)
    data: DataConfig = MISSING
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    optim: DetectOptimConfig = field(default_factory=DetectOptimConfig)
    system: DetectSystemConfig = resumable(default_factory=DetectSystemConfig)
    log: DetectLogConfig = resumable(default_factory=DetectLogConfig)
    hydra: Any = field(default_factory=lambda: _hydra_settings("detect_train"))


@dataclass
class DetectEvalConfig(DetectTrainConfig):
    """`detect eval`: the training configuration (which names the run) plus what to evaluate.

    Evaluates data.val with the run's checkpoint (or `checkpoint`), writing summary.json,
    pr_curves.png, detections.json and previews to `out`."""

    checkpoint: Optional[str] = None  # None: <general.out>/<run>/checkpoint.pt of this config
    out: Optional[str] = None  # None: <run>/eval/<val dataset>-<split>
    batch_size: int = 8
    hydra: Any = field(default_factory=lambda: _hydra_settings("detect_eval"))


def register() -> None:
    """Store the configs in Hydra's ConfigStore (storing again is harmless)."""
    from hydra.core.config_store import ConfigStore

    register_training()  # its SLURM launcher settings, rawdiffusion_slurm
    cs = ConfigStore.instance()
    cs.store(name="detect_train", node=DetectTrainConfig)
    cs.store(name="detect_eval", node=DetectEvalConfig)
    for name, dataset in CAMERAS.items():
        root = f"${{general.data_root}}/{dataset}"
        prepare = f"{SOURCES[dataset]} --out {root}"
        cs.store(group="data", name=name, node=DataConfig(
            defaults=["_self_", {"generated": "none"}],
            real=RealConfig(root=root, prepare=prepare),
            val=ValConfig(root=root, prepare=prepare)))
    cs.store(group="data/generated", name="none", node=GeneratedConfig())
    for name, dataset in GENERATED.items():
        root = f"${{general.data_root}}/{dataset}"
        cs.store(group="data/generated", name=name, node=GeneratedConfig(
            root=root, prepare=f"{RGB_SOURCES[dataset]} --out {root}", name=dataset))


RESUMABLE = resumable_keys(DetectTrainConfig)
