import subprocess
import sys

import numpy as np
import pytest
import torch

from rawdiffusion import solvers
from rawdiffusion.diffusion import T, Diffusion, ddim_timesteps
from rawdiffusion.sampling import sample_x0
from rawdiffusion.settings import SAMPLERS
from rawdiffusion.solvers import make_scheduler

# The linear schedule, computed independently in float64.
ALPHA_BAR = np.cumprod(1 - np.linspace(1e-4, 0.02, 1000))


def images(batch=2, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 4, size, size, generator=g) * 2 - 1


def noise_like(x, seed=3):
    return torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))


def wild_model(x_t, t):
    """Depends on x_t and t, leaves [-1, 1] at large t (so that the clipping matters) and
    stays inside it at small t (so that the result does not saturate at +-1)."""
    return 1.5 * torch.tanh(x_t) * (0.5 + t.float().view(-1, 1, 1, 1) / T)


def expected_timesteps(sampler, steps):
    """Descending, as the model sees them (see the solvers module's docstring)."""
    if sampler == "unipc":  # diffusers' "linspace" spacing
        return np.linspace(0, T - 1, steps + 1).round()[::-1][:-1].astype(int).tolist()
    return ddim_timesteps(steps)[::-1]


def ddim_accepts(steps):
    try:
        ddim_timesteps(steps)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("steps", [10, 20, 25, 50])
def test_diffusers_ddim_over_our_timesteps_equals_our_ddim(steps):
    DDIMScheduler = solvers._diffusers().DDIMScheduler  # as the package imports diffusers

    # set_alpha_to_one: after t = 0, alpha_bar_prev = 1, as in Diffusion.sample. Our DDIM clips
    # x0_hat and derives eps from the clipped x0_hat: clip_sample + use_clipped_model_output.
    scheduler = DDIMScheduler(num_train_timesteps=T, beta_start=1e-4, beta_end=0.02,
                              beta_schedule="linear", prediction_type="sample", clip_sample=True,
                              clip_sample_range=1.0, set_alpha_to_one=True,
                              timestep_spacing="leading", steps_offset=0)
    scheduler.set_timesteps(steps)
    # "leading" spacing (stride T // steps) is ours for these counts.
    assert scheduler.timesteps.tolist() == ddim_timesteps(steps)[::-1]
    noise = noise_like(images())
    x = noise.clone()
    for t in scheduler.timesteps.tolist():
        x = scheduler.step(wild_model(x, torch.full((2,), t)), t, x, eta=0.0,
                           use_clipped_model_output=True).prev_sample
    ours = Diffusion().sample(wild_model, noise.shape, steps, noise=noise)
    assert ours.abs().max() > 0.3  # a real image, not a collapse to 0
    torch.testing.assert_close(x, ours, atol=1e-5, rtol=0)


@pytest.mark.parametrize("sampler", ["dpmpp2m", "unipc"])
def test_the_schedulers_use_our_schedule(sampler):
    scheduler = make_scheduler(sampler, 4)
    np.testing.assert_allclose(scheduler.alphas_cumprod.double().numpy(), ALPHA_BAR, rtol=2e-6)
    assert scheduler.config.prediction_type == "sample"
    assert scheduler.timesteps.tolist() == expected_timesteps(sampler, 4)


@pytest.mark.parametrize("steps", [1, 2, 4, 24])
@pytest.mark.parametrize("sampler", SAMPLERS)
def test_with_an_oracle_each_sampler_returns_x0_on_one_noise_trajectory(sampler, steps):
    x0 = images()
    noise = noise_like(x0)
    calls, seen = [], []

    def oracle(x_t, t):
        calls.append(t.clone())
        return x0

    if sampler != "unipc" and not ddim_accepts(steps):
        # ddim and dpmpp2m run over ddim_timesteps, which may not take every count.
        with pytest.raises(ValueError):
            sample_x0(oracle, noise, steps, sampler)
        return
    out = sample_x0(oracle, noise, steps, sampler, callback=seen.append)
    assert out.shape == x0.shape and out.dtype == torch.float32
    torch.testing.assert_close(out, x0, atol=1e-4, rtol=0)
    # Exactly `steps` model calls, at the documented timesteps, as (B,) long tensors.
    ts = expected_timesteps(sampler, steps)
    assert len(calls) == steps
    assert [c.tolist() for c in calls] == [[t, t] for t in ts]
    assert all(c.dtype == torch.long for c in calls)
    assert [s["i"] for s in seen] == list(range(steps))
    assert [s["t"] for s in seen] == ts
    # With the true x0 every solver is exact: x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps
    # with the eps of x_T, which checks each scheduler's alpha_bar at our timesteps.
    abar = ALPHA_BAR[ts[0]]
    eps = (noise.double() - np.sqrt(abar) * x0.double()) / np.sqrt(1 - abar)
    for s in seen:
        abar = ALPHA_BAR[s["t"]]
        expected = np.sqrt(abar) * x0.double() + np.sqrt(1 - abar) * eps
        torch.testing.assert_close(s["x"].double(), expected, atol=1e-4, rtol=0)
        torch.testing.assert_close(s["x0"], x0)


def test_dpmpp2m_with_two_steps_is_ddim():
    # Two steps are both first order (a warm-up step, then the last step to sigma = 0), and
    # first-order DPM-Solver++ is DDIM: the same answer from diffusers' code over our timesteps.
    noise = noise_like(images())
    torch.testing.assert_close(sample_x0(wild_model, noise, 2, "dpmpp2m"),
                               sample_x0(wild_model, noise, 2, "ddim"), atol=1e-5, rtol=0)


def test_the_multistep_solvers_differ_from_ddim_and_are_deterministic():
    noise = noise_like(images())
    out = {s: sample_x0(wild_model, noise, 6, s) for s in SAMPLERS}
    for s in SAMPLERS:
        assert out[s].shape == noise.shape and out[s].dtype == torch.float32
        assert out[s].abs().max() <= 1  # clipped, though the model leaves [-1, 1]
        assert torch.equal(sample_x0(wild_model, noise, 6, s), out[s])
    assert (out["dpmpp2m"] - out["ddim"]).abs().max() > 1e-3
    assert (out["unipc"] - out["ddim"]).abs().max() > 1e-3
    assert (out["unipc"] - out["dpmpp2m"]).abs().max() > 1e-3
    # The noise is the model's first input, and not modified in place.
    torch.testing.assert_close(noise, noise_like(images()))


def test_an_unknown_sampler_or_a_bad_step_count_is_a_value_error():
    noise = noise_like(images())
    with pytest.raises(ValueError, match="ddim, dpmpp2m, unipc"):
        sample_x0(wild_model, noise, 4, "euler")
    for steps in (0, -1, T + 1, 2.0, True):
        with pytest.raises(ValueError, match="steps"):
            sample_x0(wild_model, noise, steps, "unipc")
    with pytest.raises(ValueError, match="dpmpp2m"):
        make_scheduler("ddim", 4)


def test_importing_the_solvers_does_not_import_diffusers():
    code = ("import sys, rawdiffusion, rawdiffusion.solvers; "
            "sys.exit(int('diffusers' in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_the_solvers_work_after_colour_science_has_stood_in_for_matplotlib():
    """colour-science puts a stand-in `matplotlib` without __spec__ in sys.modules when the
    real one is absent; diffusers' import-time package check raised ValueError on it."""
    code = ("import torch; from rawdiffusion.io import colour_science; colour_science(); "
            "from rawdiffusion.sampling import sample_x0; "
            "x = sample_x0(lambda x, t: torch.zeros_like(x), torch.randn(1, 4, 8, 8), 3, 'unipc'); "
            "print(float(x.abs().max()))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert float(result.stdout) == 0.0
