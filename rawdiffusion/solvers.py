"""Two multistep ODE solvers for the x0-predicting network, taken from diffusers' schedulers;
sampling.sample_x0 chooses between them and our DDIM (`Diffusion.sample` with eta = 0, Song et
al. 2021, over `ddim_timesteps(steps)`).

- "dpmpp2m": DPM-Solver++ 2M, the second-order multistep data-prediction solver of Lu et al.
  2022 ("DPM-Solver++: Fast Solver for Guided Sampling of Diffusion Probabilistic Models",
  arXiv:2211.01095), as diffusers' `DPMSolverMultistepScheduler`.
- "unipc": UniPC (Zhao et al. 2023, "UniPC: A Unified Predictor-Corrector Framework for Fast
  Sampling of Diffusion Models", arXiv:2302.04867), second order, B(h) = e^h - 1 ("bh2"),
  predicting x0, as diffusers' `UniPCMultistepScheduler`.

Both schedulers are built with our schedule (linear betas 1e-4 .. 0.02 over T = 1000 steps,
which is also their default) and prediction_type="sample", i.e. the network's output is x0.
diffusers keeps the schedule in float32 (ours is float64); the difference in alpha_bar is
< 1e-6 relative. diffusers is imported inside the functions only, so that importing rawdiffusion
stays fast and does not need it.

Timesteps, read off diffusers 0.42.1's source:
- dpmpp2m: `DPMSolverMultistepScheduler.set_timesteps(timesteps=...)` takes custom timesteps,
  so it runs over ours, `ddim_timesteps(steps)` descending (the same model calls at the same
  t as "ddim"; its first-order step is exactly DDIM's).
- unipc: `UniPCMultistepScheduler.set_timesteps` takes no custom timesteps (its `sigmas`
  argument is for flow-matching schedules only), so it uses diffusers' own default
  "linspace" spacing: round(linspace(0, 999, steps + 1))[::-1][:-1], e.g. 4 steps ->
  999, 749, 500, 250 (it starts at t = 999 and its last model call is at t ~ 1000 / steps).
Both end with a first-order step to sigma = 0 (final_sigmas_type="zero"; dpmpp2m always takes a
first-order last step then, unipc's lower_order_final=True does the same), which returns the
last x0 prediction exactly, as our DDIM does after t = 0 (alpha_bar_prev = 1). So every
sampler calls the model exactly `steps` times, and steps = 1 returns the model's single x0
prediction (at t = 999 for unipc; at ddim_timesteps(1) for ddim and dpmpp2m). The multistep
solvers' first step is first order too (no history yet), so with 2 steps dpmpp2m is DDIM; from
3 steps on, the steps between are second order (unipc also corrects each new x_t with the model
call made there, at no extra call).
"""

import contextlib
import sys
import warnings

import torch

from .diffusion import ddim_timesteps
from .settings import T

# The schedule of rawdiffusion.diffusion.Diffusion (linear betas over T steps).
BETA_START, BETA_END = 1e-4, 0.02


@contextlib.contextmanager
def _quiet_numpy_copy_warning():
    """set_timesteps does np.array(tensor), which numpy 2 reports as a DeprecationWarning
    about torch's __array__ and the copy keyword: harmless, and not ours to fix."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"__array__ implementation doesn't accept a copy",
                                category=DeprecationWarning)
        yield


def _diffusers():
    """The diffusers package. colour-science, when matplotlib is not installed, leaves a
    stand-in `matplotlib` module without a __spec__ in sys.modules, on which diffusers' check
    for optional packages (importlib.util.find_spec) raises ValueError: the stand-in is set
    aside while diffusers is first imported."""
    stand_in = sys.modules.get("matplotlib")
    if stand_in is None or getattr(stand_in, "__spec__", None) is not None:
        import diffusers

        return diffusers
    del sys.modules["matplotlib"]
    try:
        import diffusers
    finally:
        sys.modules["matplotlib"] = stand_in
    return diffusers


def make_scheduler(sampler: str, steps: int):
    """The diffusers scheduler of a multistep sampler ("dpmpp2m" or "unipc") with its timesteps
    set for `steps` model calls and its step counter at the first one.

    Raises ValueError for another sampler name, and whatever `ddim_timesteps(steps)` raises
    (ValueError) for a step count it does not accept ("dpmpp2m").
    """
    common = dict(
        num_train_timesteps=T,
        beta_start=BETA_START,
        beta_end=BETA_END,
        beta_schedule="linear",
        prediction_type="sample",  # the network predicts x0
        solver_order=2,
        lower_order_final=True,
        final_sigmas_type="zero",  # the last step lands on x0_hat
        thresholding=False,  # we clip x0_hat to [-1, 1] ourselves, as DDIM does
    )
    if sampler == "dpmpp2m":
        scheduler = _diffusers().DPMSolverMultistepScheduler(
            **common, algorithm_type="dpmsolver++", solver_type="midpoint"
        )
        timesteps = ddim_timesteps(steps)[::-1]
        with _quiet_numpy_copy_warning():
            scheduler.set_timesteps(timesteps=timesteps)
    elif sampler == "unipc":
        scheduler = _diffusers().UniPCMultistepScheduler(
            **common, predict_x0=True, solver_type="bh2", timestep_spacing="linspace"
        )
        with _quiet_numpy_copy_warning():
            scheduler.set_timesteps(steps)
    else:
        raise ValueError(f"no diffusers scheduler for sampler {sampler!r}; "
                         "the multistep ones are 'dpmpp2m', 'unipc'")
    # Start at the first timestep, whatever the timesteps' values (no lookup by value).
    scheduler.set_begin_index(0)
    return scheduler


@torch.no_grad()
def solve(model_fn, noise: torch.Tensor, steps: int, sampler: str,
          callback=None) -> torch.Tensor:
    """A deterministic sample from x_T = `noise` with the multistep solver `sampler`
    ("dpmpp2m" or "unipc"), as sampling.sample_x0 (which checks the step count) describes:
    model_fn(x_t, t) -> x0_hat, clipped to [-1, 1] here before the solver sees it; `steps`
    model calls; callback(dict(i, t, x, x0)) at each. Returns x0: (B, C, H, W) float32 in
    [-1, 1] on noise's device. See the module's docstring for each solver's timesteps.
    Raises ValueError for another sampler, and whatever make_scheduler raises.
    """
    scheduler = make_scheduler(sampler, steps)
    x = noise.float()
    batch = x.shape[0]
    for i, t in enumerate(scheduler.timesteps.tolist()):
        t_batch = torch.full((batch,), t, device=x.device, dtype=torch.long)
        x0 = model_fn(x, t_batch).float().clamp(-1, 1)
        if callback is not None:
            callback(dict(i=i, t=t, x=x, x0=x0))
        x = scheduler.step(x0, t, x).prev_sample.float()
    # The last step goes to sigma = 0 and returns the last x0 exactly; clamp for safety.
    return x.clamp(-1, 1)
