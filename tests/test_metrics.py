"""The paper's metrics against scikit-image / numpy, golden values and edge cases."""

import csv
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from rawdiffusion import evaluation, metrics


def pair(seed=0, shape=(2, 4, 24, 30), noise=0.05):
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(shape, generator=g, dtype=torch.float64)
    pred = (target + noise * torch.randn(shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    return pred, target


def test_rggb_to_rgb_averages_greens():
    x = torch.arange(4.0).view(1, 4, 1, 1).expand(1, 4, 2, 3)
    rgb = metrics.rggb_to_rgb(x)
    assert rgb.shape == (1, 3, 2, 3)
    assert rgb[0, :, 0, 0].tolist() == [0.0, 1.5, 3.0]


def test_mse_psnr_golden():
    target = torch.zeros(1, 3, 4, 4)
    pred = torch.full((1, 3, 4, 4), 0.1)
    assert metrics.mse(pred, target).item() == pytest.approx(0.01)
    assert metrics.psnr(pred, target).item() == pytest.approx(20.0)


def test_psnr_of_identical_images_is_inf():
    x = torch.rand(3, 4, 16, 16)
    assert torch.isinf(metrics.psnr(x, x)).all()
    assert metrics.ssim(x, x).tolist() == pytest.approx([1.0] * 3)
    assert metrics.pearson(x, x).tolist() == pytest.approx([1.0] * 3)


@pytest.mark.parametrize("shape", [(2, 3, 24, 30), (1, 4, 11, 11), (1, 1, 40, 17)])
def test_ssim_matches_skimage(shape):
    pred, target = pair(1, shape)
    ours = metrics.ssim(pred, target)
    for b in range(shape[0]):
        ref = structural_similarity(pred[b].numpy(), target[b].numpy(), gaussian_weights=True,
                                    sigma=1.5, use_sample_covariance=False, data_range=1,
                                    channel_axis=0)
        assert ours[b].item() == pytest.approx(ref, abs=1e-12)


def test_pearson_matches_numpy():
    pred, target = pair(2, (2, 3, 12, 9))
    ours = metrics.pearson(pred, target)
    for b in range(2):
        ref = np.mean([np.corrcoef(pred[b, c].numpy().ravel(), target[b, c].numpy().ravel())[0, 1]
                       for c in range(3)])
        assert ours[b].item() == pytest.approx(ref, abs=1e-12)


def test_raw_metrics_protocols():
    pred, target = pair(3)
    m = metrics.raw_metrics(pred.float(), target.float())
    assert set(m) == {"mse", "psnr", "ssim", "pearson", "psnr_rggb", "ssim_rggb",
                      "angular_error", "psnr_gain"}
    assert all(v.shape == (2,) and v.dtype == torch.float64 for v in m.values())
    p3, t3 = metrics.rggb_to_rgb(pred), metrics.rggb_to_rgb(target)
    ref_mse = ((p3 - t3) ** 2).mean(dim=(1, 2, 3))
    assert m["mse"] == pytest.approx(ref_mse, rel=1e-5)
    assert m["psnr"] == pytest.approx(-10 * torch.log10(ref_mse), rel=1e-5)
    # Averaging the greens averages out independent noise: the 3-channel PSNR is higher.
    assert (m["psnr"] > m["psnr_rggb"]).all()
    means = metrics.mean_metrics([m, m])
    assert means["psnr"] == pytest.approx(m["psnr"].mean().item())
    assert math.isfinite(means["ssim"])


def test_wrong_shapes_raise():
    x = torch.rand(1, 4, 16, 16)
    with pytest.raises(ValueError, match="differ in shape"):
        metrics.psnr(x, torch.rand(1, 4, 16, 15))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        metrics.ssim(x[0], x[0])
    with pytest.raises(ValueError, match="packed RAW"):
        metrics.raw_metrics(x[:, :3], x[:, :3])
    with pytest.raises(ValueError, match="at least 11x11"):
        metrics.ssim(torch.rand(1, 3, 10, 40), torch.rand(1, 3, 10, 40))


def packed(*colours, h=1):
    """(1, 4, h, len(colours)) image whose column j is the packed colour colours[j] =
    (R, G1, G2, B)."""
    x = torch.tensor(colours, dtype=torch.float64).T  # (4, W)
    return x[None, :, None, :].expand(1, 4, h, len(colours)).clone()


def test_angular_error_is_zero_for_the_same_colour_at_any_brightness():
    _, target = pair(4)
    target = target * 0.5 + 0.1  # every pixel valid, and 2 x target still in [0, 1]
    assert metrics.angular_error(target, target).tolist() == pytest.approx([0.0, 0.0], abs=1e-6)
    assert metrics.angular_error(2 * target, target).tolist() == pytest.approx([0.0, 0.0],
                                                                             abs=1e-6)
    pred, _ = pair(4)
    assert (metrics.angular_error(pred, target) > 1).all()  # a different colour is not 0


def test_angular_error_golden_45_degrees_with_greens_averaged():
    # target (R, G, B) = (0.5, 0.3, 0.4) with G1 != G2: 0.3^2 + 0.4^2 = 0.5^2, so the target is
    # 45 degrees from pure red, at any brightness of the red
    target = packed((0.5, 0.2, 0.4, 0.4), (0.5, 0.2, 0.4, 0.4))
    pred = packed((0.9, 0.0, 0.0, 0.0), (0.1, 0.0, 0.0, 0.0))
    assert metrics.angular_error(pred, target).item() == pytest.approx(45.0, abs=1e-9)
    # grey against the target: acos((0.5 + 0.3 + 0.4) / (sqrt(3) sqrt(0.5))) exactly
    grey = packed((0.2, 0.2, 0.2, 0.2), (0.2, 0.2, 0.2, 0.2))
    expect = math.degrees(math.acos(1.2 / (math.sqrt(3) * math.sqrt(0.5))))
    assert metrics.angular_error(grey, target).item() == pytest.approx(expect, abs=1e-9)


def test_angular_error_ignores_dark_target_pixels():
    # pixel 0: 45 degrees off; pixel 1: its target blue is below the threshold and its prediction
    # pure blue, almost 90 degrees off. Counting pixel 1 would raise the mean to about 67.
    target = packed((0.5, 0.3, 0.3, 0.4), (0.5, 0.5, 0.5, 0.005))
    pred = packed((0.5, 0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 0.5))
    assert metrics.angular_error(pred, target).item() == pytest.approx(45.0, abs=1e-9)
    dark = math.degrees(math.acos(0.005 / math.sqrt(0.5**2 + 0.5**2 + 0.005**2)))
    assert metrics.angular_error(pred, target, threshold=0.001).item() \
        == pytest.approx((45.0 + dark) / 2, abs=1e-9)
    # "above" the threshold: a value equal to it does not count
    assert math.isnan(metrics.angular_error(pred[..., 1:], target[..., 1:],
                                            threshold=0.005).item())


def test_angular_error_nan_without_valid_pixels_and_90_for_a_black_prediction():
    target = torch.full((2, 4, 3, 3), 0.5, dtype=torch.float64)
    target[0] = 0.01  # at the threshold, not above: no valid pixel
    ae = metrics.angular_error(torch.zeros_like(target), target)
    assert math.isnan(ae[0].item())
    assert ae[1].item() == pytest.approx(90.0)  # a zero vector counts as orthogonal, not NaN
    assert ae.dtype == torch.float64


def test_highlight_mask_marks_pixels_clipped_in_any_channel():
    guide = torch.full((2, 3, 4, 5), 120, dtype=torch.uint8)
    guide[0, 0, 1, 2] = 255
    guide[0, :, 3, 4] = 255
    guide[1, 2, 0, 0] = 255
    guide[1, 1, 2, 2] = 254  # bright, not clipped
    mask = metrics.highlight_mask(guide)
    assert mask.shape == (2, 1, 4, 5) and mask.dtype == torch.bool
    assert mask.nonzero().tolist() == [[0, 0, 1, 2], [0, 0, 3, 4], [1, 0, 0, 0]]
    assert torch.equal(metrics.highlight_mask(guide.float()), mask)  # float 0..255 alike
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        metrics.highlight_mask(guide[:, :1])


def test_highlight_and_rest_psnr_golden():
    # 12 x 12 image, 3 rows of highlights (a quarter) with error 0.1 -> 20 dB, the rest 0.01 ->
    # 40 dB, in every channel
    target = torch.full((1, 4, 12, 12), 0.5, dtype=torch.float64)
    guide = torch.full((1, 3, 12, 12), 100, dtype=torch.uint8)
    guide[0, 1, :3, :] = 255
    error = torch.full((1, 1, 12, 12), 0.01, dtype=torch.float64)
    error[0, 0, :3, :] = 0.1
    pred = target + error
    m = metrics.raw_metrics(pred, target, guide)
    assert m["psnr_highlight"].item() == pytest.approx(20.0, abs=1e-9)
    assert m["psnr_rest"].item() == pytest.approx(40.0, abs=1e-9)
    assert m["highlight_fraction"].item() == 0.25
    # the whole image's PSNR is dominated by the highlights: mse = (36 x 0.01 + 108 x 1e-4) / 144
    assert m["psnr"].item() == pytest.approx(-10 * math.log10((0.36 + 0.0108) / 144), abs=1e-9)
    assert m["angular_error"].item() == pytest.approx(0.0, abs=1e-6)  # a grey error keeps grey
    assert all(v.shape == (1,) and v.dtype == torch.float64 for v in m.values())


def test_highlight_psnr_nan_when_a_region_is_empty():
    pred, target = pair(5, (2, 4, 12, 12))
    guide = torch.zeros(2, 3, 12, 12)
    guide[1] = 255  # image 0: no highlights; image 1: only highlights
    m = metrics.raw_metrics(pred, target, guide)
    assert math.isnan(m["psnr_highlight"][0].item()) and math.isnan(m["psnr_rest"][1].item())
    assert m["psnr_rest"][0].item() == pytest.approx(m["psnr"][0].item())
    assert m["psnr_highlight"][1].item() == pytest.approx(m["psnr"][1].item())
    assert m["highlight_fraction"].tolist() == [0.0, 1.0]
    with pytest.raises(ValueError, match="guide of shape"):
        metrics.raw_metrics(pred, target, guide[:, :, :6])


def test_mean_metrics_skips_nan():
    a = {"psnr_highlight": torch.tensor([20.0, math.nan], dtype=torch.float64),
         "psnr": torch.tensor([30.0, 40.0], dtype=torch.float64)}
    b = {"psnr_highlight": torch.tensor([40.0], dtype=torch.float64),
         "psnr": torch.tensor([20.0], dtype=torch.float64)}
    means = metrics.mean_metrics([a, b])
    assert means == {"psnr_highlight": 30.0, "psnr": 30.0}
    none = {"psnr_highlight": torch.tensor([math.nan], dtype=torch.float64)}
    assert math.isnan(metrics.mean_metrics([none])["psnr_highlight"])


def test_evaluation_summary_skips_missing_values(tmp_path):
    """metrics.json: means over the images that have a value, null when none has; metrics.csv:
    'nan' for a missing value."""
    base = {**{k: 1.0 for k in evaluation.METRICS}, "checkpoint": "0" * 8}
    rows = {"a": {**base, "id": "a", "psnr": 30.0, "psnr_highlight": 20.0, "psnr_rest": math.nan},
            "b": {**base, "id": "b", "psnr": 40.0, "psnr_highlight": math.nan,
                  "psnr_rest": math.nan}}
    gen = SimpleNamespace(steps=6, digest="0" * 8, exposure_for=lambda seed: 0.0,
                          iso_for=lambda seed: None,
                          wb_for=lambda seed: None, camera_wb=None)  # a clean record
    summary = evaluation._summarise(tmp_path, ["a", "b"], rows, False, gen, seed=0)
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written == summary
    assert written["psnr"] == 35.0 and written["psnr_highlight"] == 20.0
    assert written["psnr_rest"] is None and written["images"] == 2
    assert "255" in written["protocol"] and "0.01" in written["protocol"]
    csv_rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert [r["psnr_highlight"] for r in csv_rows] == ["20", "nan"]
    assert list(csv_rows[0]) == ["id", *evaluation.METRICS]
