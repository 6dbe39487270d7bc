"""`rawdiffusion prepare fivek|nod|cityscapes|bdd|subsample` on small fake copies of the public
datasets in their real layouts (tests/fake_trees.py)."""

import json
import shutil

import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from fake_trees import (BDD_SIZE, CITYSCAPES_OBJECTS, CITYSCAPES_SIZE, MOSAIC, NOD_ANNOTATED,
                        bdd_tree, cityscapes_tree, fivek_tree, nod_tree, truncate)
from rawdiffusion.cli import main
from rawdiffusion.datasets.bdd import prepare_bdd
from rawdiffusion.datasets.cityscapes import prepare_cityscapes
from rawdiffusion.datasets.fivek import prepare_fivek
from rawdiffusion.datasets.layout import PreparedDataset
from rawdiffusion.datasets.nod import prepare_nod
from rawdiffusion.datasets.subsample import prepare_subsample
from rawdiffusion.errors import UserError


def stamps(folder):
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def image_split(ds, split):
    return [i for i, e in ds.images.items() if e["split"] == split]


def check_samples(ds, size=None):
    """Every listed sample loads, RAW and RGB of one size: `size`, or multiples of 32."""
    for split in ds.description["splits"]:
        for sample_id in ds.split(split):
            s = ds.load(sample_id)
            h, w = s.rgb.shape[:2]
            if size:
                assert (h, w) == size
            else:
                assert h % 32 == 0 and w % 32 == 0
            if ds.kind == "paired":
                assert s.raw.shape == (4, h, w) and s.raw.dtype == np.uint16
            else:
                assert s.raw is None


def coco(out, split):
    return json.loads((out / "annotations" / f"{split}.json").read_text())


def boxes_by_file(doc):
    names = {im["id"]: im["file_name"] for im in doc["images"]}
    found = {}
    for a in doc["annotations"]:
        found.setdefault(names[a["image_id"]], []).append((a["category_id"], a["bbox"]))
    return found


def test_coco_categories_are_person_bicycle_car(tmp_path):
    from rawdiffusion.datasets.coco import coco_json

    doc = coco_json([("a", 10, 20, [[2, 1.0, 2.0, 4.0, 6.0]])])
    assert [(c["id"], c["name"]) for c in doc["categories"]] == [(1, "person"), (2, "bicycle"),
                                                                 (3, "car")]
    assert doc["annotations"][0]["bbox"] == [1.0, 2.0, 3.0, 4.0]
    assert doc["annotations"][0]["area"] == 12.0


# ----------------------------------------------------------------------------- FiveK

@pytest.fixture(scope="module")
def fivek(tmp_path_factory):
    """A FiveK tree and its prepared Nikon dataset (shared: several tests read it)."""
    tmp = tmp_path_factory.mktemp("fivek")
    files = fivek_tree(tmp / "fivek")
    out = tmp / "fivek_nikon"
    description, failures = prepare_fivek(tmp / "fivek", out, "nikon")
    assert failures == []
    return files, out, description


def test_fivek_selects_the_camera_and_splits_like_scikit_learn(fivek):
    files, out, description = fivek
    ds = PreparedDataset(out)
    assert ds.description["name"] == "fivek_nikon" and ds.kind == "paired"
    nikon = [str(p) for p in files["nikon"]]  # sorted by path, as the reference sorts them
    train, test = train_test_split(nikon, test_size=0.15, random_state=2817)
    assert [ds.images[i]["source"] for i in image_split(ds, "test")] == test
    assert [ds.images[i]["source"] for i in image_split(ds, "train")] == train
    assert len(ds.split("train")) == 9 * len(train) and len(ds.split("test")) == 9 * len(test)
    entry = ds.images[files["nikon"][0].stem]
    assert entry["model"] == "NIKON D700" and entry["black_level"] == [0, 0, 0, 0]
    assert entry["white_level"] == 16383 and entry["sample_size"] == [32, 32]
    assert (entry["width"], entry["height"]) == (MOSAIC[1], MOSAIC[0])
    check_samples(ds)


def test_fivek_canon_excludes_the_mark_ii_and_records_its_own_levels(tmp_path):
    files = fivek_tree(tmp_path / "fivek", {"nikon": 1, "canon": 3, "other": 2})
    description, failures = prepare_fivek(tmp_path / "fivek", tmp_path / "out", "canon")
    assert failures == []
    ds = PreparedDataset(tmp_path / "out")
    assert sorted(e["source"] for e in ds.images.values()) == [str(p) for p in files["canon"]]
    assert {e["model"] for e in ds.images.values()} == {"Canon EOS 5D"}
    for entry in ds.images.values():
        assert entry["black_level"] == [127] * 4 and entry["white_level"] == 4095
    check_samples(ds)


def test_fivek_bad_files_are_reported_and_skipped(tmp_path):
    files = fivek_tree(tmp_path / "fivek", {"nikon": 4, "canon": 1, "other": 0})
    truncate(files["nikon"][1])
    junk = tmp_path / "fivek" / "raw_photos" / "HQa1to700" / "photos" / "a0999-junk.dng"
    junk.write_bytes(b"not a DNG at all")
    description, failures = prepare_fivek(tmp_path / "fivek", tmp_path / "out", "nikon")
    reasons = {f.item: f.reason for f in failures}
    assert set(reasons) == {str(files["nikon"][1]), str(junk)}
    assert "truncated or corrupt" in reasons[str(files["nikon"][1])]
    assert "not a readable DNG" in reasons[str(junk)]
    ds = PreparedDataset(tmp_path / "out")
    assert sorted(ds.images) == sorted(p.stem for i, p in enumerate(files["nikon"]) if i != 1)
    assert not list((tmp_path / "out").rglob(f"{files['nikon'][1].stem}*"))


def test_fivek_rerun_leaves_finished_work_alone(fivek, tmp_path):
    files, _, _ = fivek
    root = files["nikon"][0].parents[3]
    out = tmp_path / "out"
    prepare_fivek(root, out, "nikon")
    sample = next((out / "raw").iterdir())
    sample.write_bytes(b"sentinel")  # a rerun must not redo finished images
    before = {p: t for p, t in stamps(out).items() if p.parent.name in ("raw", "rgb", "meta")}
    description, failures = prepare_fivek(root, out, "nikon")
    assert failures == [] and sample.read_bytes() == b"sentinel"
    after = stamps(out)
    assert all(after[p] == t for p, t in before.items())
    assert PreparedDataset(out).description["images"] == description["images"]


def test_fivek_missing_layout_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "fivek").mkdir()
    code = main(["prepare", "fivek", "--root", str(tmp_path / "fivek"), "--camera", "nikon",
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and f"{tmp_path / 'fivek'}: no raw_photos folder" in err
    assert "raw_photos/HQa*/photos/*.dng" in err


# ----------------------------------------------------------------------------- subsample

def test_subsample_draws_like_the_reference_and_reads_through_its_parent(fivek, tmp_path):
    _, out, _ = fivek
    ds = PreparedDataset(out)
    train = sorted(image_split(ds, "train"))
    picks = {}
    for seed in (0, 1, 0):
        sub = tmp_path / f"sub{seed}"
        description = prepare_subsample(out, sub, max_items=2, seed=seed)
        s = PreparedDataset(sub)
        chosen = image_split(s, "train")
        # the reference (fivek_subsample.py): default_rng(seed).permutation(sorted ids)[:n]
        assert sorted(chosen) == sorted(np.random.default_rng(seed).permutation(train)[:2])
        picks.setdefault(seed, set(chosen))
        assert set(chosen) == picks[seed]  # the same seed draws the same images
        assert s.split("train") == [x for x in ds.split("train")
                                    if ds._image_of[x] in set(chosen)]
        assert len(s.split("train")) == 18 and s.split("test") == ds.split("test")
        assert image_split(s, "test") == image_split(ds, "test")
        assert description["made_by"]["parent_train_samples"] == len(ds.split("train"))
        assert s.data_root == out.resolve() and not (sub / "raw").exists()
        sample = s.split("train")[0]
        np.testing.assert_array_equal(s.load(sample).raw, ds.load(sample).raw)
        np.testing.assert_array_equal(s.load(sample).rgb, ds.load(sample).rgb)
    assert picks[0] != picks[1]
    # pinned: the reference's draws (numpy's RandomState would pick others)
    assert train == ["a0009-x_DSC0009", "a0701-x_DSC0001", "a0704-x_DSC0004",
                     "a0710-x_DSC0010", "a1411-x_DSC0011"]
    assert picks == {0: {"a0704-x_DSC0004", "a1411-x_DSC0011"},
                     1: {"a1411-x_DSC0011", "a0009-x_DSC0009"}}
    with pytest.raises(UserError, match="has 5 training images"):
        prepare_subsample(out, tmp_path / "big", max_items=6, seed=0)
    with pytest.raises(UserError, match="another folder"):
        prepare_subsample(out, out, max_items=1, seed=0)


# ----------------------------------------------------------------------------- NOD

def test_nod_patches_follow_the_annotation_splits(tmp_path):
    ids = nod_tree(tmp_path / "NOD", "nikon")
    description, failures = prepare_nod(tmp_path / "NOD", tmp_path / "out", "nikon")
    assert failures == []
    ds = PreparedDataset(tmp_path / "out")
    assert ds.description["name"] == "nod_nikon"
    assert image_split(ds, "train") == ids["train"] and image_split(ds, "test") == ids["test"]
    assert len(ds.split("train")) == 9 * len(ids["train"])
    entry = ds.images[ids["train"][0]]
    assert entry["model"] == "NIKON D750" and entry["black_level"] == [600] * 4
    assert entry["source"].endswith(f"RAW/Nikon/{ids['train'][0]}.NEF")
    assert not (tmp_path / "out" / "annotations").exists()
    check_samples(ds)


def test_nod_h416_resizes_and_scales_boxes(tmp_path):
    root = tmp_path / "data" / "NOD"
    # the reference keeps the RAW-NOD clone beside the NOD folder, with the Sony test file
    # under the name it is published with
    ids = nod_tree(root, "sony", annotations_dir=tmp_path / "data" / "RAW-NOD" / "annotations"
                   / "Sony")
    out = tmp_path / "out"
    description, failures = prepare_nod(root, out, "sony", h416=True)
    assert failures == []
    ds = PreparedDataset(out)
    assert ds.description["name"] == "nod_sony_h416"
    assert ds.split("train") == ids["train"] and ds.split("test") == ids["test"]
    check_samples(ds, (416, 640))
    for split in ("train", "test"):
        doc = coco(out, split)
        assert [im["file_name"] for im in doc["images"]] == ds.split(split)
        assert {(im["width"], im["height"]) for im in doc["images"]} == {(640, 416)}
        assert [c["id"] for c in doc["categories"]] == [1, 2, 3]
        boxes = boxes_by_file(doc)
        # person, bicycle, car kept; the motorcycle and the box without area dropped
        assert all(sorted(c for c, _ in boxes[i]) == [1, 2, 3] for i in ds.split(split))
    # annotation [20, 30, 40, 50] on a 280 x 188 image, centred on the 288 x 192 RAW (+4, +2),
    # halved with the packing and scaled from 144 x 96 to 640 x 416
    (cat, bbox), = [b for b in boxes_by_file(coco(out, "train"))[ids["train"][0]] if b[0] == 1]
    dx, dy = (MOSAIC[1] - NOD_ANNOTATED[0]) / 2, (MOSAIC[0] - NOD_ANNOTATED[1]) / 2
    sx, sy = 640 / MOSAIC[1], 416 / MOSAIC[0]
    expected = [(20 + dx) * sx, (30 + dy) * sy, 40 * sx, 50 * sy]
    np.testing.assert_allclose(bbox, expected, atol=2e-3)
    assert bbox == pytest.approx([53.333, 69.333, 88.889, 108.333], abs=2e-3)
    # subsample of a detection dataset: the training annotations follow the picked images
    sub = tmp_path / "sub"
    prepare_subsample(out, sub, max_items=2, seed=3)
    picked = PreparedDataset(sub).split("train")
    assert len(picked) == 2
    assert [im["file_name"] for im in coco(sub, "train")["images"]] == picked
    assert coco(sub, "test") == coco(out, "test")


def test_nod_missing_annotations_name_where_they_were_looked_for(tmp_path):
    nod_tree(tmp_path / "NOD", "nikon")
    for f in (tmp_path / "NOD" / "annotations" / "Nikon").iterdir():
        f.unlink()
    with pytest.raises(FileNotFoundError, match="raw_new_Nikon750_train.json") as e:
        prepare_nod(tmp_path / "NOD", tmp_path / "out", "nikon")
    assert str(tmp_path / "RAW-NOD" / "annotations" / "Nikon") in str(e.value)
    with pytest.raises(FileNotFoundError, match="no RAW/Sony folder"):
        prepare_nod(tmp_path / "NOD", tmp_path / "out", "sony")


def test_nod_missing_and_corrupt_raw_files_are_skipped(tmp_path):
    ids = nod_tree(tmp_path / "NOD", "nikon", train=3, test=1)
    truncate(tmp_path / "NOD" / "RAW" / "Nikon" / f"{ids['train'][0]}.NEF")
    (tmp_path / "NOD" / "RAW" / "Nikon" / f"{ids['train'][1]}.NEF").unlink()
    description, failures = prepare_nod(tmp_path / "NOD", tmp_path / "out", "nikon", h416=True)
    reasons = {i: f.reason for f in failures for i in ids["train"] if f"{i}.NEF" in f.item}
    assert len(failures) == 2 and reasons.keys() == set(ids["train"][:2])
    assert "truncated or corrupt" in reasons[ids["train"][0]]
    assert reasons[ids["train"][1]] == "no such file"
    ds = PreparedDataset(tmp_path / "out")
    assert ds.split("train") == ids["train"][2:]
    assert [im["file_name"] for im in coco(tmp_path / "out", "train")["images"]] == ids["train"][2:]


# ----------------------------------------------------------------------------- Cityscapes

def test_cityscapes_boxes_are_the_visible_parts_of_person_rider_bicycle_car(tmp_path):
    ids = cityscapes_tree(tmp_path / "cityscapes")
    out = tmp_path / "out"
    description, failures = prepare_cityscapes(tmp_path / "cityscapes", out)
    assert failures == []
    ds = PreparedDataset(out)
    assert ds.description["name"] == "cityscapes_h416" and ds.kind == "rgb"
    assert ds.split("train") == ids["train"] and ds.split("val") == ids["val"]
    assert not (out / "raw").exists()
    check_samples(ds, (416, 832))
    entry = ds.images[ids["train"][0]]
    assert (entry["height"], entry["width"]) == CITYSCAPES_SIZE and "boxes" not in entry
    scale = 416 / CITYSCAPES_SIZE[0]
    expected = [(b[0], [b[1] * scale, b[2] * scale, (b[3] - b[1]) * scale, (b[4] - b[2]) * scale])
                for _, b in CITYSCAPES_OBJECTS if b]
    assert [c for c, _ in expected] == [3, 1, 1, 2]  # car, person, rider as person, bicycle
    for split in ("train", "val"):
        doc = coco(out, split)
        assert [im["file_name"] for im in doc["images"]] == ids[split]
        for found in boxes_by_file(doc).values():
            assert [c for c, _ in found] == [c for c, _ in expected]
            for (_, bbox), (_, want) in zip(found, expected, strict=True):
                np.testing.assert_allclose(bbox, want, atol=1e-3)
    # the car, partly behind the person: columns 40..89 of the 256 x 128 label image
    assert expected[0][1] == [130.0, 195.0, 162.5, 133.25]


def test_cityscapes_bad_image_is_skipped_and_rerun_resumes(tmp_path):
    ids = cityscapes_tree(tmp_path / "cityscapes")
    bad = ids["train"][1]
    truncate(tmp_path / "cityscapes" / "leftImg8bit" / "train" / "aachen"
             / f"{bad}_leftImg8bit.png")
    out = tmp_path / "out"
    description, failures = prepare_cityscapes(tmp_path / "cityscapes", out, workers=2)
    assert len(failures) == 1 and bad in failures[0].item
    assert "truncated" in failures[0].reason
    assert PreparedDataset(out).split("train") == [i for i in ids["train"] if i != bad]
    before = stamps(out / "rgb")
    description, failures = prepare_cityscapes(tmp_path / "cityscapes", out, splits=("train",))
    assert stamps(out / "rgb") == before and len(failures) == 1
    assert list(description["splits"]) == ["train"]


def test_cityscapes_image_in_two_splits_is_named(tmp_path):
    cityscapes_tree(tmp_path / "cs", {"train": ["aachen_000000_000019"],
                                      "val": ["aachen_000000_000019"]})
    with pytest.raises(UserError, match=r"cs: image aachen_000000_000019 occurs in two splits$"):
        prepare_cityscapes(tmp_path / "cs", tmp_path / "out")


def test_a_split_file_gone_from_a_prepared_dataset_is_named(fivek, tmp_path):
    from rawdiffusion.datasets.errors import DatasetError

    _, out, _ = fivek
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "train.txt").unlink()
    with pytest.raises(DatasetError, match=r"train.txt: missing, though dataset.json lists a "
                                           r"'train' split; prepare the dataset again"):
        PreparedDataset(copy).split("train")
    with pytest.raises(FileNotFoundError, match=r"no split 'bogus' \(have train, test\)"):
        PreparedDataset(copy).split("bogus")


def test_cityscapes_missing_split_is_a_clear_error(tmp_path):
    cityscapes_tree(tmp_path / "cs", {"train": ["aachen_000000_000019"]})
    with pytest.raises(FileNotFoundError, match=r"no leftImg8bit/val folder; expected the "
                                                r"Cityscapes layout leftImg8bit/<split>/<city>"):
        prepare_cityscapes(tmp_path / "cs", tmp_path / "out")


# ----------------------------------------------------------------------------- BDD100K

@pytest.mark.parametrize("style", ["det_20", "original"])
def test_bdd_reads_both_label_formats(tmp_path, style):
    bdd_tree(tmp_path / "bdd100k", style)
    out = tmp_path / "out"
    description, failures = prepare_bdd(tmp_path, out)  # the parent of bdd100k/ works too
    assert failures == []
    ds = PreparedDataset(out)
    assert ds.description["name"] == "bdd_h416" and ds.kind == "rgb"
    # images without a person, bicycle or car are left out, as in the reference
    assert ds.split("train") == ["0000f77c-6257be58", "0a0a0b1a-7c39d841"]
    assert ds.split("val") == ["b1c66a42-6f7d68ca"]
    assert ds.description["made_by"]["left_out_without_boxes"] == {"train": 2, "val": 0}
    check_samples(ds, (416, 736))
    boxes = boxes_by_file(coco(out, "train"))["0000f77c-6257be58"]
    # car, pedestrian/person, rider -> person, bicycle/bike, clipped car; the truck is ignored
    assert [c for c, _ in boxes] == [3, 1, 1, 2, 3]
    sx, sy = 736 / BDD_SIZE[1], 416 / BDD_SIZE[0]
    np.testing.assert_allclose(boxes[0][1], [12.8 * sx, 7.2 * sy, 51.2 * sx, 28.8 * sy], atol=2e-3)
    assert boxes[0][1] == pytest.approx([73.6, 41.6, 294.4, 166.4], abs=2e-3)
    np.testing.assert_allclose(boxes[4][1], [120 * sx, 60 * sy, 8 * sx, 12 * sy], atol=2e-3)


def test_bdd_missing_labels_is_a_clear_error(tmp_path):
    bdd_tree(tmp_path / "bdd100k")
    (tmp_path / "bdd100k" / "labels" / "det_20" / "det_val.json").unlink()
    with pytest.raises(FileNotFoundError, match="labels/det_20/det_val.json or "
                                                "labels/bdd100k_labels_images_val.json"):
        prepare_bdd(tmp_path / "bdd100k", tmp_path / "out")


# ----------------------------------------------------------------------------- command line

def run_cli(args, tmp_path, corrupt):
    """A clean run exits 0; after breaking an input, 1; with --keep-going, 0; finished work is
    never redone."""
    out = tmp_path / "out"
    assert main(args + ["--out", str(out), "--workers", "1"]) == 0
    before = stamps(out / "rgb")
    corrupt()
    assert main(args + ["--out", str(out), "--workers", "1"]) == 1
    assert main(args + ["--out", str(out), "--workers", "1", "--keep-going"]) == 0
    after = stamps(out / "rgb")
    assert all(after.get(p) == t for p, t in before.items())
    return PreparedDataset(out)


def test_cli_fivek(tmp_path):
    files = fivek_tree(tmp_path / "fivek", {"nikon": 2, "canon": 4, "other": 1})
    ds = run_cli(["prepare", "fivek", "--root", str(tmp_path / "fivek"), "--camera", "canon",
                  "--test-fraction", "0.25"], tmp_path,
                 lambda: (files["canon"][0].parent / "a0998-new.dng").write_bytes(b"junk"))
    assert len(ds.images) == 4


def test_cli_nod(tmp_path):
    ids = nod_tree(tmp_path / "NOD", "nikon", train=2, test=1)

    def corrupt():  # a new image in the test annotations, whose file is broken
        path = tmp_path / "NOD" / "annotations" / "Nikon" / "raw_new_Nikon750_test.json"
        doc = json.loads(path.read_text())
        doc["images"].append({**doc["images"][0], "id": "DSC_9999", "file_name": "DSC_9999.NEF"})
        path.write_text(json.dumps(doc))
        (tmp_path / "NOD" / "RAW" / "Nikon" / "DSC_9999.NEF").write_bytes(b"II*\x00broken")
    ds = run_cli(["prepare", "nod", "--root", str(tmp_path / "NOD"), "--camera", "nikon",
                  "--h416"], tmp_path, corrupt)
    assert ds.split("train") == ids["train"] and ds.split("test") == ids["test"]
    assert [im["file_name"] for im in coco(tmp_path / "out", "test")["images"]] == ids["test"]


def test_cli_cityscapes_and_subsample(tmp_path):
    ids = cityscapes_tree(tmp_path / "cs")

    def corrupt():  # a new image whose polygon file is broken
        cityscapes_tree(tmp_path / "cs", {"val": ["frankfurt_000001_000019"]})
        (tmp_path / "cs" / "gtFine" / "val" / "frankfurt"
         / "frankfurt_000001_000019_gtFine_polygons.json").write_text("{")
    ds = run_cli(["prepare", "cityscapes", "--root", str(tmp_path / "cs")], tmp_path, corrupt)
    assert ds.split("train") == ids["train"] and ds.split("val") == ids["val"]
    assert main(["prepare", "subsample", str(tmp_path / "out"), "--out", str(tmp_path / "sub"),
                 "--max-items", "2", "--seed", "5"]) == 0
    assert len(PreparedDataset(tmp_path / "sub").split("train")) == 2
    assert main(["prepare", "subsample", str(tmp_path / "out"), "--out", str(tmp_path / "sub"),
                 "--max-items", "4"]) == 2


def test_cli_bdd(tmp_path):
    bdd_tree(tmp_path / "bdd100k")

    def corrupt():  # a new labelled image that is not a JPEG
        path = tmp_path / "bdd100k" / "labels" / "det_20" / "det_train.json"
        frames = json.loads(path.read_text())
        frames.append({**frames[0], "name": "ffff0000-00000000.jpg"})
        path.write_text(json.dumps(frames))
        (tmp_path / "bdd100k" / "images" / "100k" / "train" / "ffff0000-00000000.jpg"
         ).write_bytes(b"\xff\xd8 not really")
    ds = run_cli(["prepare", "bdd", "--root", str(tmp_path / "bdd100k"), "--splits", "train"],
                 tmp_path, corrupt)
    assert ds.split("train") == ["0000f77c-6257be58", "0a0a0b1a-7c39d841"]
