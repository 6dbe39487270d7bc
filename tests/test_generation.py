"""RGB -> RAW conversion with a checkpoint: outputs, resumption, sharding, clear errors."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from rawdiffusion.checkpoint import camera_raw, load_model, save_checkpoint
from rawdiffusion.diffusion import Diffusion
from rawdiffusion.generation import Generator, convert, file_digest, merge_manifests
from rawdiffusion.io import read_packed, read_raw
from rawdiffusion.model import build_model

CAMERA = {"cfa": "GRBG", "make": "Testmaker", "model": "Synthetic 1",
          "black_level": [64.0, 65.0, 66.0, 67.0], "white_level": 4095.0,
          "wb": [2.0, 1.0, 1.5], "color_matrix": None}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A small-preset checkpoint whose zero-initialised output layers are randomised, so that
    its samples depend on the guide and the noise."""
    torch.manual_seed(0)
    net = build_model("small")
    torch.nn.init.normal_(net.conv_out.weight, std=0.05)
    path = tmp_path_factory.mktemp("ckpt") / "checkpoint.pt"
    save_checkpoint(path, {"step": 1, "config": {}, "model_config": net.config,
                           "model": net.state_dict(), "ema": None, "camera": CAMERA})
    return path


def generator(path, **kw):
    net, state = load_model(path)
    return Generator(net, Diffusion(), state["camera"], file_digest(path), steps=2, **kw)


def photos(folder, sizes=((64, 96), (48, 80), (40, 56))):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i, (h, w) in enumerate(sizes):
        path = folder / f"photo{i}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def test_convert_writes_the_cameras_dng_previews_and_manifest(checkpoint, tmp_path):
    sources = photos(tmp_path / "in")
    out = tmp_path / "out"
    assert convert(sources, out, generator(checkpoint, tile=16, overlap=8), seed=0,
                   figure=True) == (3, 0)
    raw = read_raw(out / "photo0.dng")
    assert raw.mosaic.shape == (64, 96)  # a photo's pixels become as many RAW pixels
    assert (raw.cfa, raw.white_level, raw.make) == ("GRBG", 4095, "Testmaker")
    assert raw.black_level == (65, 64, 67, 66)  # packed R, G1, G2, B levels at GRBG positions
    assert raw.mosaic.min() >= 64 and raw.mosaic.max() <= 4095
    assert (out / "photo0.png").is_file() and (out / "photo0_compare.png").is_file()
    records = [json.loads(line) for line in merge_manifests(out).read_text().splitlines()]
    assert [r["output"] for r in records] == sorted(str(out / f"photo{i}.dng") for i in range(3))
    assert {r["checkpoint"] for r in records} == {file_digest(checkpoint)}
    assert {r["steps"] for r in records} == {2}


def test_a_killed_conversion_resumes_to_identical_outputs(checkpoint, tmp_path):
    sources = photos(tmp_path / "in")
    out = tmp_path / "out"
    convert(sources, out, generator(checkpoint), seed=7)
    first = {p.name: p.read_bytes() for p in out.glob("photo*")}
    # as if killed after the first image: the others' outputs never appeared
    for name in ("photo1.dng", "photo1.png", "photo2.dng", "photo2.png"):
        (out / name).unlink()
    stamp = (out / "photo0.dng").stat().st_mtime_ns
    assert convert(sources, out, generator(checkpoint), seed=7) == (2, 1)
    assert (out / "photo0.dng").stat().st_mtime_ns == stamp  # finished work is not redone
    assert {p.name: p.read_bytes() for p in out.glob("photo*")} == first


def test_sharded_processes_produce_what_one_process_does(checkpoint, tmp_path, monkeypatch):
    sources = photos(tmp_path / "in")
    convert(sources, tmp_path / "one", generator(checkpoint), seed=3, fmt="npy")
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        convert(sources, tmp_path / "two", generator(checkpoint), seed=3, fmt="npy")
    for i in range(3):
        np.testing.assert_array_equal(read_packed(tmp_path / "one" / f"photo{i}.npy"),
                                      read_packed(tmp_path / "two" / f"photo{i}.npy"))
    assert len(merge_manifests(tmp_path / "two").read_text().splitlines()) == 3


def test_hdf5_output_in_the_reference_layout(checkpoint, tmp_path):
    import h5py

    convert(photos(tmp_path / "in")[:1], tmp_path / "out", generator(checkpoint), 0, fmt="hdf5")
    with h5py.File(tmp_path / "out" / "photo0.h5") as f:
        assert f["raw"].shape == (32, 48, 4) and f["raw"].dtype == np.uint16


def test_unreadable_image_is_named_and_leaves_nothing(checkpoint, tmp_path):
    bad = tmp_path / "in" / "broken.jpg"
    bad.parent.mkdir()
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(ValueError, match="broken.jpg: not a readable image"):
        convert([bad], tmp_path / "out", generator(checkpoint), 0)
    assert not any(p.name.startswith("broken") for p in (tmp_path / "out").iterdir())


def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path):
    (tmp_path / "x.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="x.pt: not a readable checkpoint"):
        load_model(tmp_path / "x.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="other.pt: not a rawdiffusion checkpoint"):
        load_model(tmp_path / "other.pt")


def test_camera_raw_inverts_normalisation_exactly():
    x = np.random.default_rng(0).uniform(0, 1, (4, 6, 8)).astype(np.float32)
    raw = camera_raw(CAMERA, x)
    assert raw.mosaic.shape == (12, 16)
    from rawdiffusion import bayer

    levels = bayer.packed_levels(raw.black_level, raw.cfa)
    assert levels.tolist() == CAMERA["black_level"]
    back = bayer.normalise(bayer.pack(raw.mosaic, raw.cfa), levels, raw.white_level)
    np.testing.assert_allclose(back, x, atol=0.5 / (4095 - 67))
