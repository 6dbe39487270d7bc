"""What the commands take as input, beside the files' contents: entries of a folder that are no
files (FIFOs, symlink loops, directories, dangling links), file names that are not valid UTF-8
or begin with '-', the RAW pixel limit's option, and what a rerun of prepare says it skipped.

Each bad entry is one line naming it and what it is, the good files beside it are done, and
nothing blocks: commands that would open a FIFO run under no_hang."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import synthetic_raw
from malformed_corpus import CAMERA, LINEAR_WEIGHTS, bomb_dng, no_hang
from rawdiffusion.cli import RAW_MAX_PIXELS, build_parser, main
from rawdiffusion.datasets.layout import PreparedDataset
from rawdiffusion.io import RAW_MAX_PIXELS as IO_RAW_MAX_PIXELS
from rawdiffusion.io import write_dng


def raw_folder(folder, n=1):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        write_dng(folder / f"img{i}.dng", synthetic_raw(height=192, width=192, seed=i))
    return folder


def odd_entries(folder, suffix):
    """A directory, a FIFO, a dangling symlink and a symlink loop named like inputs: {name:
    what the error line must say}."""
    (folder / f"folder{suffix}").mkdir()
    os.mkfifo(folder / f"pipe{suffix}")
    (folder / f"gone{suffix}").symlink_to(folder / f"nowhere{suffix}")
    (folder / f"loop{suffix}").symlink_to(folder / f"loop{suffix}")
    what = "RAW file" if suffix == ".dng" else "photo"
    return {f"folder{suffix}": f"a directory, not a {what}",
            f"pipe{suffix}": f"a FIFO (named pipe), not a {what}",
            f"gone{suffix}": f"a dangling symlink (to {folder / f'nowhere{suffix}'})",
            f"loop{suffix}": "a symlink loop"}


# ----------------------------------------------------------------------------- prepare folder

def test_bad_entries_are_named_before_too_few_files_end_prepare(tmp_path, capsys):
    """One good file and four entries that are no files, at test fraction 0.15: it ended
    'leave none to train on' without naming them."""
    src = raw_folder(tmp_path / "src", 1)
    bad = odd_entries(src, ".dng")
    with no_hang(60):
        assert main(["prepare", "folder", "--raw-dir", str(src), "--out", str(tmp_path / "out"),
                     "--workers", "1"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines == [f"skipped {src / name}: {what}" for name, what in sorted(bad.items())] + [
        "error: 1 image(s) with test fraction 0.15 leave none to train on (4 entries named "
        "like RAW files skipped as no files, named above)"]


def test_a_rerun_of_prepare_says_what_it_skipped(tmp_path, capsys):
    src, out = raw_folder(tmp_path / "src", 3), tmp_path / "out"
    args = ["prepare", "folder", "--raw-dir", str(src), "--out", str(out), "--workers", "1",
            "--test-fraction", "0", "--grid", "1"]
    assert main(args) == 0
    assert capsys.readouterr().out == f"out: 3 train, 0 test image(s) prepared in {out}\n"
    assert main(args) == 0
    assert capsys.readouterr().out == (f"out: 3 train, 0 test image(s) in {out}: 3 already "
                                       "prepared, skipped; 0 prepared now\n")
    (out / "meta" / "img1.json").unlink()
    assert main(args) == 0
    assert capsys.readouterr().out == (f"out: 3 train, 0 test image(s) in {out}: 2 already "
                                       "prepared, skipped; 1 prepared now\n")


def test_prepare_takes_a_file_name_that_is_not_utf8(tmp_path, capsys):
    src = raw_folder(tmp_path / "src", 1)
    odd = os.fsdecode(os.fsencode(src) + b"/caf\xe9.dng")  # Latin-1, not UTF-8
    shutil.copyfile(src / "img0.dng", odd)
    out = tmp_path / "out"
    assert main(["prepare", "folder", "--raw-dir", str(src), "--out", str(out), "--workers",
                 "1", "--test-fraction", "0", "--grid", "1"]) == 0
    ds = PreparedDataset(out)
    assert sorted(ds.images) == ["caf\\xe9", "img0"]  # the byte written out: a UTF-8 id
    assert ds.split("train") == ["caf\\xe9_0", "img0_0"]
    np.testing.assert_array_equal(ds.load("caf\\xe9_0").raw, ds.load("img0_0").raw)


def test_prepare_refuses_an_image_over_the_pixel_limit_and_does_the_others(tmp_path, capsys):
    src = raw_folder(tmp_path / "src", 1)
    bomb = bomb_dng(src / "bomb.dng", 20000, 20000)
    out = tmp_path / "out"
    args = ["prepare", "folder", "--raw-dir", str(src), "--out", str(out), "--workers", "1",
            "--test-fraction", "0", "--grid", "1"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert (f"  {bomb}: 20000x20000 is 400000000 pixels, over the limit of 200000000 for RAW "
            "files (--max-pixels of info and prepare raises it)\n") in err
    assert sorted(PreparedDataset(out).images) == ["img0"]
    shutil.rmtree(out)
    bomb.unlink()
    assert main(args + ["--max-pixels", str(192 * 192 - 1)]) == 1  # the option reaches the reader
    assert "192x192 is 36864 pixels, over the limit of 36863" in capsys.readouterr().err


# ----------------------------------------------------------------------------- info

def test_info_names_a_file_that_begins_with_a_dash_and_takes_it_after_dashes(
        tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_dng(tmp_path / "-bad.dng", synthetic_raw())
    with pytest.raises(SystemExit) as info:
        main(["info", "-bad.dng"])
    assert info.value.code == 2
    assert capsys.readouterr().err == (
        "rawdiffusion info: error: the following arguments are required: FILE (see "
        "rawdiffusion info --help; -bad.dng was read as an option: a file whose name begins "
        "with '-' goes after -- or as ./-bad.dng)\n")
    with pytest.raises(SystemExit):
        main(["info", str(tmp_path / "-bad.dng"), "-x.dng"])
    assert "unrecognized arguments: -x.dng (see rawdiffusion info --help; -x.dng was read as " \
           "an option" in capsys.readouterr().err
    for args in (["info", "--", "-bad.dng"], ["info", "./-bad.dng"]):
        assert main(args) == 0
        assert json.loads(capsys.readouterr().out)["width"] == 128


def test_info_max_pixels_and_its_default_in_the_help(tmp_path, capsys):
    write_dng(tmp_path / "a.dng", synthetic_raw())  # 128 x 96
    assert main(["info", str(tmp_path / "a.dng"), "--max-pixels", "12287"]) == 1
    assert "128x96 is 12288 pixels, over the limit of 12287" in capsys.readouterr().err
    assert main(["info", str(tmp_path / "a.dng"), "--max-pixels", "12288"]) == 0
    assert RAW_MAX_PIXELS == IO_RAW_MAX_PIXELS  # the help's default is the reader's
    parser = build_parser()
    info = parser._subparsers._group_actions[0].choices["info"]
    assert f"default {IO_RAW_MAX_PIXELS}" in info.format_help().replace("\n", " ")


def test_info_on_a_name_that_is_not_utf8_prints_through_real_pipes(tmp_path):
    """In a real process (stdout and stderr are pipes): the UnicodeEncodeError came from rawpy,
    which encodes names as UTF-8; an error line shows the byte as \\xe9."""
    good = tmp_path / "good.dng"
    write_dng(good, synthetic_raw())
    odd = os.fsencode(tmp_path) + b"/caf\xe9.dng"
    shutil.copyfile(good, odd)
    cut = os.fsencode(tmp_path) + b"/cut\xe9.dng"
    with open(cut, "wb") as f:
        f.write(good.read_bytes()[:3000])
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONIOENCODING="utf-8")
    proc = subprocess.run([sys.executable, "-m", "rawdiffusion.cli", "info", odd, cut],
                          capture_output=True, env=env)
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["path"] == os.fsdecode(odd)
    err = proc.stderr.decode("utf-8").splitlines()
    assert err[0].startswith(f"error: {tmp_path}/cut\\xe9.dng: truncated or corrupt file")
    assert err[1:] == ["1 of 2 file(s) could not be read"]


# ----------------------------------------------------------------------------- convert

@pytest.fixture
def baseline(tmp_path):
    import torch

    from rawdiffusion.baselines import save_baseline
    from rawdiffusion.camera import Camera
    from rawdiffusion.prior import ColourMap

    path = tmp_path / "linear.json"
    save_baseline(path, "linear", Camera(**CAMERA),
                  ColourMap("linear", torch.tensor(LINEAR_WEIGHTS, dtype=torch.float64)))
    return path


def photo(path, seed):
    pixels = np.random.default_rng(seed).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def test_convert_skips_entries_that_are_no_files_and_converts_the_photos(tmp_path, baseline,
                                                                         capsys):
    """A FIFO named .png hung convert (the photos after it never done); a symlink loop ended it
    with RuntimeError 'Symlink loop'."""
    src, out = tmp_path / "photos", tmp_path / "out"
    src.mkdir()
    photo(src / "a.png", 0)
    bad = odd_entries(src, ".png")
    photo(src / "z.png", 1)
    with no_hang(120):
        assert main(["convert", str(src), "--checkpoint", str(baseline), "--out", str(out),
                     "--cpu", "--workers", "0"]) == 1
    captured = capsys.readouterr()
    lines = [f"{src / name}: {what}" for name, what in sorted(bad.items())]
    err = captured.err.splitlines()
    assert [line for line in err if line.startswith("skipped ")] == [f"skipped {x}" for x in lines]
    assert err[-5:] == ["4 file(s) failed:"] + [f"  {x}" for x in lines]
    assert "2 image(s) converted, 0 already done, 4 failed" in captured.out
    assert sorted(p.name for p in out.glob("*.dng")) == ["a.dng", "z.dng"]


@pytest.mark.parametrize("make, what", [
    (lambda p: os.mkfifo(p), "a FIFO (named pipe), not a photo"),
    (lambda p: p.symlink_to(p), "a symlink loop"),
])
def test_convert_refuses_a_named_entry_that_is_no_file_in_one_line(make, what, tmp_path,
                                                                   baseline, capsys):
    make(tmp_path / "x.png")
    with no_hang(60):
        assert main(["convert", str(tmp_path / "x.png"), "--checkpoint", str(baseline),
                     "--out", str(tmp_path / "out"), "--cpu"]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'x.png'}: {what}\n"


def test_a_missing_photo_named_beside_good_ones_does_not_stop_them(tmp_path, baseline, capsys):
    """It ended the run with exit 2 before any photo was converted."""
    photo(tmp_path / "a.png", 0)
    photo(tmp_path / "b.png", 1)
    out = tmp_path / "out"
    assert main(["convert", str(tmp_path / "a.png"), str(tmp_path / "gone.png"),
                 str(tmp_path / "b.png"), "--checkpoint", str(baseline), "--out", str(out),
                 "--cpu", "--workers", "0"]) == 1
    captured = capsys.readouterr()
    assert f"skipped {tmp_path / 'gone.png'}: no such file or folder" in captured.err
    assert "2 image(s) converted, 0 already done, 1 failed" in captured.out
    assert sorted(p.name for p in out.glob("*.dng")) == ["a.dng", "b.dng"]


def test_convert_refuses_an_out_folder_that_is_also_its_input(tmp_path, baseline, capsys):
    """The first run worked, and its rerun read the previews it had written as photos."""
    photo(tmp_path / "a.png", 0)
    assert main(["convert", str(tmp_path), "--checkpoint", str(baseline), "--out",
                 str(tmp_path / "."), "--cpu"]) == 2
    assert capsys.readouterr().err == (
        f"error: --out {tmp_path}: also a folder of photos to convert; its previews would be "
        "read as photos by a rerun: give another --out\n")
    assert not list(tmp_path.glob("*.dng"))


@pytest.mark.parametrize("command, module, function", [
    (["prepare", "fivek", "--root", "r", "--camera", "nikon"], "fivek", "prepare_fivek"),
    (["prepare", "nod", "--root", "r", "--camera", "sony"], "nod", "prepare_nod"),
    (["prepare", "folder", "--raw-dir", "r"], "paired", "prepare_folder"),
])
def test_every_raw_prepare_command_hands_max_pixels_to_its_reader(command, module, function,
                                                                  tmp_path, monkeypatch, capsys):
    import importlib

    given = {}

    def record(*args, **kwargs):
        given.update(kwargs)
        return {"name": "x", "splits": {}, "images": {}}, []

    monkeypatch.setattr(importlib.import_module(f"rawdiffusion.datasets.{module}"), function,
                        record)
    assert main([*command, "--out", str(tmp_path / "out"), "--max-pixels", "1234"]) == 0
    assert given["max_pixels"] == 1234
    assert main([*command, "--out", str(tmp_path / "out")]) == 0
    assert given["max_pixels"] is None  # the reader's default, io.RAW_MAX_PIXELS
