"""The detector's configuration: typed sections in Hydra's ConfigStore and the named datasets.

`rawdiffusion detect train data=nod_nikon [key=value ...]` composes `detect_train` from the
dataclasses below; `rawdiffusion detect train --cfg job` prints the result. The defaults are
the recipe of the paper's released code (its detection experiment): Faster R-CNN R50-FPN,
input 640 x 416, 48 epochs of SGD (lr 0.02, Nesterov momentum 0.9, weight decay 1e-4 except on
norms and biases), 500 warm-up iterations from 0.001 x lr, lr x 0.1 at epochs 32 and 44, batch
8, on 100 real RAW images of the NOD h416 train split, validated on its test split every epoch.

Data. `data=nod_nikon` (or nod_sony) names the real camera: its training split
(`data.real`) and its test split (`data.val`), both in the folder `rawdiffusion prepare nod
--h416` makes. `data/generated=cityscapes` (or bdd) adds generated RAW: `data.generated.pred`
is sample.py's output folder for the RGB dataset's split, whose boxes are the RGB dataset's
annotations. Each training sample is real with probability `data.real_fraction` (the paper's
f) and generated otherwise; an epoch has the length of the real split.

SLURM. As for training, `-m` hands the job to Hydra's submitit launcher (one GPU a job; a job
that reaches the time limit is requeued and resumes); a plain run never launches it.

Resuming. As for the diffusion model (harness.recipe_changes): a rerun resumes its run only
with the same recipe; fields declared `resumable` (where things are, how often to log, the
number of epochs, which may grow) may change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional

from omegaconf import MISSING

from ..config import (RGB_SOURCES, SOURCES, GeneralConfig, SplitConfig, SystemConfig,
                      command_defaults, hydra_settings, resumable, resumable_keys, setting)
from ..config import register as register_training

INPUTS = ("raw", "rgb")  # data.input: packed RAW reduced to 3 channels, or the sRGB image

# data=<name>: the real camera, whose h416 dataset holds the training and test splits.
CAMERAS = {"nod_nikon": "nod_nikon_h416", "nod_sony": "nod_sony_h416"}
# data/generated=<name>: the RGB dataset whose generated RAW joins training (default none).
GENERATED = {"cityscapes": "cityscapes_h416", "bdd": "bdd_h416"}


@dataclass
class RealConfig(SplitConfig):
    """Real images with boxes: a split of a prepared detection dataset (prepare nod --h416)."""

    split: str = setting("train", "its split, listed in <root>/<split>.txt")
    max_items: Optional[int] = setting(
        100, "train on this many images, drawn as `prepare subsample` draws them with "
             "general.seed (the paper's 100); null: all")


@dataclass
class GeneratedConfig:
    """Generated RAW with the boxes of the RGB dataset it was generated from."""

    root: Optional[str] = resumable(
        None, "the RGB dataset (prepare cityscapes / bdd): annotations/<split>.json, and rgb/ "
              "for data.input=rgb; null: no generated data (data.real_fraction must be 1)")
    split: str = setting("train", "its split")
    pred: Optional[str] = resumable(
        None, "sample.py's output folder for that split (holding pred/<id>.dng|.h5|.npy), or "
              "its pred/ folder itself; not read for data.input=rgb")
    prepare: Optional[str] = resumable(None, "the command that makes root, quoted when it is "
                                             "missing")
    name: Optional[str] = setting(None, "names the run directory; null: the RGB dataset's name")


@dataclass
class DataConfig:
    """Real images (data.real), generated ones (data.generated) mixed in with
    probability 1 - f, and the validation split (data.val)."""

    defaults: List[Any] = field(default_factory=list)
    input: str = setting("raw", "raw, or rgb for the RGB baseline (the sRGB images)")
    real_fraction: float = setting(1.0, "the paper's f: the probability that a training sample "
                                        "is real")
    real: RealConfig = MISSING
    generated: GeneratedConfig = field(default_factory=GeneratedConfig)
    val: SplitConfig = resumable(MISSING)
    stats_images: Optional[int] = setting(
        200, "images per source read to compute the normalisation statistics (per channel "
             "mean and standard deviation, stored in the checkpoint); null: all")
    flip: float = setting(0.5, "probability of a horizontal flip of a training sample")


@dataclass
class DetectorConfig:
    """Faster R-CNN (torchvision's) with a ResNet-50 FPN backbone, all stages
    trainable. Images are resized (keeping their aspect ratio) to the largest size whose
    shorter side is at most min_size and longer side at most max_size: NOD h416 and
    Cityscapes/BDD100K at 416 high go in at 640 x 416, 640 x 320 and 640 x 362."""

    min_size: int = setting(416, "the shorter side's limit, in pixels")
    max_size: int = setting(640, "the longer side's limit, in pixels")
    backbone_weights: Optional[str] = setting(
        None, "a torchvision ResNet-50 state dict (e.g. resnet50-0676ba61.pth, ImageNet "
              "IMAGENET1K_V1) to start the backbone from; null: random weights. Nothing is "
              "downloaded")


@dataclass
class DetectOptimConfig:
    """SGD with warm-up and step decay, the reference's recipe."""

    epochs: int = resumable(48, "epochs to train; may grow between reruns: training continues")
    batch_size: int = setting(8, "images per iteration, over all processes (DDP splits it)")
    lr: float = setting(0.02, "learning rate after the warm-up")
    momentum: float = setting(0.9, "SGD's momentum")
    nesterov: bool = setting(True, "Nesterov momentum")
    weight_decay: float = setting(1e-4, "weight decay, not on norms and biases")
    warmup_iters: int = setting(500, "iterations of linear warm-up from warmup_factor x lr")
    warmup_factor: float = setting(0.001, "the warm-up's first learning rate, a fraction of lr")
    milestones: List[int] = setting(default_factory=lambda: [32, 44],
                                    doc="epochs at which the learning rate is multiplied by "
                                        "gamma")
    gamma: float = setting(0.1, "the factor of each milestone")


@dataclass
class DetectGeneralConfig(GeneralConfig):
    """The seed, where detector runs are and what they are called, and their
    checkpoints."""

    out: str = resumable("runs/detect", "the folder of the run directories")
    run: Optional[str] = resumable(
        None, "the run directory's name; null: <real>-n<max_items>[-<generated>-f<f>][-rgb]"
              "-s<seed>. Rerunning a command resumes its run; another recipe needs a new name")
    save_every: int = resumable(1, "epochs between checkpoints (one is also written at the "
                                   "end)")


@dataclass
class DetectLogConfig:
    """How often training records and validates."""

    every: int = setting(20, "iterations between scalars (progress bar, TensorBoard, "
                             "stats.jsonl)")
    val_every: int = setting(1, "epochs between validations (COCO AP on data.val) and "
                                "previews")
    preview_images: int = setting(4, "validation images drawn with their boxes in previews")


@dataclass
class DetectTrainConfig:
    """`rawdiffusion detect train`: train the Faster R-CNN detector on real RAW images of NOD
    h416, with generated RAW (sample.py's Cityscapes-RAW or BDD100K-RAW) mixed in; rerun the
    same command to resume its run.

        rawdiffusion detect train data=nod_nikon detector.backbone_weights=resnet50.pth
        rawdiffusion detect train data=nod_nikon data/generated=bdd \\
            data.generated.pred=GEN/bdd_h416-train-ddim24-s0 data.real_fraction=0.05
        rawdiffusion detect train data=nod_nikon data.input=rgb            # the RGB baseline
        torchrun --nproc_per_node 4 -m rawdiffusion.cli detect train ...   # DDP
    """

    defaults: List[Any] = field(default_factory=lambda: command_defaults("data", "nod_nikon"))
    general: DetectGeneralConfig = field(default_factory=DetectGeneralConfig)
    data: DataConfig = MISSING
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    optim: DetectOptimConfig = field(default_factory=DetectOptimConfig)
    system: SystemConfig = resumable(default_factory=SystemConfig)
    log: DetectLogConfig = resumable(default_factory=DetectLogConfig)
    hydra: Any = field(default_factory=lambda: hydra_settings("detect_train",
                                                              "rawdiffusion detect train"))


@dataclass
class DetectEvalConfig(DetectTrainConfig):
    """`rawdiffusion detect eval`: COCO box AP of a trained detector on data.val. Takes the
    training command's overrides, which name the run (or checkpoint=PATH), and writes
    summary.json, pr_curves.png, detections.json and previews.png to `out`.

        rawdiffusion detect eval data=nod_nikon data/generated=bdd \\
            data.generated.pred=GEN/bdd_h416-train-ddim24-s0 data.real_fraction=0.05
        rawdiffusion detect eval checkpoint=runs/detect/x/checkpoint.pt data=nod_sony
    """

    checkpoint: Optional[str] = setting(None, "the detector checkpoint; null: "
                                              "<general.out>/<run>/checkpoint.pt")
    out: Optional[str] = setting(None, "the output folder; null: "
                                       "<run>/eval/<val dataset>-<split>")
    batch_size: int = setting(8, "images per forward pass")
    hydra: Any = field(default_factory=lambda: hydra_settings("detect_eval",
                                                              "rawdiffusion detect eval"))


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
            val=SplitConfig(root=root, prepare=prepare)))
    cs.store(group="data/generated", name="none", node=GeneratedConfig())
    for name, dataset in GENERATED.items():
        root = f"${{general.data_root}}/{dataset}"
        cs.store(group="data/generated", name=name, node=GeneratedConfig(
            root=root, prepare=f"{RGB_SOURCES[dataset]} --out {root}", name=dataset))


RESUMABLE = resumable_keys(DetectTrainConfig)
