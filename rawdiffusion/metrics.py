"""The paper's RAW metrics, batched in torch (REFERENCE.md, "Evaluation protocol").

Inputs are normalised linear RAW, packed (B, 4, H, W) in R, G1, G2, B order with values in
[0, 1]: no white balance, no gamma. The paper's protocol first reduces the packed image to three
channels by averaging the two greens, then computes per image MSE, PSNR (peak 1), SSIM (Gaussian
window 11, sigma 1.5, data range 1) and the Pearson correlation of each channel (averaged over
the channels). Later papers report PSNR and SSIM on the four packed channels instead; both are
given here, because the two protocols differ by several dB.

Every function returns one value per image, (B,), in float64; average them over a test set.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SSIM_SIGMA = 1.5
SSIM_RADIUS = 5  # int(3.5 * sigma + 0.5): scipy's default truncation, so an 11-tap window
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _check(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.shape != y.shape:
        raise ValueError(f"images differ in shape: {tuple(x.shape)} and {tuple(y.shape)}")
    if x.ndim != 4:
        raise ValueError(f"expected images (B, C, H, W), got shape {tuple(x.shape)}")


def rggb_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """Packed (B, 4, H, W) R, G1, G2, B -> (B, 3, H, W) R, (G1 + G2) / 2, B."""
    if x.ndim != 4 or x.shape[1] != 4:
        raise ValueError(f"expected packed RAW (B, 4, H, W), got shape {tuple(x.shape)}")
    return torch.stack([x[:, 0], (x[:, 1] + x[:, 2]) / 2, x[:, 3]], dim=1)


def mse(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error per image: (B, C, H, W) twice -> (B,)."""
    _check(x, y)
    return (x.double() - y.double()).square().mean(dim=(1, 2, 3))


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """PSNR in dB for peak 1 per image: (B, C, H, W) in [0, 1] twice -> (B,); identical
    images give inf."""
    return -10 * torch.log10(mse(x, y))


def _gaussian_window(dtype, device) -> torch.Tensor:
    r = torch.arange(-SSIM_RADIUS, SSIM_RADIUS + 1, dtype=dtype, device=device)
    w = torch.exp(-0.5 * (r / SSIM_SIGMA) ** 2)
    return w / w.sum()


def _blur(x: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter of every channel, 'valid' part only: (N, C, H, W) ->
    (N, C, H - 10, W - 10)."""
    c = x.shape[1]
    x = F.conv2d(x, window.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return F.conv2d(x, window.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM (Wang et al. 2004) per image, averaged over channels: (B, C, H, W) twice ->
    (B,). H, W >= 11.

    Equal to skimage.metrics.structural_similarity(x, y, gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1, channel_axis=0) per image: skimage filters the
    whole image and then discards a 5-pixel border, which is exactly the 'valid' filtering used
    here (the border handling never reaches the pixels that are kept).
    """
    _check(x, y)
    if min(x.shape[-2:]) < 2 * SSIM_RADIUS + 1:
        raise ValueError(f"SSIM needs images of at least {2 * SSIM_RADIUS + 1}x"
                         f"{2 * SSIM_RADIUS + 1} pixels, got {x.shape[-1]}x{x.shape[-2]}")
    x, y = x.double(), y.double()
    window = _gaussian_window(x.dtype, x.device)
    mu_x, mu_y = _blur(x, window), _blur(y, window)
    var_x = _blur(x * x, window) - mu_x**2
    var_y = _blur(y * y, window) - mu_y**2
    cov = _blur(x * y, window) - mu_x * mu_y
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) \
        / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return s.mean(dim=(1, 2, 3))


def pearson(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of each channel's pixels, averaged over channels: (B, C, H, W) twice
    -> (B,) in [-1, 1]; NaN when a channel is constant (the correlation is undefined)."""
    _check(x, y)
    x = x.double().flatten(2)
    y = y.double().flatten(2)
    x = x - x.mean(dim=2, keepdim=True)
    y = y - y.mean(dim=2, keepdim=True)
    r = (x * y).sum(dim=2) / (x.square().sum(dim=2) * y.square().sum(dim=2)).sqrt()
    return r.mean(dim=1)


def raw_metrics(pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """All metrics of a batch: pred, target packed (B, 4, H, W) in [0, 1] -> {name: (B,)}.

    mse, psnr, ssim, pearson: the paper's protocol (greens averaged to three channels);
    psnr_rggb, ssim_rggb: on the four packed channels.
    """
    _check(pred, target)
    p3, t3 = rggb_to_rgb(pred), rggb_to_rgb(target)
    return {"mse": mse(p3, t3), "psnr": psnr(p3, t3), "ssim": ssim(p3, t3),
            "pearson": pearson(p3, t3), "psnr_rggb": psnr(pred, target),
            "ssim_rggb": ssim(pred, target)}


def mean_metrics(batches: list[dict[str, torch.Tensor]]) -> dict[str, float]:
    """Average per-image metrics over all images of several `raw_metrics` results."""
    if not batches:
        return {}
    return {k: torch.cat([b[k] for b in batches]).mean().item() for k in batches[0]}

