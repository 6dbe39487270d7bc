"""The colour prior (model.prior): an untrained network reproduces the fitted map exactly,
`prior=None` is the paper's network unchanged, training fits the map on its own training
samples once and stores it, the default resolves per dataset, old checkpoints resume, and
export keeps the map's weights in full precision.

Small preset, 32 px crops, a step or two, one thread (test_train.py says why).
"""

import shutil

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from rawdiffusion import config, harness, training, training_data
from rawdiffusion import prior as maps
from rawdiffusion.prior import ColourMap, fit_colour_map, guide_codes, measured_exposures
from rawdiffusion.bayer import dihedral_packed
from rawdiffusion.camera import Camera
from rawdiffusion.checkpoint import export_checkpoint, load_checkpoint, load_model, \
    save_checkpoint
from rawdiffusion.errors import SetupError
from rawdiffusion.datasets.layout import PreparedDataset
from rawdiffusion.diffusion import Diffusion
from rawdiffusion.model import Guidance, UNet, build_model
from rawdiffusion.sampling import generate
from rawdiffusion.training_data import paired_crop_dihedral
from test_train import compose_config, one_thread, settings, tiny, train  # noqa: F401

# test_model.py's two-level network: milliseconds per forward pass.
TINY = dict(channels=16, channel_mult=(1, 2), num_blocks=1, attn_ds=(2,), guide="edsr",
            guide_channels=8, spade_hidden=8)


def tiny_net(prior=None, weights=None, residual=False):
    """TINY with every parameter random (seed 0), but conv_out zero unless `residual`: an
    untrained network; the prior's weights set to `weights`."""
    torch.manual_seed(0)
    net = UNet(**TINY, prior=prior)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if residual or not name.startswith("conv_out."):
                p.add_(0.1 * torch.randn_like(p))
        if weights is not None:
            net.prior.weights.copy_(weights)
    return net


def guide(batch=2, size=16, seed=1):
    """8-bit codes (B, 3, size, size) over all 256 values and the guide in [-1, 1] they are."""
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, 256, (batch, 3, size, size), generator=g)
    codes[0, :, 0, :3] = torch.tensor([0, 255, 128])[:, None]  # the extremes are in
    return codes, codes.float() / 127.5 - 1


def map_weights(kind, scale=1.0, seed=0):
    """Weights whose map stays mostly inside [0, 1] (scale > 1 pushes it out, to be clipped)."""
    g = torch.Generator().manual_seed(seed)
    n = maps.n_terms(kind)
    w = torch.rand(n, 4, generator=g, dtype=torch.float64) * (0.3 if kind == "curves" else 0.25)
    w[0] = 0.05  # the constant term
    return w * scale


def map_oracle(kind, codes, w):
    """The map written out in numpy, independent of ColourMap: (B, 3, H, W) codes -> packed
    RAW (B, 4, H, W) in [0, 1], float64."""
    codes, w = codes.numpy(), w.numpy()
    if kind == "linear":  # terms 1, R, G, B of the linearised guide
        lin = maps.srgb_to_linear_table()[codes]
        out = w[0][None, :, None, None] + np.einsum("bjhw,jc->bchw", lin, w[1:])
    else:  # curves: per guide channel a piecewise-linear curve through 16 knots, per RAW channel
        knots = np.linspace(0, 255, maps.CURVE_KNOTS)
        out = np.zeros((codes.shape[0], 4, *codes.shape[2:])) + w[0][None, :, None, None]
        for j in range(3):
            for c in range(4):
                curve = w[1 + j * maps.CURVE_KNOTS:1 + (j + 1) * maps.CURVE_KNOTS, c]
                out[:, c] += np.interp(codes[:, j], knots, curve)
    return np.clip(out, 0, 1)


# ----------------------------------------------------------------------------- the network

@pytest.mark.parametrize("kind", ["curves", "linear"])
def test_an_untrained_network_returns_the_maps_estimate_for_any_x_t_and_t(kind):
    w = map_weights(kind)
    net = tiny_net(kind, w).eval()
    codes, rgb = guide()
    assert torch.equal(guide_codes(rgb), codes.float())  # the guide's codes round-trip
    expected = 2 * ColourMap(kind, w)(codes) - 1
    # ... which is the map itself (float32 rounding of the float64 sum)
    np.testing.assert_allclose(expected.numpy(), 2 * map_oracle(kind, codes, w) - 1, atol=2e-7)

    guidance = net.encode_guidance(rgb)
    assert isinstance(guidance, Guidance) and len(guidance) == len(net.dec)
    assert guidance.prior.shape == (2, 4, 16, 16) and guidance.prior.dtype == torch.float32
    assert torch.equal(guidance.prior, expected)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for t, scale in [(0, 1.0), (999, 1.0), (500, 30.0), (250, 0.0)]:
            x = torch.randn(2, 4, 16, 16, generator=g) * scale
            tt = torch.tensor([t, 999 - t])
            assert torch.equal(net(x, tt, guidance=guidance), expected), (t, scale)
            assert torch.equal(net(x, tt, rgb=rgb), expected), (t, scale)


def test_the_prior_is_clipped_to_the_raw_range():
    net = tiny_net("curves", map_weights("curves", scale=3.0))  # a map that overshoots 1
    codes, rgb = guide()
    prior = net.encode_guidance(rgb).prior
    assert prior.min() >= -1 and prior.max() == 1
    assert (prior == 1).float().mean() > 0.1  # many pixels are clipped
    x0 = net(torch.randn(2, 4, 16, 16), torch.tensor([3, 700]), rgb=rgb)
    assert torch.equal(x0, prior)


def test_a_trained_network_corrects_the_prior_and_conditions_on_it():
    w = map_weights("curves")
    net = tiny_net("curves", w, residual=True).eval()
    _, rgb = guide()
    x, t = torch.randn(2, 4, 16, 16), torch.tensor([100, 800])
    with torch.no_grad():
        guidance = net.encode_guidance(rgb)
        x0 = net(x, t, guidance=guidance)
        assert x0.min() >= -1 and x0.max() <= 1
        residual = x0 - guidance.prior
        assert residual.abs().max() > 1e-2  # the residual is used ...
        net.prior.weights.mul_(0.5)  # ... and depends on the map's estimate (same RGB, x_t)
        other = net(x, t, rgb=rgb) - net.encode_guidance(rgb).prior
    assert not torch.allclose(residual, other, atol=1e-4)


# Outputs of `tiny_net()` on `inputs` (below) computed with model.py of commit f873625, before
# the prior existed: the paper's network must not have changed at all.
GOLDEN_PAPER = {(0, 0, 0): [-0.38244912, -0.05229061, -0.01244208, 0.63808960],
                (1, 5, 7): [-0.30972704, -0.20036869, 0.46829075, 0.94711524]}


def test_without_a_prior_the_network_is_the_papers_as_before():
    torch.manual_seed(0)
    net = UNet(**TINY)
    assert net.config == TINY and "prior" not in net.config  # old checkpoints' model_config
    assert not hasattr(net, "prior") and not any(k.startswith("prior")
                                                 for k in net.state_dict())
    assert net.conv_in.weight.shape == (16, 4, 3, 3) and net.guide.head.weight.shape[1] == 3

    net = tiny_net(residual=True)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, 16, 16, generator=g)
    rgb = torch.rand(2, 3, 16, 16, generator=g) * 2 - 1
    t = torch.tensor([10, 900])
    with torch.no_grad():
        guidance = net.encode_guidance(rgb)
        assert guidance.prior is None
        out = net(x, t, rgb=rgb)
        assert torch.equal(net(x, t, guidance=guidance), out)
        # a plain tuple of the same modulations (what the code passed before Guidance) too
        assert torch.equal(net(x, t, guidance=tuple(guidance)), out)
    for (b, i, j), values in GOLDEN_PAPER.items():
        np.testing.assert_allclose(out[b, :, i, j].numpy(), values, atol=1e-5)


def test_an_old_checkpoint_without_prior_rebuilds_and_loads(tmp_path):
    net = tiny_net(residual=True)
    save_checkpoint(tmp_path / "old.pt", {"step": 1, "config": {}, "model_config": dict(TINY),
                                          "model": net.state_dict(), "ema": None, "camera": {}})
    loaded, _ = load_model(tmp_path / "old.pt")
    assert not hasattr(loaded, "prior")
    _, rgb = guide()
    x, t = torch.randn(2, 4, 16, 16), torch.tensor([5, 600])
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(),
                                                  net.state_dict().values(), strict=True))
    with torch.no_grad():  # load_model's channels_last convolutions round in another order
        torch.testing.assert_close(loaded(x, t, rgb=rgb), net(x, t, rgb=rgb), atol=1e-5, rtol=0)


def count(module):
    return sum(p.numel() for p in module.parameters())


def test_parameter_counts_grow_only_by_the_prior_input_channels():
    paper = build_model("paper")
    assert count(paper) == 25_004_644
    prior = build_model("paper", prior="curves")
    # conv_in (3x3, 32 out) and the EDSR head (3x3, 64 out) take 4 more input channels each;
    # the map's weights are a buffer, not parameters.
    extra = 4 * 32 * 3 * 3 + 4 * 64 * 3 * 3
    assert extra == 3_456
    assert count(prior) == 25_004_644 + extra == 25_008_100
    assert prior.conv_in.weight.shape == (32, 8, 3, 3)
    assert prior.guide.head.weight.shape == (64, 7, 3, 3)
    assert prior.config == {**paper.config, "prior": "curves"}
    assert prior.state_dict()["prior.weights"].shape == (49, 4)
    assert prior.state_dict()["prior.weights"].dtype == torch.float64
    assert "prior.table" not in prior.state_dict()  # a constant, not saved
    assert prior.state_dict().keys() - paper.state_dict().keys() == {"prior.weights"}


@pytest.mark.parametrize("guide_net, head", [("rrdb", "head"), ("nafnet", "intro")])
def test_every_guidance_network_takes_the_prior(guide_net, head):
    net = UNet(**{**TINY, "guide": guide_net}, prior="linear")
    assert getattr(net.guide, head).weight.shape[1] == 7
    _, rgb = guide(size=16)
    assert net(torch.randn(2, 4, 16, 16), torch.tensor([1, 2]), rgb=rgb).shape == (2, 4, 16, 16)


def test_an_unknown_map_kind_is_refused():
    with pytest.raises(ValueError, match="colour map kind 'poly4'"):
        UNet(**TINY, prior="poly4")


# ----------------------------------------------------------------------------- training

def run_settings(data, out, **changes):
    return settings(data, out, **{"optim__max_steps": 2, "general__save_every": 2, **changes})


@pytest.fixture(scope="module")
def curves_run(tiny, tmp_path_factory):
    """2 steps on 2 of the tiny folder's 3 training images, without model.prior (the default)."""
    out = tmp_path_factory.mktemp("curves")
    run_dir = train(run_settings(tiny, out, dataset__train__max_items=2))
    return out, run_dir


def test_a_folder_run_fits_the_default_prior_on_its_training_samples(tiny, curves_run):
    out, run_dir = curves_run
    kind = training.DEFAULT_PRIOR
    assert kind == "poly3+curves+local"
    state = load_checkpoint(run_dir / training.CHECKPOINT)
    assert state["config"]["model"]["prior"] == kind  # stored resolved
    assert state["model_config"]["prior"] == kind
    assert OmegaConf.load(run_dir / "config.yaml").model.prior == kind
    weights = state["model"]["prior.weights"]
    assert weights.dtype == torch.float64 and weights.shape == (1 + 19 + 48 + 24, 4)
    # the greens tied: the same constant and colour terms, a difference in the local ones only
    assert torch.equal(weights[:-24, 1], weights[:-24, 2])
    assert not torch.equal(weights[-24:, 1], weights[-24:, 2])

    ds = PreparedDataset(tiny)
    ids = training_data.TrainSamples(ds, "train", 32, seed=0, max_items=2).ids
    assert len(ids) == 8 < len(ds.split("train")) == 12
    camera = Camera.from_images({i: e for i, e in ds.images.items() if e["split"] == "train"})
    assert camera.color_matrix is not None  # the tiny DNGs have one: the fit is anchored
    fitted, fit = fit_colour_map(ds, "train", kind, ids=ids, progress=False, camera=camera)
    assert fit["anchors"]["samples"] > 100
    torch.testing.assert_close(weights, fitted.weights, atol=1e-10, rtol=0)
    # its camera keeps the exposures of the run's 2 images against it (for --exposure draw)
    assert len(fit["exposures"]) == 2
    assert state["camera"]["exposures"] == pytest.approx(list(fit["exposures"].values()))
    # the run's samples, not the whole split
    everything, _ = fit_colour_map(ds, "train", kind, progress=False, camera=camera)
    assert not torch.allclose(weights, everything.weights, atol=1e-4)
    # and its camera's anchors
    plain, _ = fit_colour_map(ds, "train", kind, ids=ids, progress=False)
    assert not torch.allclose(weights, plain.weights, atol=1e-4)
    # the map is a buffer: the optimiser never sees it
    assert sum(v.numel() for s in state["optimizer"]["state"].values()
               for k, v in s.items() if k == "exp_avg") == count(UNet(**state["model_config"]))

    # load_model rebuilds it (the prior in the network) and generates
    net, _ = load_model(run_dir / training.CHECKPOINT)
    assert torch.equal(net.prior.weights, weights)
    s = ds.load(ds.split("test")[0])
    rgb = torch.from_numpy(s.rgb[:32, :32].copy()).permute(2, 0, 1)[None].float() / 127.5 - 1
    x0 = generate(net, Diffusion(), rgb, 2, torch.Generator().manual_seed(0))
    prior = 2 * ColourMap(kind, weights)(guide_codes(rgb)) - 1
    assert x0.shape == (1, 4, 32, 32) and x0.min() >= -1 and x0.max() <= 1
    # two steps barely move the zero-initialised residual: the output is the map's estimate
    assert (x0 - prior).abs().max() < 0.05


def test_training_crops_carry_the_maps_estimate_of_the_untransformed_crop(tiny):
    """The map sees a crop as generation sees a guide, and its estimate is then rotated or
    flipped with the RAW: `local` terms are not invariant to the dihedral transforms."""
    ds = PreparedDataset(tiny)
    samples = training_data.TrainSamples(ds, "train", 16, seed=3)
    assert len(samples[0]) == 2  # no prior: RAW and RGB only
    kind = "linear+local"
    weights = torch.zeros(maps.n_terms(kind), 4, dtype=torch.float64)
    weights[0] = 0.1
    weights[1:4] = 0.5 * torch.eye(3, 4, dtype=torch.float64)  # R -> R, G -> G1, B -> G2
    weights[4 + 3 * 1, 3] = 2.0  # B: the R difference to the neighbour above-centre ...
    weights[4 + 3 * 3] = 0.5  # ... and the differences to the left neighbour, on every channel
    samples.prior = ColourMap(kind, weights)
    seen = set()
    for g in range(40):
        raw, rgb, prior = samples[g]
        # the draw's window and transform, found again from its generator
        epoch, i = divmod(g, samples.epoch_length)
        sample = ds.load(samples.ids[samples.order(epoch)[i]])
        h, w = sample.raw.shape[-2:]
        where = np.stack(np.meshgrid(np.arange(h), np.arange(w), indexing="ij")).astype(float)
        rng = np.random.default_rng([3, training_data.AUGMENT, g])
        index, _, k = paired_crop_dihedral(np.concatenate([where, where]),
                                           sample.rgb.transpose(2, 0, 1), 16, rng)
        top, left = int(index[0].min()), int(index[3].min())  # planes 1, 2 may swap
        crop = torch.from_numpy(sample.rgb[top:top + 16, left:left + 16].copy()).permute(2, 0, 1)
        expected = dihedral_packed(samples.prior(crop[None])[0].numpy(), k) * 2 - 1
        np.testing.assert_allclose(prior.numpy(), expected, atol=1e-6)
        seen.add(k)
    assert len(seen) >= 6  # the transforms that the map would get wrong were drawn
    assert 0.2 < ((prior > -1) & (prior < 1)).float().mean()  # few estimates are clipped


def test_resuming_does_not_refit_the_prior(tiny, curves_run, tmp_path, monkeypatch):
    out, run_dir = curves_run
    shutil.copytree(out, tmp_path / "runs")
    before = load_checkpoint(run_dir / training.CHECKPOINT)

    def refit(*args, **kwargs):
        raise AssertionError("the prior was fitted again on resuming")

    monkeypatch.setattr(training, "fit_colour_map", refit)
    resumed = train(run_settings(tiny, tmp_path / "runs", dataset__train__max_items=2,
                                 optim__max_steps=3))
    assert resumed == tmp_path / "runs" / run_dir.name
    state = load_checkpoint(resumed / training.CHECKPOINT)
    assert state["step"] == 3 and state["config"]["model"]["prior"] == training.DEFAULT_PRIOR
    assert torch.equal(state["model"]["prior.weights"], before["model"]["prior.weights"])
    assert not torch.equal(state["model"]["conv_in.weight"], before["model"]["conv_in.weight"])


@pytest.fixture(scope="module")
def paper_run(tiny, tmp_path_factory):
    """1 step of the paper's model (model.prior=none) on the tiny folder."""
    out = tmp_path_factory.mktemp("paper")
    return out, train(run_settings(tiny, out, model__prior="none", optim__max_steps=1))


def test_prior_none_trains_the_papers_model(paper_run):
    state = load_checkpoint(paper_run[1] / training.CHECKPOINT)
    assert state["step"] == 1 and state["config"]["model"]["prior"] == "none"
    assert "prior" not in state["model_config"]
    assert not any(k.startswith("prior") for k in state["model"])
    assert state["model"]["conv_in.weight"].shape[1] == 4
    assert state["model"]["guide.head.weight"].shape[1] == 3


def test_an_unknown_prior_is_a_setup_error_naming_the_option(tiny, tmp_path):
    with pytest.raises(SetupError, match=r"model\.prior='bogus'.*none.*curves"):
        train(run_settings(tiny, tmp_path, model__prior="bogus"))
    assert not any(tmp_path.iterdir())  # refused before any work


def test_a_seed_dataset_defaults_to_the_papers_model(tiny, tmp_path):
    """dataset=fivek_nikon, its folder under general.data_root being the tiny one."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "fivek_nikon").symlink_to(tiny, target_is_directory=True)
    overrides = [o for o in run_settings(tiny, tmp_path / "runs", optim__max_steps=1)
                 if not o.startswith(("dataset=", "dataset.root="))]
    cfg = compose_config(["dataset=fivek_nikon", f"general.data_root={tmp_path / 'data'}",
                          *overrides])
    assert cfg.model.prior is None
    run_dir = training.main(cfg)
    assert run_dir.name == "fivek_nikon-small-s0"
    state = load_checkpoint(run_dir / training.CHECKPOINT)
    assert state["config"]["model"]["prior"] == "none"
    assert "prior" not in state["model_config"]
    assert not any(k.startswith("prior") for k in state["model"])


def test_an_old_run_without_model_prior_resumes_as_the_papers_model(tiny, paper_run, tmp_path):
    """A checkpoint written before model.prior and model.objective existed."""
    shutil.copytree(paper_run[0], tmp_path / "runs")
    path = tmp_path / "runs" / paper_run[1].name / training.CHECKPOINT
    state = load_checkpoint(path)
    del state["config"]["model"]["prior"], state["config"]["model"]["objective"]
    save_checkpoint(path, state)
    # The same command as the old run's (no model.prior): it resumes as the paper's model.
    run_dir = train(run_settings(tiny, tmp_path / "runs", optim__max_steps=2))
    resumed = load_checkpoint(run_dir / training.CHECKPOINT)
    assert resumed["step"] == 2 and resumed["config"]["model"]["prior"] == "none"


# ----------------------------------------------------------------------------- recipes

def test_recipe_changes_treat_a_missing_prior_and_objective_as_the_papers(tiny, tmp_path):
    assert config.ADDED == {"model.objective": "diffusion", "model.prior": "none"}
    new = OmegaConf.to_container(compose_config(run_settings(tiny, tmp_path)), resolve=True)
    old = {**new, "model": {k: v for k, v in new["model"].items()
                            if k not in ("prior", "objective")}}
    assert "prior" not in old["model"] and "prior" in new["model"]
    changes = lambda new: harness.recipe_changes(old, new, config.RESUMABLE, config.ADDED)  # noqa
    assert changes({**new, "model": {**new["model"], "prior": "none"}}) == []
    assert changes({**new, "model": {**new["model"], "prior": "curves"}}) \
        == ["model.prior: 'none' -> 'curves'"]
    assert changes({**new, "model": {**new["model"], "prior": "none", "objective": "direct"}}) \
        == ["model.objective: 'diffusion' -> 'direct'"]


# ----------------------------------------------------------------------------- export

def test_export_keeps_the_prior_in_float64_and_generates_as_the_original(curves_run, tmp_path):
    source = curves_run[1] / training.CHECKPOINT
    export_checkpoint(source, tmp_path / "shared.pt")
    original, exported = load_checkpoint(source), load_checkpoint(tmp_path / "shared.pt")
    assert "optimizer" not in exported and exported["config"] == original["config"]
    w = exported["model"]["prior.weights"]
    assert w.dtype == torch.float64 and torch.equal(w, original["model"]["prior.weights"])
    rest = {k: v for k, v in exported["model"].items() if not k.startswith("prior.")}
    assert rest and all(v.dtype == torch.float16 for v in rest.values() if v.is_floating_point())
    assert rest.keys() == original["model"].keys() - {"prior.weights"}

    a, _ = load_model(source)
    b, _ = load_model(tmp_path / "shared.pt")
    codes, rgb = guide(batch=1, size=32)
    # the map's estimate is bit-identical: its float64 terms cancel to 1e-4
    assert torch.equal(a.encode_guidance(rgb).prior, b.encode_guidance(rgb).prior)
    x = [generate(net, Diffusion(), rgb, 2, torch.Generator().manual_seed(0)) for net in (a, b)]
    torch.testing.assert_close(x[1], x[0], atol=2e-3, rtol=0)
    # and the map in float16 would not be: its weights lose 3 decimal digits
    assert not torch.equal(w.half().double(), w)


def test_export_calibrate_measures_the_exposures_against_the_networks_prior(tiny, curves_run,
                                                                           tmp_path):
    """A checkpoint made before exposures were kept gets those of the dataset's training
    images against its own prior, as training measures them."""
    state = load_checkpoint(curves_run[1] / training.CHECKPOINT)
    old = {k: v for k, v in state["camera"].items() if k != "exposures"}
    save_checkpoint(tmp_path / "old.pt", {**state, "camera": old})
    ds = PreparedDataset(tiny)
    export_checkpoint(tmp_path / "old.pt", tmp_path / "new.pt", ds)
    net, _ = load_model(tmp_path / "old.pt")
    expected = measured_exposures(ds, "train", net.prior, progress=False)
    assert len(expected) == 3 == len({e for e in expected.values()})
    assert load_checkpoint(tmp_path / "new.pt")["camera"]["exposures"] == \
        pytest.approx(list(expected.values()))


def test_an_exported_network_with_a_large_residual_generates_within_float16(tmp_path):
    """The run above has barely moved its zero-initialised residual; here it is random and
    dominates the output, so every weight's float16 rounding shows."""
    net = tiny_net("curves", map_weights("curves"), residual=True)
    save_checkpoint(tmp_path / "c.pt", {"step": 1, "config": {}, "model_config": net.config,
                                        "model": net.state_dict(), "ema": None, "camera": {}})
    export_checkpoint(tmp_path / "c.pt", tmp_path / "shared.pt")
    a, _ = load_model(tmp_path / "c.pt")
    b, _ = load_model(tmp_path / "shared.pt")
    assert torch.equal(b.prior.weights, net.prior.weights)
    _, rgb = guide(batch=1, size=32)
    x = [generate(m, Diffusion(), rgb, 2, torch.Generator().manual_seed(0)) for m in (a, b)]
    assert (x[0] - a.encode_guidance(rgb).prior).abs().max() > 0.5  # the residual matters
    torch.testing.assert_close(x[1], x[0], atol=2e-2, rtol=0)
    assert not torch.equal(x[1], x[0])  # and the weights really were rounded


def test_a_prior_written_in_another_order_is_the_same_recipe(tiny, curves_run, tmp_path):
    """model.prior=local+curves+poly3 names the default prior's map: the run resumes."""
    out, run_dir = curves_run
    shutil.copytree(out, tmp_path / "runs")
    resumed = train(run_settings(tiny, tmp_path / "runs", dataset__train__max_items=2,
                                 model__prior="local+curves+poly3", optim__max_steps=3))
    state = load_checkpoint(resumed / training.CHECKPOINT)
    assert state["step"] == 3 and state["config"]["model"]["prior"] == training.DEFAULT_PRIOR
