"""COCO box AP for the person / bicycle / car detector, and its report (summary.json, PR curves).

Source: the COCO detection evaluation (cocodataset.org/#detection-eval), computed by pycocotools'
COCOeval with its defaults: IoU thresholds 0.50:0.05:0.95 (10), 101 recall points 0:0.01:1
at which precision is interpolated (the precision envelope, max over recall >= r), area ranges
all / small (< 32^2 px^2) / medium (32^2..96^2) / large (> 96^2) by the ground-truth `area`,
and at most 1 / 10 / 100 detections per image. AP values are fractions in [0, 1].
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
from pathlib import Path

import numpy as np

from ..atomic import atomic_output
from ..datasets.coco import CATEGORIES, category_id

# COCOeval.stats[i] for i in 0..5 and 8 (AR at 100 detections per image, all areas)
_STATS = {"AP": 0, "AP50": 1, "AP75": 2, "APs": 3, "APm": 4, "APl": 5, "AR100": 8}


def box_ap(ground_truth: dict, detections: list[dict]) -> dict:
    """COCO box AP of `detections` against `ground_truth`.

    ground_truth: a COCO detection document (`datasets.coco.coco_json`): images with int ids,
    annotations with bbox [x, y, w, h] in pixels, area (px^2), iscrowd, and categories.
    detections: COCO results, [{"image_id", "category_id", "bbox": [x, y, w, h], "score"}], any
    number including none. Neither argument is modified.

    Returns a JSON-serialisable dict:
      AP, AP50, AP75, APs, APm, APl, AR100: COCOeval.stats 0..5 and 8, fractions in [0, 1], the
        mean over the classes that have ground truth (in that area range); None where none has.
      per_class: {name: {AP, AP50, AP75, instances}}, from the precision array [T, R, K, A, M]
        at area "all", 100 detections: the mean over IoU thresholds (AP) or at IoU 0.5 / 0.75
        of the 101 interpolated precisions; None for a class without ground truth. instances:
        the number of non-crowd ground-truth boxes of the class.
      curves: {name: {recall: the 101 recall points, precision: the interpolated precision at
        IoU 0.5, precision_mean: its mean over the 10 IoU thresholds}}, 101 values each; 0 where
        the recall is never reached and for a class without ground truth.
      images: the number of ground-truth images; detections: the number of detections.

    Raises ValueError for a detection whose image_id is not in the ground truth or whose
    category_id is not one of its categories (pycocotools would stop on the first with a bare
    AssertionError and silently ignore the second).
    """
    detections = _checked(ground_truth, detections)
    evaluation = _evaluate(ground_truth, detections)
    precision = evaluation.eval["precision"]  # [T IoU, R recall, K class, A area, M maxDets]
    params = evaluation.params
    m = params.maxDets.index(100)
    stats = {name: _fraction(evaluation.stats[i]) for name, i in _STATS.items()}
    instances = _instances(ground_truth)
    per_class, curves = {}, {}
    for name in CATEGORIES:
        cid = category_id(name)
        if cid in params.catIds:
            p = precision[:, :, params.catIds.index(cid), 0, m]  # [T, R]
        else:
            p = np.full(precision.shape[:2], -1.0)  # absent from the document: as without GT
        per_class[name] = _class_ap(p, params.iouThrs) if (p > -1).any() else None
        if per_class[name] is not None:
            per_class[name]["instances"] = instances[cid]
        p = p.clip(min=0)  # -1 marks a class without ground truth
        curves[name] = {"recall": [float(r) for r in params.recThrs],
                        "precision": [float(v) for v in p[_iou_index(params.iouThrs, 0.5)]],
                        "precision_mean": [float(v) for v in p.mean(axis=0)]}
    return {**stats, "per_class": per_class, "curves": curves,
            "images": len(ground_truth["images"]), "detections": len(detections)}


def _checked(ground_truth: dict, detections: list[dict]) -> list[dict]:
    """Copies of the detections with plain int / float fields (loadRes writes into them)."""
    image_ids = {int(image["id"]) for image in ground_truth["images"]}
    category_ids = {int(c["id"]) for c in ground_truth["categories"]}
    out = []
    for d in detections:
        image_id, cid = int(d["image_id"]), int(d["category_id"])
        if image_id not in image_ids:
            raise ValueError(f"detection for image_id {image_id}, which is not in the ground "
                             f"truth ({len(image_ids)} images)")
        if cid not in category_ids:
            raise ValueError(f"detection with category_id {cid}, not one of the ground truth's "
                             f"{sorted(category_ids)}")
        out.append({"image_id": image_id, "category_id": cid,
                    "bbox": [float(v) for v in d["bbox"]], "score": float(d["score"])})
    return out


def _evaluate(ground_truth: dict, detections: list[dict]):
    """A COCOeval (bbox) after evaluate, accumulate and summarize, its prints swallowed."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = copy.deepcopy(ground_truth)  # COCOeval marks its annotations "ignore"
        gt.createIndex()
        if detections:
            dt = gt.loadRes(detections)
        else:  # loadRes reads detections[0]; no results is a document with no annotations
            dt = COCO()
            dt.dataset = {"images": list(gt.dataset["images"]), "annotations": [],
                          "categories": copy.deepcopy(gt.dataset["categories"])}
            dt.createIndex()
        evaluation = COCOeval(gt, dt, iouType="bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return evaluation


def _fraction(value) -> float | None:
    return None if value == -1 else float(value)  # pycocotools' -1: no ground truth to score


def _iou_index(iou_thresholds, iou: float) -> int:
    return int(abs(iou_thresholds - iou).argmin())  # linspace: 0.75 is not exactly 0.75


def _class_ap(precision, iou_thresholds) -> dict:
    """precision [T, R] of one class with ground truth -> AP (0.5:0.95), AP50, AP75."""
    def mean(p):
        return float(p[p > -1].mean())
    return {"AP": mean(precision),
            "AP50": mean(precision[_iou_index(iou_thresholds, 0.5)]),
            "AP75": mean(precision[_iou_index(iou_thresholds, 0.75)])}


def _instances(ground_truth: dict) -> dict[int, int]:
    counts = {category_id(name): 0 for name in CATEGORIES}
    for a in ground_truth["annotations"]:
        if not a.get("iscrowd", 0) and int(a["category_id"]) in counts:
            counts[int(a["category_id"])] += 1
    return counts


def write_report(out, result: dict, title: str) -> None:
    """Write OUT/summary.json (`result`, a `box_ap` dict) and OUT/pr_curves.png, each atomically.

    The figure has one panel per class: precision against recall at IoU 0.5 and the mean over
    IoU 0.5:0.95, the class AP (0.5:0.95, percent) in the panel title, `title` above them.
    OUT is created if needed; raises OutputError (rawdiffusion.atomic) if a file blocks it.
    """
    out = Path(out)
    with atomic_output(out / "summary.json") as tmp:
        tmp.write_text(json.dumps(result, indent=1) + "\n")
    figure = _pr_figure(result, title)
    with atomic_output(out / "pr_curves.png") as tmp:
        figure.savefig(tmp, format="png")


def _pr_figure(result: dict, title: str):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4 * len(CATEGORIES), 4.2), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    for ax, name in zip(figure.subplots(1, len(CATEGORIES)), CATEGORIES):
        curve, ap = result["curves"][name], result["per_class"][name]
        ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", ylabel="precision",
               title=f"{name}: AP {_percent(ap['AP'])} %" if ap else f"{name}: no ground truth")
        ax.grid(alpha=0.3)
        if ap:  # a class without ground truth has no curve, not a curve at 0
            ax.plot(curve["recall"], curve["precision"], label="IoU 0.5")
            ax.plot(curve["recall"], curve["precision_mean"], label="mean over IoU 0.5:0.95")
            ax.legend(loc="lower left")
    figure.suptitle(title)
    return figure


def format_table(result: dict) -> str:
    """A plain-text table of a `box_ap` result: overall and per class, AP in percent."""
    lines = [f"{'':10}{'AP':>7}{'AP50':>7}{'AP75':>7}{'instances':>11}",
             f"{'all':10}" + "".join(f"{_percent(result[k]):>7}" for k in ("AP", "AP50", "AP75"))
             + f"{sum((c or {}).get('instances', 0) for c in result['per_class'].values()):>11}"]
    for name, ap in result["per_class"].items():
        values = [_percent(ap and ap[k]) for k in ("AP", "AP50", "AP75")]
        lines.append(f"{name:10}" + "".join(f"{v:>7}" for v in values)
                     + f"{ap['instances'] if ap else 0:>11}")
    return "\n".join(lines)


def _percent(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}"
