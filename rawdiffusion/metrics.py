"""The paper's RAW metrics, batched in torch (the evaluation protocol of Reinders et al.,
WACV 2025).

Inputs are normalised linear RAW, packed (B, 4, H, W) in R, G1, G2, B order with values in
[0, 1]: no white balance, no gamma. The paper's protocol first reduces the packed image to three
channels by averaging the two greens, then computes per image MSE, PSNR (peak 1), SSIM (Gaussian
window 11, sigma 1.5, data range 1) and the Pearson correlation of each channel (averaged over
the channels). Later papers report PSNR and SSIM on the four packed channels instead; both are
given here, because the two protocols differ by several dB.

Two things PSNR hides are measured as well: colour (angular_error, the angle between predicted
and true colour vectors, blind to brightness) and the clipped highlights of the sRGB guide,
where the RAW has to be invented rather than inverted (psnr_highlight against psnr_rest).

What a photo cannot tell is factored out by psnr_gain: the PSNR left once one gain per packed
channel has been fitted to the target (absolute exposure and the scene illuminant are not in an
sRGB photo). green_disagreement measures the two greens' difference, which real sensors keep
near zero and which renders as a maze pattern where it is not.

Every function returns one value per image, (B,), in float64; average them over a test set
with mean_metrics, which skips NaN (an image without valid pixels or without highlights).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SSIM_SIGMA = 1.5
SSIM_RADIUS = 5  # int(3.5 * sigma + 0.5): scipy's default truncation, so an 11-tap window
SSIM_K1, SSIM_K2 = 0.01, 0.03
ANGULAR_THRESHOLD = 0.01  # target R, G, B must all exceed this for a pixel to count
ANGULAR_EPS = 1e-12  # smallest vector length: a zero prediction is 90 degrees off, not NaN
GUIDE_CLIPPED = 255  # an 8-bit guide value at which the sRGB image is clipped


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


def masked_psnr(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """PSNR in dB for peak 1 over the pixels where `mask` is True: x, y (B, C, H, W) in [0, 1],
    mask (B, 1, H, W) bool -> (B,). The MSE is over every channel of those pixels; an image
    whose mask is empty gives NaN, identical pixels give inf."""
    _check(x, y)
    if tuple(mask.shape) != (x.shape[0], 1, *x.shape[2:]):
        raise ValueError(f"expected a mask (B, 1, H, W) for images {tuple(x.shape)}, got shape "
                         f"{tuple(mask.shape)}")
    mask = mask.to(device=x.device, dtype=torch.float64)
    se = ((x.double() - y.double()).square() * mask).sum(dim=(1, 2, 3))
    return -10 * torch.log10(se / (mask.sum(dim=(1, 2, 3)) * x.shape[1]))  # 0 / 0: NaN


def angular_error(pred: torch.Tensor, target: torch.Tensor,
                  threshold: float = ANGULAR_THRESHOLD) -> torch.Tensor:
    """Mean angle in degrees between the predicted and true colour of each pixel: pred, target
    packed (B, 4, H, W) in [0, 1] -> (B,) in [0, 180] (in [0, 90] for non-negative inputs).

    The colour of a pixel is the vector (R, (G1 + G2) / 2, B); the angle is
    acos(p . t / (|p| |t|)), the "recovery angular error" of colour constancy (Hordley and
    Finlayson 2006, JOSA A 23(5); named so by Finlayson and Zakizadeh 2014, BMVC) applied per
    pixel instead of to one illuminant. It ignores brightness, so a prediction that is right up
    to a gain scores 0, and it shows colour casts that a high PSNR hides. Only pixels whose
    target R, G and B all exceed `threshold` count: in dark pixels noise decides the direction.
    Lengths are clamped to at least ANGULAR_EPS, so a zero predicted vector is 90 degrees from
    any target (orthogonal: the worst a non-negative prediction can be) instead of NaN. An image
    without a valid pixel gives NaN.
    """
    _check(pred, target)
    p, t = rggb_to_rgb(pred.double()), rggb_to_rgb(target.double())
    valid = (t > threshold).all(dim=1)  # (B, H, W)
    cos = (p * t).sum(dim=1) / (p.norm(dim=1).clamp_min(ANGULAR_EPS)
                                * t.norm(dim=1).clamp_min(ANGULAR_EPS))
    angle = torch.rad2deg(torch.acos(cos.clamp(-1, 1)))  # rounding can put |cos| above 1
    angle = torch.where(valid, angle, torch.zeros_like(angle))
    return angle.sum(dim=(1, 2)) / valid.sum(dim=(1, 2))  # 0 / 0: NaN


def channel_gains(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The gain of each channel that brings `pred` closest to `target` in least squares:
    (B, C, H, W) twice -> (B, C) float64, g_c = <p_c, t_c> / <p_c, p_c> (0 for a channel that is
    0 everywhere in pred)."""
    _check(pred, target)
    p, t = pred.double().flatten(2), target.double().flatten(2)
    energy = p.square().sum(dim=2)
    return torch.where(energy > 0, (p * t).sum(dim=2) / energy.clamp_min(1e-300),
                       torch.zeros_like(energy))


def psnr_gain(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PSNR after per-channel gains: pred, target packed (B, 4, H, W) in [0, 1] -> (B,) dB.

    Each packed channel of `pred` (R, G1, G2, B) is first multiplied by its least-squares gain
    towards the target (channel_gains), then the paper's PSNR is taken (greens averaged, peak
    1; the gained prediction is not clipped). Four gains are what an sRGB photo cannot tell: the
    absolute exposure (one common gain) and the scene illuminant (the white balance, one gain
    per colour), which a user of `convert` may not know. What is left is the error in tone,
    colour transform and detail. A prediction that differs from the target by per-channel gains
    gives inf."""
    gains = channel_gains(pred, target)
    return psnr(rggb_to_rgb(pred.double() * gains[:, :, None, None]), rggb_to_rgb(target))


def green_disagreement(x: torch.Tensor) -> torch.Tensor:
    """Mean |G1 - G2| of packed RAW (B, 4, H, W) normalised to [0, 1] (white 1) -> (B,): how
    much the two greens of each 2x2 Bayer tile differ, as a fraction of white. Both greens sit
    behind the same colour filter, so a real sensor gives about the noise's level (and the
    crosstalk's, about a percent); a generator that gives them different colour responses
    makes a maze pattern once demosaiced."""
    if x.ndim != 4 or x.shape[1] != 4:
        raise ValueError(f"expected packed RAW (B, 4, H, W), got shape {tuple(x.shape)}")
    return (x[:, 1].double() - x[:, 2].double()).abs().mean(dim=(1, 2))


def highlight_mask(guide: torch.Tensor) -> torch.Tensor:
    """Where the 8-bit sRGB guide is clipped: guide (B, 3, H, W) with values in 0..255 (uint8
    or float; not [0, 1]) -> (B, 1, H, W) bool, True where any channel is >= 255.

    There the guide only says "at least this bright", so the RAW must be hallucinated; see
    raw_metrics' psnr_highlight."""
    if guide.ndim != 4 or guide.shape[1] != 3:
        raise ValueError(f"expected an RGB guide (B, 3, H, W), got shape {tuple(guide.shape)}")
    return (guide >= GUIDE_CLIPPED).any(dim=1, keepdim=True)


def raw_metrics(pred: torch.Tensor, target: torch.Tensor,
                guide: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """All metrics of a batch: pred, target packed (B, 4, H, W) in [0, 1], optionally the 8-bit
    sRGB guide (B, 3, H, W) in 0..255 they were generated from -> {name: (B,)}.

    mse, psnr, ssim, pearson: the paper's protocol (greens averaged to three channels);
    psnr_rggb, ssim_rggb: on the four packed channels; angular_error: degrees, see
    angular_error; psnr_gain: psnr after a gain per packed channel (psnr_gain). With a guide also psnr_highlight and psnr_rest, the paper's PSNR over the
    pixels where the guide is clipped (highlight_mask) and over the others (NaN for an image
    without such pixels), and highlight_fraction, the share of highlight pixels in [0, 1].
    Raises ValueError for a guide whose shape does not match (B, 3, H, W).
    """
    _check(pred, target)
    p3, t3 = rggb_to_rgb(pred), rggb_to_rgb(target)
    out = {"mse": mse(p3, t3), "psnr": psnr(p3, t3), "ssim": ssim(p3, t3),
           "pearson": pearson(p3, t3), "psnr_rggb": psnr(pred, target),
           "ssim_rggb": ssim(pred, target), "angular_error": angular_error(pred, target),
           "psnr_gain": psnr_gain(pred, target)}
    if guide is not None:
        b, _, h, w = pred.shape
        if tuple(guide.shape) != (b, 3, h, w):
            raise ValueError(f"expected a guide of shape {(b, 3, h, w)} for images "
                             f"{tuple(pred.shape)}, got {tuple(guide.shape)}")
        clipped = highlight_mask(guide).to(pred.device)
        out["psnr_highlight"] = masked_psnr(p3, t3, clipped)
        out["psnr_rest"] = masked_psnr(p3, t3, ~clipped)
        out["highlight_fraction"] = clipped.double().mean(dim=(1, 2, 3))
    return out


def mean_metrics(batches: list[dict[str, torch.Tensor]]) -> dict[str, float]:
    """Average per-image metrics over all images of several `raw_metrics` results, skipping NaN
    (torch.nanmean): an image without highlights or without valid pixels does not make the mean
    NaN. A metric that is NaN for every image stays NaN; inf (identical images) is kept."""
    if not batches:
        return {}
    return {k: torch.nanmean(torch.cat([b[k] for b in batches])).item() for k in batches[0]}
