"""`prepare` and training on bad inputs: every bad file is one line naming it and the reason,
the other files are prepared, and no library prints above that line."""

import json

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
