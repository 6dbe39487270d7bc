"""The sensor noise model (noise.py) and its single-image estimator (noise_levels.py): recovery of
known S and O from textured Poisson-Gaussian mosaics, the fit across ISOs, seeded sampling that
does not depend on the batch, clipping and quantisation, the ISO range policy, the model's dict,
and the ISO / exposure / NoiseProfile metadata read and written with the RAW files."""

import json
import logging

import numpy as np
import pytest
import rawpy
import torch
from PIL import Image
from noise_scenes import poisson_gaussian_codes, textured_scene

import rawdiffusion as rd
from rawdiffusion import bayer, cli
from rawdiffusion.baselines import Baseline
from rawdiffusion.camera import Camera
from rawdiffusion.checkpoint import save_checkpoint
from rawdiffusion.convert import convert
from rawdiffusion.diffusion import derived_seed
from rawdiffusion.errors import SettingError
from rawdiffusion.images import halve_area, read_rgb
from rawdiffusion.io import RawImage, _exposure, read_raw, write_dng
from rawdiffusion.loading import open_generator
from rawdiffusion.model import build_model
from rawdiffusion.processes import merge_manifests
from rawdiffusion.settings import Settings
from rawdiffusion.unprocess import generic_params
from rawdiffusion.noise import (FileNoise, NoiseError, NoiseModel, calibrate, dng_noise_profile,
                                measure, profile_channels)
from rawdiffusion.noise_levels import clipped_moments, estimate_noise
from rawdiffusion.sensor import (SENSOR_NOISE, add_noise, drawn_iso, expose, noise_generators,
                                 white_balance_gains)
from test_convert import CAMERA, photos


def streams(seed, indices):
    """The noise streams of images `indices` of a run of seed `seed` (their seeds as generation
    derives them)."""
    return noise_generators([derived_seed(seed, i) for i in indices])


def model_at(shot, read, iso=100.0, isos=(100.0,)) -> NoiseModel:
    return NoiseModel(iso=iso, shot=(shot,) * 4, read_gained=(read,) * 4, read_fixed=(0.0,) * 4,
                      isos=tuple(isos))


@pytest.mark.parametrize("shot, read, white, black, cfa", [
    (1e-4, 1e-6, 16383, (512, 520, 530, 540), "RGGB"),    # 14-bit, read noise 16 codes
    (5e-4, 4e-6, 16383, (0, 0, 0, 0), "GRBG"),           # black 0: the dark end clips at 0
    (2e-3, 2e-5, 4095, (256, 256, 256, 256), "BGGR"),     # 12-bit, high ISO
])
def test_calibration_recovers_shot_and_read_within_10_percent(shot, read, white, black, cfa):
    clean = textured_scene(768, 768, seed=1)
    codes = poisson_gaussian_codes(clean, [shot] * 4, [read] * 4, black, white, seed=1)
    raw = RawImage(mosaic=bayer.unpack(codes, cfa), cfa=cfa, white_level=white,
                   black_level=black if cfa == "RGGB" else black[0], iso=200)
    found = measure(raw)
    assert found.iso == 200
    np.testing.assert_allclose(found.shot, shot, rtol=0.10)
    np.testing.assert_allclose(found.read, read, rtol=0.10)


def test_the_estimate_of_added_noise_is_the_models_also_for_8_bit_codes():
    # O is the noise of the codes, quantisation included: add_noise draws O less 1/12 code^2,
    # so that what the estimator measures on its output is the model's O again.
    white, black = 255, np.full(4, 12.0)
    model = model_at(4e-3, 2e-5)
    clean = torch.from_numpy(textured_scene(768, 768, seed=2)).float().clamp(0, 1)[None]
    noisy = add_noise(clean, model, 100, 0.0, black, white, streams(0, [0]))
    found = estimate_noise([noisy[0].double().numpy()], -black / (white - black))
    np.testing.assert_allclose(found.shot, 4e-3, rtol=0.10)
    np.testing.assert_allclose(found.read, 2e-5, rtol=0.10)


def test_noise_tops_up_what_the_clean_image_already_has_to_the_models_level():
    # A generator's output carries noise-like detail from its guide: the output's noise level
    # function is the model's, not the model's plus that.
    black, white = np.zeros(4), 16383
    scene = textured_scene(768, 768, seed=3).clip(0, 1)
    rng = np.random.default_rng(3)
    grainy = scene + rng.normal(size=scene.shape) * np.sqrt(3e-5 * scene + 2e-7)
    x = torch.from_numpy(grainy.clip(0, 1)).float()[None]
    out = add_noise(x, model_at(1e-4, 1e-6), 100, 0.0, black, white, streams(0, [0]))
    found = estimate_noise([out[0].double().numpy()], np.zeros(4))
    np.testing.assert_allclose(found.shot, 1e-4, rtol=0.10)
    np.testing.assert_allclose(found.read, 1e-6, rtol=0.10)
    quiet = add_noise(x, model_at(1e-5, 1e-7), 100, 0.0, black, white, streams(0, [0]))
    assert torch.equal(quiet, torch.round(x * white) / white)  # already above it: codes only


def test_clipped_moments_are_those_of_a_clipped_normal_sample():
    rng = np.random.default_rng(0)
    mu, var, lo, hi = np.array([0.01, 0.5, 0.99]), np.array([1e-4, 1e-3, 1e-4]), 0.0, 1.0
    draws = np.clip(mu + rng.normal(size=(400_000, 3)) * np.sqrt(var), lo, hi)
    mean, variance = clipped_moments(mu, var, lo, hi)
    np.testing.assert_allclose(mean, draws.mean(axis=0), atol=5e-5)
    np.testing.assert_allclose(variance, draws.var(axis=0), rtol=0.01)


def test_calibrate_fits_shot_in_proportion_to_iso_and_read_noise_before_and_after_the_gain():
    shot_1, gained_1, fixed = 1e-5, 2e-9, 3e-7  # per unit of ISO / ISO^2 at ISO 1
    files = [FileNoise(f"f{iso}", float(iso), 0.01, np.full(4, shot_1 * iso),
                       np.full(4, gained_1 * iso ** 2 + fixed)) for iso in (100, 400, 1600)]
    files.append(FileNoise("no-iso", None, None, np.full(4, 1.0), np.full(4, 1.0)))
    model = calibrate(files)
    assert model.iso == 100 and model.isos == (100.0, 400.0, 1600.0)
    for iso in (100, 800, 6400):
        shot, read = model.at(iso)
        np.testing.assert_allclose(shot, shot_1 * iso, rtol=1e-9)
        np.testing.assert_allclose(read, gained_1 * iso ** 2 + fixed, rtol=1e-6)


def test_one_iso_takes_all_read_noise_as_before_the_gain():
    files = [FileNoise(name, 100.0, None, np.full(4, s), np.full(4, 1e-7))
             for name, s in (("a", 1e-4), ("b", 3e-4), ("c", 2e-4))]
    model = calibrate(files)
    assert model.read_fixed == (0.0,) * 4
    shot, read = model.at(400)
    np.testing.assert_allclose(shot, 8e-4)          # the median file's S, times 4
    np.testing.assert_allclose(read, 16e-7)         # O times 4^2


def test_calibration_without_any_iso_is_refused_in_one_line():
    with pytest.raises(NoiseError, match="none of the 1 file"):
        calibrate([FileNoise("x.raw", None, None, np.ones(4), np.ones(4))])


def test_iso_outside_the_calibrated_range_is_extrapolated_with_one_warning(caplog):
    model = model_at(1e-4, 1e-7, isos=(100, 400))
    with caplog.at_level(logging.WARNING, logger="rawdiffusion.noise"):
        model.at(200)
        assert not caplog.records
        shot, _ = model.at(1700)
        model.at(1700)  # a job's next image: not again
    assert [r.getMessage() for r in caplog.records] == [
        "ISO 1700 lies outside the calibrated ISO 100 to 400: noise extrapolated (S in "
        "proportion to ISO, read noise before the gain as ISO^2)"]
    np.testing.assert_allclose(shot, 17e-4)


@pytest.mark.parametrize("iso", [0, -100, float("nan"), float("inf"), "fast"])
def test_an_iso_that_is_no_positive_number_is_refused_in_one_line(iso):
    with pytest.raises(NoiseError, match=r"^ISO .*(above 0|not a number)$"):
        model_at(1e-4, 1e-7).at(iso)


def test_noise_model_dict_round_trip_and_a_bad_value_named_by_its_key():
    model = NoiseModel(iso=100.0, shot=(1e-4, 2e-4, 2e-4, 1.5e-4), read_gained=(1e-7,) * 4,
                       read_fixed=(0.0, 1e-8, 1e-8, 0.0), isos=(100.0, 100.0, 400.0))
    stored = json.loads(json.dumps(model.to_dict()))  # plain values only
    assert NoiseModel.from_dict(stored) == model
    stored["shot"][1] = -1.0
    with pytest.raises(NoiseError, match=r"noise\.shot\[1\]: input should be greater than"):
        NoiseModel.from_dict(stored)


# ----------------------------------------------------------------------------- sampling

def test_no_iso_adds_no_noise():
    x = torch.rand(2, 4, 16, 16)
    assert add_noise(x, None, None, 0.0, np.zeros(4), 1023, []) is x
    darker = add_noise(x, model_at(1e-4, 1e-7), None, -1.0, np.zeros(4), 1023, [])
    assert torch.equal(darker, x * 0.5)


def test_noise_is_seeded_per_image_and_independent_of_the_batch():
    model, black = model_at(1e-3, 1e-5), np.full(4, 64.0)
    x = torch.rand(3, 4, 32, 40)
    batch = add_noise(x, model, 400, 0.0, black, 4095, streams(7, [0, 1, 2]))
    alone = add_noise(x[1:2], model, 400, 0.0, black, 4095, streams(7, [1]))
    again = add_noise(x, model, 400, 0.0, black, 4095, streams(7, [0, 1, 2]))
    assert torch.equal(batch[1], alone[0]) and torch.equal(batch, again)
    assert not torch.equal(batch[0], add_noise(x[:1], model, 400, 0.0, black, 4095,
                                               streams(8, [0]))[0])
    expected = torch.Generator().manual_seed(derived_seed(derived_seed(7, 1), SENSOR_NOISE))
    assert torch.equal(streams(7, [1])[0].get_state(), expected.get_state())


def test_noise_is_quantised_to_integer_codes_and_goes_under_black_down_to_code_0():
    black, white = np.array([64.0, 60.0, 60.0, 64.0]), 1023
    x = torch.full((1, 4, 64, 64), 0.002)
    out = add_noise(x, model_at(1e-4, 4e-5), 100, 0.0, black, white, streams(0, [0]))
    codes = out[0].double() * torch.tensor(white - black).view(4, 1, 1) + \
        torch.tensor(black).view(4, 1, 1)
    assert torch.allclose(codes, codes.round(), atol=1e-3)
    assert codes.min() >= 0 and (codes < torch.tensor(black).view(4, 1, 1)).any()


def test_saturated_signal_is_white_and_nothing_goes_above_it():
    black, white = np.zeros(4), 4095
    x = torch.tensor([0.2, 0.5, 0.99, 1.0]).view(1, 4, 1, 1).expand(1, 4, 32, 32)
    model = model_at(2e-3, 1e-5)
    out = add_noise(x, model, 100, 0.0, black, white, streams(0, [0]))
    assert out.max() <= 1.0 and torch.all(out[0, 3] == 1.0)
    assert 0 < (out[0, 2] == 1.0).float().mean() < 1    # near white: noisy, sometimes clipped
    brighter = add_noise(x, model, 100, 2.0, black, white, streams(0, [0]))
    assert torch.all(brighter[0, 1:] == 1.0)            # 0.5 x 4 and above: saturated
    assert abs(brighter[0, 0].mean().item() - 0.8) < 0.01


def test_exposure_scales_the_signal_before_the_noise():
    black, white, model = np.zeros(4), 16383, model_at(1e-4, 0.0)
    x = torch.full((1, 4, 128, 128), 0.4)
    out = add_noise(x, model, 100, -3.0, black, white, streams(0, [0]))
    assert abs(out.mean().item() - 0.05) < 1e-4
    assert abs(out.var().item() / (1e-4 * 0.05) - 1) < 0.05   # shot noise of the darker signal


def test_the_scenes_white_balance_relights_before_the_exposure_and_clips_once():
    """x wb_c / wb'_c x 2^EV clipped at white once: a channel the white balance doubles and -1 EV
    halves keeps its value, also where the doubled signal alone would pass white."""
    gains = white_balance_gains((4.0, 2.0, 3.0), (1.0, 1.0, 0.75))  # the camera's: (2, 1, 1.5)
    np.testing.assert_array_equal(gains, [2.0, 1.0, 1.0, 2.0])
    x = torch.linspace(0, 1, 4 * 6 * 8).view(1, 4, 6, 8)
    out = add_noise(x, None, None, -1, np.zeros(4), 4095, [], gains)
    assert torch.equal(out[0, [0, 3]], x[0, [0, 3]]) and torch.equal(out[0, 1:3], x[0, 1:3] / 2)
    noisy = add_noise(x, model_at(1e-5, 1e-7), 100, -1, np.zeros(4), 4095, streams(0, [0]),
                      gains)
    # B holds 0.75 to 1: doubled, it passes white; at -1 EV the sensor does not saturate
    assert (noisy[0, 3] < 1).float().mean() > 0.9
    scale = torch.tensor([2.0, 1.0, 1.0, 2.0]).view(1, 4, 1, 1)
    assert torch.equal(expose(x, 1, gains), (x * scale * 2).clamp(max=1))
    assert expose(x, 0, None) is x


def test_iso_without_a_noise_model_is_refused_in_one_line():
    with pytest.raises(NoiseError, match="no noise model"):
        add_noise(torch.rand(1, 4, 8, 8), None, 100, 0.0, np.zeros(4), 1023,
                  streams(0, [0]))


# ----------------------------------------------------------------------------- metadata

def test_dng_noise_profile_maps_to_packed_channels_and_back():
    shot, read = np.array([1.0, 2.0, 4.0, 5.0]), np.array([0.1, 0.2, 0.4, 0.5])
    profile = dng_noise_profile(shot, read)
    assert profile == ((1.0, 0.1), (3.0, 0.30000000000000004), (5.0, 0.5))
    s, o = profile_channels(profile)
    np.testing.assert_allclose(s, [1, 3, 3, 5])
    np.testing.assert_allclose(o, [0.1, 0.3, 0.3, 0.5])
    s, o = profile_channels(((2e-4, 3e-8),))
    assert s.tolist() == [2e-4] * 4 and o.tolist() == [3e-8] * 4


def test_iso_exposure_and_noise_profile_written_to_dng_and_read_back(tmp_path):
    mosaic = np.random.default_rng(0).integers(100, 4000, (64, 96)).astype(np.uint16)
    plain = RawImage(mosaic=mosaic, cfa="RGGB", black_level=64, white_level=4095)
    profile = ((1.5e-4, 4.5e-8), (1.25e-4, 3.5e-8), (1.75e-4, 5.5e-8))
    tagged = RawImage(mosaic=mosaic, cfa="RGGB", black_level=64, white_level=4095, iso=3200,
                      exposure_time=1 / 3413, noise_profile=profile)
    write_dng(tmp_path / "plain.dng", plain)
    write_dng(tmp_path / "tagged.dng", tagged)
    back = read_raw(tmp_path / "tagged.dng")
    assert (back.iso, back.noise_profile) == (3200, profile)
    assert back.exposure_time == pytest.approx(1 / 3413, rel=1e-12)
    assert np.array_equal(back.mosaic, mosaic)
    assert read_raw(tmp_path / "plain.dng").iso is None
    with rawpy.imread(str(tmp_path / "tagged.dng")) as r:
        assert r.other.iso_speed == 3200            # LibRaw finds it in the EXIF IFD
        tagged_rgb = r.postprocess(user_flip=0)
    with rawpy.imread(str(tmp_path / "plain.dng")) as r:
        assert np.array_equal(tagged_rgb, r.postprocess(user_flip=0))  # renders as before


def test_iso_above_65535_is_written_as_exif_iso_speed(tmp_path):
    raw = RawImage(mosaic=np.full((32, 32), 500, np.uint16), cfa="RGGB", black_level=0,
                   white_level=4095, iso=204800)
    raw.mosaic[::3] = 900
    write_dng(tmp_path / "high.dng", raw)
    assert read_raw(tmp_path / "high.dng").iso == 204800


def test_exif_of_tiff_based_raw_formats_and_libraw_as_fallback():
    nef_like = {34665: {"ISOSpeedRatings": (800, 800), "ExposureTime": (1, 250)}}
    assert _exposure(nef_like, {"iso": 0.0, "shutter": 0.0}) == (800, 0.004)
    assert _exposure({34855: 64, 33434: (0.5,)}, {"iso": 0.0, "shutter": 0.0}) == (64, 0.5)
    assert _exposure({}, {"iso": 1600.0, "shutter": 0.01}) == (1600, 0.01)
    assert _exposure({}, {"iso": 0.0, "shutter": 0.0}) == (None, None)
    broken = {34665: {"ISOSpeedRatings": 0, "ExposureTime": (1, 0)}}  # 1/0: unknown, not 1 s
    assert _exposure(broken, {"iso": 0.0, "shutter": 0.0}) == (None, None)


def test_the_shared_gopro_dngs_iso_exposure_and_noise_profile(shared_raw):
    hero = read_raw(shared_raw / "dng/gopro_hero6_GOPR0024.dng").info()
    assert hero["iso"] == 100 and hero["exposure_time"] == pytest.approx(1 / 455)
    assert hero["noise_profile"] == [[pytest.approx(1.56201e-4, rel=1e-5),
                                      pytest.approx(4.88002e-8, rel=1e-5)]]
    for lens, time in (("front_GPFR7066", 1 / 1859), ("back_GPBK7066", 1 / 3413)):
        fusion = read_raw(shared_raw / f"dng/gopro_fusion_{lens}.dng").info()
        assert fusion["iso"] == 100 and fusion["exposure_time"] == pytest.approx(time)
        assert fusion["noise_profile"] == [[pytest.approx(7.81e-5, rel=1e-5),
                                            pytest.approx(2.44e-8, rel=1e-5)]]
    dump = read_raw(shared_raw / "bayer/nikon_d750_rose_768x512_rggb.raw").info()
    assert (dump["iso"], dump["exposure_time"], dump["noise_profile"]) == (None, None, None)


def test_the_estimator_needs_smooth_areas():
    stripes = np.tile(np.array([0.1, 0.9] * 32), (64, 1))
    with pytest.raises(ValueError, match="too few to fit the noise"):
        estimate_noise([np.stack([stripes] * 4)], np.zeros(4))


# ----------------------------------------------------------------------------- the commands

NOISE = {"iso": 100.0, "shot": [2e-4] * 4, "read_gained": [1e-6] * 4, "read_fixed": [0.0] * 4,
         "isos": [100.0, 400.0, 400.0, 1600.0]}


@pytest.fixture(scope="module")
def noisy_checkpoint(tmp_path_factory):
    """test_convert's small checkpoint (GRBG, black 64..67, white 4095), its camera with a
    noise model."""
    torch.manual_seed(0)
    net = build_model("small")
    torch.nn.init.normal_(net.conv_out.weight, std=0.05)
    path = tmp_path_factory.mktemp("noisy") / "checkpoint.pt"
    save_checkpoint(path, {"step": 1, "config": {}, "model_config": net.config,
                           "model": net.state_dict(), "ema": None,
                           "camera": {**CAMERA, "noise": NOISE}})
    return path


def opened(path, **settings):
    return open_generator(path, Settings(**{"steps": 2, "tile": 16, "overlap": 8, **settings}),
                          torch.device("cpu"))


def mosaics(out):
    return [read_raw(out / f"photo{i}.dng").mosaic.astype(int) for i in range(3)]


def test_convert_iso_is_reproducible_and_independent_of_batch_size_and_processes(
        noisy_checkpoint, tmp_path, monkeypatch):
    sources = photos(tmp_path / "in")
    convert(sources, tmp_path / "one", opened(noisy_checkpoint, iso=400), seed=3)
    convert(sources, tmp_path / "again", opened(noisy_checkpoint, iso=400), seed=3)
    convert(sources, tmp_path / "batch2", opened(noisy_checkpoint, iso=400, batch_size=2),
            seed=3)
    for rank in (0, 1):  # two processes of a torchrun launch, one after the other
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        convert(sources, tmp_path / "two", opened(noisy_checkpoint, iso=400), seed=3)
    monkeypatch.delenv("RANK")
    monkeypatch.delenv("WORLD_SIZE")
    convert(sources, tmp_path / "seed4", opened(noisy_checkpoint, iso=400), seed=4)
    one = mosaics(tmp_path / "one")
    for other in ("again", "two"):  # the same bytes, file for file
        for i in range(3):
            assert (tmp_path / "one" / f"photo{i}.dng").read_bytes() == \
                (tmp_path / other / f"photo{i}.dng").read_bytes()
    for a, b, c in zip(one, mosaics(tmp_path / "batch2"), mosaics(tmp_path / "seed4")):
        # batching changes the clean mean by float rounding at most (1 in 65535): the noise is
        # the image's own, but for a rare Poisson count off by one (S = 8e-4 at ISO 400: 3.2
        # codes); another seed draws other noise nearly everywhere
        assert (a != b).mean() < 0.01 and np.abs(a - b).max() <= 4
        assert (a != c).mean() > 0.5


def test_no_iso_writes_the_clean_mean_as_before(noisy_checkpoint, tmp_path):
    sources = photos(tmp_path / "in", sizes=((64, 96),))
    gen = opened(noisy_checkpoint)
    assert gen.clean and gen.iso is None
    convert(sources, tmp_path / "out", gen, seed=0)
    clean = gen.generate_from_guides([halve_area(read_rgb(sources[0]))], [derived_seed(0, 0)])[0]
    write_dng(tmp_path / "direct.dng", gen.camera.raw(clean))
    assert (tmp_path / "out" / "photo0.dng").read_bytes() == \
        (tmp_path / "direct.dng").read_bytes()
    raw = read_raw(tmp_path / "out" / "photo0.dng")
    assert (raw.iso, raw.noise_profile) == (None, None)
    record = json.loads(merge_manifests(tmp_path / "out").read_text())
    assert (record["iso"], record["exposure"]) == (None, 0.0)


def test_the_dng_carries_the_iso_and_the_noise_profile_of_the_noise_it_holds(tmp_path, capsys):
    """A smooth photo through unprocessing (no network): the DNG's NoiseProfile is the model's
    (S, O) at the ISO, read back exactly, and the noise the same estimator finds in the DNG's
    pixels has that S."""
    model = NoiseModel(iso=100, shot=(5e-5,) * 4, read_gained=(2e-7,) * 4,
                       read_fixed=(1e-7,) * 4, isos=(100.0,))
    camera = Camera(cfa="GRBG", black_level=(64, 65, 66, 67), white_level=4095, noise=model)
    yy, xx = np.mgrid[0:384, 0:512]
    photo = np.stack([xx / 2, yy / 1.5, (xx + yy) / 4.5 + 30], -1).round().astype(np.uint8)
    Image.fromarray(photo).save(tmp_path / "smooth.png")
    gen = Baseline("upi", camera, "0" * 64, params=generic_params(), iso=400)
    convert([tmp_path / "smooth.png"], tmp_path / "out", gen, seed=0)
    raw = read_raw(tmp_path / "out" / "smooth.dng")
    shot, read = model.at(400)
    assert raw.iso == 400 and raw.noise_profile == dng_noise_profile(shot, read)
    s, o = profile_channels(raw.noise_profile)
    np.testing.assert_allclose(s, 4 * 5e-5) and np.testing.assert_allclose(o, 16 * 2e-7 + 1e-7)
    found = measure(raw)
    np.testing.assert_allclose(found.shot, shot, rtol=0.15)
    capsys.readouterr()
    assert cli.main(["info", str(tmp_path / "out" / "smooth.dng")]) == 0  # and info says so
    info = json.loads(capsys.readouterr().out)
    assert (info["iso"], info["exposure_time"]) == (400, None)
    assert info["noise_profile"] == [list(p) for p in dng_noise_profile(shot, read)]


def test_exposure_clips_at_white_as_the_sensor_does(noisy_checkpoint, tmp_path):
    sources = photos(tmp_path / "in", sizes=((64, 96),))
    convert(sources, tmp_path / "clean", opened(noisy_checkpoint), seed=0)
    convert(sources, tmp_path / "bright", opened(noisy_checkpoint, iso=100, exposure=1), seed=0)
    clean = read_raw(tmp_path / "clean" / "photo0.dng")
    bright = read_raw(tmp_path / "bright" / "photo0.dng")
    saturated = bayer.pack(clean.mosaic, "GRBG") - np.array([64, 65, 66, 67]).reshape(4, 1, 1) \
        >= (4095 - 64) / 2  # twice the clean signal reaches white there
    packed = bayer.pack(bright.mosaic, "GRBG")
    assert saturated.mean() > 0.1 and packed.max() == 4095
    assert np.all(packed[saturated] == 4095)
    assert (packed[~saturated] < 4095).mean() > 0.99


def test_iso_draw_is_seeded_per_photo_from_the_training_isos(noisy_checkpoint, tmp_path):
    sources = photos(tmp_path / "in")
    gen = opened(noisy_checkpoint, iso="draw")
    convert(sources, tmp_path / "out", gen, seed=5)
    records = [json.loads(line) for line in
               merge_manifests(tmp_path / "out").read_text().splitlines()]
    isos = [r["iso"] for r in sorted(records, key=lambda r: r["source"])]
    assert isos == [drawn_iso(gen.camera.noise, derived_seed(5, i)) for i in range(3)]
    assert set(isos) <= {100.0, 400.0, 1600.0}
    assert [read_raw(tmp_path / "out" / f"photo{i}.dng").iso for i in range(3)] == isos
    draws = {drawn_iso(gen.camera.noise, derived_seed(s, 0)) for s in range(40)}
    assert draws == {100.0, 400.0, 1600.0}  # every training ISO comes up


def test_a_rerun_with_another_iso_or_exposure_redoes_the_photos(noisy_checkpoint, tmp_path):
    sources = photos(tmp_path / "in", sizes=((48, 64), (40, 56)))
    out = tmp_path / "out"
    assert convert(sources, out, opened(noisy_checkpoint, iso=400), seed=0) == (2, 0)
    assert convert(sources, out, opened(noisy_checkpoint, iso=400), seed=0) == (0, 2)
    assert convert(sources, out, opened(noisy_checkpoint, iso=800), seed=0) == (2, 0)
    assert convert(sources, out, opened(noisy_checkpoint, iso=800, exposure=-1), seed=0) == (2, 0)
    assert convert(sources, out, opened(noisy_checkpoint), seed=0) == (2, 0)


def test_the_python_api_adds_the_noise_of_its_iso(noisy_checkpoint):
    photo = np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    clean = rd.load(noisy_checkpoint, steps=2, tile=16, overlap=8, device="cpu")
    noisy = rd.load(noisy_checkpoint, steps=2, tile=16, overlap=8, device="cpu", iso=1600,
                    exposure=-1)
    raw = noisy(photo, seed=2)
    assert raw.iso == 1600 and raw.noise_profile == dng_noise_profile(*clean.camera.noise.at(1600))
    assert clean(photo, seed=2).iso is None
    batch = torch.from_numpy(photo).permute(2, 0, 1)[None]
    packed = noisy.generate(batch, seed=2)[0]
    levels = np.array(CAMERA["black_level"]).reshape(4, 1, 1)
    codes = np.round(packed.numpy() * (4095 - levels) + levels)
    assert np.array_equal(codes, bayer.pack(raw.mosaic, "GRBG"))  # image 0 is gen(photo)
    assert not torch.equal(packed, clean.generate(batch, seed=2)[0])


@pytest.mark.parametrize("setting, line", [
    (dict(iso=0), "iso=0: a whole number from 1 to 4294967295 .the DNG's EXIF ISO speed., or draw"),
    (dict(iso="often"), "iso='often': a whole number from 1 to 4294967295"),
    (dict(iso=150.5), "iso=150.5: a whole number"),  # the DNG could not say it
    (dict(iso=1e30), "iso=1e.30: a whole number from 1 to 4294967295"),
    (dict(exposure=float("inf")), "exposure=inf: a number of EV from -64 to 64"),
    (dict(exposure=1024), "exposure=1024: a number of EV from -64 to 64")])
def test_noise_settings_that_cannot_work_are_refused_naming_the_argument(setting, line):
    with pytest.raises(SettingError, match=f"^{line}"):
        Settings(**setting)


def test_iso_with_a_camera_without_a_noise_model_is_one_line_saying_how_to_get_one(
        tmp_path, capsys):
    torch.manual_seed(0)
    net = build_model("small")
    save_checkpoint(tmp_path / "old.pt", {"step": 1, "config": {}, "model_config": net.config,
                                          "model": net.state_dict(), "ema": None,
                                          "camera": CAMERA})
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "p.png")
    with pytest.raises(SystemExit, match="2"):
        cli.main(["convert", str(tmp_path / "p.png"), "--checkpoint", str(tmp_path / "old.pt"),
                  "--out", str(tmp_path / "out"), "--iso", "100"])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rawdiffusion convert: error: argument --iso: ")
    assert "no noise model" in err[0] and "rawdiffusion export CHECKPOINT --calibrate" in err[0]
    assert not (tmp_path / "out").exists()
