"""The noise level function of one RAW image: variance = S x + O, estimated from its own pixels.

A single-image estimator for Poisson-Gaussian data after Foi et al. 2008 ("Practical
Poissonian-Gaussian noise modeling and fitting for single-image raw-data", IEEE TIP 17(10)),
run on each packed CFA channel (R, G1, G2, B) of normalised RAW, x = (raw - black) /
(white - black), not clipped below 0 (real RAW holds codes under black down to 0: x = lo < 0).

1. Wavelet analysis: the 2x2 Haar transform of the channel, non-overlapping.
   The approximation A (the mean of the four samples) gives the local level; the diagonal
   detail D = (z00 - z01 - z10 + z11) / 2 is, where the signal is smooth, pure noise with the
   variance of one sample, var D = S mean(y) + O (the variance is linear in y, so the mean of
   the four levels is exact); it cancels constants and gradients in both directions.
2. Smooth blocks: blocks of 8 x 8 coefficients (16 x 16 samples). A block is
   smooth when the residual of A about its best-fitting plane is no larger than noise makes
   it: 4 var(A - plane) < 1.5 var(H, V), the horizontal and vertical details (noise of A has
   a quarter of a sample's variance). Texture and edges raise A's residual far above that.
   The test uses A, H and V only, which are orthogonal to D: it does not select on D's noise.
   Blocks whose mean lies within 2 noise sigmas (from H, V) of code 0 or of white are left
   out: their samples are clipped often, and the statistic of step 3 is not the clipped one.
3. Level sets: the smooth blocks, sorted by their mean level, in up to 32 sets of
   equal size; per set the mean level and a robust variance, the median over its blocks of
   mean(D^2) divided by the median of chi^2_64 / 64 (a block whose texture passed the test
   moves a median little, where it would move a mean much).
4. Fit, with clipping: (S, O) >= 0 by weighted least squares on the sets' relative
   errors, each set's predicted variance being that of a normal N(mu, S mu + O) clipped to the
   codes' range [lo, 1] (the censored normal's moments), at the mu whose clipped mean is the
   set's mean level: the levels beyond the 2-sigma margin that are still clipped at times keep
   their (lower) clipped variance instead of pulling the line down.

The noise of the codes is what is measured: O includes the quantisation's 1/12 code^2.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special, stats

BLOCK = 8            # coefficients a side of a block (16 x 16 samples of a packed channel)
SMOOTH_LIMIT = 1.5   # 4 var(A residual) / var(H, V) of a smooth block is F(61, 126): 2 % above
MAX_LEVELS = 32      # level sets of a channel
MIN_BLOCKS = 16      # smooth blocks per level set at least
CLIP_MARGIN = 2.0    # blocks nearer code 0 or white than this many noise sigmas are left out


@dataclass
class NoiseLevels:
    """The noise level function's samples of one channel: per level set, its mean level
    `mean` (normalised, in [lo, 1]), its noise variance `variance` (normalised units^2) and
    the smooth blocks it pooled, `blocks`; arrays of the same length, by increasing mean."""

    mean: np.ndarray
    variance: np.ndarray
    blocks: np.ndarray


@dataclass
class NoiseEstimate:
    """Per packed channel (R, G1, G2, B): shot (S) and read (O) of variance = S x + O, each
    (4,) in normalised units, and the level sets they were fitted to."""

    shot: np.ndarray
    read: np.ndarray
    levels: list[NoiseLevels]


def haar(z: np.ndarray) -> tuple[np.ndarray, ...]:
    """One level of the orthonormal 2D Haar transform on non-overlapping 2x2 blocks:
    (A, H, V, D) of (h // 2, w // 2), A the blocks' mean (the scaling coefficient / 2, so that
    it is a level), H, V, D the horizontal, vertical and diagonal details, each with one
    sample's noise variance for independent noise."""
    h, w = z.shape[0] // 2 * 2, z.shape[1] // 2 * 2
    a, b, c, d = z[0:h:2, 0:w:2], z[0:h:2, 1:w:2], z[1:h:2, 0:w:2], z[1:h:2, 1:w:2]
    return (a + b + c + d) / 4, (a - b + c - d) / 2, (a + b - c - d) / 2, (a - b - c + d) / 2


def _blocks(m: np.ndarray) -> np.ndarray:
    """(H, W) -> (H // BLOCK * W // BLOCK, BLOCK^2), the whole blocks' values in rows."""
    hb, wb = m.shape[0] // BLOCK, m.shape[1] // BLOCK
    tiles = m[:hb * BLOCK, :wb * BLOCK].reshape(hb, BLOCK, wb, BLOCK)
    return tiles.transpose(0, 2, 1, 3).reshape(hb * wb, BLOCK * BLOCK)


@functools.cache
def _plane_residual() -> np.ndarray:
    """(BLOCK^2, BLOCK^2): what is left of a block's values after their least-squares plane."""
    yy, xx = np.mgrid[0:BLOCK, 0:BLOCK]
    basis = np.stack([np.ones(BLOCK * BLOCK), yy.ravel(), xx.ravel()], axis=1)
    return np.eye(BLOCK * BLOCK) - basis @ np.linalg.pinv(basis)


def block_details(z: np.ndarray) -> tuple[np.ndarray, ...]:
    """One channel z (h, w) -> its Haar coefficients A, H, V, D in blocks, each
    (blocks, BLOCK^2), row-major over the whole blocks."""
    return tuple(_blocks(c) for c in haar(np.asarray(z, dtype=np.float64)))


def smooth_mask(a: np.ndarray, h: np.ndarray, v: np.ndarray, lo: float,
                hi: float = 1.0) -> np.ndarray:
    """Which blocks (block_details' A, H, V) are smooth and far enough from code 0 (lo) and
    white (hi): (blocks,) bool. See the module docstring, step 2."""
    residual = a @ _plane_residual()
    a_var = np.square(residual).sum(axis=1) / (BLOCK * BLOCK - 3)
    hv_var = (h.var(axis=1, ddof=1) + v.var(axis=1, ddof=1)) / 2
    level = a.mean(axis=1)
    margin = CLIP_MARGIN * np.sqrt(hv_var)
    return ((hv_var > 0) & (4 * a_var < SMOOTH_LIMIT * hv_var)
            & (level - lo > margin) & (hi - level > margin))


def smooth_blocks(z: np.ndarray, lo: float, hi: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Of one channel z (h, w), normalised, with codes in [lo, hi]: the smooth blocks' mean
    levels and their mean D^2, each (n,). See the module docstring, steps 1 and 2."""
    a, h, v, d = block_details(z)
    smooth = smooth_mask(a, h, v, lo, hi)
    return a[smooth].mean(axis=1), np.square(d[smooth]).mean(axis=1)


def noise_levels(planes: list[np.ndarray], lo: float, hi: float = 1.0) -> NoiseLevels:
    """The level sets (step 3) of one channel's planes, pooled: planes of any sizes, each (h, w)
    normalised with codes in [lo, hi] (e.g. the channel of every image of a camera at one ISO,
    or of every patch of one image)."""
    found = [smooth_blocks(z, lo, hi) for z in planes]
    level = np.concatenate([f[0] for f in found])
    block_var = np.concatenate([f[1] for f in found])
    order = np.argsort(level, kind="stable")
    n_sets = int(np.clip(level.size // MIN_BLOCKS, 0, MAX_LEVELS))
    sets = np.array_split(order, n_sets) if n_sets else []
    median_chi2 = stats.chi2.median(BLOCK * BLOCK) / (BLOCK * BLOCK)
    return NoiseLevels(mean=np.array([level[s].mean() for s in sets]),
                       variance=np.array([np.median(block_var[s]) / median_chi2 for s in sets]),
                       blocks=np.array([s.size for s in sets]))


def clipped_moments(mu: np.ndarray, variance: np.ndarray, lo: float, hi: float):
    """Mean and variance of N(mu, variance) clipped to [lo, hi] (the censored normal: values
    beyond a bound sit on it). mu, variance: arrays of one shape; returns two such arrays."""
    sigma = np.sqrt(np.maximum(variance, 1e-30))
    alpha, beta = (lo - mu) / sigma, (hi - mu) / sigma
    below, above = special.ndtr(alpha), special.ndtr(-beta)
    inside = 1 - below - above
    pdf_a, pdf_b = stats.norm.pdf(alpha), stats.norm.pdf(beta)
    mean = lo * below + hi * above + mu * inside + sigma * (pdf_a - pdf_b)
    second = (lo ** 2 * below + hi ** 2 * above + mu ** 2 * inside
              + 2 * mu * sigma * (pdf_a - pdf_b)
              + sigma ** 2 * (inside + alpha * pdf_a - beta * pdf_b))
    return mean, np.maximum(second - mean ** 2, 0.0)


def clipped_nlf(level: np.ndarray, shot: float, read: float, lo: float, hi: float = 1.0):
    """The variance of codes clipped to [lo, hi] at their (clipped) mean `level`, for noise of
    variance shot * mu + read about the unclipped mean mu (>= 0: light is not negative)."""
    span = hi - lo
    edge = np.geomspace(1e-9, 0.05, 400) * span
    mu = np.unique(np.concatenate([lo + span * np.linspace(-0.05, 1.05, 2201),
                                   lo + edge, hi - edge, edge]))
    mean, var = clipped_moments(mu, shot * np.maximum(mu, 0) + read, lo, hi)
    return np.interp(level, np.maximum.accumulate(mean), var)


def fit_nlf(levels: NoiseLevels, lo: float, hi: float = 1.0) -> tuple[float, float]:
    """(S, O) >= 0 of the clipped noise level function that fits `levels` best (step 4).
    ValueError when there are fewer than 2 level sets (no smooth area to measure)."""
    y, v, n = levels.mean, levels.variance, levels.blocks
    if y.size < 2:
        raise ValueError(f"{y.size} level set(s) of smooth blocks: too few to fit the noise "
                         f"(the image has no smooth areas of {2 * BLOCK} x {2 * BLOCK} samples)")
    slope, intercept = np.polyfit(y, v, 1, w=np.sqrt(n) / np.maximum(v, 1e-30))
    s0 = slope if slope > 0 else np.mean(v) / max(np.mean(y - lo), 1e-6)
    o0 = intercept if intercept > 0 else 0.01 * np.min(v)
    o0 = max(o0, 1e-6 * s0)  # a scale for O, should the line pass through 0

    def residuals(p):
        predicted = np.maximum(clipped_nlf(y, p[0] * s0, p[1] * o0, lo, hi), 1e-30)
        return (v - predicted) / predicted * np.sqrt(n)

    fit = optimize.least_squares(residuals, x0=[1.0, 1.0], bounds=([0, 0], [np.inf, np.inf]))
    return float(fit.x[0] * s0), float(fit.x[1] * o0)


def estimate_noise(images: list[np.ndarray], lo: np.ndarray) -> NoiseEstimate:
    """S and O per packed channel from `images`, each (4, h, w) normalised RAW (unclipped
    below 0, clipped at 1 as the codes are), pooled: one image, or the patches of one.
    lo: (4,) the normalised value of code 0 per channel, -black / (white - black).
    ValueError when a channel has no smooth area to measure."""
    levels = [noise_levels([np.asarray(x[c]) for x in images], float(lo[c])) for c in range(4)]
    fits = [fit_nlf(lv, float(lo[c])) for c, lv in enumerate(levels)]
    return NoiseEstimate(shot=np.array([f[0] for f in fits]),
                         read=np.array([f[1] for f in fits]), levels=levels)
