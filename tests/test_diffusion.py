import numpy as np
import pytest
import torch

from rawdiffusion.diffusion import Diffusion, ddim_timesteps
from rawdiffusion.model import UNet

# The linear schedule, computed independently in float64.
ALPHA_BAR = np.cumprod(1 - np.linspace(1e-4, 0.02, 1000))


def images(batch=2, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 4, size, size, generator=g) * 2 - 1


def test_ddim24_and_ddim6_timesteps():
    assert ddim_timesteps(24) == [
        0, 42, 84, 126, 168, 210, 252, 294, 336, 378, 420, 462,
        504, 546, 588, 630, 672, 714, 756, 798, 840, 882, 924, 966,
    ]
    assert ddim_timesteps(6) == [0, 167, 334, 501, 668, 835]
    assert ddim_timesteps(1000) == list(range(1000))


def test_every_step_count_from_1_to_T_has_timesteps():
    assert ddim_timesteps(1) == [999]  # one x0 prediction from pure noise
    assert ddim_timesteps(2) == [0, 500]  # an integer stride: guided-diffusion's
    # no integer stride gives 37: the same leading spacing, fractional
    assert ddim_timesteps(37)[:4] == [0, 27, 54, 81] and ddim_timesteps(37)[-1] == 973
    for n in range(1, 1001):
        steps = ddim_timesteps(n)
        assert len(set(steps)) == n and steps == sorted(steps) and 0 <= steps[0] <= steps[-1] < 1000
    for n in (0, 1001):
        with pytest.raises(ValueError, match=rf"DDIM steps must be 1 to 1000, got {n}"):
            ddim_timesteps(n)


def test_schedule():
    d = Diffusion()
    np.testing.assert_allclose(d.alpha_bar.numpy(), ALPHA_BAR, rtol=1e-12)
    assert d.alpha_bar[0].item() == pytest.approx(0.9999)
    assert d.alpha_bar[-1].item() == pytest.approx(4.0358e-5, rel=1e-3)
    assert "alpha_bar" not in d.state_dict()  # nothing to save: it is rebuilt


def test_q_sample_matches_the_closed_form():
    d = Diffusion()
    x0, noise = images(), torch.randn(2, 4, 8, 8)
    t = torch.tensor([3, 777])
    abar = ALPHA_BAR[t.numpy()][:, None, None, None]
    expected = np.sqrt(abar) * x0.double().numpy() + np.sqrt(1 - abar) * noise.double().numpy()
    np.testing.assert_allclose(d.q_sample(x0, t, noise).numpy(), expected, atol=1e-6)


def test_loss_weight_is_one_minus_alpha_bar():
    d = Diffusion()
    t = torch.tensor([0, 1, 500, 999])
    abar = ALPHA_BAR[t.numpy()]
    np.testing.assert_allclose(d.loss_weight(t).numpy(), 1 - abar, rtol=1e-6)
    snr = abar / (1 - abar)
    np.testing.assert_allclose(d.loss_weight(t).numpy(), 1 / (1 + snr), rtol=1e-6)


def test_loss_is_zero_for_a_perfect_prediction():
    d = Diffusion()
    x0 = images()
    loss, terms = d.loss(lambda x_t, t: x0, x0, generator=torch.Generator().manual_seed(0))
    assert loss.shape == (2,)
    assert torch.equal(loss, torch.zeros(2))
    assert all(torch.equal(terms[k], torch.zeros(2)) for k in ("mse", "l1", "logl1"))


def test_loss_terms_and_weighting():
    d = Diffusion()
    x0 = images(seed=1)
    x0_hat = images(seed=2)
    loss, terms = d.loss(lambda x_t, t: x0_hat, x0, w_mse=2.0, w_l1=0.0, w_logl1=0.5,
                         generator=torch.Generator().manual_seed(0))
    a, b = x0_hat.double().numpy(), x0.double().numpy()
    log = lambda x: np.log((x + 1) / 2 + 1 / 255)
    expected = dict(
        mse=((a - b) ** 2).mean(axis=(1, 2, 3)),
        l1=np.abs(a - b).mean(axis=(1, 2, 3)),
        logl1=np.abs(log(a) - log(b)).mean(axis=(1, 2, 3)),
    )
    for k, v in expected.items():
        np.testing.assert_allclose(terms[k].numpy(), v, rtol=1e-5)
    w = 1 - ALPHA_BAR[terms["t"].numpy()]
    np.testing.assert_allclose(
        loss.numpy(), w * (2 * expected["mse"] + 0.5 * expected["logl1"]), rtol=1e-5
    )


def test_ddim_with_an_oracle_returns_x0_visiting_all_steps():
    d = Diffusion()
    x0 = images()
    seen = []
    calls = []

    def oracle(x_t, t):
        calls.append(t.clone())
        return x0

    out = d.sample(oracle, x0.shape, 24, generator=torch.Generator().manual_seed(0),
                   callback=seen.append)
    torch.testing.assert_close(out, x0, atol=1e-5, rtol=0)
    # All 24 steps, from t = 966 down to t = 0, with the original timesteps given to the model.
    assert [s["i"] for s in seen] == list(range(24))
    assert [s["t"] for s in seen] == ddim_timesteps(24)[::-1]
    assert [c.tolist() for c in calls] == [[t, t] for t in ddim_timesteps(24)[::-1]]


def test_ddim_eta0_with_an_oracle_stays_on_one_noise_trajectory():
    # With the true x0, DDIM (eta 0) keeps x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps
    # with one eps for all t: the one of x_T.
    d = Diffusion()
    x0 = images()
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(3))
    seen = []
    d.sample(lambda x_t, t: x0, x0.shape, 6, noise=noise, callback=seen.append)
    t_first = seen[0]["t"]
    eps = (noise.double() - np.sqrt(ALPHA_BAR[t_first]) * x0.double()) / np.sqrt(
        1 - ALPHA_BAR[t_first]
    )
    for s in seen:
        abar = ALPHA_BAR[s["t"]]
        expected = np.sqrt(abar) * x0.double() + np.sqrt(1 - abar) * eps
        torch.testing.assert_close(s["x"].double(), expected, atol=1e-5, rtol=0)


def test_same_seed_same_sample_and_different_seed_different_sample():
    d = Diffusion()
    model_fn = lambda x_t, t: torch.tanh(0.5 * x_t)  # depends on the noise
    shape = (1, 4, 8, 8)
    sample = lambda seed: d.sample(model_fn, shape, 6, torch.Generator().manual_seed(seed))
    assert torch.equal(sample(0), sample(0))
    assert not torch.allclose(sample(0), sample(1))
    # Given noise, a sample needs no generator.
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    assert torch.equal(d.sample(model_fn, shape, 6, noise=noise),
                       d.sample(model_fn, shape, 6, torch.Generator().manual_seed(0)))


def test_ddim_with_the_unet_and_guidance_computed_once():
    torch.manual_seed(0)
    net = UNet(channels=16, channel_mult=(1, 2), num_blocks=1, attn_ds=(2,), guide="edsr",
               guide_channels=8, spade_hidden=8).eval()
    rgb = images(batch=1, size=16)[:, :3]
    guidance = net.encode_guidance(rgb)
    d = Diffusion()
    out = d.sample(lambda x, t: net(x, t, guidance=guidance), (1, 4, 16, 16), 6,
                   torch.Generator().manual_seed(0))
    assert out.shape == (1, 4, 16, 16)
    assert out.abs().max() <= 1
