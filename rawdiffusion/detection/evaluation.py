"""Evaluating a detector: predictions on a split, COCO box AP, previews with boxes, and the
`rawdiffusion detect eval` command.

`detect eval` takes the training command's overrides (they name the run) or checkpoint=PATH,
and writes to <run>/eval/<val dataset>-<split>/ (or out=DIR):

    summary.json      AP, AP50, AP75, APs/m/l, AR100, per class AP and the PR curves (ap.py)
    pr_curves.png     precision-recall per class at IoU 0.5 and averaged over 0.5:0.95
    detections.json   the COCO results (image_id, category_id, bbox [x, y, w, h], score)
    previews.png      the first images with ground truth (green) and detections (red)
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..atomic import atomic_output, make_folder
from ..cpus import default_workers, set_threads
from ..datasets.coco import CATEGORIES
from ..datasets.errors import DatasetError
from ..datasets.subsample import restrict
from ..errors import SetupError, UserError
from ..harness import CHECKPOINT
from ..images import write_png
from ..processes import processes
from ..runs import detector_run_dir, open_split
from . import ap
from .data import ChannelStats, Item, checked_image, preview_rgb, read_annotations, \
    to_detector, val_items

log = logging.getLogger(__name__)

FORMAT = "rawdiffusion-detector/1"
PREVIEW_SCORE = 0.5  # detections drawn in previews score at least this


class _Images(torch.utils.data.Dataset):
    """Items loaded where a DataLoader puts it: (detector input (3, H, W), [0, 1] image)."""

    def __init__(self, items: list[Item], stats: ChannelStats):
        self.items, self.stats = items, stats

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        try:  # a worker's exception would reach the main process as a traceback
            x = checked_image(self.items[i])
        except (UserError, OSError) as e:
            return None, str(e)
        return to_detector(x, self.stats), x


@torch.no_grad()
def predict(model, items: list[Item], stats: ChannelStats, device, batch_size: int = 8,
            workers: int = 0, keep_images: int = 0, progress: bool = False, bf16: bool = True):
    """Detections of every item: [{"boxes": (n, 4), "scores": (n,), "labels": (n,)}] in the
    items' pixels, on CPU; and the [0, 1] images of the first `keep_images` (for previews).
    bf16: bf16 autocast on CUDA (system.bf16; a CPU stays float32)."""
    model.eval()
    loader = torch.utils.data.DataLoader(_Images(items, stats), batch_size=batch_size,
                                         num_workers=workers, collate_fn=list)
    outputs, kept = [], []
    with tqdm(total=len(items), unit="image", desc="detect", disable=not progress,
              dynamic_ncols=True) as bar:
        for batch in loader:
            problem = next((x for inputs, x in batch if inputs is None), None)
            if problem is not None:
                raise DatasetError(problem, None)
            images = [x.to(device) for x, _ in batch]
            with torch.autocast("cuda", torch.bfloat16, enabled=device.type == "cuda" and bf16):
                found = model(images)
            outputs += [{k: v.float().cpu() if v.is_floating_point() else v.cpu()
                         for k, v in o.items()} for o in found]
            kept += [x for _, x in batch][:max(0, keep_images - len(kept))]
            bar.update(len(batch))
    return outputs, kept


def ground_truth(items: list[Item], root: Path, split: str) -> tuple[dict, dict[str, int]]:
    """The COCO document of the evaluated items (the split's annotations restricted to them)
    and {item id: COCO image id}."""
    doc, _ = read_annotations(root, split)
    doc = restrict(doc, {item.id for item in items})
    return doc, {im["file_name"]: im["id"] for im in doc["images"]}


def coco_results(items: list[Item], outputs: list[dict], image_ids: dict[str, int]) -> list:
    """Detections as COCO results: bbox [x, y, w, h] in pixels, rounded to 0.01."""
    results = []
    for item, o in zip(items, outputs):
        for (x0, y0, x1, y1), score, label in zip(o["boxes"].tolist(), o["scores"].tolist(),
                                                   o["labels"].tolist()):
            results.append({"image_id": image_ids[item.id], "category_id": int(label),
                            "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2),
                                     round(y1 - y0, 2)], "score": round(score, 5)})
    return results


def evaluate(model, items: list[Item], stats: ChannelStats, root: Path, split: str, device,
             batch_size: int = 8, workers: int = 0, keep_images: int = 0,
             progress: bool = False, bf16: bool = True) -> tuple[dict, list, list, list]:
    """COCO box AP of `model` on `items` (of `split` of the dataset at `root`): (ap.box_ap's
    result, the COCO results, the outputs and the kept [0, 1] images of `predict`)."""
    outputs, images = predict(model, items, stats, device, batch_size, workers, keep_images,
                              progress, bf16)
    doc, image_ids = ground_truth(items, root, split)
    results = coco_results(items, outputs, image_ids)
    return ap.box_ap(doc, results), results, outputs, images


def draw_boxes(image: np.ndarray, item: Item, output: dict | None) -> np.ndarray:
    """(H, W, 3) uint8 with the item's ground-truth boxes in green and the detections scoring
    at least PREVIEW_SCORE in red, labelled with class and score."""
    from PIL import Image, ImageDraw

    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    for box, label in zip(item.boxes.tolist(), item.labels.tolist()):
        draw.rectangle(box, outline=(0, 255, 0), width=2)
        draw.text((box[0] + 2, box[1] + 1), CATEGORIES[label - 1], fill=(0, 255, 0))
    if output is not None:
        for box, score, label in zip(output["boxes"].tolist(), output["scores"].tolist(),
                                     output["labels"].tolist()):
            if score >= PREVIEW_SCORE:
                draw.rectangle(box, outline=(255, 40, 40), width=2)
                draw.text((box[0] + 2, box[3] - 11), f"{CATEGORIES[label - 1]} {score:.2f}",
                          fill=(255, 40, 40))
    return np.asarray(canvas)


def write_previews(path: Path, items: list[Item], outputs: list[dict], images: list) -> None:
    """The kept images one below the other, drawn with their boxes (draw_boxes)."""
    if not images:
        return
    rows = [draw_boxes(preview_rgb(x), item, o) for x, item, o in zip(images, items, outputs)]
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows]
    write_png(path, np.concatenate(rows, axis=0))


# ----------------------------------------------------------------------------- checkpoints

def read_checkpoint(path) -> dict:
    """A detector checkpoint's dict (torch.load with weights_only: nothing in it is executed).
    Raises SetupError naming the file when it is missing, unreadable or not a detector's."""
    path = Path(path)
    if not path.is_file():
        raise SetupError(f"{path}: no such detector checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # cut, damaged, not a torch file, a pickle of code
        raise SetupError(f"{path}: not a readable detector checkpoint ({type(e).__name__}); "
                         "delete it to start the run again") from None
    keys = ("format", "iteration", "epoch", "config", "stats", "model")
    if not isinstance(state, dict) or state.get("format") != FORMAT or \
            not all(k in state for k in keys):
        raise SetupError(f"{path}: not a detector checkpoint (made by `rawdiffusion detect "
                         "train`)")
    return state


def load_detector(path, device) -> tuple[torch.nn.Module, dict]:
    """A detector checkpoint -> (the model on `device`, in eval mode; the checkpoint's dict).
    Raises SetupError naming the file when it is not a detector checkpoint."""
    from .model import build_detector

    state = read_checkpoint(path)
    d = state["config"]["detector"]
    model = build_detector(d["min_size"], d["max_size"])  # the weights follow
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise SetupError(f"{path}: weights that do not fit the detector "
                         f"({str(e).splitlines()[0]})") from None
    return model.to(device).eval(), state


def stats_of(state: dict) -> ChannelStats:
    return ChannelStats(tuple(state["stats"]["mean"]), tuple(state["stats"]["std"]))


# ----------------------------------------------------------------------------- detect eval

def main(cfg) -> dict:
    """Evaluate the configured run's checkpoint (or `checkpoint`) on data.val."""
    set_threads(cfg.system.threads, "system.threads")
    checkpoint = Path(cfg.checkpoint) if cfg.checkpoint else detector_run_dir(cfg) / CHECKPOINT
    if cfg.checkpoint and not checkpoint.is_file():
        raise SetupError(f"checkpoint={checkpoint}: "
                         + ("a folder, not a checkpoint file" if checkpoint.is_dir() else
                            "no such file"))
    if not checkpoint.is_file():
        raise SetupError(f"no detector checkpoint at {checkpoint}: train this configuration "
                         "first (`rawdiffusion detect train` with the same overrides) or give "
                         "checkpoint=PATH")
    workers = default_workers() if cfg.system.workers is None else cfg.system.workers
    if cfg.batch_size < 1 or workers < 0:
        raise SetupError("batch_size must be >= 1 and system.workers >= 0")
    val = open_split(cfg.data.val, "evaluation", paired=False)
    with processes() as device:
        model, state = load_detector(checkpoint, device)
        items = val_items(val, cfg.data.val.split, state["config"]["data"]["input"])
        if not items:
            raise SetupError(f"{val.root}: the {cfg.data.val.split} split has no annotated image")
        out = Path(cfg.out) if cfg.out else checkpoint.parent / "eval" / (
            f"{val.root.name}-{cfg.data.val.split}")
        make_folder(out, f"out={out}")  # before the work
        log.info("evaluating %s (epoch %d) on %d images of %s (%s)", checkpoint, state["epoch"],
                 len(items), val.root, cfg.data.val.split)
        result, results, outputs, images = evaluate(
            model, items, stats_of(state), val.root, cfg.data.val.split, device, cfg.batch_size,
            workers, cfg.log.preview_images, progress=True, bf16=cfg.system.bf16)
        ap.write_report(out, result, f"{checkpoint.parent.name} on {val.root.name} "
                                     f"({cfg.data.val.split})")
        with atomic_output(out / "detections.json") as tmp:
            tmp.write_text(json.dumps(results))
        write_previews(out / "previews.png", items, outputs, images)
        log.info("%s\n%s", out / "summary.json", ap.format_table(result))
        return result

