"""`rawdiffusion prepare folder`: split, patches, pairing, resumption and bad files."""

import json

import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from conftest import SHARED_RAW, require_shared, synthetic_raw
from rawdiffusion import bayer
from rawdiffusion.cli import main
from rawdiffusion.datasets.layout import PreparedDataset
from rawdiffusion.datasets.paired import find_raw_files, grid_boxes, split_like_sklearn
from rawdiffusion.io import CFA_ORDERS, atomic_output, write_dng


@pytest.mark.parametrize("n", [1, 2, 3, 7, 25, 501])
@pytest.mark.parametrize("fraction", [0.15, 0.3, 0.5])
@pytest.mark.parametrize("seed", [2817, 0])
def test_split_is_identical_to_scikit_learn(n, fraction, seed):
    items = [f"img{i:04d}.dng" for i in range(n)]
    if n - int(np.ceil(n * fraction)) < 1:
        with pytest.raises(ValueError, match="none to train"):
            split_like_sklearn(items, fraction, seed)
        return
    train, test = train_test_split(items, test_size=fraction, random_state=seed)
    assert split_like_sklearn(items, fraction, seed) == (train, test)


def test_zero_test_fraction_trains_on_everything():
    assert split_like_sklearn(["a", "b"], 0, 1) == (["a", "b"], [])


def test_grid_patches_are_multiples_of_32_inside_their_cells():
    boxes = grid_boxes(1500, 2000, 3)
    assert len(boxes) == 9
    for k, (top, left, h, w) in enumerate(boxes):
        assert (h, w) == (480, 640)
        row, col = divmod(k, 3)
        assert row * 500 <= top and top + h <= (row + 1) * 500
        assert col * 666 <= left and left + w <= (col + 1) * 666
    with pytest.raises(ValueError, match="too small"):
        grid_boxes(90, 2000, 3)


def make_folder(folder, n=4, size=(192, 384)):
    for i in range(n):
        write_dng(folder / f"img{i}.dng", synthetic_raw(CFA_ORDERS[i % 4], *size, seed=i))
    return folder


def test_prepare_folder_end_to_end(tmp_path):
    src = make_folder(tmp_path / "src")
    out = tmp_path / "out"
    assert main(["prepare", "folder", "--raw-dir", str(src), "--out", str(out),
                 "--workers", "2", "--test-fraction", "0.25"]) == 0
    ds = PreparedDataset(out)
    files = [str(p) for p in find_raw_files(src)]
    train, test = train_test_split(files, test_size=0.25, random_state=2817)
    assert [e["source"] for e in ds.images.values() if e["split"] == "test"] == test
    assert sorted(e["source"] for e in ds.images.values() if e["split"] == "train") == sorted(train)
    assert len(ds.split("train")) == 27 and len(ds.split("test")) == 9
    for sample_id in ds.split("train") + ds.split("test"):
        s = ds.load(sample_id)
        assert s.raw.shape[0] == 4 and s.raw.shape[1:] == s.rgb.shape[:2] == (32, 64)
        # the guide is aligned with the RAW: the scene's structure agrees
        green = bayer.normalise(s.raw, s.black, s.white)[1]
        assert np.corrcoef(green.ravel(), s.rgb[..., 1].ravel().astype(float))[0, 1] > 0.8
    entry = ds.images["img1"]
    assert entry["cfa"] == "BGGR" and entry["white_level"] == 4095
    assert entry["black_level"] == [67, 66, 65, 64]  # tile (64,65,66,67) in R,G1,G2,B of BGGR


def test_rerun_skips_finished_images(tmp_path):
    src, out = make_folder(tmp_path / "src", 2), tmp_path / "out"
    args = ["prepare", "folder", "--raw-dir", str(src), "--out", str(out), "--workers", "1",
            "--test-fraction", "0"]
    assert main(args) == 0
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.parent.name != out.name}
    (out / "raw" / "img0_0.npy").write_bytes(b"sentinel")  # a rerun must not touch finished work
    assert main(args) == 0
    assert (out / "raw" / "img0_0.npy").read_bytes() == b"sentinel"
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items() if p.name != "img0_0.npy")


def test_bad_files_are_reported_skipped_and_leave_nothing_partial(tmp_path, capsys):
    src = make_folder(tmp_path / "src", 3)
    data = (src / "img0.dng").read_bytes()
    (src / "cut.dng").write_bytes(data[: len(data) // 2])
    (src / "zero.dng").write_bytes(b"")
    import tifffile
    tifffile.imwrite(src / "linear.dng", np.zeros((64, 64, 3), np.uint16), photometric=34892,
                     extratags=[(50706, "B", 4, b"\x01\x04\x00\x00")], metadata=None)
    out = tmp_path / "out"
    args = ["prepare", "folder", "--raw-dir", str(src), "--out", str(out), "--workers", "2"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert f"{src / 'cut.dng'}: truncated or corrupt" in err
    assert f"{src / 'zero.dng'}: empty file" in err
    assert f"{src / 'linear.dng'}: linear (demosaiced) DNG" in err
    assert "3 file(s) skipped" in err
    ds = PreparedDataset(out)
    assert sorted(ds.images) == ["img0", "img1", "img2"]
    names = {p.name for p in out.rglob("*")}
    assert not any(n.startswith(("cut", "zero", "linear")) or n.endswith(".tmp") for n in names)
    assert main(args + ["--keep-going"]) == 0


def test_atomic_output_leaves_nothing_when_the_writer_dies(tmp_path):
    target = tmp_path / "x.npy"
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_missing_folder_is_a_clear_error(tmp_path, capsys):
    assert main(["prepare", "folder", "--raw-dir", str(tmp_path / "nope"),
                 "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'nope'}: no such folder"


# ----------------------------------------------------------------------------- real data

@pytest.mark.parametrize("folder", ["dng", "bayer"])
def test_prepare_folder_on_real_raw_files(folder, tmp_path):
    src = require_shared(SHARED_RAW / folder)
    out = tmp_path / folder
    assert main(["prepare", "folder", "--raw-dir", str(src), "--out", str(out),
                 "--workers", "2"]) == 0
    ds = PreparedDataset(out)
    files = [str(p) for p in find_raw_files(src)]
    train, test = train_test_split(files, test_size=0.15, random_state=2817)
    assert [e["source"] for e in ds.images.values() if e["split"] == "test"] == test
    assert sorted(e["source"] for e in ds.images.values()
                  if e["split"] == "train") == sorted(train)
    for image_id, entry in ds.images.items():
        assert len(entry["samples"]) == 9
        for sample_id in entry["samples"]:
            s = ds.load(sample_id)
            h, w = s.rgb.shape[:2]
            assert s.raw.shape == (4, h, w) and h % 32 == 0 and w % 32 == 0
    description = json.loads((out / "dataset.json").read_text())
    if folder == "dng":
        gopro = description["images"]["gopro_hero6_GOPR0024"]
        assert gopro["make"] == "GoPro" and gopro["cfa"] == "RGGB"
        assert gopro["sample_size"] == [480, 640] and gopro["white_level"] == 16383
