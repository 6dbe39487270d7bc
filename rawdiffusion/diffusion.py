"""Gaussian diffusion for an x0-predicting network: the forward process, RAW-Diffusion's
training loss and the DDIM sampler.

Notation of Ho et al. 2020 (DDPM) and Song et al. 2021 (DDIM): betas beta_t, linear in
t = 0 .. T-1; alpha_bar_t = prod_{s<=t} (1 - beta_s); x_t = sqrt(alpha_bar_t) x0 +
sqrt(1 - alpha_bar_t) eps. Images are (B, C, H, W) in [-1, 1].
"""

import math

import numpy as np
import torch
import torch.nn as nn

from .settings import T  # diffusion steps, 1000

# What a network learns (config's model.objective): "diffusion", the paper's x0-predicting
# diffusion model (`loss`, sampled in steps), or "direct", the one-pass control (`direct_loss`).
OBJECTIVES = ("diffusion", "direct")


def derived_seed(*key: int) -> int:
    """A 63-bit torch seed derived from integers (a run seed, a step, an item index, ...), so
    that every random stream depends only on what it is for, not on execution order."""
    return int(np.random.SeedSequence(list(key)).generate_state(1, np.uint64)[0] >> np.uint64(1))


def ddim_timesteps(n):
    """The n timesteps of "ddim<n>", ascending, for every n in [1, T].

    Where an integer stride gives n steps, guided-diffusion's respacing: the smallest stride s
    with len(range(0, T, s)) == n, so ddim24 uses s = 42 (0, 42, ..., 966), not 1000 // 24 = 41
    (which would give 25 steps). n = 1: [T - 1], one x0 prediction from pure noise at the last
    timestep. Any other n: the same leading spacing with a fractional stride, round(i * T / n)
    for i < n (ddim37: 0, 27, 54, ..., 973). ValueError for n outside [1, T].
    """
    if not 1 <= n <= T:
        raise ValueError(f"DDIM steps must be 1 to {T}, got {n}")
    if n == 1:
        return [T - 1]
    for stride in range(1, T):
        if len(range(0, T, stride)) == n:
            return list(range(0, T, stride))
    return [round(i * T / n) for i in range(n)]


# Per-sample loss terms, x0_hat and x0: (B, C, H, W) in [-1, 1] -> (B,).


def mse(x0_hat, x0):
    return (x0_hat - x0).square().mean(dim=(1, 2, 3))


def l1(x0_hat, x0):
    return (x0_hat - x0).abs().mean(dim=(1, 2, 3))


def log_l1(x0_hat, x0, eps=1 / 255):
    """L1 between log(x + eps) of both images in [0, 1]; eps as in HDR-CNN (Eilertsen et
    al. 2017). Stresses errors in the dark regions, where most of a RAW image lies."""
    # The clamp keeps log() finite should a model_fn's output leave [-1, 1].
    log = lambda x: torch.log(((x + 1) / 2).clamp(min=0) + eps)
    return (log(x0_hat) - log(x0)).abs().mean(dim=(1, 2, 3))


class Diffusion(nn.Module):
    """The linear schedule (beta 1e-4 .. 0.02 over T = 1000 steps) as a buffer, so that it
    follows the module's .to(device)."""

    def __init__(self):
        super().__init__()
        betas = torch.linspace(1e-4, 0.02, T, dtype=torch.float64)
        # float64 as in the reference; coefficients are cast to the images' dtype when used.
        self.register_buffer("alpha_bar", torch.cumprod(1 - betas, dim=0), persistent=False)

    def sample_t(self, batch, generator=None):
        """Uniform timesteps: (batch,) ints in [0, T)."""
        device = self.alpha_bar.device
        return torch.randint(0, T, (batch,), device=device, generator=generator)

    def q_sample(self, x0, t, noise):
        """x_t ~ q(x_t | x0) (DDPM Eq. 4): sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) noise.
        x0, noise: (B, C, H, W); t: (B,) ints in [0, T)."""
        abar = self.alpha_bar[t].view(-1, 1, 1, 1)
        # 1 - alpha_bar in float64: in float32 it loses 3 digits near t = 0.
        return abar.sqrt().to(x0.dtype) * x0 + (1 - abar).sqrt().to(x0.dtype) * noise

    def loss_weight(self, t):
        """w(t) = 1 / (1 + SNR(t)) = 1 - alpha_bar_t, SNR = alpha_bar / (1 - alpha_bar)
        (P2 weighting with k = 1, gamma = 1, Choi et al. 2022). t: (B,) -> (B,)."""
        return (1 - self.alpha_bar[t]).float()

    def loss(self, model_fn, x0, w_mse=1.0, w_l1=1.0, w_logl1=1.0, generator=None):
        """RAW-Diffusion's training loss at uniformly drawn timesteps:
        w(t) * (w_mse MSE + w_l1 L1 + w_logl1 logL1)(x0_hat, x0).

        model_fn(x_t, t) -> x0_hat: (B, C, H, W) in [-1, 1]; x0: (B, C, H, W) in [-1, 1].
        Returns the loss (B,) and, for logging, the unweighted terms
        {"mse", "l1", "logl1"} (B,) each and "t" (B,).
        """
        t = self.sample_t(x0.shape[0], generator)
        noise = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype, generator=generator)
        x0_hat = model_fn(self.q_sample(x0, t, noise), t).float()
        terms = dict(mse=mse(x0_hat, x0), l1=l1(x0_hat, x0), logl1=log_l1(x0_hat, x0))
        loss = self.loss_weight(t) * (
            w_mse * terms["mse"] + w_l1 * terms["l1"] + w_logl1 * terms["logl1"]
        )
        return loss, dict(terms, t=t)

    def direct_loss(self, model_fn, x0, w_mse=1.0, w_l1=1.0, w_logl1=1.0):
        """The loss of the one-pass control (model.objective=direct): the same network and
        loss terms, but no noise: x0_hat = model_fn(0, T - 1), the input carrying no
        information, as at the start of sampling; unweighted (w = 1), since there is one
        "timestep". Returns the loss (B,) and the terms, as `loss`."""
        t = torch.full((x0.shape[0],), T - 1, device=x0.device)
        x0_hat = model_fn(torch.zeros_like(x0), t).float()
        terms = dict(mse=mse(x0_hat, x0), l1=l1(x0_hat, x0), logl1=log_l1(x0_hat, x0))
        loss = w_mse * terms["mse"] + w_l1 * terms["l1"] + w_logl1 * terms["logl1"]
        return loss, dict(terms, t=t)

    @torch.no_grad()
    def sample(self, model_fn, shape, steps, generator=None, noise=None, callback=None):
        """DDIM with eta = 0 (Song et al. 2021, Eq. 12), the paper's deterministic sampler, over
        all `steps` timesteps of `ddim_timesteps`.

        model_fn(x_t, t) -> x0_hat: x_t (B, C, H, W), t (B,) ints, the original timesteps
        in [0, T); x0_hat in [-1, 1], clipped to it here. The initial noise x_T (unless
        `noise` is given) comes from `generator`, on the buffers' device: the same seed gives
        the same sample. noise: x_T of `shape`, to start from a given noise instead (e.g.
        shared across tiles).
        callback(dict(i, t, x, x0)) runs at step i with x = x_t and x0 = x0_hat.
        Returns x0: `shape` in [-1, 1].
        """
        device = self.alpha_bar.device
        if noise is None:
            noise = torch.randn(shape, device=device, generator=generator)
        x = noise.float()
        timesteps = ddim_timesteps(steps)[::-1]
        # alpha_bar on the respaced schedule, at t and at the next timestep (1 after t = 0).
        abars = self.alpha_bar[timesteps].tolist()
        for i, (t, abar, abar_prev) in enumerate(zip(timesteps, abars, abars[1:] + [1.0])):
            x0 = model_fn(x, torch.full((shape[0],), t, device=device)).float().clamp(-1, 1)
            if callback is not None:
                callback(dict(i=i, t=t, x=x, x0=x0))
            # The noise that x_t carries given x0_hat (DDIM Eq. 9, solved for eps).
            eps = (x - math.sqrt(abar) * x0) / math.sqrt(1 - abar)
            x = math.sqrt(abar_prev) * x0 + math.sqrt(1 - abar_prev) * eps
        return x
