"""`rawdiffusion prepare folder`: split, patches, pairing, resumption and bad files."""

import json

import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from conftest import SHARED_RAW, require_shared, synthetic_raw
from noise_scenes import poisson_gaussian_codes, textured_scene
from rawdiffusion import bayer
from rawdiffusion.camera import Camera
from rawdiffusion.atomic import atomic_output
from rawdiffusion.cli import main
from rawdiffusion.datasets.layout import PreparedDataset
from rawdiffusion.datasets.paired import grid_boxes, raw_named_entries, split_like_sklearn
from rawdiffusion.errors import UserError
from rawdiffusion.io import (CFA_ORDERS, D65, STANDARD_LIGHT_A, UNKNOWN_ILLUMINANT, RawImage,
                             read_raw, write_dng)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 25, 501])
@pytest.mark.parametrize("fraction", [0.15, 0.3, 0.5])
@pytest.mark.parametrize("seed", [2817, 0])
def test_split_is_identical_to_scikit_learn(n, fraction, seed):
    items = [f"img{i:04d}.dng" for i in range(n)]
    if n - int(np.ceil(n * fraction)) < 1:
        with pytest.raises(UserError, match="none to train"):
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
    files = [str(p) for p in raw_named_entries(src) if p.is_file()]
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


def dng_colour_tags(path) -> dict:
    """ColorMatrix1/2 as (3, 3) arrays and CalibrationIlluminant1/2 of a written DNG."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        tags = {t.code: t.value for t in tif.pages[0].tags.values()}
    matrix = lambda code: (None if code not in tags  # noqa: E731
                           else (np.reshape(tags[code], (9, 2)) @ [1, 0]
                                 / (np.reshape(tags[code], (9, 2)) @ [0, 1])).reshape(3, 3))
    return {"color_matrix": matrix(50721), "illuminant": tags.get(50778),
            "color_matrix2": matrix(50722), "illuminant2": tags.get(50779)}


def test_colour_calibrations_go_from_raw_file_through_dataset_and_checkpoint_to_dng(tmp_path):
    import dataclasses

    src = tmp_path / "src"
    raw = synthetic_raw("RGGB", 192, 384)
    tungsten = np.array([[0.9, -0.2, -0.1], [-0.5, 1.4, 0.1], [-0.1, 0.2, 0.8]])
    raw = dataclasses.replace(raw, color_matrix=tungsten, illuminant=STANDARD_LIGHT_A,
                              color_matrix2=raw.color_matrix, illuminant2=D65)
    write_dng(src / "two.dng", raw)
    write_dng(src / "none.dng", synthetic_raw("RGGB", 192, 384, matrix=False, seed=1))
    out = tmp_path / "out"
    assert main(["prepare", "folder", "--raw-dir", str(src), "--out", str(out),
                 "--test-fraction", "0"]) == 0
    entry = json.loads((out / "dataset.json").read_text())["images"]["two"]
    assert entry["color_matrix"] == tungsten.tolist() and entry["illuminant"] == STANDARD_LIGHT_A
    assert entry["color_matrix2"] == raw.color_matrix2.tolist() and entry["illuminant2"] == D65
    none = json.loads((out / "dataset.json").read_text())["images"]["none"]
    assert (none["color_matrix"], none["illuminant"], none["color_matrix2"]) == (None, None, None)

    camera = Camera.from_images(PreparedDataset(out).images).to_dict()
    assert camera["color_matrix"] == tungsten.tolist() and camera["illuminant"] == STANDARD_LIGHT_A
    assert camera["color_matrix2"] == raw.color_matrix2.tolist() and camera["illuminant2"] == D65
    x = np.random.default_rng(0).uniform(0, 1, (4, 16, 16))
    write_dng(tmp_path / "generated.dng", Camera.from_dict(camera).raw(x))
    written = dng_colour_tags(tmp_path / "generated.dng")
    np.testing.assert_allclose(written["color_matrix"], tungsten, atol=1e-6)
    np.testing.assert_allclose(written["color_matrix2"], raw.color_matrix2, atol=1e-6)
    assert (written["illuminant"], written["illuminant2"]) == (STANDARD_LIGHT_A, D65)
    back = read_raw(tmp_path / "generated.dng")
    assert (back.illuminant, back.illuminant2) == (STANDARD_LIGHT_A, D65)


def test_cameras_from_before_illuminants_were_kept_write_an_unknown_illuminant(tmp_path):
    # Checkpoints of that time (the first shipped one among them) hold one "color_matrix" (the
    # GoPro's tungsten ColorMatrix1) and no illuminant: they must neither fail nor be labelled
    # D65. This is that checkpoint's camera as it was stored.
    camera = {"cfa": "RGGB", "make": "GoPro", "model": "FUSION", "black_level": [0.0] * 4,
              "white_level": 16383.0, "wb": [1.9702147841453552, 1.0, 1.6989737153053284],
              "color_matrix": [[1.8331, -0.8166, -0.2478], [0.1391, 0.8961, -0.0367],
                               [0.0822, 0.0662, 0.2597]]}
    x = np.random.default_rng(0).uniform(0, 1, (4, 16, 16))
    write_dng(tmp_path / "old.dng", Camera.from_dict(camera).raw(x))
    written = dng_colour_tags(tmp_path / "old.dng")
    np.testing.assert_allclose(written["color_matrix"], camera["color_matrix"], atol=1e-6)
    assert written["illuminant"] == UNKNOWN_ILLUMINANT and written["color_matrix2"] is None
    # dataset entries of that time: a matrix, no illuminant
    legacy = {"a": {"cfa": "RGGB", "black_level": [0] * 4, "white_level": 4095, "wb": None,
                    "color_matrix": camera["color_matrix"]}}
    assert Camera.from_images(legacy).illuminant == UNKNOWN_ILLUMINANT
    assert Camera.from_images(legacy).color_matrix2 is None


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


def test_the_dataset_is_named_after_its_folder_and_keeps_its_name_when_prepared_again(tmp_path):
    src, out = make_folder(tmp_path / "dng", 2), tmp_path / "gopro"
    args = ["prepare", "folder", "--raw-dir", str(src), "--out", str(out), "--test-fraction", "0"]
    assert main(args) == 0
    assert PreparedDataset(out).description["name"] == "gopro"  # not "dng"
    assert main(args + ["--name", "cam"]) == 0
    assert PreparedDataset(out).description["name"] == "cam"
    assert main(args) == 0  # a rerun without --name keeps the name its runs are named after
    assert PreparedDataset(out).description["name"] == "cam"


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


@pytest.mark.parametrize("command", [["folder", "--raw-dir", "r"], ["fivek", "--root", "r",
                                     "--camera", "nikon"], ["nod", "--root", "r", "--camera", "sony"]])
@pytest.mark.parametrize("grid", ["0", "-2", "x"])
def test_grid_below_one_is_refused_naming_the_option(command, grid, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["prepare", *command, "--out", str(tmp_path / "o"), "--grid", grid])
    assert info.value.code == 2 and not (tmp_path / "o").exists()
    [line] = capsys.readouterr().err.splitlines()  # one line, without argparse's usage
    assert line == (f"rawdiffusion prepare {command[0]}: error: argument --grid: must be a "
                    f"positive integer, got {grid!r} (see rawdiffusion prepare {command[0]} "
                    "--help)")
    with pytest.raises(UserError, match="grid 0: must be at least 1 patch per side"):
        grid_boxes(1500, 2000, 0)


@pytest.mark.parametrize("args, line", [
    *[(["--test-fraction", f], f"argument --test-fraction: must be a number in [0, 1), got {f!r}")
      for f in ("1", "-0.1", "nan", "2", "x")],
    (["--split-seed", "-1"], "argument --split-seed: must be an integer >= 0, got '-1'"),
    (["--split-seed", "4294967296"], "argument --split-seed: must be below 2**32, got "
                                     "'4294967296'"),
    *[(["--name", n], f"argument --name: {n!r} cannot name a folder: give a plain name such "
                      "as gopro") for n in ("", "../x", "..")],
    (["--bogus", "1"], "unrecognized arguments: --bogus 1"),
])
def test_a_bad_option_is_one_line_of_the_subcommand_naming_it(args, line, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["prepare", "folder", "--raw-dir", "r", "--out", str(tmp_path / "o"), *args])
    assert info.value.code == 2 and not (tmp_path / "o").exists()
    [said] = capsys.readouterr().err.splitlines()  # one line, without argparse's usage
    assert said == (f"rawdiffusion prepare folder: error: {line} (see rawdiffusion prepare "
                    "folder --help)")


# ----------------------------------------------------------------------------- real data

@pytest.mark.parametrize("folder", ["dng", "bayer"])
def test_prepare_folder_on_real_raw_files(folder, tmp_path):
    src = require_shared(SHARED_RAW / folder)
    out = tmp_path / folder
    assert main(["prepare", "folder", "--raw-dir", str(src), "--out", str(out),
                 "--workers", "2"]) == 0
    ds = PreparedDataset(out)
    files = [str(p) for p in raw_named_entries(src) if p.is_file()]
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


# ----------------------------------------------------------------------------- sensor noise

def noisy_dng(path, iso, shot, read=2e-7, seed=0, wb=None):
    """A textured 512 x 512 RGGB DNG (black 64, white 4095) with Poisson-Gaussian noise of
    shot `shot` and read `read` (normalised units), its ISO, exposure time and a NoiseProfile
    (and as-shot white balance `wb`, R, G, B gains, when given)."""
    codes = poisson_gaussian_codes(textured_scene(256, 256, seed), [shot] * 4, [read] * 4,
                                   [64] * 4, 4095, seed)
    write_dng(path, RawImage(mosaic=bayer.unpack(codes, "RGGB"), cfa="RGGB", black_level=64,
                             white_level=4095, make="Testmaker", model="Noisy 1", iso=iso,
                             exposure_time=0.01, noise_profile=((shot / 2, read),), wb=wb))


def test_prepare_records_iso_exposure_noise_profile_and_measured_noise(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    for i, (iso, shot) in enumerate([(100, 1e-4), (400, 4e-4), (400, 4e-4)]):
        noisy_dng(src / f"n{i}.dng", iso, shot, seed=i)
    assert main(["prepare", "folder", "--raw-dir", str(src), "--out", str(out),
                 "--test-fraction", "0", "--workers", "1"]) == 0
    images = PreparedDataset(out).images
    entry = images["n1"]
    assert (entry["iso"], entry["exposure_time"]) == (400, 0.01)
    assert entry["noise_profile"] == [[2e-4, 2e-7]]
    np.testing.assert_allclose(entry["noise"]["shot"], 4e-4, rtol=0.1)  # the pixels' own noise
    # what training and baseline fit store: S per ISO, calibrated from the three
    noise = Camera.from_training_images(images).noise
    assert noise.isos == (100, 400, 400) and noise.iso == 100
    np.testing.assert_allclose(noise.shot, 1e-4, rtol=0.1)
    np.testing.assert_allclose(noise.at(400)[0], 4e-4, rtol=0.1)


def test_entries_of_before_gain_their_noise_when_prepared_again_and_say_why_until_then(
        tmp_path, caplog):
    src, out = tmp_path / "src", tmp_path / "out"
    noisy_dng(src / "n0.dng", 200, 2e-4)
    args = ["prepare", "folder", "--raw-dir", str(src), "--out", str(out), "--test-fraction", "0"]
    assert main(args) == 0
    meta = out / "meta" / "n0.json"
    entry = json.loads(meta.read_text())
    for key in ("iso", "exposure_time", "noise_profile", "noise"):  # as an earlier version wrote
        del entry[key]
    meta.write_text(json.dumps(entry))
    (out / "dataset.json").write_text(json.dumps(  # and its dataset.json as written then
        {**json.loads((out / "dataset.json").read_text()), "images": {"n0": {
            **entry, "split": "train"}}}))
    stamp = (out / "raw" / "n0_0.npy").stat().st_mtime_ns
    assert "noise" not in PreparedDataset(out).images["n0"]
    with caplog.at_level("WARNING"):
        assert Camera.from_training_images({"n0": entry}).noise is None
    assert "Testmaker Noisy 1: no noise model (`--iso` and noise.iso need one): of its 1 " \
           "training image(s), 1 prepared by a version before noise calibration (run the same " \
           "`rawdiffusion prepare` command again: it adds their ISO and noise)" in caplog.text
    assert main(args) == 0
    upgraded = json.loads(meta.read_text())
    assert upgraded["iso"] == 200 and upgraded["noise"]["shot"][0] > 0
    assert PreparedDataset(out).images["n0"]["iso"] == 200
    assert (out / "raw" / "n0_0.npy").stat().st_mtime_ns == stamp  # samples left as they were
    assert Camera.from_training_images(PreparedDataset(out).images).noise.isos == (200,)


def test_a_camera_without_isos_has_no_noise_model_and_says_so(tmp_path, caplog):
    """The headerless dumps (the GRBG camera of ../shared) have no ISO unless their sidecar
    gives one."""
    src, out = tmp_path / "src", tmp_path / "out"
    codes = poisson_gaussian_codes(textured_scene(256, 256, 0), [1e-4] * 4, [1e-6] * 4,
                                   [16] * 4, 1023, 0)
    src.mkdir()
    for i in range(2):
        bayer.unpack(codes, "GRBG").astype("<u2").tofile(src / f"d{i}.raw")
        (src / f"d{i}.json").write_text(json.dumps(
            {"width": 512, "height": 512, "dtype": "uint16", "cfa_pattern": "GRBG",
             "black_level": 16, "white_level": 1023, **({"iso": 800} if i else {})}))
    assert main(["prepare", "folder", "--raw-dir", str(src), "--out", str(out),
                 "--test-fraction", "0"]) == 0
    images = PreparedDataset(out).images
    assert images["d0"]["iso"] is None and images["d1"]["iso"] == 800
    with caplog.at_level("INFO"):
        assert Camera.from_training_images({"d0": images["d0"]}).noise is None
        assert Camera.from_training_images(images).noise.isos == (800,)
    assert "the camera: no noise model (`--iso` and noise.iso need one): of its 1 training " \
           "image(s), 1 without an ISO in their metadata (headerless dumps: give \"iso\" in " \
           "their JSON sidecars)" in caplog.text
    assert "noise calibrated from 1 training image(s); left out: 1 without an ISO" in caplog.text


def test_export_calibrate_gives_an_older_checkpoint_what_training_now_stores(tmp_path, capsys):
    """A checkpoint whose camera has neither noise model nor training white balances (as made
    before they were kept) gets both from a prepared dataset's training images, equal to what
    training would store; the weights stay as they were."""
    import torch

    from rawdiffusion.checkpoint import load_checkpoint, save_checkpoint
    from rawdiffusion.model import build_model

    src, data = tmp_path / "src", tmp_path / "data"
    for i, (iso, shot) in enumerate([(100, 1e-4), (400, 4e-4), (400, 4e-4)]):
        noisy_dng(src / f"n{i}.dng", iso, shot, seed=i, wb=(1.8 + i / 10, 1.0, 1.5))
    assert main(["prepare", "folder", "--raw-dir", str(src), "--out", str(data),
                 "--test-fraction", "0", "--workers", "1"]) == 0
    images = PreparedDataset(data).images
    old = Camera.from_images(images)
    assert old.noise is None and old.wbs is None
    torch.manual_seed(0)
    net = build_model("small")
    save_checkpoint(tmp_path / "old.pt", {"step": 3, "config": {}, "model_config": net.config,
                                          "model": net.state_dict(), "ema": None,
                                          "camera": old.to_dict()})
    capsys.readouterr()
    assert main(["export", str(tmp_path / "old.pt"), "--calibrate", str(data),
                 "--out", str(tmp_path / "new.pt")]) == 0
    assert "noise model of 3 image(s) at ISO 100 to 400" in capsys.readouterr().out
    new = load_checkpoint(tmp_path / "new.pt")
    assert Camera.from_dict(new["camera"]) == Camera.from_training_images(images)
    np.testing.assert_allclose(new["camera"]["wbs"], [[1.8, 1, 1.5], [1.9, 1, 1.5], [2, 1, 1.5]],
                               rtol=1e-6)
    assert new["camera"]["noise"]["isos"] == [100, 400, 400]
    for k, v in net.state_dict().items():
        assert torch.equal(new["model"][k], v.half() if v.is_floating_point() else v)


def test_export_calibrate_refuses_what_cannot_calibrate_the_camera_in_one_line(tmp_path, capsys):
    """Another camera's dataset, a missing folder: one line saying what is wrong. A dataset
    whose images give white balances but no ISO stores the white balances and keeps the
    checkpoint's own noise model."""
    import torch

    from rawdiffusion.checkpoint import load_checkpoint, save_checkpoint
    from rawdiffusion.model import build_model

    src, data = tmp_path / "src", tmp_path / "data"
    for i in range(3):
        noisy_dng(src / f"n{i}.dng", None, 1e-4, seed=i, wb=(1.8 + i / 10, 1.0, 1.5))
    assert main(["prepare", "folder", "--raw-dir", str(src), "--out", str(data),
                 "--test-fraction", "0", "--workers", "1"]) == 0
    images = PreparedDataset(data).images
    noise = {"iso": 200.0, "shot": [1e-4] * 4, "read_gained": [1e-7] * 4, "read_fixed": [0.0] * 4,
             "isos": [200.0]}
    torch.manual_seed(0)
    net = build_model("small")
    state = {"step": 3, "config": {}, "model_config": net.config, "model": net.state_dict(),
             "ema": None}
    ours = {**Camera.from_images(images).to_dict(), "noise": noise}
    save_checkpoint(tmp_path / "ours.pt", {**state, "camera": ours})
    save_checkpoint(tmp_path / "other.pt", {**state, "camera": {**ours, "model": "Other 2"}})

    def export_line(checkpoint, dataset):
        capsys.readouterr()
        assert main(["export", str(checkpoint), "--calibrate", str(dataset),
                     "--out", str(tmp_path / "x.pt")]) == 2
        err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
        assert len(err) == 1 and not (tmp_path / "x.pt").exists()
        return err[0]

    line = export_line(tmp_path / "other.pt", data)
    assert "the dataset's training images are of Testmaker Noisy 1 (3), none of its camera " \
           "(Testmaker Other 2)" in line
    assert "no such folder" in export_line(tmp_path / "ours.pt", tmp_path / "nowhere")
    assert main(["export", str(tmp_path / "ours.pt"), "--calibrate", str(data),
                 "--out", str(tmp_path / "new.pt")]) == 0
    camera = load_checkpoint(tmp_path / "new.pt")["camera"]
    assert camera["noise"] == noise and len(camera["wbs"]) == 3
