"""The detector: torchvision's Faster R-CNN with a ResNet-50 FPN backbone (Ren et al. 2015, Lin
et al. 2017), 3 classes, all backbone stages trainable, as the reference's mmdetection config.

Input. Images arrive normalised (data.to_detector), so torchvision's own normalisation is the
identity (image_mean 0, image_std 1); its transform resizes each image, keeping the aspect
ratio, to the largest size within min_size x max_size, and maps the boxes back to the image.

Backbone initialisation. Nothing is downloaded: `backbone_weights` names a local torchvision
ResNet-50 state dict (e.g. the IMAGENET1K_V1 file resnet50-0676ba61.pth), loaded strictly but
for the classifier (fc). With it, batch norms are frozen (FrozenBatchNorm2d, the ImageNet
statistics), as in torchvision's and mmdetection's detectors; without it, the backbone starts
from random weights with trainable batch norms (torchvision's choice for an untrained backbone).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from ..datasets.coco import CATEGORIES
from ..errors import SetupError

log = logging.getLogger(__name__)


def build_detector(min_size: int, max_size: int, backbone_weights: str | None = None):
    """A Faster R-CNN R50-FPN for the classes of datasets.coco.CATEGORIES (labels 1..3, 0 is
    background). Raises SetupError when `backbone_weights` cannot be read or is not a ResNet-50
    state dict."""
    from torchvision.models import resnet50
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.backbone_utils import BackboneWithFPN
    from torchvision.ops import FrozenBatchNorm2d

    if backbone_weights is None:
        body = resnet50(weights=None)
    else:
        body = resnet50(weights=None, norm_layer=FrozenBatchNorm2d)
        load_backbone(body, Path(backbone_weights))
    # All stages trainable (the reference's frozen_stages=-1), FPN on the outputs of stages
    # 2..5 (C2..C5), an extra max-pooled level for the RPN, as fasterrcnn_resnet50_fpn builds it.
    stages = {"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"}
    widths = [256, 512, 1024, 2048]
    backbone = BackboneWithFPN(body, stages, widths, out_channels=256)
    return FasterRCNN(backbone, num_classes=len(CATEGORIES) + 1, min_size=min_size,
                      max_size=max_size, image_mean=[0.0, 0.0, 0.0], image_std=[1.0, 1.0, 1.0])


def check_backbone(path: Path) -> None:
    """Raises SetupError unless `path` holds a finite torchvision ResNet-50 state dict (what
    build_detector will load), before any other work."""
    from torchvision.models import resnet50
    from torchvision.ops import FrozenBatchNorm2d

    load_backbone(resnet50(weights=None, norm_layer=FrozenBatchNorm2d), path)


def load_backbone(body: torch.nn.Module, path: Path) -> None:
    """Load a torchvision ResNet-50 state dict (its fc layer is ignored) into `body`. Raises
    SetupError naming the file when it is missing, unreadable, of another network or not
    finite."""
    if not path.is_file():
        what = "a folder, not a file" if path.is_dir() else "no such file"
        raise SetupError(f"detector.backbone_weights={path}: {what} (a torchvision ResNet-50 "
                         "state dict, e.g. resnet50-0676ba61.pth; nothing is downloaded)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # not a torch file, a pickle of code, a damaged archive
        raise SetupError(f"{path}: not a readable state dict ({type(e).__name__}; torch.load "
                         "reads plain tensor files only)") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise SetupError(f"{path}: holds a {type(state).__name__}, not a state dict")
    state = {k: v for k, v in state.items() if not str(k).startswith("fc.")}
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SetupError(f"{path}: not a state dict (it holds values that are not tensors)")
    try:
        body.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shapes that differ
        raise SetupError(f"{path}: not a ResNet-50 state dict ({str(e).splitlines()[-1].strip()})"
                         ) from None
    expected = {k for k in body.state_dict() if not k.startswith("fc.")}
    missing = sorted(expected - set(state))
    if missing:
        raise SetupError(f"{path}: not a torchvision ResNet-50 state dict ({len(missing)} of its "
                         f"{len(expected)} tensors missing, e.g. {missing[0]})")
    bad = next((k for k, v in state.items() if v.is_floating_point() and
                not bool(torch.isfinite(v).all())), None)
    if bad is not None:
        raise SetupError(f"{path}: tensor {bad} holds values that are not finite")
    log.info("backbone initialised from %s", path)


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """SGD parameter groups: weight decay on weights of convolutions and linear layers, none on
    norms and biases (the reference's norm_decay_mult=0, bias_decay_mult=0)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]
