"""COCO box AP (rawdiffusion.detection.ap) on cases whose answer is known by hand.

pycocotools interpolates precision at the 101 recall points 0, 0.01, ..., 1: the value at r is
the highest precision reached at any recall >= r, 0 where recall r is never reached; AP is the
mean of those 101 values (and over the 10 IoU thresholds 0.5:0.05:0.95). Its precision is
tp / (tp + fp + eps) with eps = 2.2e-16, so "1" comes out as 1 - 2e-16: compare with approx.
"""

import copy
import json

import pytest
from PIL import Image

from rawdiffusion.datasets.coco import coco_json
from rawdiffusion.detection.ap import box_ap, format_table, write_report

TIGHT = 1e-12


def detection(image_id, box, score):
    """A COCO result from a box [category_id, x0, y0, x1, y1]."""
    cat, x0, y0, x1, y1 = box
    return {"image_id": image_id, "category_id": cat, "bbox": [x0, y0, x1 - x0, y1 - y0],
            "score": score}


PERSON, CAR_A, CAR_B = [1, 10, 10, 40, 70], [3, 50, 40, 90, 70], [3, 5, 5, 25, 20]
BICYCLE = [2, 20, 30, 60, 60]


def test_perfect_detections_score_one():
    gt = coco_json([("a", 100, 80, [PERSON, CAR_A]), ("b", 100, 80, [BICYCLE, CAR_B])])
    dets = [detection(1, PERSON, 0.9), detection(1, CAR_A, 0.8),
            detection(2, BICYCLE, 0.7), detection(2, CAR_B, 0.6)]
    r = box_ap(gt, dets)
    for key in ("AP", "AP50", "AP75", "AR100"):
        assert r[key] == pytest.approx(1.0, abs=TIGHT)
    for name in ("person", "bicycle", "car"):
        assert r["per_class"][name]["AP"] == pytest.approx(1.0, abs=TIGHT)
    assert r["per_class"]["car"]["instances"] == 2
    assert (r["images"], r["detections"]) == (2, 4)
    # every box is under 32^2 px^2 but PERSON (30 x 60 = 1800): small and medium, no large
    assert r["APs"] == pytest.approx(1.0, abs=TIGHT) and r["APm"] == pytest.approx(1.0, abs=TIGHT)
    assert r["APl"] is None


def test_one_of_two_cars_found_is_51_of_101():
    # Recall reaches 0.5 at precision 1 and never more: the recall points 0, 0.01, ..., 0.50
    # (51 of 101) get precision 1, the other 50 get 0 -> AP = 51/101 = 0.50495, at every IoU.
    gt = coco_json([("a", 100, 80, [CAR_A, CAR_B])])
    r = box_ap(gt, [detection(1, CAR_A, 0.9)])
    car = r["per_class"]["car"]
    for key in ("AP", "AP50", "AP75"):
        assert car[key] == pytest.approx(51 / 101, abs=TIGHT)
    assert r["AP"] == pytest.approx(51 / 101, abs=TIGHT)
    assert r["AR100"] == pytest.approx(0.5)
    curve = r["curves"]["car"]
    assert len(curve["recall"]) == len(curve["precision"]) == len(curve["precision_mean"]) == 101
    assert curve["recall"][50] == pytest.approx(0.5)
    assert curve["precision"][:51] == pytest.approx([1.0] * 51, abs=TIGHT)
    assert curve["precision"][51:] == [0.0] * 50
    assert curve["precision_mean"] == pytest.approx(curve["precision"], abs=TIGHT)


def test_false_positive_ranked_first_halves_precision():
    # Ranked by score: FP (0.9) then TP (0.8). Raw (recall, precision): (0, 0), (1, 0.5). The
    # envelope lifts the first to 0.5 (max precision at recall >= 0), and searchsorted maps
    # recall point 0 to the first detection, points 0.01..1 to the second: all 101 values are
    # 0.5 -> AP50 = 0.5 exactly (up to eps), not 100/101 * 0.5 as skipping r = 0 would give.
    gt = coco_json([("a", 100, 80, [CAR_A])])
    elsewhere = [3, 0, 0, 20, 20]  # no overlap with CAR_A
    r = box_ap(gt, [detection(1, elsewhere, 0.9), detection(1, CAR_A, 0.8)])
    assert r["AP50"] == pytest.approx(0.5, abs=TIGHT)
    assert r["per_class"]["car"]["AP"] == pytest.approx(0.5, abs=TIGHT)
    assert r["curves"]["car"]["precision"] == pytest.approx([0.5] * 101, abs=TIGHT)


def test_iou_between_050_and_055_counts_only_at_050():
    # A 100 x 100 box shifted right by 30: IoU = 70*100 / (2*100*100 - 70*100) = 7/13 = 0.538,
    # a match at IoU 0.5 only: AP50 = 1, AP at the other 9 thresholds 0 -> AP = 0.1, AP75 = 0.
    gt = coco_json([("a", 200, 120, [[1, 0, 0, 100, 100]])])
    r = box_ap(gt, [detection(1, [1, 30, 0, 130, 100], 0.9)])
    assert r["AP50"] == pytest.approx(1.0, abs=TIGHT)
    assert r["AP75"] == 0.0
    assert r["AP"] == pytest.approx(0.1, abs=TIGHT)
    curve = r["curves"]["person"]
    assert curve["precision_mean"] == pytest.approx([0.1] * 101, abs=TIGHT)


def test_class_without_ground_truth_is_none_and_left_out_of_the_mean():
    # person 1.0, car 51/101, bicycle no GT (its detection cannot count against anything):
    # AP = (1 + 51/101) / 2 = 76/101.
    gt = coco_json([("a", 100, 80, [PERSON, CAR_A, CAR_B])])
    dets = [detection(1, PERSON, 0.9), detection(1, CAR_A, 0.8), detection(1, BICYCLE, 0.95)]
    r = box_ap(gt, dets)
    assert r["per_class"]["bicycle"] is None
    assert r["per_class"]["person"]["AP"] == pytest.approx(1.0, abs=TIGHT)
    assert r["AP"] == pytest.approx(76 / 101, abs=TIGHT)
    assert r["curves"]["bicycle"]["precision"] == [0.0] * 101


def test_no_detections_scores_zero_where_there_is_ground_truth():
    gt = coco_json([("a", 100, 80, [PERSON, CAR_A]), ("b", 100, 80, [])])
    r = box_ap(gt, [])
    assert (r["AP"], r["AP50"], r["AP75"], r["AR100"]) == (0.0, 0.0, 0.0, 0.0)
    assert r["per_class"]["person"] == {"AP": 0.0, "AP50": 0.0, "AP75": 0.0, "instances": 1}
    assert r["per_class"]["bicycle"] is None
    assert r["APl"] is None  # no GT box over 96^2 px^2
    assert all(v == 0.0 for c in r["curves"].values()
               for v in c["precision"] + c["precision_mean"])
    assert r["detections"] == 0


def test_inputs_are_left_unchanged():
    gt = coco_json([("a", 100, 80, [CAR_A, CAR_B])])
    dets = [detection(1, CAR_A, 0.9)]
    gt_copy, dets_copy = copy.deepcopy(gt), copy.deepcopy(dets)
    box_ap(gt, dets)
    assert (gt, dets) == (gt_copy, dets_copy)


def test_unknown_image_id_is_named():
    gt = coco_json([("a", 100, 80, [CAR_A])])
    with pytest.raises(ValueError, match="image_id 7"):
        box_ap(gt, [detection(1, CAR_A, 0.9), detection(7, CAR_A, 0.5)])


def test_unknown_category_id_is_named():
    gt = coco_json([("a", 100, 80, [CAR_A])])
    with pytest.raises(ValueError, match="category_id 0"):
        box_ap(gt, [detection(1, [0, 50, 40, 90, 70], 0.9)])


def test_report_and_table(tmp_path):
    gt = coco_json([("a", 100, 80, [PERSON, CAR_A, CAR_B])])
    r = box_ap(gt, [detection(1, PERSON, 0.9), detection(1, CAR_A, 0.8)])
    out = tmp_path / "report" / "nod"
    write_report(out, r, "test detector on NOD")
    assert json.loads((out / "summary.json").read_text()) == r
    with Image.open(out / "pr_curves.png") as image:
        assert image.format == "PNG"
        width, height = image.size
    assert 600 <= width <= 2000 and 250 <= height <= 800 and width > height
    assert sorted(p.name for p in out.iterdir()) == ["pr_curves.png", "summary.json"]
    table = format_table(r)
    for name in ("person", "bicycle", "car"):
        assert name in table
    assert "75.2" in table  # overall AP (1 + 51/101) / 2 = 75.25 %, car 50.5 %
    assert "50.5" in table
    assert table.splitlines()[2].split()[1:] == ["100.0", "100.0", "100.0", "1"]
    assert table.splitlines()[3].split()[1:] == ["-", "-", "-", "0"]
