"""Exposure as a drawn input (convert --exposure draw, rd.load(exposure="draw"), sample.py
noise.exposure=draw): each training image's exposure against the fitted colour prior
(prior.exposure_offsets), kept in the camera by baseline fit, training and export --calibrate,
drawn seeded per photo, recorded in the manifest, and refused in one line by files that do
not keep them. A fitted linear baseline (no network) makes every output exact."""

import json
import logging
import math

import numpy as np
import pytest
import torch

import rawdiffusion as rd
from rawdiffusion import cli
from rawdiffusion.baselines import fit_baseline, load_baseline, save_baseline
from rawdiffusion.bayer import normalise
from rawdiffusion.camera import Camera
from rawdiffusion.convert import convert
from rawdiffusion.diffusion import derived_seed
from rawdiffusion.generation import same_generation
from rawdiffusion.images import halve_area, read_rgb
from rawdiffusion.io import read_raw
from rawdiffusion.loading import open_generator
from rawdiffusion.prior import ColourMap, fit_colour_map, measured_exposures, \
    srgb_to_linear_table
from rawdiffusion.processes import merge_manifests
from rawdiffusion.sensor import drawn_exposure
from rawdiffusion.settings import Settings
from test_baselines import paired_dataset
from test_white_balance import CAMERA, linear_baseline, photos

LIN = srgb_to_linear_table()
SCALES = (1.0, 2.0, 0.5)  # the training images' exposures: img1 1 EV above img0, img2 1 below
EXPOSURES = [-0.6, -0.2, 0.4, 1.1]


def exposed(images=4, samples=2):
    """raw_of for paired_dataset: RAW = 0.2 x the linear guide x SCALES[image], the images'
    samples made in order (samples per image)."""
    made = iter(range(images * samples))

    def raw_of(rgb):
        image = next(made) // samples
        scale = SCALES[image] if image < len(SCALES) else 1.0
        x = 0.2 * scale * LIN[rgb]
        return np.stack([x[..., 0], x[..., 1], x[..., 1], x[..., 2]])
    return raw_of


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return paired_dataset(tmp_path_factory.mktemp("exposed") / "data", exposed())


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("ev")
    return {"new": linear_baseline(root / "new.json", {**CAMERA, "exposures": EXPOSURES}),
            "old": linear_baseline(root / "old.json", CAMERA)}


def opened(path, **settings):
    return open_generator(path, Settings(**settings), torch.device("cpu"))


def records(out) -> list[dict]:
    lines = merge_manifests(out).read_text().splitlines()
    return sorted(map(json.loads, lines), key=lambda r: r["source"])


def test_each_training_images_exposure_is_its_raw_against_the_fitted_map(data):
    cmap, fit = fit_colour_map(data, "train", "linear", progress=False)
    offsets = fit["exposures"]
    assert list(offsets) == ["img0", "img1", "img2"]  # the training split's images
    # the images' exposures, around the map's: 1 EV apart as their RAW were
    assert offsets["img1"] - offsets["img0"] == pytest.approx(1, abs=0.01)
    assert offsets["img2"] - offsets["img0"] == pytest.approx(-1, abs=0.01)
    assert min(offsets.values()) < 0 < max(offsets.values())
    # golden: log2(sum of the RAW / sum of the map's unclipped estimate) over each image's pixels
    for image in offsets:
        raw = estimate = 0.0
        for sample in data.images[image]["samples"]:
            s = data.load(sample)
            raw += normalise(s.raw, s.black, s.white).sum(dtype=np.float64)
            codes = torch.from_numpy(s.rgb.copy()).permute(2, 0, 1)[None]
            estimate += torch.einsum("bthw,tc->bchw", cmap.features(codes), cmap.weights).sum()
        assert offsets[image] == pytest.approx(math.log2(raw / float(estimate)), abs=1e-9)
    # a fitted map measured again, as export --calibrate does, gives the same
    assert measured_exposures(data, "train", cmap, progress=False) == pytest.approx(offsets)


def test_baseline_fit_keeps_them_in_its_camera(data, tmp_path):
    fit_baseline(data, "linear", tmp_path / "b.json")
    camera = load_baseline(tmp_path / "b.json").camera
    _, fit = fit_colour_map(data, "train", "linear", progress=False)
    assert camera.exposures == pytest.approx(list(fit["exposures"].values()))


def test_draw_is_seeded_per_photo_from_the_training_exposures_and_recorded(files, tmp_path):
    sources = photos(tmp_path / "in")
    gen = opened(files["new"], exposure="draw")
    assert not gen.clean
    convert(sources, tmp_path / "one", gen, seed=5)
    convert(sources, tmp_path / "batch2", opened(files["new"], exposure="draw", batch_size=2),
            seed=5)
    drawn = [drawn_exposure(EXPOSURES, derived_seed(5, i)) for i in range(3)]
    assert [r["exposure"] for r in records(tmp_path / "one")] == drawn
    plain = opened(files["new"])
    for i, ev in enumerate(drawn):
        out = tmp_path / "one" / f"photo{i}.dng"
        assert out.read_bytes() == (tmp_path / "batch2" / f"photo{i}.dng").read_bytes()
        # the clean RAW x 2^EV, clipped at white, as a fixed exposure of that EV records it
        seed = derived_seed(5, i)
        x = torch.from_numpy(plain.generate_from_guides([halve_area(read_rgb(sources[i]))],
                                                        [seed])[0])
        fixed = opened(files["new"], exposure=ev).recorded(x, seed)
        assert torch.equal(fixed, (x * 2 ** ev).clamp(max=1))
        assert np.array_equal(read_raw(out).mosaic, gen.camera.raw(fixed.numpy()).mosaic)
    draws = {drawn_exposure(EXPOSURES, derived_seed(s, 0)) for s in range(40)}
    assert draws == set(EXPOSURES)  # every training image's comes up
    # a rerun keeps them; another exposure redoes them
    record = records(tmp_path / "one")[0]
    assert record["seed"] == derived_seed(5, 0) and same_generation(record, gen, record["seed"])
    assert convert(sources, tmp_path / "one", gen, seed=5) == (0, 3)
    assert convert(sources, tmp_path / "one", opened(files["new"]), seed=5) == (3, 0)
    # gen(photo) draws as convert's first photo
    raw = rd.load(files["new"], exposure="draw")(read_rgb(sources[0]), seed=5)
    assert np.array_equal(raw.mosaic, read_raw(tmp_path / "batch2" / "photo0.dng").mosaic)


def test_draw_with_a_file_that_keeps_no_exposures_is_one_line(files, tmp_path, capsys):
    with pytest.raises(rd.SettingError) as e:
        opened(files["old"], exposure="draw")
    assert e.value.name == "exposure"
    photo = photos(tmp_path / "in", sizes=((32, 32),))[0]
    with pytest.raises(SystemExit, match="2"):
        cli.main(["convert", str(photo), "--checkpoint", str(files["old"]), "--out",
                  str(tmp_path / "out"), "--exposure", "draw"])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "argument --exposure: " in err[0]
    assert "holds no exposures of its camera's training images to draw from" in err[0]
    assert not (tmp_path / "out").exists()
    # a number still works with it
    assert opened(files["old"], exposure=-1.5).exposure_for(3) == -1.5


@pytest.mark.parametrize("value", ["drawn", "nan", "65"])
def test_a_bad_exposure_option_is_one_line(files, tmp_path, capsys, value):
    photo = photos(tmp_path / "in", sizes=((32, 32),))[0]
    with pytest.raises(SystemExit, match="2"):
        cli.main(["convert", str(photo), "--checkpoint", str(files["new"]), "--out",
                  str(tmp_path / "out"), "--exposure", value])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--exposure" in err[0] and "draw" in err[0], err


@pytest.mark.parametrize("exposures, words", [
    ([], "camera.exposures: a list of one or more exposures in EV"),
    ({"a": 1.0}, "camera.exposures: a list of one or more exposures in EV"),
    ([0.5, float("inf")], "camera.exposures: entry 1: inf is not a number of EV from -64 to 64"),
    ([1e9], "camera.exposures: entry 0: 1000000000.0 is not a number of EV from -64 to 64"),
    (["0.1"], "camera.exposures: entry 0: '0.1' is not a number of EV from -64 to 64"),
    ([True], "camera.exposures: entry 0: True is not a number of EV from -64 to 64")])
def test_stored_exposures_that_cannot_be_are_named_once(exposures, words):
    problem = Camera.problem({**CAMERA, "exposures": exposures})
    assert problem.startswith(words) and problem.count(";") == 0, problem


@pytest.mark.parametrize("value", [np.float32(0.5), np.int64(2), 1, -64])
def test_any_real_number_of_ev_is_taken_as_a_float(value):
    exposure = Settings(exposure=value).exposure
    assert type(exposure) is float and exposure == float(value)


@pytest.mark.parametrize("value", [10 ** 400, -65, float("nan"), True, None, "Draw", [1]])
def test_an_exposure_that_cannot_be_is_refused_naming_it(value):
    with pytest.raises(rd.SettingError) as e:
        Settings(exposure=value)
    assert e.value.name == "exposure"


def test_a_camera_without_them_stays_as_it_was(tmp_path):
    camera = Camera.from_dict(CAMERA)
    assert camera.with_exposures([]) is camera and camera.with_exposures(None) is camera
    assert "exposures" not in camera.to_dict()
    save_baseline(tmp_path / "b.json", "linear", camera, ColourMap("linear"))
    assert load_baseline(tmp_path / "b.json").camera.exposures is None


def test_at_0_ev_the_log_says_what_that_means(files, caplog):
    with caplog.at_level(logging.INFO, logger="rawdiffusion.loading"):
        opened(files["new"])
        opened(files["new"], exposure="draw")
    said = [r.getMessage() for r in caplog.records if "exposure" in r.getMessage()]
    assert said == ["exposure 0 EV: the training images' typical exposure (an sRGB photo does not "
                    "tell it, and none is estimated from it)"]
