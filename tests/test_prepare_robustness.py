"""`prepare` and training on bad inputs: every bad file is one line naming it and the reason,
the other files are prepared, and no library prints above that line."""

import json

import numpy as np
import pytest

from conftest import synthetic_raw
from fake_trees import cityscapes_tree
from rawdiffusion.cli import main
from rawdiffusion.datasets import cityscapes, paired
from rawdiffusion.datasets.layout import PreparedDataset
from rawdiffusion.io import write_dng


def raw_folder(folder, n=3):
    for i in range(n):
        write_dng(folder / f"img{i}.dng", synthetic_raw(height=192, width=192, seed=i))
    return folder


def failing_for(name, error, real):
    """`real`, except that it raises `error` for the input whose file name is `name`."""
    def job(item, **kwargs):
        if str(item).endswith(name):
            raise error
        return real(item, **kwargs)
    return job


# ----------------------------------------------------------------------------- one image fails

@pytest.mark.parametrize("error, reason", [
    (EOFError("No data left in file"), "EOFError: No data left in file"),
    (MemoryError("Unable to allocate 93.1 GiB"), "MemoryError: Unable to allocate 93.1 GiB"),
    (KeyError("cfa"), "unexpected KeyError at test_prepare_robustness.py:"),
])
def test_an_exception_in_one_image_is_reported_and_the_dataset_written(
        error, reason, tmp_path, monkeypatch, capsys):
    src, out = raw_folder(tmp_path / "src"), tmp_path / "out"
    monkeypatch.setattr(paired, "prepare_image",
                        failing_for("img1.dng", error, paired.prepare_image))
    args = ["prepare", "folder", "--raw-dir", str(src), "--out", str(out), "--workers", "1",
            "--test-fraction", "0"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "1 file(s) skipped" in err
    assert f"  {src / 'img1.dng'}: {reason}" in err
    assert sorted(PreparedDataset(out).images) == ["img0", "img2"]
    assert json.loads((out / "dataset.json").read_text())["splits"] == {"train": 2, "test": 0}


def test_an_exception_in_one_rgb_image_is_reported_and_the_dataset_written(
        tmp_path, monkeypatch, capsys):
    ids = cityscapes_tree(tmp_path / "cs")
    bad = ids["train"][0]
    monkeypatch.setattr(cityscapes, "prepare_item", failing_for(
        f"{bad}_leftImg8bit.png", OverflowError("cannot fit 'int'"), cityscapes.prepare_item))
    out = tmp_path / "out"
    assert main(["prepare", "cityscapes", "--root", str(tmp_path / "cs"), "--out", str(out),
                 "--workers", "1"]) == 1
    assert f"{bad}_leftImg8bit.png: OverflowError: cannot fit 'int'" in capsys.readouterr().err
    ds = PreparedDataset(out)
    assert ds.split("train") == ids["train"][1:] and ds.split("val") == ids["val"]


# ----------------------------------------------------------------------------- unusable datasets

@pytest.mark.parametrize("text, reason", [
    (None, "no dataset.json; not a prepared dataset"),
    ("[1]", "format '[1]', expected 'rawdiffusion-dataset/1'; not a prepared dataset"),
    ('{"format": "rawdiffusion-dataset/1"}', "no dataset name"),
    ('{"format": "rawdiffusion-dataset/1", "name": "x", "kind": "paired", "splits": {}, '
     '"images": {"a": {"samples": ["a_0"]}}}', "image 'a' has no split"),
    ('{"format": "rawdiffusion-dataset/1", "na', "unreadable (JSONDecodeError: "),
])
def test_subsample_of_a_folder_that_is_no_prepared_dataset_is_one_line(
        text, reason, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    if text is not None:
        (folder / "dataset.json").write_text(text)
    assert main(["prepare", "subsample", str(folder), "--out", str(tmp_path / "sub"),
                 "--max-items", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {folder}") and reason in err and len(err.splitlines()) == 1


@pytest.fixture
def prepared(tmp_path):
    out = tmp_path / "out"
    assert main(["prepare", "folder", "--raw-dir", str(raw_folder(tmp_path / "src", 2)),
                 "--out", str(out), "--test-fraction", "0", "--grid", "1", "--workers", "1"]) == 0
    return PreparedDataset(out)


def cut_in_half(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def not_npy(path):
    path.write_bytes(b"<html>a download error page, saved under the sample's name</html>")


def nan_floats(path):
    np.save(path, np.full(np.load(path).shape, np.nan, np.float32))


def smaller(path):
    np.save(path, np.load(path)[:, :8, :8])


@pytest.mark.parametrize("folder, suffix, damage, reason", [
    ("raw", "npy", nan_floats, "dtype float32, expected uint16 raw numbers as prepare writes "
                               "them"),  # was: trained, until the loss became NaN
    ("raw", "npy", smaller, "8x8 pixels, but its guide rgb/img1_0.png is 96x96"),  # a traceback
    ("raw", "npy", cut_in_half, "unreadable sample (ValueError: Failed to read all data"),
    ("raw", "npy", not_npy, "unreadable sample (ValueError: not a NumPy .npy file (it lacks "
                            "the format's header))"),  # numpy: "contains pickled data ..."
    ("rgb", "png", cut_in_half, "not a readable image (OSError: image file is truncated)"),
])
def test_a_damaged_sample_is_one_setup_error_naming_it(prepared, folder, suffix, damage,
                                                       reason):
    import torch

    from rawdiffusion.errors import UserError
    from rawdiffusion.datasets.errors import SampleError
    from rawdiffusion.training_data import TrainSamples, val_batches

    path = prepared.root / folder / f"img1_0.{suffix}"
    damage(path)
    expected = (f"{path}: {reason}", f"delete {prepared.root / 'meta' / 'img1.json'} and rerun")
    with pytest.raises(SampleError) as info:
        val_batches(prepared, "train", 32, 2, 2)
    assert isinstance(info.value, UserError) and isinstance(info.value, ValueError)
    assert all(part in str(info.value) for part in expected)
    samples = TrainSamples(prepared, "train", 32, seed=0)
    draw = next(g for g in range(2) if samples.ids[samples.order(0)[g]] == "img1_0")
    # through a worker process, as training loads: still one line, no worker traceback
    loader = torch.utils.data.DataLoader(samples, sampler=[draw], num_workers=1)
    with pytest.raises(SampleError) as info:
        next(iter(loader))
    assert len(str(info.value).splitlines()) == 1
    assert all(part in str(info.value) for part in expected)


def test_training_on_a_truncated_sample_ends_in_one_error_line(prepared, tmp_path, monkeypatch,
                                                              capsys):
    cut_in_half(prepared.root / "raw" / "img0_0.npy")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(["train", "dataset=folder", f"dataset.root={prepared.root}", "model.preset=small",
              f"general.out={tmp_path / 'runs'}", "optim.crop=32", "optim.batch_size=2",
              "optim.max_steps=1", "log.val_images=2", "system.workers=1"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "Traceback" not in err
    line = next(line for line in err.splitlines() if line.startswith("error:"))
    assert line.startswith(f"error: {prepared.root / 'raw' / 'img0_0.npy'}: unreadable sample")


# ----------------------------------------------------------------------------- not files

def test_entries_named_like_raw_files_that_are_not_files_are_each_reported(tmp_path, capsys):
    import os

    src, out = raw_folder(tmp_path / "src", 2), tmp_path / "out"
    (src / "folder.dng").mkdir()
    os.mkfifo(src / "pipe.nef")  # would block a reader forever
    (src / "gone.dng").symlink_to(src / "nowhere.dng")
    (src / "loop.dng").symlink_to(src / "loop.dng")
    (src / "good.dng").symlink_to(src / "img0.dng")  # a link to a file is a file
    args = ["prepare", "folder", "--raw-dir", str(src), "--out", str(out), "--workers", "1",
            "--test-fraction", "0"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "4 file(s) skipped" in err
    for line in (f"{src / 'folder.dng'}: a directory, not a RAW file",
                 f"{src / 'pipe.nef'}: a FIFO (named pipe), not a RAW file",
                 f"{src / 'gone.dng'}: a dangling symlink (to {src / 'nowhere.dng'})",
                 f"{src / 'loop.dng'}: a symlink loop"):
        assert f"  {line}\n" in err
    assert sorted(PreparedDataset(out).images) == ["good", "img0", "img1"]
    assert main(args + ["--keep-going"]) == 0


def test_fivek_reports_dng_entries_that_are_not_files(tmp_path):
    from fake_trees import fivek_tree
    from rawdiffusion.datasets.fivek import prepare_fivek

    files = fivek_tree(tmp_path / "fivek", {"nikon": 3, "canon": 1, "other": 0})
    odd = files["nikon"][0].parent / "a9999-x_DSC9999.dng"
    odd.mkdir()
    description, failures = prepare_fivek(tmp_path / "fivek", tmp_path / "out", "nikon",
                                          test_fraction=0)
    assert [(f.item, f.reason) for f in failures] == [(str(odd), "a directory, not a RAW file")]
    assert description["splits"] == {"train": 3, "test": 0}


def test_prepare_prints_no_library_noise_for_a_truncated_dng(tmp_path, capfd):
    from conftest import SHARED_RAW, require_shared

    data = require_shared(SHARED_RAW / "dng/gopro_hero6_GOPR0024.dng").read_bytes()
    src = raw_folder(tmp_path / "src", 1)
    (src / "cut.dng").write_bytes(data[: len(data) // 2])
    (src / "head.dng").write_bytes(data[:5000])
    assert main(["prepare", "folder", "--raw-dir", str(src), "--out", str(tmp_path / "out"),
                 "--workers", "2", "--test-fraction", "0"]) == 1
    err = capfd.readouterr().err
    assert "Unexpected end of file\n" not in err and "TiffTag" not in err
    assert f"  {src / 'cut.dng'}: truncated or corrupt file (LibRaw: Input/output error; " \
           "Unexpected end of file)\n" in err
    assert f"  {src / 'head.dng'}: truncated or corrupt file" in err
