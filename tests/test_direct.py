"""model.objective=direct, the one-pass control: its loss, its one forward pass in sampling, and
a tiny training run whose checkpoint samples without steps."""

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from rawdiffusion import training
from rawdiffusion.checkpoint import load_checkpoint
from rawdiffusion.errors import SetupError
from rawdiffusion.diffusion import T, Diffusion, l1, log_l1, mse
from rawdiffusion.evaluation import samples_dir
from rawdiffusion.checkpoint import objective_of
from rawdiffusion.generator import RawGenerator
from rawdiffusion.loading import load
from rawdiffusion.sampling import generate, generate_tiled, tile_starts
from test_sampling import busy_unet, smooth_rgb
# The tiny prepared dataset and the helpers that train on it in a few seconds; `one_thread`
# (autouse) runs this module on one thread, as test_train.py does.
from test_train import compose_config, one_thread, records, settings, tiny, train  # noqa: F401


def images(batch=2, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand((batch, 4, size, size), generator=g) * 2 - 1


# ----------------------------------------------------------------------------- loss

def test_direct_loss_asks_for_x0_from_nothing_at_the_last_timestep():
    x0, calls = images(), []

    def oracle(x, t):
        calls.append((x.clone(), t.clone()))
        return x0

    loss, terms = Diffusion().direct_loss(oracle, x0)
    assert torch.equal(loss, torch.zeros(2))  # a perfect prediction costs nothing
    assert len(calls) == 1
    x, t = calls[0]
    assert x.shape == x0.shape and not x.any()  # the input carries no information
    assert t.tolist() == [T - 1, T - 1] and torch.equal(terms["t"], t)


def test_direct_loss_weights_the_terms_without_a_timestep_weight():
    x0, x0_hat = images(seed=0), images(seed=1)
    diffusion = Diffusion()
    loss, terms = diffusion.direct_loss(lambda x, t: x0_hat, x0, w_mse=2.0, w_l1=0.5, w_logl1=3.0)
    for name, term in (("mse", mse), ("l1", l1), ("logl1", log_l1)):
        torch.testing.assert_close(terms[name], term(x0_hat, x0))
        assert (terms[name] > 0).all()
    # w(t) = 1, not 1 - alpha_bar(T - 1) (about 1 - 4e-5) as the diffusion loss would weigh it
    torch.testing.assert_close(loss, 2.0 * terms["mse"] + 0.5 * terms["l1"] + 3.0 * terms["logl1"],
                               rtol=1e-7, atol=0)
    only_l1, _ = diffusion.direct_loss(lambda x, t: x0_hat, x0, w_mse=0, w_l1=1, w_logl1=0)
    torch.testing.assert_close(only_l1, terms["l1"])


def test_direct_loss_trains_the_network():
    """The loss is differentiable in the network's output (no detach on the way)."""
    x0 = images()
    w = torch.zeros((), requires_grad=True)
    loss, _ = Diffusion().direct_loss(lambda x, t: x + w, x0)
    loss.mean().backward()
    assert w.grad is not None and w.grad != 0


# ----------------------------------------------------------------------------- sampling

def counting(net):
    """Record the arguments of every forward call of `net` (not encode_guidance)."""
    calls = []
    net.register_forward_pre_hook(lambda m, args, kwargs: calls.append((args, kwargs)),
                                  with_kwargs=True)
    return calls


def test_generate_without_steps_is_one_forward_pass_independent_of_the_seed():
    net, diffusion, rgb = busy_unet(), Diffusion(), smooth_rgb(16, 24)
    calls = counting(net)
    a = generate(net, diffusion, rgb, None, torch.Generator().manual_seed(0))
    assert len(calls) == 1
    (x, t), kwargs = calls[0]
    assert not x.any() and x.shape == (1, 4, 16, 24) and t.tolist() == [T - 1]
    assert torch.equal(kwargs["rgb"], rgb)
    b = generate(net, diffusion, rgb, None, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    with torch.no_grad():
        assert torch.equal(a, net(torch.zeros(1, 4, 16, 24), torch.tensor([T - 1]), rgb=rgb))
    calls.clear()
    c = generate(net, diffusion, rgb, 3, torch.Generator().manual_seed(0))
    assert len(calls) == 3 and not torch.equal(a, c)  # DDIM: a call per step


def test_generate_tiled_without_steps_is_one_pass_per_tile():
    net, diffusion, rgb = busy_unet(), Diffusion(), smooth_rgb(32, 48)
    calls = counting(net)
    whole = generate_tiled(net, diffusion, rgb, None, torch.Generator().manual_seed(0), tile=64,
                           overlap=8)
    assert len(calls) == 1
    assert torch.equal(whole, generate(net, diffusion, rgb, None))
    calls.clear()
    tiled = [generate_tiled(net, diffusion, rgb, None, torch.Generator().manual_seed(seed),
                            tile=16, overlap=8) for seed in (0, 1)]
    assert len(calls) == 2 * len(tile_starts(32, 16, 8)) * len(tile_starts(48, 16, 8))
    assert torch.equal(tiled[0], tiled[1])  # no noise anywhere
    assert tiled[0].shape == (1, 4, 32, 48)


# ----------------------------------------------------------------------------- training

def test_direct_training_saves_a_one_pass_checkpoint(tiny, tmp_path, monkeypatch):
    def no_diffusion_loss(*args, **kwargs):
        raise AssertionError("model.objective=direct trained with the diffusion loss")

    calls, direct_loss = [], Diffusion.direct_loss

    def counted(self, *args, **kwargs):
        calls.append(1)
        return direct_loss(self, *args, **kwargs)

    monkeypatch.setattr(Diffusion, "loss", no_diffusion_loss)
    monkeypatch.setattr(Diffusion, "direct_loss", counted)
    run_dir = train(settings(tiny, tmp_path, model__objective="direct", optim__max_steps=2,
                             general__save_every=2, log__val_every=2))
    assert len(calls) == 2
    assert [r["step"] for r in records(run_dir, "val/psnr")] == [2]  # validated in one pass
    assert "with one pass:" in (run_dir / "train.log").read_text()
    state = load_checkpoint(run_dir / training.CHECKPOINT)
    assert state["config"]["model"]["objective"] == "direct" and objective_of(state) == "direct"
    assert OmegaConf.load(run_dir / "config.yaml").model.objective == "direct"

    gen = load(run_dir / training.CHECKPOINT, steps=24)
    assert isinstance(gen, RawGenerator) and gen.steps is None
    guide = np.random.default_rng(0).integers(0, 256, (20, 28, 3), dtype=np.uint8)
    a, b = gen.generate_from_guide(guide, seed=0), gen.generate_from_guide(guide, seed=1)
    assert a.shape == (4, 20, 28) and np.array_equal(a, b)
    cfg = OmegaConf.create({"general": {"out": "runs", "seed": 0},
                            "dataset": {"val": {"root": str(tiny), "split": "test"}},
                            "diffusion_val": {"timestep_respacing": "ddim24"},
                            "noise": {"iso": None, "exposure": 0.0}})
    assert samples_dir(cfg, run_dir / "checkpoint.pt", gen.steps) == \
        run_dir / "samples" / f"{tiny.name}-test-onepass-s0"

    # The objective is part of the recipe: resuming the run as a diffusion model is refused.
    with pytest.raises(SetupError, match=r"model.objective: 'direct' -> 'diffusion'.*"
                                         r"general.run=NAME"):
        train(settings(tiny, tmp_path, optim__max_steps=4, general__save_every=2))
    assert load_checkpoint(run_dir / training.CHECKPOINT)["step"] == 2


def test_diffusion_is_the_default_objective_and_old_checkpoints_are_diffusion_models():
    assert compose_config(["dataset=folder", "dataset.root=x"]).model.objective == "diffusion"
    assert objective_of({"config": {}}) == objective_of({}) == "diffusion"


def test_an_unknown_objective_is_refused_naming_the_option(tiny, tmp_path):
    with pytest.raises(SetupError, match=r"model.objective='bogus': choose one of diffusion, "
                                         r"direct"):
        train(settings(tiny, tmp_path, model__objective="bogus"))
    assert not any(tmp_path.iterdir())  # refused before anything was written
