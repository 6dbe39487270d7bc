"""renderings.py (recipes of other camera pipelines), the metrics of issue 20 (psnr_gain,
green_disagreement) and the saturated chart (chart.py)."""

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import require_shared, synthetic_raw
from rawdiffusion import renderings as R
from rawdiffusion.camera import Camera
from rawdiffusion.chart import chart_guide, chart_report, hue_difference, sensor_patches
from rawdiffusion.datasets.layout import PreparedDataset
from rawdiffusion.datasets.paired import prepare_folder
from rawdiffusion.images import halve_area
from rawdiffusion.io import read_raw, render_srgb, write_dng
from rawdiffusion.metrics import channel_gains, green_disagreement, psnr, psnr_gain


@pytest.fixture(scope="module")
def dng(tmp_path_factory):
    """A synthetic GRBG camera with its own colour matrix, as a DNG file of 192 x 256."""
    path = tmp_path_factory.mktemp("raw") / "scene.dng"
    write_dng(path, synthetic_raw("GRBG", 192, 256, seed=3))
    return path


@pytest.fixture(scope="module")
def prepared(dng, tmp_path_factory):
    """`prepare folder` of that one file (all of it in train), 2 x 2 patches."""
    out = tmp_path_factory.mktemp("prepared") / "data"
    prepare_folder(dng.parent, out, test_fraction=0, grid=2)
    return PreparedDataset(out)


def test_canonical_recipe_is_prepares_guide_exactly(prepared, tmp_path):
    paths = R.rendered_guides(prepared, "train", [R.CANONICAL], tmp_path)
    ids = prepared.split("train")
    assert len(ids) == 4 and set(paths["libraw-default"]) == set(ids)
    for sample_id in ids:
        sample = prepared.load(sample_id)
        rendered = np.asarray(Image.open(paths["libraw-default"][sample_id]))
        assert np.array_equal(rendered, sample.rgb)  # byte for byte
        assert rendered.shape[:2] == sample.raw.shape[1:]


def test_render_is_reproducible_and_recipes_differ(dng):
    raw = read_raw(dng)
    assert np.array_equal(R.render(raw, R.CANONICAL), render_srgb(raw))
    chosen = [r for r in R.BENCHMARK if r["name"] in ("camera-like", "jpeg75", "filmic",
                                                     "prophoto-converted", "demosaic-dcb")]
    first = dict((r["name"], img) for r, img in R.render_many(raw, chosen))
    again = dict((r["name"], img) for r, img in R.render_many(raw, chosen[::-1]))
    canonical = R.render(raw, R.CANONICAL)
    for name, image in first.items():
        assert image.dtype == np.uint8 and image.shape == (*raw.mosaic.shape, 3)
        assert np.array_equal(image, again[name]), name  # same recipe, same bytes
        assert not np.array_equal(image, canonical), name


def test_patches_align_with_the_prepared_samples(prepared, tmp_path):
    """An exposure change is per pixel and monotone: its patches, if aligned with the canonical
    ones, are at least as bright at every pixel (and brighter on average)."""
    brighter = R._recipe("brighter", ops=[{"op": "exposure", "ev": 0.5}])
    paths = R.rendered_guides(prepared, "train", [R.CANONICAL, brighter], tmp_path)
    for sample_id in prepared.split("train"):
        a = np.asarray(Image.open(paths["libraw-default"][sample_id])).astype(int)
        b = np.asarray(Image.open(paths["brighter"][sample_id])).astype(int)
        assert (b >= a).all() and b.mean() > a.mean() + 5


def test_patches_and_guide_follow_prepare():
    raw = synthetic_raw("RGGB", 130, 198)  # odd packed sizes lose their last row/column
    image = np.random.default_rng(0).integers(0, 256, (130, 198, 3), dtype=np.uint8)
    g = R.guide(image, raw)
    assert np.array_equal(g, halve_area(image[:130, :198]))
    cut = R.patches(g, 2)
    assert g.shape == (65, 99, 3)
    assert [p.shape for p in cut] == [(32, 32, 3)] * 4
    # cells of 32 x 49 pixels, each centre-cropped to 32 x 32: left offsets 8 and 49 + 8
    assert np.array_equal(cut[3], g[32:64, 57:89])


def test_training_draw_is_seeded_and_never_a_benchmark_recipe():
    a, b = R.training_recipes(300, seed=5), R.training_recipes(300, seed=5)
    assert json.dumps(a) == json.dumps(b)
    assert json.dumps(a) != json.dumps(R.training_recipes(300, seed=6))
    held_out = {R.recipe_key(r) for r in R.BENCHMARK}
    assert not {R.recipe_key(r) for r in a} & held_out
    benchmark_q = {op["quality"] for r in R.BENCHMARK for op in r["ops"] if op["op"] == "jpeg"}
    for r in a:
        assert r["libraw"]["demosaic"] in R.TRAINING_DEMOSAIC  # LINEAR, DCB: benchmark only
        assert not {op["quality"] for op in r["ops"] if op["op"] == "jpeg"} & benchmark_q
        assert r["name"].startswith("train-")
    assert len({r["name"] for r in a}) == len(a)


def test_draw_redraws_a_benchmark_recipe(monkeypatch):
    """A draw that happens to equal a benchmark recipe is drawn again."""
    draws = iter([({"white_balance": "camera"}, None),
                  ({"white_balance": "camera", "demosaic": "VNG"}, None)])
    monkeypatch.setattr(R, "_draw_libraw", lambda rng: next(draws))
    monkeypatch.setattr(R, "_draw_ops", lambda rng: [])
    recipe = R.draw_recipe(np.random.default_rng(0))
    assert recipe["libraw"] == {"white_balance": "camera", "demosaic": "VNG"}


def test_bad_recipes_are_one_clear_error(dng):
    raw = read_raw(dng)
    with pytest.raises(R.RecipeError, match="unknown operation 'sepia'"):
        R.render(raw, R._recipe("x", ops=[{"op": "sepia"}]))
    with pytest.raises(R.RecipeError, match="operation jpeg"):
        R.render(raw, R._recipe("x", ops=[{"op": "jpeg", "qualty": 3}]))
    with pytest.raises(R.RecipeError, match="unknown LibRaw settings"):
        R.postprocess_settings(R._recipe("x", {"gamma": 2}))
    with pytest.raises(R.RecipeError, match="daylight, camera or auto"):
        R.postprocess_settings(R._recipe("x", {"white_balance": "tungsten"}))


def test_benchmark_names_are_unique_and_usable_as_file_names():
    names = [r["name"] for r in R.BENCHMARK]
    assert len(set(names)) == len(names) and names[0] == "libraw-default"
    assert all("/" not in n for n in names)


# ----------------------------------------------------------------------------- metrics

def test_psnr_gain_golden_values():
    torch.manual_seed(0)
    target = torch.rand(2, 4, 16, 16) * 0.5
    gains = torch.tensor([2.0, 0.7, 0.75, 1.6]).view(1, 4, 1, 1)
    assert (psnr_gain(target / gains, target) > 140).all()  # gains only: float32 rounding left
    assert channel_gains(target / gains, target)[0].tolist() == pytest.approx(gains.flatten().tolist())
    # one channel pair by hand: p = (1, 2), t = (1, 1): g = 3 / 5, errors (-0.4, 0.2), MSE 0.1
    p = torch.tensor([1.0, 2.0]).view(1, 1, 1, 2).expand(1, 4, 1, 2)
    t = torch.ones(1, 4, 1, 2)
    assert psnr_gain(p, t).item() == pytest.approx(10.0)
    assert psnr(p, t).item() == pytest.approx(-10 * math.log10(0.5))
    zero = torch.zeros(1, 4, 2, 2)  # a channel that is 0 everywhere gets gain 0, not NaN
    assert channel_gains(zero, t.expand(1, 4, 1, 2)[..., :1].expand(1, 4, 2, 2)).sum() == 0


def test_green_disagreement_golden_values():
    x = torch.zeros(1, 4, 4, 4)
    x[:, 1], x[:, 2] = 0.74, 0.13  # the blue patch
    assert green_disagreement(x).item() == pytest.approx(0.61)
    x[:, 2, :2] = 0.74
    assert green_disagreement(x).item() == pytest.approx(0.305)
    with pytest.raises(ValueError, match="packed RAW"):
        green_disagreement(x[:, :3])


# ----------------------------------------------------------------------------- chart

class _Generator:
    """A generator whose RAW is the guide's linear sRGB through fixed channel weights, with an
    offset of G2 against G1."""

    def __init__(self, camera: dict, offset: float):
        self.camera, self.offset = Camera.from_dict(camera), offset

    def generate_from_guide(self, guide, seed=0):
        lin = (guide.astype(np.float64) / 255) ** 2.2
        x = np.stack([lin[..., 0], lin[..., 1], lin[..., 1] + self.offset, lin[..., 2]])
        return np.clip(x * 0.5, 0, 1).astype(np.float32)


def test_chart_report_measures_greens_and_hue():
    camera = {"cfa": "RGGB", "black_level": [0, 0, 0, 0], "white_level": 4095.0, "wb": None,
              "color_matrix": None}
    rows = chart_report(_Generator(camera, 0.0))
    assert [r["colour"] for r in rows][:2] == ["red", "orange"]
    assert all(r["green_disagreement"] == 0 and r["hue_error"] is None for r in rows)
    rows = chart_report(_Generator(camera, 0.1))
    assert all(r["green_disagreement"] == pytest.approx(0.05, abs=1e-6) for r in rows)  # 0.1 x 0.5
    assert chart_guide().shape == (96, 256, 3)


def test_chart_report_renders_with_the_cameras_matrix():
    raw = synthetic_raw("RGGB")
    camera = {"cfa": "RGGB", "black_level": [0, 0, 0, 0], "white_level": 4095.0, "wb": [1, 1, 1],
              "color_matrix": np.linalg.inv(raw.color_matrix).tolist(), "illuminant": 21}
    rows = chart_report(_Generator(camera, 0.0))
    assert all(isinstance(r["hue_error"], float) and -180 < r["hue_error"] <= 180 for r in rows)


def test_hue_difference():
    red = np.array([0.9, 0.1, 0.1])
    assert hue_difference(red, red) == pytest.approx(0)
    assert hue_difference(red, red[[2, 0, 1]]) == pytest.approx(-hue_difference(red[[2, 0, 1]], red))


def test_a_real_sensor_records_saturated_colours_nearly_linearly():
    """colour-science's measured sensitivities: camera RGB of 214 surfaces, 26 of them outside
    sRGB, is a 3x3 matrix of their linear sRGB within 3 % (rms, relative), and white is white."""
    names, linear, camera = sensor_patches()
    assert len(names) == 214 and (linear.min(1) < 0).sum() > 10
    matrix = np.linalg.lstsq(linear, camera, rcond=None)[0]
    rms = np.sqrt(((camera - linear @ matrix) ** 2).mean() / (camera ** 2).mean())
    assert rms < 0.03
    white = names.index("checker white 9.5 (.05 D)")
    assert camera[white] == pytest.approx([0.887, 0.887, 0.884], abs=0.005)


def test_benchmark_renders_a_real_dump(shared_raw):
    """Every benchmark recipe on the real Nikon D750 crop (a headerless dump, rendered through
    a temporary DNG): full size, 8 bits, the canonical one prepare's rendering."""
    raw = read_raw(require_shared(shared_raw / "bayer" / "nikon_d750_rose_768x512_rggb.raw"))
    canonical = render_srgb(raw)
    differ = []
    for recipe, image in R.render_many(raw, list(R.BENCHMARK)):
        assert image.shape == (512, 768, 3) and image.dtype == np.uint8, recipe["name"]
        if recipe["name"] == "libraw-default":
            assert np.array_equal(image, canonical)
        else:
            differ.append(not np.array_equal(image, canonical))
    assert sum(differ) >= len(differ) - 1  # no-auto-bright may change nothing on a bright image
