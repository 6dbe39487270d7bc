"""The paper's metrics against scikit-image / numpy, golden values and edge cases."""

import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from rawdiffusion import metrics


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
    assert set(m) == {"mse", "psnr", "ssim", "pearson", "psnr_rggb", "ssim_rggb"}
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
