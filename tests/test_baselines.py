"""Baselines: fitted colour maps recover known cameras, the terms are Finlayson et al.'s, baseline
files are plain JSON that load or fail naming the file, and a baseline goes wherever a
checkpoint goes (convert, sample.py).

The synthetic cameras write prepared datasets directly (datasets/layout.py): random 8-bit
guides, and RAW that is an exactly known function of them, quantised to raw numbers.
"""

import csv
import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize
from PIL import Image

from fake_trees import cityscapes_tree
from rawdiffusion import baselines, bayer, cli, config, evaluation, prior
from rawdiffusion.baselines import Baseline, BaselineError, fit_baseline
from rawdiffusion.prior import ColourMap
from rawdiffusion.camera import Camera
from rawdiffusion.checkpoint import save_checkpoint
from rawdiffusion.datasets import layout
from rawdiffusion.datasets.cityscapes import prepare_cityscapes
from rawdiffusion.checkpoint import file_digest
from rawdiffusion.convert import convert
from rawdiffusion.loading import load, open_generator
from rawdiffusion.settings import Settings
from rawdiffusion.errors import UserError
from rawdiffusion.processes import merge_manifests
from rawdiffusion.images import halve_area, read_rgb, write_png
from rawdiffusion.io import read_raw
from rawdiffusion.model import build_model
from rawdiffusion.unprocess import camera_params, generic_params, unprocess
from test_convert import photos
# one thread (autouse), as test_train.py: two threads on two busy cores made the sampling
# test ten times slower
from test_train import one_thread  # noqa: F401

BLACK = (512.0, 510.0, 514.0, 508.0)  # per packed channel R, G1, G2, B
WHITE = 16383.0
ONE_DN = 1 / (WHITE - max(BLACK))  # one raw digital number, normalised
# A camera's linear-sRGB -> packed RAW transform: 4x3 matrix (G1 and G2 alike) and offset.
M = np.array([[0.50, 0.30, 0.05], [0.10, 0.60, 0.10], [0.10, 0.60, 0.10], [0.02, 0.20, 0.60]])
OFFSET = np.array([0.02, 0.01, 0.01, 0.03])
CM_A = [[0.9, -0.3, -0.1], [-0.5, 1.4, 0.1], [-0.1, 0.3, 0.5]]    # calibrated for light A
CM_D50 = [[0.7, -0.2, -0.05], [-0.4, 1.2, 0.2], [-0.1, 0.2, 0.6]]  # calibrated for D50


def linear(rgb):
    """The known camera: OFFSET + M @ linear sRGB, per pixel; rgb (h, w, 3) uint8 ->
    (4, h, w) normalised RAW."""
    lin = prior.srgb_to_linear_table()[rgb]
    return np.einsum("hwj,cj->chw", lin, M) + OFFSET[:, None, None]


def paired_dataset(root, raw_of, images=4, samples=2, size=(24, 32), cfa="RGGB", guide_of=None,
                   **entry):
    """A prepared paired dataset of `images` images (the last one in the test split) with
    `samples` samples each: random guides over all 256 codes (or guide_of(rng, size), uint8
    (h, w, 3)), RAW = raw_of(guide) in [0, 1] written as raw numbers with BLACK and WHITE.
    `entry` adds to or replaces the image fields."""
    root = Path(root)
    rng = np.random.default_rng(0)
    splits = {"train": [], "test": []}
    for i in range(images):
        image, ids = f"img{i}", []
        for k in range(samples):
            sample_id = f"{image}_{k}"
            rgb = rng.integers(0, 256, (*size, 3), dtype=np.uint8) if guide_of is None \
                else guide_of(rng, size)
            (root / "raw").mkdir(parents=True, exist_ok=True)
            np.save(root / "raw" / f"{sample_id}.npy", bayer.denormalise(raw_of(rgb), BLACK, WHITE))
            write_png(root / "rgb" / f"{sample_id}.png", rgb)
            ids.append(sample_id)
        fields = {"source": f"/nowhere/{image}.dng", "make": "Testmaker", "model": "Synthetic 1",
                  "cfa": cfa, "black_level": list(BLACK), "white_level": WHITE,
                  "wb": [2.0, 1.0, 1.5], "color_matrix": None, "illuminant": None,
                  "color_matrix2": None, "illuminant2": None, "width": 2 * size[1],
                  "height": 2 * size[0], "sample_size": list(size), "samples": ids, **entry}
        layout.write_json(layout.image_meta_path(root, image), fields)
        splits["test" if i == images - 1 else "train"].append(image)
    layout.finish(root, root.name, "paired", {"by": "tests/test_baselines.py"}, splits)
    return layout.PreparedDataset(root)


@pytest.fixture(scope="module")
def camera_data(tmp_path_factory):
    """The known linear camera's dataset (GRBG) and a linear baseline fitted on it."""
    root = tmp_path_factory.mktemp("baselines")
    ds = paired_dataset(root / "synthetic", linear, cfa="GRBG")
    fit_baseline(ds, "linear", root / "linear.json")
    return ds, root / "linear.json"


def fitted_psnr(ds, cmap, split="train"):
    """PSNR (peak 1, 4 channels) of a map's output against the dataset's normalised RAW."""
    se = n = 0
    for sample_id in ds.split(split):
        s = ds.load(sample_id)
        target = bayer.normalise(s.raw, s.black, s.white).astype(np.float64)
        pred = cmap(torch.tensor(s.rgb).permute(2, 0, 1)[None])[0].double().numpy()
        se, n = se + ((pred - target) ** 2).sum(), n + target.size
    return -10 * np.log10(se / n)


# ----------------------------------------------------------------------------- fitted maps

def test_linear_fit_recovers_the_cameras_matrix_and_offset(camera_data):
    ds = camera_data[0]
    assert prior.monomial_exponents(1) == [(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1)]
    cmap, fit = prior.fit_colour_map(ds, "train", "linear", progress=False)
    # weights: (terms, channels), terms 1, R, G, B -> rows OFFSET, then M's columns
    np.testing.assert_allclose(cmap.weights.numpy(), np.vstack([OFFSET, M.T]), atol=ONE_DN / 3)
    assert (fit["samples"], fit["pixels"], fit["stride"]) == (6, 6 * 24 * 32, 1)
    # only the quantisation to raw numbers is left: PSNR 10 log10(12 / ONE_DN^2) ~ 94.8 dB
    assert fit["psnr_rggb_fit"] > 94
    # the PSNR computed from the normal equations is the map's PSNR on those pixels
    assert fitted_psnr(ds, cmap) == pytest.approx(fit["psnr_rggb_fit"], abs=0.01)
    assert fitted_psnr(ds, cmap, "test") > 94  # and it holds on images it was not fitted on


def test_poly3_fits_a_linear_camera_as_well_and_a_cubic_one_that_linear_cannot(tmp_path):
    ds = paired_dataset(tmp_path / "lin", linear)
    psnr = {k: prior.fit_colour_map(ds, "train", k, progress=False)[1]["psnr_rggb_fit"]
            for k in ("linear", "poly3")}
    # Least squares over a superset of terms fits at least as well; the ridge (RIDGE of the
    # mean diagonal) shrinks the weak cubic terms a little: 0.05 dB at this 95 dB floor.
    assert psnr["poly3"] >= psnr["linear"] - 0.1

    def cubic(rgb):  # a camera with a cubic response in linear sRGB
        lin = prior.srgb_to_linear_table()[rgb]
        return np.clip(linear(rgb) + 0.3 * np.einsum("hwj,cj->chw", lin**2 * (1 - lin), M), 0, 1)

    ds = paired_dataset(tmp_path / "cubic", cubic)
    fits = {k: prior.fit_colour_map(ds, "train", k, progress=False) for k in prior.MAPS}
    # exact least squares would reach the 94.8 dB quantisation floor; the ridge leaves 90.6
    assert fits["poly3"][1]["psnr_rggb_fit"] > 88
    assert max(fits[k][1]["psnr_rggb_fit"] for k in ("linear", "poly2")) < 60
    assert fitted_psnr(ds, fits["poly3"][0], "test") > 88


def test_fit_uses_an_even_grid_beyond_max_fit_pixels(camera_data, monkeypatch):
    monkeypatch.setattr(prior, "MAX_FIT_PIXELS", 1000)
    cmap, fit = prior.fit_colour_map(camera_data[0], "train", "linear", progress=False)
    # 6 samples of 24 x 32 = 4608 pixels: stride ceil(sqrt(4.6)) = 3, 8 x 11 of each sample
    assert (fit["stride"], fit["pixels"]) == (3, 6 * 8 * 11)
    np.testing.assert_allclose(cmap.weights.numpy(), np.vstack([OFFSET, M.T]), atol=2 * ONE_DN)


@pytest.mark.parametrize("kind, degree", [("linear", 1), ("poly2", 2), ("poly3", 3)])
def test_polynomial_terms_are_finlayson_2015_plus_a_constant(kind, degree):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # colour-science warns that matplotlib is absent
        import colour

    codes = torch.from_numpy(np.random.default_rng(degree).integers(0, 256, (1, 3, 5, 7)))
    ours = ColourMap(kind).features(codes)[0].flatten(1).T.numpy()  # (35, terms)
    lin = prior.srgb_to_linear_table()[codes[0].numpy()].reshape(3, -1).T
    theirs = colour.characterisation.polynomial_expansion_Finlayson2015(
        lin, degree, root_polynomial_expansion=False)
    theirs = np.column_stack([np.ones(len(lin)), theirs])
    assert ours.shape == theirs.shape == (35, prior.n_terms(kind))
    # the same columns, in some order: each of ours matches exactly one of theirs
    match = np.array([[np.allclose(a, b, rtol=1e-12, atol=0) for b in theirs.T] for a in ours.T])
    assert (match.sum(0) == 1).all() and (match.sum(1) == 1).all()


def test_term_counts():
    assert [prior.n_terms(k) for k in prior.MAPS] == [4, 10, 20, 49]
    assert [ColourMap(k).weights.shape for k in prior.MAPS] == \
        [(4, 4), (10, 4), (20, 4), (49, 4)]
    # sums share one constant; their terms come in GROUPS' order whatever the kind's order
    assert prior.n_terms("curves+poly3+local") == 1 + 48 + 19 + 24 == 92
    assert ColourMap("local+curves+poly3").kind == "poly3+curves+local"
    assert ColourMap("curves+local").halo == 1 and ColourMap("poly3+curves").halo == 0
    codes = torch.from_numpy(np.random.default_rng(3).integers(0, 256, (2, 3, 6, 5)))
    both = ColourMap("poly3+curves").features(codes)
    assert torch.equal(both[:, :20], ColourMap("poly3").features(codes))
    assert torch.equal(both[:, 20:], ColourMap("curves").features(codes)[:, 1:])


@pytest.mark.parametrize("kind, rule", [("poly4", "one or more of"), ("curves+curves", "each once"),
                                        ("linear+poly3", "at most one of"),
                                        ("local", "needs a colour group"), ("", "one or more")])
def test_impossible_kinds_say_which_rule_they_break(kind, rule):
    with pytest.raises(ValueError, match=rule):
        ColourMap(kind)
    assert not prior.is_map_kind(kind)


def test_local_terms_are_the_neighbours_differences_with_repeated_edges():
    codes = torch.from_numpy(np.random.default_rng(4).integers(0, 256, (1, 3, 5, 6)))
    terms = ColourMap("linear+local").features(codes)[0].numpy()  # 1, R, G, B, 8 x (R, G, B)
    lin = prior.srgb_to_linear_table()[codes[0].numpy()]
    padded = np.pad(lin, ((0, 0), (1, 1), (1, 1)), mode="edge")
    for n, (dy, dx) in enumerate(prior.LOCAL_OFFSETS):
        neighbour = padded[:, 1 + dy:6 + dy, 1 + dx:7 + dx]
        np.testing.assert_array_equal(terms[4 + 3 * n:7 + 3 * n], neighbour - lin)
    assert (dy, dx) == (1, 1) and len(prior.LOCAL_OFFSETS) == 8


def test_bands_of_rows_give_the_whole_images_terms_exactly():
    codes = torch.from_numpy(np.random.default_rng(5).integers(0, 256, (1, 3, 23, 9)))
    cmap = ColourMap("curves+local", torch.rand(73, 4, dtype=torch.float64))
    whole = cmap.features(codes)
    banded = torch.cat([terms for _, terms in cmap.bands(codes, rows=4)], dim=-2)
    assert torch.equal(banded, whole)
    assert [top for top, _ in cmap.bands(codes, rows=10)] == [0, 10, 20]


def test_the_local_filter_never_overshoots_its_neighbourhoods_colours(monkeypatch):
    """A 3x3 filter with strong weights overshoots at a sharp corner of three colours; the map
    keeps each pixel within the range of its neighbourhood's colour-term estimates."""
    kind = "linear+local"
    weights = torch.zeros(prior.n_terms(kind), 4, dtype=torch.float64)
    weights[0] = 0.2
    weights[1:4] = 0.5 * torch.eye(3, 4, dtype=torch.float64)
    weights[4:] = 0.3 * torch.randn(24, 4, generator=torch.Generator().manual_seed(0),
                                    dtype=torch.float64)
    cmap = ColourMap(kind, weights)
    codes = torch.zeros(1, 3, 12, 12, dtype=torch.uint8)
    codes[..., :, :6] = torch.tensor([200, 40, 30], dtype=torch.uint8)[:, None, None]
    codes[..., :, 6:] = torch.tensor([60, 120, 200], dtype=torch.uint8)[:, None, None]
    codes[..., 4:8, 3:9] = 128
    terms = cmap.features(codes)
    raw = torch.einsum("bnhw,nc->bchw", terms, weights)  # the filter alone
    colour = torch.einsum("bnhw,nc->bchw", terms[:, :4], weights[:4])
    lo, hi = colour.amin(dim=(2, 3), keepdim=True), colour.amax(dim=(2, 3), keepdim=True)
    assert ((raw < lo - 0.05) | (raw > hi + 0.05)).any()  # it overshoots ...
    x = cmap(codes).double()
    assert (x >= lo - 1e-6).all() and (x <= hi + 1e-6).all()  # ... the map does not
    flat = (slice(None), slice(None), slice(0, 2), slice(0, 2))  # away from the edges: unchanged
    torch.testing.assert_close(x[flat], raw[flat].clamp(0, 1), atol=1e-6, rtol=0)
    # in bands of rows (each with its halo) exactly as the whole image
    monkeypatch.setattr(prior, "ROWS", 5)
    assert torch.equal(cmap(codes), x.float())


def test_local_terms_recover_a_camera_whose_sites_sit_off_the_guide_grid(tmp_path, monkeypatch):
    """RAW = the linear camera applied to the linear guide resampled half a pixel off its grid
    (a 3x3 filter per channel, as a CFA site sits off the guide pixel's centre): only a map with
    `local` terms fits it exactly, at any fit grid."""
    kernel = np.array([[0.05, 0.2, 0.0], [0.25, 0.5, 0.0], [0.0, 0.0, 0.0]])  # sums to 1

    def shifted(rgb):
        lin = np.pad(prior.srgb_to_linear_table()[rgb], ((1, 1), (1, 1), (0, 0)),
                     mode="edge")
        h, w = rgb.shape[:2]
        filtered = sum(kernel[1 + dy, 1 + dx] * lin[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
                       for dy in (-1, 0, 1) for dx in (-1, 0, 1))
        return np.clip(np.einsum("hwj,cj->chw", filtered, M) / 3 + 0.3, 0, 1)

    ds = paired_dataset(tmp_path / "shifted", shifted)
    local, fit = prior.fit_colour_map(ds, "train", "linear+local", progress=False)
    assert fit["psnr_rggb_fit"] > 80  # raw-number rounding only
    assert fitted_psnr(ds, local, "test") > 80
    plain, fit = prior.fit_colour_map(ds, "train", "poly3", progress=False)
    assert fit["psnr_rggb_fit"] < 40
    # on an even grid the terms still read the full-resolution neighbours
    monkeypatch.setattr(prior, "MAX_FIT_PIXELS", 24 * 32 * 6 // 9)
    grid, fit = prior.fit_colour_map(ds, "train", "linear+local", progress=False)
    assert fit["stride"] == 3 and fitted_psnr(ds, grid, "test") > 80


def test_curves_represent_per_channel_tone_curves_exactly(tmp_path):
    """RAW = offset + sum over guide channels of piecewise-linear curves with knots at the
    CURVE_KNOTS grid of 8-bit codes (0, 17, ..., 255), mixed into the 4 RAW channels. The two
    greens of this camera differ; the fit ties them (prior.solve_tied), so both get their mean,
    which is such a sum of curves too."""
    knots = np.linspace(0, 255, prior.CURVE_KNOTS)
    assert np.array_equal(knots, np.arange(0, 256, 17))
    # Knot values in multiples of 17 raw numbers: every code then lands on a whole raw number,
    # so quantisation loses nothing and the fit can be exact.
    steps = np.random.default_rng(1).integers(0, 40, (3, 4, prior.CURVE_KNOTS))
    base = np.array([300, 200, 250, 100])

    def curves(rgb):
        raw = np.zeros((4, *rgb.shape[:2])) + base[:, None, None]
        for j in range(3):
            for c in range(4):
                raw[c] += np.interp(rgb[..., j], knots, 17 * steps[j, c])
        return raw / (WHITE - np.array(BLACK))[:, None, None]

    ds = paired_dataset(tmp_path / "curves", curves)
    s = ds.load(ds.split("train")[0])
    scale = (WHITE - np.array(BLACK))[:, None, None]
    np.testing.assert_allclose(s.raw - np.array(BLACK)[:, None, None], curves(s.rgb) * scale,
                               rtol=0, atol=1e-9)  # nothing lost to rounding
    cmap, fit = prior.fit_colour_map(ds, "train", "curves", progress=False)
    for split in ("train", "test"):
        for sample_id in ds.split(split):
            s = ds.load(sample_id)
            pred = cmap(torch.tensor(s.rgb).permute(2, 0, 1)[None])[0].numpy()
            exact = bayer.normalise(s.raw, s.black, s.white)
            exact[1:3] = exact[1:3].mean(0)  # the greens tied
            assert np.abs(pred - exact).max() < 1e-6  # float32 rounding, 1/60 of a raw number
    assert 30 < fit["psnr_rggb_fit"] < 60  # what is left: the greens' own difference
    # a tone curve is beyond the polynomials: they fit the same data far worse
    assert prior.fit_colour_map(ds, "train", "poly3", progress=False)[1]["psnr_rggb_fit"] < 60


# ----------------------------------------------------------------------------- files

def test_baseline_file_round_trip_is_json_and_exact(tmp_path):
    camera = {"cfa": "RGGB", "make": "Testmaker", "model": "Synthetic 1",
              "black_level": [64.0, 64.0, 64.0, 64.0], "white_level": 1023.0}
    weights = torch.from_numpy(np.random.default_rng(0).normal(0, 0.3, (20, 4)))
    cmap = ColourMap("poly3", weights)
    path = tmp_path / "poly3.json"
    baselines.save_baseline(path, "poly3", Camera(**camera), colour_map=cmap,
                            fit={"psnr_rggb_fit": 40.0})
    data = json.loads(path.read_text())  # plain JSON: nothing to unpickle
    assert data["format"] == baselines.FORMAT and data["kind"] == "poly3"
    assert data["camera"] == camera and data["fit"] == {"psnr_rggb_fit": 40.0}
    assert baselines.is_baseline_file(path)
    loaded = baselines.load_baseline(path)
    assert (loaded.kind, loaded.camera.to_dict(), loaded.steps) == ("poly3", camera, None)
    assert loaded.digest == file_digest(path)
    assert torch.equal(loaded.colour_map.weights, cmap.weights)  # float64 survives the text
    guide = np.random.default_rng(1).integers(0, 256, (23, 17, 3), dtype=np.uint8)
    expected = cmap(torch.from_numpy(guide).permute(2, 0, 1)[None])[0].numpy()
    out = loaded.generate_from_guide(guide)
    assert out.dtype == np.float32 and out.shape == (4, 23, 17)
    np.testing.assert_array_equal(out, expected)
    loaded.rows = 5  # in chunks of rows (bounding the expanded terms' memory): the same
    np.testing.assert_array_equal(loaded.generate_from_guide(guide, seed=9), expected)

    params = generic_params()
    baselines.save_baseline(tmp_path / "upi.json", "upi", Camera(**camera), params=params)
    upi = baselines.load_baseline(tmp_path / "upi.json")
    assert upi.params == params and upi.colour_map is None
    np.testing.assert_array_equal(upi.generate_from_guide(guide), unprocess(guide, params))


def test_a_read_only_guide_is_taken_without_a_warning():
    guide = np.random.default_rng(0).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    guide.flags.writeable = False  # as read_rgb returns it, and sample.py passes it
    baseline = Baseline("linear", {}, "0", colour_map=ColourMap("linear", torch.rand(4, 4)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert baseline.generate_from_guide(guide).shape == (4, 6, 8)


def test_a_checkpoint_is_not_a_baseline_file(tmp_path):
    save_checkpoint(tmp_path / "c.pt", {"step": 0})
    assert not baselines.is_baseline_file(tmp_path / "c.pt")
    (tmp_path / "b.json").write_text('\n  {"format": "rawdiffusion-baseline/1"}')
    assert baselines.is_baseline_file(tmp_path / "b.json")


GOOD = {"format": baselines.FORMAT, "kind": "linear",
        "camera": {"cfa": "RGGB", "black_level": [64.0] * 4, "white_level": 1023.0},
        "weights": np.eye(4).tolist()}
BAD_FILES = {
    "random bytes": (b"\xff\xfe" + np.random.default_rng(0).bytes(200),
                     "not a readable baseline file (UnicodeDecodeError"),
    "broken JSON": (b'{"format": "rawdiffusion-baseline/1", ', "not a readable baseline file"),
    "another format": ({"format": "rawdiffusion-dataset/1", "images": {}},
                       "not a rawdiffusion baseline file"),
    "a list": ([GOOD], "not a rawdiffusion baseline file"),
    "unknown kind": ({**GOOD, "kind": "poly4"}, "unknown baseline kind 'poly4'"),
    "no camera": ({k: v for k, v in GOOD.items() if k != "camera"}, "no camera description"),
    "empty camera": ({**GOOD, "camera": {}}, "no camera description"),
    "impossible camera": ({**GOOD, "camera": {**GOOD["camera"], "black_level": [2000.0] * 4}},
                          "black_level"),
    "camera of another CFA": ({**GOOD, "camera": {**GOOD["camera"], "cfa": "RGBW"}},
                              "camera.cfa"),
    "deeply nested": (b"[" * 100_000 + b"]" * 100_000, "not a readable baseline file"),
    "no weights": ({k: v for k, v in GOOD.items() if k != "weights"},
                   "unusable linear baseline (KeyError"),
    "null weights": ({**GOOD, "weights": None}, "unusable linear baseline (TypeError"),
    "NaN weights": ({**GOOD, "weights": [[float("nan")] * 4] * 4}, "weights are not finite"),
    "infinite weights": ({**GOOD, "weights": [[float("inf")] * 4] * 4},
                         "weights are not finite"),
    "wrong shape": ({**GOOD, "weights": np.eye(3, 4).tolist()},
                    "a linear map has 4 x 4 weights, got (3, 4)"),
    "ragged weights": ({**GOOD, "weights": [[1, 2, 3, 4], [1]]}, "unusable linear baseline"),
    "no params": ({**GOOD, "kind": "upi"}, "unusable upi baseline (KeyError"),
    "bad params": ({**GOOD, "kind": "upi-camera",
                    "params": {**generic_params().to_dict(), "red_gain": -1}},
                   "red_gain must be positive"),
    "bad noise model": ({**GOOD, "camera": {**GOOD["camera"], "noise": {
        "iso": 100.0, "shot": [1e-4, -1e-4, 1e-4, 1e-4], "read_gained": [0.0] * 4,
        "read_fixed": [0.0] * 4, "isos": [100.0]}}},
        "camera.noise.shot[1]: input should be greater than or equal to 0 (got -0.0001)"),
    "noise model without isos": ({**GOOD, "camera": {**GOOD["camera"], "noise": {
        "iso": 100.0, "shot": [1e-4] * 4, "read_gained": [0.0] * 4, "read_fixed": [0.0] * 4}}},
        "camera.noise.isos: field required"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_unusable_baseline_files_name_the_file_and_why(tmp_path, case):
    content, reason = BAD_FILES[case]
    path = tmp_path / "baseline.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(json.dumps(content))  # NaN and Infinity written as JSON allows
    with pytest.raises(BaselineError, match=re.escape(f"{path}: ") + ".*" + re.escape(reason)) \
            as e:
        baselines.load_baseline(path)
    assert "\n" not in str(e.value)


def test_baseline_fit_stores_the_cameras_noise_model_and_convert_adds_its_noise(tmp_path):
    """The noise that `prepare` measured on each training image becomes the camera's noise
    model in the baseline file; `--iso` then adds it. Files of before (no "noise") load
    without one."""
    measured = {"shot": [1e-4, 2e-4, 2e-4, 1.5e-4], "read": [1e-6] * 4}
    ds = paired_dataset(tmp_path / "noisy", linear, cfa="GRBG", iso=200.0,
                        exposure_time=0.01, noise_profile=None, noise=measured)
    fit_baseline(ds, "linear", tmp_path / "b.json")
    stored = json.loads((tmp_path / "b.json").read_text())["camera"]["noise"]
    assert stored == {"iso": 200.0, "shot": pytest.approx(measured["shot"], rel=1e-12),
                      "read_gained": measured["read"], "read_fixed": [0.0] * 4,
                      "isos": [200.0] * 3}  # one per training image
    gen = open_generator(tmp_path / "b.json", Settings(iso=800), torch.device("cpu"))
    photo = tmp_path / "photo.png"
    Image.fromarray(np.full((32, 48, 3), 128, np.uint8)).save(photo)
    convert([photo], tmp_path / "out", gen, seed=0)
    raw = read_raw(tmp_path / "out" / "photo.dng")
    assert raw.iso == 800 and raw.noise_profile[0] == pytest.approx((4e-4, 16e-6), rel=1e-12)
    data = json.loads((tmp_path / "b.json").read_text())  # a baseline file of before
    del data["camera"]["noise"]
    (tmp_path / "old.json").write_text(json.dumps(data))
    assert baselines.load_baseline(tmp_path / "old.json").camera.noise is None


def test_missing_baseline_file_is_named(tmp_path):
    with pytest.raises(BaselineError, match=re.escape(str(tmp_path / "nope.json"))):
        baselines.load_baseline(tmp_path / "nope.json")


# ----------------------------------------------------------------------------- unprocessing

def test_upi_writes_the_generic_parameters(camera_data, tmp_path):
    result = fit_baseline(camera_data[0], "upi", tmp_path / "upi.json")
    data = json.loads((tmp_path / "upi.json").read_text())
    assert data["params"] == generic_params().to_dict() and "weights" not in data
    train = {i: e for i, e in camera_data[0].images.items() if e["split"] == "train"}
    assert data["camera"] == result["camera"] == Camera.from_training_images(train).to_dict()
    # with each training image's as-shot white balance, from which `--white-balance draw` draws
    assert data["camera"]["wbs"] == [list(e["wb"]) for e in train.values()]
    assert data["fit"]["dataset"] == str(camera_data[0].root.resolve())
    assert baselines.load_baseline(tmp_path / "upi.json").params == generic_params()


def test_upi_camera_without_a_colour_matrix_names_the_dataset(camera_data, tmp_path):
    ds = camera_data[0]
    with pytest.raises(BaselineError, match=re.escape(f"{ds.root}: ") + ".*Synthetic 1 has "
                                                                        "none: use --kind upi"):
        fit_baseline(ds, "upi-camera", tmp_path / "b.json")
    assert not (tmp_path / "b.json").exists()


def test_upi_camera_takes_the_daylight_calibration(tmp_path):
    ds = paired_dataset(tmp_path / "cam", linear, images=2, samples=1, color_matrix=CM_A,
                        illuminant=17, color_matrix2=CM_D50, illuminant2=23, wb=[2.4, 1.2, 1.8])
    camera = Camera.from_images(ds.images)
    assert camera_params(camera).xyz_to_cam == camera_params(camera.model_copy(
        update={"color_matrix": CM_D50, "color_matrix2": None})).xyz_to_cam
    assert np.allclose(camera_params(camera).xyz_to_cam, CM_D50)
    # the same through the file: `baseline fit --kind upi-camera`
    fit_baseline(ds, "upi-camera", tmp_path / "b.json")
    params = baselines.load_baseline(tmp_path / "b.json").params
    assert np.allclose(params.xyz_to_cam, CM_D50)
    assert (params.rgb_gain, params.red_gain, params.blue_gain) == (1.0, 2.0, 1.5)
    # either order of the two calibrations
    swapped = camera.model_copy(update={"color_matrix": CM_D50, "illuminant": 23,
                                        "color_matrix2": CM_A, "illuminant2": 17})
    assert np.allclose(camera_params(swapped).xyz_to_cam, CM_D50)


def test_an_rgb_only_dataset_has_no_camera_to_fit(tmp_path, capsys):
    cityscapes_tree(tmp_path / "cityscapes")
    prepare_cityscapes(tmp_path / "cityscapes", tmp_path / "rgbonly", splits=["train"])
    ds = layout.PreparedDataset(tmp_path / "rgbonly")
    for kind in ("linear", "upi"):
        with pytest.raises(BaselineError, match=re.escape(f"{ds.root}: ") + "a 'rgb' dataset"):
            fit_baseline(ds, kind, tmp_path / "b.json")
    capsys.readouterr()
    assert cli.main(["baseline", "fit", str(ds.root), "--kind", "upi", "--out",
                     str(tmp_path / "b.json")]) == 2  # one line, no traceback
    assert capsys.readouterr().err.startswith(f"error: {ds.root}: a 'rgb' dataset")
    assert not (tmp_path / "b.json").exists()


# ----------------------------------------------------------------------------- command line

def test_cli_baseline_fit(camera_data, tmp_path, capsys):
    ds = camera_data[0]
    out = tmp_path / "poly2.json"
    assert cli.main(["baseline", "fit", str(ds.root), "--kind", "poly2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    psnr = json.loads(out.read_text())["fit"]["psnr_rggb_fit"]
    assert f"wrote {out}: poly2 baseline for Testmaker Synthetic 1 (GRBG, no noise model)" \
        in printed
    assert f"fitted on {6 * 24 * 32} pixels of 6 train samples" in printed
    assert f"4 channels: {psnr:.2f} dB" in printed
    assert baselines.load_baseline(out).kind == "poly2"
    photo = tmp_path / "photo.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(photo)
    before = photo.read_bytes()
    assert cli.main(["baseline", "fit", str(ds.root), "--kind", "poly2", "--out", str(photo)]) == 2
    assert capsys.readouterr().err == (f"error: {photo}: an existing file that is not a baseline "
                                       "file; --out is the baseline file to write (.json), "
                                       "choose another name\n")
    assert photo.read_bytes() == before

    assert cli.main(["baseline", "fit", str(ds.root), "--kind", "poly4", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --kind poly4: colour map kind 'poly4': one or more of") \
        and err.count("\n") == 1
    assert cli.main(["baseline", "fit", str(ds.root), "--kind", "poly2+poly3", "--out",
                     str(out)]) == 2
    assert "at most one of linear, poly2, poly3" in capsys.readouterr().err
    # groups in any order: the file names them in their canonical order
    assert cli.main(["baseline", "fit", str(ds.root), "--kind", "local+curves", "--out",
                     str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert baselines.load_baseline(out).kind == "curves+local"

    # errors a user can fix: one line, exit 2
    assert cli.main(["baseline", "fit", str(ds.root), "--kind", "upi-camera", "--out",
                     str(tmp_path / "u.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {ds.root}: upi-camera needs") and err.count("\n") == 1
    assert cli.main(["baseline", "fit", str(tmp_path / "none"), "--kind", "linear", "--out",
                     str(tmp_path / "u.json")]) == 2
    assert "no dataset.json" in capsys.readouterr().err


# ----------------------------------------------------------------------------- as a checkpoint

def test_convert_with_a_baseline_writes_its_output_as_the_cameras_dng(camera_data, tmp_path,
                                                                      capsys):
    ds, path = camera_data
    sources = photos(tmp_path / "in")
    out = tmp_path / "out"
    assert cli.main(["convert", str(tmp_path / "in"), "--checkpoint", str(path),
                     "--out", str(out)]) == 0
    baseline = baselines.load_baseline(path)
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(records) == 3
    assert {r["checkpoint"] for r in records} == {file_digest(path)}
    assert {r["steps"] for r in records} == {None}
    for source in sources:
        raw = read_raw(out / f"{source.stem}.dng")
        assert (raw.cfa, raw.make, raw.model) == ("GRBG", "Testmaker", "Synthetic 1")
        x = bayer.normalise(bayer.pack(raw.mosaic, raw.cfa),
                            bayer.packed_levels(raw.black_level, raw.cfa), raw.white_level)
        expected = baseline.generate_from_guide(halve_area(read_rgb(source)))
        assert np.abs(x - expected).max() <= ONE_DN
        assert (out / f"{source.stem}.png").is_file()


def sample_config(*overrides):
    config.register()
    with initialize(version_base="1.3", config_path=None):
        return compose(config_name="sample", overrides=list(overrides))


def test_sample_py_takes_a_baseline_where_a_checkpoint_goes(camera_data, tmp_path):
    ds, path = camera_data
    base = ["dataset=folder", f"dataset.root={ds.root}", f"general.out={tmp_path / 'runs'}"]
    cfg = sample_config(*base, f"checkpoint={path}")
    summary = evaluation.main(cfg)
    # a baseline's samples go beside it, under its name, "onepass" for the respacing
    out = path.parent / "linear" / "samples" / f"{ds.root.name}-test-onepass-s0"
    assert evaluation.samples_dir(cfg, path, None) == out
    assert json.loads((out / "metrics.json").read_text()) == summary
    assert summary["steps"] is None and summary["checkpoint"] == file_digest(path)
    assert summary["images"] == 2 and summary["psnr_rggb"] > 90  # the known camera, fitted

    # the same files and keys as a checkpoint gives
    torch.manual_seed(0)
    net = build_model("small")
    torch.nn.init.normal_(net.conv_out.weight, std=0.05)
    save_checkpoint(tmp_path / "ckpt.pt", {"step": 1, "config": {}, "model_config": net.config,
                                           "model": net.state_dict(), "ema": None,
                                           "camera": Camera.from_images(ds.images).to_dict()})
    cfg = sample_config(*base, f"checkpoint={tmp_path / 'ckpt.pt'}", f"out={tmp_path / 'ckpt'}",
                        "diffusion_val.timestep_respacing=ddim2")
    reference = evaluation.main(cfg)
    assert reference["steps"] == 2 and summary.keys() == reference.keys()
    header = lambda folder: next(csv.reader(open(folder / "metrics.csv")))  # noqa: E731
    assert header(out) == header(tmp_path / "ckpt") == ["id", *evaluation.METRICS]


def test_load_tells_a_baseline_from_a_checkpoint(camera_data):
    gen = load(camera_data[1], steps=24)
    assert isinstance(gen, Baseline) and gen.steps is None and gen.kind == "linear"


def test_convert_refuses_to_overwrite_an_input_photo(camera_data, tmp_path):
    sources = photos(tmp_path / "in")
    before = [p.read_bytes() for p in sources]
    with pytest.raises(UserError, match="an input photo would be overwritten"):
        convert(sources, tmp_path / "in", load(camera_data[1]), seed=0)
    assert [p.read_bytes() for p in sources] == before
    assert sorted(p.name for p in (tmp_path / "in").iterdir()) == sorted(p.name for p in sources)


def test_a_rerun_with_another_generator_redoes_the_work(camera_data, tmp_path):
    """Finished outputs are skipped only when the same checkpoint or baseline made them."""
    ds, linear_file = camera_data
    poly2_file = tmp_path / "poly2.json"
    baselines.fit_baseline(ds, "poly2", poly2_file)
    sources = photos(tmp_path / "in")
    out = tmp_path / "out"
    assert convert(sources, out, load(linear_file), seed=0) == (3, 0)
    assert convert(sources, out, load(linear_file), seed=0) == (0, 3)
    assert convert(sources, out, load(poly2_file), seed=0) == (3, 0)
    merge_manifests(out)
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert {r["checkpoint"] for r in records} == {file_digest(poly2_file)}

    base = ["dataset=folder", f"dataset.root={ds.root}", f"out={tmp_path / 's'}"]
    first = evaluation.main(sample_config(*base, f"checkpoint={linear_file}"))
    second = evaluation.main(sample_config(*base, f"checkpoint={poly2_file}"))
    assert first["checkpoint"] == file_digest(linear_file)
    assert second["checkpoint"] == file_digest(poly2_file) and second["images"] == 2
    assert second["psnr_rggb"] != first["psnr_rggb"]


def test_a_baseline_that_gives_non_finite_values_is_refused(tmp_path):
    path = tmp_path / "singular.json"
    params = {**generic_params().to_dict(), "xyz_to_cam": [[float("nan")] * 3] * 3}
    path.write_text(json.dumps({**GOOD, "kind": "upi", "params": params}))
    with pytest.raises(BaselineError, match="non-finite"):
        baselines.load_baseline(path).generate_from_guide(np.full((8, 8, 3), 128, np.uint8))


def test_fit_refuses_a_folder_as_out_before_fitting(camera_data, tmp_path):
    with pytest.raises(BaselineError, match="a folder; --out is the baseline file"):
        baselines.fit_baseline(camera_data[0], "linear", tmp_path)


def test_a_json_that_is_not_an_object_is_still_read_as_a_baseline(tmp_path):
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "list.pt").write_text("[1, 2]")
    assert baselines.is_baseline_file(tmp_path / "list.json")
    assert baselines.is_baseline_file(tmp_path / "list.pt")
    with pytest.raises(BaselineError, match="not a rawdiffusion baseline file"):
        load(tmp_path / "list.pt")
