"""The scene's white balance as an input (convert --white-balance, rd.load(white_balance=...)):
the von Kries relighting x'_c = x_c wb_c / wb'_c before the exposure, the DNG's AsShotNeutral
1 / wb', a picture LibRaw renders alike with the as-shot white balance, draws seeded per photo
from the camera's training images', the absent option as before, the manifest and reruns, and
bad values in one line. A fitted linear baseline (no network) makes every output exact."""

import json
import logging

import numpy as np
import pytest
import rawpy
import torch
from PIL import Image

import rawdiffusion as rd
from rawdiffusion import cli
from rawdiffusion.baselines import Baseline, save_baseline
from rawdiffusion.camera import Camera
from rawdiffusion.convert import convert
from rawdiffusion.diffusion import derived_seed
from rawdiffusion.generation import same_generation
from rawdiffusion.images import halve_area, read_rgb
from rawdiffusion.io import read_raw, write_dng
from rawdiffusion.loading import open_generator
from rawdiffusion.prior import ColourMap
from rawdiffusion.processes import merge_manifests
from rawdiffusion.sensor import drawn_white_balance
from rawdiffusion.settings import Settings

# The camera's own white balance is the mean of its training images' (Camera.from_images).
WBS = [[1.8, 1.0, 1.3], [2.2, 1.0, 1.7], [2.0, 1.0, 1.5]]
CAMERA = {"cfa": "GRBG", "make": "Testmaker", "model": "Synthetic 1",
          "black_level": [64.0, 65.0, 66.0, 67.0], "white_level": 4095.0,
          "wb": [2.0, 1.0, 1.5], "color_matrix": None}
SCENE = (2.5, 1.0, 1.8)  # a warmer scene than the camera's training scenes: less R and B


def linear_baseline(path, camera: dict):
    """A linear map R -> R, G -> G1 and G2, B -> B at 0.4: the clean RAW of a photo reaches at
    most 0.4 of white, under white after the camera's largest gain (2), as LibRaw scales it."""
    weights = torch.zeros(4, 4, dtype=torch.float64)
    for channel, rgb in enumerate((0, 1, 1, 2)):
        weights[1 + rgb, channel] = 0.4
    save_baseline(path, "linear", Camera.from_dict(camera), ColourMap("linear", weights))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Two baseline files of the same map: one whose camera keeps its training images' white
    balances, and one made before they were kept."""
    root = tmp_path_factory.mktemp("wb")
    return {"new": linear_baseline(root / "new.json", {**CAMERA, "wbs": WBS}),
            "old": linear_baseline(root / "old.json", CAMERA)}


def opened(path, **settings):
    return open_generator(path, Settings(**settings), torch.device("cpu"))


def photos(folder, sizes=((48, 64), (40, 56), (32, 48))):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i, (h, w) in enumerate(sizes):
        small = rng.integers(0, 256, (h // 8 + 2, w // 8 + 2, 3), dtype=np.uint8)
        path = folder / f"photo{i}.png"
        Image.fromarray(small).resize((w, h), Image.Resampling.BILINEAR).save(path)
        paths.append(path)
    return paths


def records(out) -> list[dict]:
    lines = merge_manifests(out).read_text().splitlines()
    return sorted(map(json.loads, lines), key=lambda r: r["source"])


def test_the_clean_raw_is_relit_by_the_camera_over_the_scene_gains_exactly(files):
    gen = opened(files["new"], white_balance=(5.0, 2.0, 3.6))  # divided by G: SCENE
    assert gen.white_balance == SCENE and not gen.clean
    x = torch.rand(4, 6, 8, generator=torch.Generator().manual_seed(0))
    gains = torch.tensor([2.0 / 2.5, 1.0, 1.0, 1.5 / 1.8], dtype=torch.float32).view(4, 1, 1)
    assert torch.equal(gen.recorded(x, seed=7), x * gains)
    # before the exposure, clipped at white once: +1 EV saturates where x gains 2 reaches 1
    bright = opened(files["new"], white_balance=SCENE, exposure=1).recorded(x, seed=7)
    assert torch.equal(bright, (x * gains * 2).clamp(max=1))
    # a camera whose gains are not divided by G relights alike
    scaled = Baseline("linear", Camera.from_dict({**CAMERA, "wb": [4.0, 2.0, 3.0]}), "0" * 64,
                      colour_map=gen.colour_map, white_balance=SCENE)
    assert torch.equal(scaled.recorded(x, seed=7), x * gains)


def test_the_dng_says_the_scene_white_balance_and_renders_as_without_it(files, tmp_path):
    """AsShotNeutral = 1 / wb' as rawpy reads it back; LibRaw with the as-shot white balance
    renders the relit DNG as the DNG without the option, up to the 12-bit codes' rounding."""
    sources = photos(tmp_path / "in", sizes=((64, 96),))
    convert(sources, tmp_path / "own", opened(files["new"]), seed=0)
    convert(sources, tmp_path / "scene", opened(files["new"], white_balance=SCENE), seed=0)
    own, scene = tmp_path / "own" / "photo0.dng", tmp_path / "scene" / "photo0.dng"
    assert read_raw(scene).wb == pytest.approx(SCENE, rel=1e-5)
    assert read_raw(own).wb == pytest.approx((2.0, 1.0, 1.5), rel=1e-5)
    renders = {}
    # LibRaw's bilinear demosaic: AHD's choice of direction is not linear in the codes, and
    # flips at a few edges on a rounding difference of one code
    common = dict(no_auto_bright=True, output_bps=16, gamma=(1, 1),
                  demosaic_algorithm=rawpy.DemosaicAlgorithm.LINEAR)
    for name, path in (("own", own), ("scene", scene)):
        with rawpy.imread(str(path)) as raw:
            assert raw.camera_whitebalance[:3] == pytest.approx(
                SCENE if name == "scene" else (2.0, 1.0, 1.5), rel=1e-5)
            renders[name] = raw.postprocess(use_camera_wb=True, **common).astype(float)
        with rawpy.imread(str(path)) as raw:  # with the camera's own gains, not the file's
            renders[name + "-fixed"] = raw.postprocess(user_wb=[2.0, 1.0, 1.5, 1.0],
                                                       **common).astype(float)
    a, b = renders["own"], renders["scene"]
    assert a.mean() > 2000  # a picture, not black
    # one 12-bit code of the relit RAW is 65535 / 4031 x 2.5 = 41 of the 16-bit rendering
    assert np.abs(a - b).mean() < 0.001 * a.mean() and np.abs(a - b).max() <= 60
    # the relit RAW itself differs: shown with fixed gains, it is another colour
    assert np.abs(renders["own-fixed"] - renders["scene-fixed"]).mean() > 0.05 * a.mean()


def test_without_the_option_the_outputs_are_as_before_and_the_log_says_so(files, tmp_path,
                                                                           caplog):
    sources = photos(tmp_path / "in", sizes=((48, 64),))
    with caplog.at_level(logging.INFO, logger="rawdiffusion.loading"):
        gen = opened(files["new"])
    said = [r.getMessage() for r in caplog.records if "white balance" in r.getMessage()]
    assert said == ["the scene's white balance not given: the camera's own as-shot white "
                    "balance R,G,B 2,1,1.5 is assumed (that of its training scenes' lighting)"]
    assert gen.clean and gen.white_balance is None
    convert(sources, tmp_path / "out", gen, seed=0)
    clean = gen.generate_from_guides([halve_area(read_rgb(sources[0]))], [derived_seed(0, 0)])
    write_dng(tmp_path / "direct.dng", gen.camera.raw(clean[0]))
    assert (tmp_path / "out" / "photo0.dng").read_bytes() == \
        (tmp_path / "direct.dng").read_bytes()
    assert records(tmp_path / "out")[0]["white_balance"] == [2.0, 1.0, 1.5]
    # the camera's own given explicitly relights by 1: the same bytes
    convert(sources, tmp_path / "own", opened(files["new"], white_balance=(4, 2, 3)), seed=0)
    assert (tmp_path / "own" / "photo0.dng").read_bytes() == \
        (tmp_path / "direct.dng").read_bytes()


def test_draw_is_seeded_per_photo_from_the_training_images_and_independent_of_the_batch(
        files, tmp_path):
    sources = photos(tmp_path / "in")
    convert(sources, tmp_path / "one", opened(files["new"], white_balance="draw"), seed=5)
    convert(sources, tmp_path / "again", opened(files["new"], white_balance="draw"), seed=5)
    convert(sources, tmp_path / "batch2", opened(files["new"], white_balance="draw",
                                                 batch_size=2), seed=5)
    drawn = [list(drawn_white_balance(WBS, derived_seed(5, i))) for i in range(3)]
    assert [r["white_balance"] for r in records(tmp_path / "one")] == drawn
    for other in ("again", "batch2"):
        for i in range(3):
            assert (tmp_path / "one" / f"photo{i}.dng").read_bytes() == \
                (tmp_path / other / f"photo{i}.dng").read_bytes()
    for i, wb in enumerate(drawn):
        assert read_raw(tmp_path / "one" / f"photo{i}.dng").wb == pytest.approx(wb, rel=1e-5)
    draws = {drawn_white_balance(WBS, derived_seed(s, 0)) for s in range(40)}
    assert draws == {tuple(wb) for wb in WBS}  # every training image's comes up
    # gen(photo) draws as convert's first photo
    gen = rd.load(files["new"], white_balance="draw")
    assert gen(read_rgb(sources[0]), seed=5).wb == tuple(drawn[0])


def test_a_rerun_with_another_white_balance_redoes_the_photos(files, tmp_path):
    sources = photos(tmp_path / "in", sizes=((48, 64), (40, 56)))
    out = tmp_path / "out"
    assert convert(sources, out, opened(files["new"], white_balance=SCENE), seed=0) == (2, 0)
    assert convert(sources, out, opened(files["new"], white_balance=SCENE), seed=0) == (0, 2)
    assert convert(sources, out, opened(files["new"], white_balance=(2.4, 1, 1.8)),
                   seed=0) == (2, 0)
    assert convert(sources, out, opened(files["new"], white_balance="draw"), seed=0) == (2, 0)
    assert convert(sources, out, opened(files["new"]), seed=0) == (2, 0)
    # the camera's own, given, is what the absent option made
    assert convert(sources, out, opened(files["new"], white_balance=(2, 1, 1.5)),
                   seed=0) == (0, 2)


def test_records_of_versions_before_the_white_balance_were_made_with_the_cameras(files):
    record = {"checkpoint": opened(files["new"]).digest, "steps": None, "sampler": None,
              "seed": 3, "iso": None, "exposure": 0.0}
    assert same_generation(record, opened(files["new"]), 3)
    assert same_generation(record, opened(files["new"], white_balance=(2, 1, 1.5)), 3)
    assert not same_generation(record, opened(files["new"], white_balance=SCENE), 3)


def test_the_python_api_takes_the_white_balance_and_its_raw_says_it(files, tmp_path):
    photo = read_rgb(photos(tmp_path, sizes=((48, 64),))[0])
    plain = rd.load(files["new"])(photo)
    gen = rd.load(files["new"], white_balance=list(SCENE))
    raw = gen(photo)
    assert raw.wb == SCENE and plain.wb == (2.0, 1.0, 1.5)
    packed = gen.generate(torch.tensor(photo).permute(2, 0, 1)[None])[0].numpy()
    levels = np.array(CAMERA["black_level"]).reshape(4, 1, 1)
    codes = np.round(packed * (4095 - levels) + levels)
    assert np.array_equal(codes, np.round(raw.packed * (4095 - levels) + levels))
    assert not np.array_equal(raw.mosaic, plain.mosaic)
    assert rd.DEFAULTS.white_balance is None


@pytest.mark.parametrize("setting", [(0, 1, 1), (1, 2), (1.0, float("nan"), 1.0), (-2, 1, 1),
                                     "warm", ("a", 1, 1), (1e-5, 1, 1), (1e10, 1, 1),
                                     (2, 1e-4, 2)])
def test_a_white_balance_that_cannot_work_is_refused_naming_the_argument(setting):
    with pytest.raises(rd.SettingError, match=r"^white_balance=.*: three white-balance gains "
                                              r"R,G,B above 0") as e:
        Settings(white_balance=setting)
    assert e.value.name == "white_balance"


def convert_line(capsys, *args) -> str:
    with pytest.raises(SystemExit, match="2"):
        cli.main(["convert", *map(str, args)])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.mark.parametrize("value, words", [
    ("0,1,1", "argument --white-balance: three white-balance gains R,G,B above 0 (the scene's "
              "as-shot multipliers, green 1; R/G and B/G from 1/1000 to 1000), or draw (one per "
              "image drawn from the training images'), got (0.0, 1.0, 1.0)"),
    ("1e10,1,1", "argument --white-balance: three white-balance gains R,G,B above 0"),
    ("2,1", "argument --white-balance: three white-balance gains R,G,B above 0"),
    ("a,b", "argument --white-balance: three numbers R,G,B or draw, got 'a,b'")])
def test_bad_values_of_the_option_are_one_line(files, tmp_path, capsys, value, words):
    photo = photos(tmp_path / "in", sizes=((32, 32),))[0]
    line = convert_line(capsys, photo, "--checkpoint", files["new"], "--out", tmp_path / "out",
                        "--white-balance", value)
    assert line.startswith("rawdiffusion convert: error: ") and words in line
    assert not (tmp_path / "out").exists()


def test_draw_with_a_file_made_before_the_training_white_balances_is_one_line(files, tmp_path,
                                                                              capsys):
    photo = photos(tmp_path / "in", sizes=((32, 32),))[0]
    line = convert_line(capsys, photo, "--checkpoint", files["old"], "--out", tmp_path / "out",
                        "--white-balance", "draw")
    assert line == (f"rawdiffusion convert: error: argument --white-balance: {files['old']} holds "
                    "no white balances of its camera's training images to draw from (files made "
                    "before they were kept have none: `rawdiffusion export CHECKPOINT --calibrate "
                    "DATASET --out FILE` adds them, or fit a baseline again), but takes one given "
                    "as R,G,B (see rawdiffusion convert --help)")
    assert not (tmp_path / "out").exists()
    # a white balance given as numbers works with it
    assert cli.main(["convert", str(photo), "--checkpoint", str(files["old"]), "--out",
                     str(tmp_path / "out"), "--white-balance", "2.5,1,1.8"]) == 0
    assert read_raw(tmp_path / "out" / "photo0.dng").wb == pytest.approx(SCENE, rel=1e-5)


def test_a_camera_without_its_own_white_balance_cannot_be_relit(tmp_path):
    path = linear_baseline(tmp_path / "nowb.json", {**CAMERA, "wb": None})
    with pytest.raises(rd.SettingError, match="holds no white balance of its camera"):
        opened(path, white_balance=SCENE)
    assert opened(path).wb_for(0) is None  # and without the option it loads as before


def test_the_camera_keeps_its_training_images_white_balances_and_old_dicts_load_as_before():
    images = {f"i{k}": {"cfa": "GRBG", "make": "M", "model": "N", "black_level": [64] * 4,
                        "white_level": 4095, "wb": wb} for k, wb in enumerate(WBS)}
    images["nowb"] = {**images["i0"], "wb": None}
    camera = Camera.from_training_images(images)
    assert camera.wbs == tuple(map(tuple, WBS)) and camera.wb == pytest.approx((2.0, 1.0, 1.5))
    assert Camera.from_dict(camera.to_dict()) == camera
    assert camera.to_dict()["wbs"] == WBS
    old = Camera.from_dict(CAMERA)
    assert old.wbs is None and old.to_dict() == CAMERA


@pytest.mark.parametrize("wbs, line", [
    ([[2.0, 0.0, 1.5]], "camera.wbs[0][1]: input should be greater than 0 (got 0.0)"),
    ([[2.0, 1.0]], "camera.wbs[0]"),
    ([[2.0, 1.0, float("inf")]], "camera.wbs[0][2]: input should be a finite number"),
    ([], "camera.wbs: "),
    ([[2.0, 1.0, 1.5], [1e-30, 1.0, 1.0]], "camera.wbs: entry 1: R/G 1e-30 and B/G 1: each must "
                                           "lie from 1/1000 to 1000"),
    ("warm", "camera.wbs: ")])
def test_a_stored_list_that_cannot_be_is_one_line_naming_the_key(wbs, line):
    problem = Camera.problem({**CAMERA, "wbs": wbs})
    assert problem is not None and problem.startswith(line) and "\n" not in problem
