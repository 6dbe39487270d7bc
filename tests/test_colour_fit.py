"""The colour prior's fit (prior.solve_tied, anchors.py): the two greens tied, saturated colours
anchored on the camera's colour matrix, and maps fitted before both loading and generating
exactly as they did.

Synthetic cameras write prepared datasets (test_baselines.paired_dataset); the chart
(chart.chart_report) renders their DNGs through LibRaw.
"""

import hashlib
import json

import numpy as np
import pytest
import torch

from rawdiffusion import anchors, prior
from rawdiffusion.anchors import anchor_colours, daylight_matrix
from rawdiffusion.baselines import Baseline, load_baseline
from rawdiffusion.camera import Camera
from rawdiffusion.chart import SATURATED, chart_report
from rawdiffusion.checkpoint import load_model, save_checkpoint
from rawdiffusion.io import colour_science
from rawdiffusion.prior import ColourMap, fit_colour_map, solve_tied
from rawdiffusion.unprocess import rgb_to_cam
from test_baselines import paired_dataset
from test_prior import tiny_net
from test_train import one_thread  # noqa: F401  (one thread, autouse)

KIND = "poly3+curves+local"
LIN = prior.srgb_to_linear_table()
# A made-up camera: XYZ -> camera (calibrated for D65) and its white-balanced camera RGB of
# linear sRGB (rows summing to 1).
XYZ_TO_CAM = np.array([[0.9, -0.25, -0.1], [-0.35, 1.25, 0.15], [0.0, 0.15, 0.55]])
RGB_TO_CAM = rgb_to_cam(XYZ_TO_CAM)
EXPOSURE = 0.8


def pre_mul():
    """LibRaw's daylight multipliers for XYZ_TO_CAM (G = 1): 1 / the row sums of
    XYZ_TO_CAM @ sRGB_to_XYZ (Coffin's dcraw)."""
    srgb_to_xyz = colour_science().models.RGB_COLOURSPACE_sRGB.matrix_RGB_to_XYZ
    m = 1 / (XYZ_TO_CAM @ srgb_to_xyz).sum(1)
    return m / m[1]


def matrix_camera(rgb):
    """The camera whose RAW is exactly the 3x3 matrix of linear sRGB that its colour matrix
    says, as LibRaw inverts it: packed (4, h, w) = EXPOSURE * RGB_TO_CAM @ lin / pre_mul."""
    cam = np.einsum("hwk,ck->chw", LIN[rgb], RGB_TO_CAM) * EXPOSURE / pre_mul()[:, None, None]
    return np.clip(cam[[0, 1, 1, 2]], 0, 1)


def calibrated(**entry):
    """Image fields of a camera calibrated by XYZ_TO_CAM for D65 (EXIF 21)."""
    return {"color_matrix": XYZ_TO_CAM.tolist(), "illuminant": 21, "wb": pre_mul().tolist(),
            **entry}


def camera_of(ds):
    return Camera.from_images({i: e for i, e in ds.images.items() if e["split"] == "train"})


def near_grey(rng, size):
    """Guides of low saturation only, as most photos are: a grey 30..225 per pixel, each
    channel within 30 codes of it."""
    grey = rng.integers(30, 226, (*size, 1))
    return np.clip(grey + rng.integers(-30, 31, (*size, 3)), 0, 255).astype(np.uint8)


def uniform_patches(codes):
    """(m, 3) codes -> (m, 3, 3, 3) uniform 3x3 patches, as map input."""
    return torch.as_tensor(codes, dtype=torch.float64)[:, :, None, None].expand(-1, 3, 3, 3)


# ----------------------------------------------------------------------------- tied greens

def test_the_tied_fit_is_the_constrained_least_squares():
    """solve_tied against the least squares of the constraint written out: G1 = X (w + d),
    G2 = X (w - d), d zero but for the local terms."""
    cmap = ColourMap("linear+local")
    g = torch.Generator().manual_seed(0)
    X = torch.randn(300, cmap.n, generator=g, dtype=torch.float64)
    Y = torch.randn(300, 4, generator=g, dtype=torch.float64)
    W = solve_tied(cmap, X.T @ X, X.T @ Y, 0.0)
    n, local = cmap.n, X[:, 4:]  # 1 + 3 colour terms, then the 24 local ones
    zero, zl = torch.zeros_like(X), torch.zeros_like(local)
    design = torch.cat([torch.cat([X, zero, zl, zero], 1), torch.cat([zero, X, local, zero], 1),
                        torch.cat([zero, X, -local, zero], 1), torch.cat([zero, zero, zl, X], 1)])
    theta = torch.linalg.lstsq(design, Y.T.reshape(-1, 1)).solution[:, 0]
    w_r, w_g, d, w_b = theta[:n], theta[n:2 * n], theta[2 * n:3 * n - 4], theta[3 * n - 4:]
    d = torch.cat([torch.zeros(4, dtype=torch.float64), d])
    expected = torch.stack([w_r, w_g + d, w_g - d, w_b], 1)
    torch.testing.assert_close(W, expected, atol=1e-10, rtol=0)


def unequal_greens(rgb):
    """A camera fitted independently per channel would give G1 != G2: G2 = 0.8 G1 + 0.05,
    and a stronger G1 where the guide's red is high (a cubic term)."""
    x = matrix_camera(rgb)
    x[1] += 0.1 * LIN[rgb][..., 0] ** 3
    x[2] = 0.8 * x[2] + 0.05
    return np.clip(x, 0, 1)


@pytest.mark.parametrize("kind", [KIND, "poly3", "curves+local"])
def test_tied_greens_are_equal_for_every_colour(kind, tmp_path):
    ds = paired_dataset(tmp_path / "greens", unequal_greens, **calibrated())
    for camera in (None, camera_of(ds)):  # with and without anchors
        cmap, fit = fit_colour_map(ds, "train", kind, progress=False, camera=camera)
        assert fit["greens"].startswith("tied")
        codes = np.random.default_rng(1).integers(0, 256, (2000, 3))
        x = cmap(uniform_patches(codes))
        assert torch.equal(x[:, 1], x[:, 2])  # exactly, not approximately
        assert (x[:, 1] - x[:, 2]).abs().max() == 0 and x[:, 1].std() > 0.05
    # the mean green, all the 3-channel metrics see, is the untied fit's
    plain, _ = fit_colour_map(ds, "train", kind, progress=False)
    A, B, _, _, _ = prior._normal_equations(ds, ds.split("train"), ColourMap(kind), 1, False)
    untied = torch.linalg.solve(A + prior.RIDGE * A.diagonal().mean() * torch.eye(len(A),
                                                                                 dtype=A.dtype), B)
    torch.testing.assert_close(plain.weights[:, 1] + plain.weights[:, 2],
                               untied[:, 1] + untied[:, 2], atol=1e-8, rtol=0)
    torch.testing.assert_close(plain.weights[:, [0, 3]], untied[:, [0, 3]], atol=1e-8, rtol=0)
    # G1 and G2 differ only at edges, through the local terms; without them never
    guide = torch.from_numpy(np.random.default_rng(2).integers(0, 256, (1, 3, 16, 16)))
    x = plain(guide)
    assert torch.equal(x[:, 1], x[:, 2]) == ("local" not in plain.groups)


# ----------------------------------------------------------------------------- anchors

def curved_camera(rgb):
    """matrix_camera plus 0.3 (l_R - l_B)^2 on R: small in the greyish colours that the data
    hold (under 0.02), large in saturated ones, where the matrix says otherwise."""
    lin = LIN[rgb]
    x = matrix_camera(rgb)
    x[0] += 0.3 * (lin[..., 0] - lin[..., 2]) ** 2
    return np.clip(x, 0, 1)


def test_anchors_pull_saturated_colours_towards_the_cameras_matrix(tmp_path):
    ds = paired_dataset(tmp_path / "curved", curved_camera, guide_of=near_grey, **calibrated())
    camera = camera_of(ds)
    anchored, fit = fit_colour_map(ds, "train", KIND, progress=False, camera=camera)
    plain, plain_fit = fit_colour_map(ds, "train", KIND, progress=False)
    assert fit["anchors"] == {"samples": len(anchor_colours()[0]), "weight": 0.01,
                              "matrix": "color_matrix (EXIF illuminant 21)"}
    assert plain_fit["anchors"].startswith("none")
    codes = np.array(list(SATURATED.values()))
    truth = torch.from_numpy(matrix_camera(codes[None].astype(np.uint8))[:, 0].T)
    far = [(m(uniform_patches(codes))[:, :, 1, 1].double() - truth).abs().max(1).values
           for m in (anchored, plain)]
    # the polynomial extrapolates the data's curvature, up to 0.22 of white ...
    far_out = far[1] > 0.1
    assert far_out.sum() == 5 and far[1].max() > 0.2
    # ... the anchors pull towards the matrix, against the same curvature in the data
    assert (far[0][far_out] < 0.8 * far[1][far_out]).all() and far[0].sum() < 0.7 * far[1].sum()
    # golden values of the blue patch (30, 40, 220), from this commit
    blue = anchored(uniform_patches(codes[5:6]))[0, :, 1, 1]
    np.testing.assert_allclose(blue.numpy(), GOLDEN_BLUE, atol=2e-4)
    # the greyish data cost little: the fit's own error stays under 1/1000 of white (rms)
    assert fit["psnr_rggb_fit"] > 60


GOLDEN_BLUE = [0.13839, 0.10161, 0.10161, 0.28530]


def test_a_camera_without_a_colour_matrix_fits_without_anchors(tmp_path):
    ds = paired_dataset(tmp_path / "plain", curved_camera, guide_of=near_grey)
    camera = camera_of(ds)
    assert camera.color_matrix is None and daylight_matrix(camera) is None
    cmap, fit = fit_colour_map(ds, "train", KIND, progress=False, camera=camera)
    assert fit["anchors"] == "none: the camera has no colour matrix"
    assert torch.equal(cmap.weights, fit_colour_map(ds, "train", KIND, progress=False)[0].weights)


def test_the_matrix_nearest_daylight_is_used():
    base = {"cfa": "RGGB", "black_level": [0] * 4, "white_level": 1023.0}
    a, d50 = np.full((3, 3), 0.1), np.full((3, 3), 0.2)
    camera = Camera(**base, color_matrix=a.tolist(), illuminant=17, color_matrix2=d50.tolist(),
                    illuminant2=23)
    matrix, which = daylight_matrix(camera)
    assert np.array_equal(matrix, d50) and which == "color_matrix2 (EXIF illuminant 23)"
    old = Camera(**base, color_matrix=a.tolist())  # stored before illuminants were kept
    assert daylight_matrix(old)[1] == "color_matrix (EXIF illuminant 0)"


def test_anchor_inputs_are_real_surfaces_short_of_clipping():
    codes, linear = anchor_colours()
    assert codes.shape == linear.shape == (715, 3) and not codes.flags.writeable
    assert codes.max() <= anchors.MAX_CODE and (codes.max(1) > 0).all()
    # the surfaces outside sRGB: a channel at code 0 stands for a negative linear value
    outside = (linear < 0).any(1)
    assert outside.sum() > 40 and (codes[outside].min(1) == 0).all()
    encoded = np.asarray(prior.colour_science().cctf_encoding(np.clip(linear, 0, 1),
                                                              function="sRGB"))
    assert np.array_equal(codes, np.round(encoded * 255))


def test_a_camera_that_is_its_matrix_gives_the_charts_hues_back(tmp_path):
    """RAW exactly the 3x3 matrix of linear sRGB that the camera's colour matrix says: the
    anchored prior reproduces the saturated chart's hues within a few degrees (what is left is
    LibRaw's own tone curve and brightening) and G1 = G2."""
    ds = paired_dataset(tmp_path / "matrix", matrix_camera, **calibrated())
    camera = camera_of(ds)
    cmap, _ = fit_colour_map(ds, "train", KIND, progress=False, camera=camera)
    rows = chart_report(Baseline(KIND, camera, "test", colour_map=cmap))
    assert max(abs(r["hue_error"]) for r in rows) < 5
    assert all(r["green_disagreement"] == 0 for r in rows)


# ----------------------------------------------------------------------------- old files

def old_baseline(path):
    """A baseline file as an earlier version fitted it: greens untied (G2 = 0.7 G1)."""
    kind = "poly2+local"
    w = np.random.default_rng(7).uniform(0, 0.2, (prior.n_terms(kind), 4))
    w[0] = [0.02, 0.01, 0.03, 0.02]
    w[:, 2] = 0.7 * w[:, 1]
    camera = {"cfa": "GRBG", "make": "Testmaker", "model": "Synthetic 1",
              "black_level": [64.0, 65.0, 66.0, 67.0], "white_level": 4095.0}
    path.write_text(json.dumps({"format": "rawdiffusion-baseline/1", "kind": kind,
                                "camera": camera, "weights": w.tolist()}, indent=1) + "\n")
    return w


# sha256 of the float32 output of old_baseline's file for the guide below, computed by main at
# 6b4d0a7, before the greens were tied.
GOLDEN_OLD_BASELINE = "d3f42d5e78935f68a9ad8e41b500f3ae01585bdfbec2b43bc54fd3e409015c90"


def test_an_old_baseline_file_generates_byte_identically(tmp_path):
    w = old_baseline(tmp_path / "old.json")
    gen = load_baseline(tmp_path / "old.json")
    assert torch.equal(gen.colour_map.weights, torch.from_numpy(w))  # not refitted, not tied
    guide = np.random.default_rng(3).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    x = gen.generate_from_guide(guide, seed=0)
    assert hashlib.sha256(x.tobytes()).hexdigest() == GOLDEN_OLD_BASELINE
    assert np.abs(x[1] - x[2]).mean() > 0.05  # its greens stay untied


def test_an_old_checkpoints_untied_prior_loads_unchanged(tmp_path):
    kind = "curves"
    w = torch.rand(prior.n_terms(kind), 4, generator=torch.Generator().manual_seed(0),
                   dtype=torch.float64) * 0.3
    w[:, 2] = 0.5 * w[:, 1]
    net = tiny_net(kind, w)
    save_checkpoint(tmp_path / "old.pt", {"step": 1, "config": {}, "model_config": net.config,
                                          "model": net.state_dict(), "ema": None, "camera": {}})
    loaded, _ = load_model(tmp_path / "old.pt")
    assert torch.equal(loaded.prior.weights, w)
    codes = np.random.default_rng(4).integers(0, 256, (50, 3))
    x = loaded.prior(uniform_patches(codes))
    assert torch.equal(x, net.prior(uniform_patches(codes)))
    assert (x[:, 1] - x[:, 2]).abs().mean() > 0.05
