import io

import pytest
import torch

from rawdiffusion.model import PRESETS, Modulation, Spade, UNet, build_model, resize

# Two levels, attention at the lower one: small enough to run in milliseconds.
TINY = dict(
    channels=16, channel_mult=(1, 2), num_blocks=1, attn_ds=(2,),
    guide="edsr", guide_channels=8, spade_hidden=8,
)


def tiny(**overrides):
    """A tiny UNet with all weights random: the zero-initialised layers would otherwise make
    the output 0 and most comparisons vacuous."""
    torch.manual_seed(0)
    net = UNet(**{**TINY, **overrides})
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return net


def inputs(batch=2, size=16, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 4, size, size, generator=g)
    rgb = torch.rand(batch, 3, size, size, generator=g) * 2 - 1
    t = torch.randint(0, 1000, (batch,), generator=g)
    return x, t, rgb


def count(module):
    return sum(p.numel() for p in module.parameters())


def test_paper_preset_has_the_reference_parameter_count():
    net = build_model("paper")
    assert count(net) == 25_004_644
    assert abs(count(net) - 25.0e6) / 25.0e6 < 0.01
    spade = sum(count(m) for m in net.modules() if isinstance(m, Spade))
    assert spade == 16_089_856  # "16.1 M" in the reference
    assert count(net.guide) == 334_144  # EDSR: conv, 4 residual blocks, conv
    # Middle (2) and decoder (6 levels x 3 + 5 upsampling) blocks are guided, the encoder not.
    assert len(net.dec) == 25
    assert not any(isinstance(m, Spade) for m in net.enc.modules())


def test_small_preset():
    assert count(build_model("small")) == 2_562_100


def test_output_is_zero_at_initialisation():
    net = UNet(**TINY)
    x, t, rgb = inputs()
    assert torch.equal(net(x, t, rgb=rgb), torch.zeros_like(x))


def test_output_shape_and_range():
    net = tiny()
    x, t, rgb = inputs(size=24)  # any multiple of net.multiple
    out = net(100 * x, t, rgb=rgb)
    assert out.shape == x.shape
    assert out.abs().max() <= 1
    assert out.std() > 0.01


def test_precomputed_guidance_equals_recomputing_it_and_is_reusable():
    net = tiny().eval()
    x, t, rgb = inputs()
    with torch.no_grad():
        guidance = net.encode_guidance(rgb)
        for seed in range(3):  # other x_t and t, same guidance
            x, t, _ = inputs(seed=10 + seed)
            torch.testing.assert_close(net(x, t, guidance=guidance), net(x, t, rgb=rgb))
    # One (1 + gamma0, beta0, 1 + gamma1, beta1) per guided block, shaped like what it modulates.
    assert len(guidance) == len(net.dec)
    first = guidance[0]  # middle block at 1/2 resolution, 32 channels
    assert [tuple(m.shape) for m in first] == [(2, 32, 8, 8)] * 4


def test_each_blocks_guidance_names_the_scale_and_shift_of_its_two_norms():
    net = tiny().eval()
    _, _, rgb = inputs()
    with torch.no_grad():
        guidance = net.encode_guidance(rgb)
        c = net.guide(rgb)
        for block, mod in zip(net.dec, guidance, strict=True):
            assert isinstance(mod, Modulation)
            for spade, ds, norm, scale, shift in (
                    (block.spade0, block.ds_in, block.norm0, mod.norm0_scale, mod.norm0_shift),
                    (block.spade1, block.ds_out, block.norm1, mod.norm1_scale, mod.norm1_shift)):
                a = torch.relu(spade.shared(resize(c, (16 // ds, 16 // ds))))
                assert torch.equal(scale, 1 + spade.gamma(a))  # GN(h) * (1 + gamma) ...
                assert torch.equal(shift, spade.beta(a))  # ... + beta
                assert scale.shape[1] == norm.num_channels
            # the positional order is the one the tuple had: (1 + gamma0, beta0, 1 + gamma1, beta1)
            assert all(a is b for a, b in zip(mod, (mod.norm0_scale, mod.norm0_shift,
                                                     mod.norm1_scale, mod.norm1_shift)))
    # the upsampling block modulates its input and its output size
    assert {(m.norm0_scale.shape[-1], m.norm1_scale.shape[-1]) for m in guidance} \
        == {(8, 8), (8, 16), (16, 16)}


def test_output_depends_on_the_guide():
    net = tiny().eval()
    x, t, rgb = inputs()
    with torch.no_grad():
        assert not torch.allclose(net(x, t, rgb=rgb), net(x, t, rgb=-rgb))


def test_gradient_checkpointing_gives_the_same_output_and_gradients():
    x, t, rgb = inputs()
    results = []
    for checkpointing in (False, True):
        net = tiny()
        net.checkpointing = checkpointing
        out = net(x, t, rgb=rgb)
        out.square().sum().backward()
        results.append((out.detach(), [p.grad.clone() for p in net.parameters()]))
    (out0, grads0), (out1, grads1) = results
    torch.testing.assert_close(out0, out1)
    for g0, g1 in zip(grads0, grads1, strict=True):
        torch.testing.assert_close(g0, g1)


def test_config_rebuilds_the_network_from_a_weights_only_checkpoint():
    net = tiny().eval()
    buffer = io.BytesIO()
    torch.save({"config": net.config, "model": net.state_dict()}, buffer)
    buffer.seek(0)
    ckpt = torch.load(buffer, weights_only=True)
    rebuilt = UNet(**ckpt["config"]).eval()
    rebuilt.load_state_dict(ckpt["model"])
    x, t, rgb = inputs()
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x, t, rgb=rgb), net(x, t, rgb=rgb))
    assert set(PRESETS["paper"]) == set(net.config)


@pytest.mark.parametrize("guide", ["edsr", "rrdb", "nafnet"])
def test_guidance_networks(guide):
    net = tiny(guide=guide).eval()
    x, t, rgb = inputs(size=16)  # NAFNet needs multiples of 16
    with torch.no_grad():
        assert net.guide(rgb).shape == (2, TINY["guide_channels"], 16, 16)
        assert net(x, t, rgb=rgb).shape == x.shape


def test_sizes_that_are_not_a_multiple_are_rejected():
    net = tiny()
    for size in (17, 2):  # not a multiple of 2; a 1x1 map at the lower level
        x, t, rgb = inputs(size=size)
        with pytest.raises(ValueError, match="multiples of 2, >= 4"):
            net(x, t, rgb=rgb)


def test_channels_last_and_bfloat16_autocast():
    net = tiny().eval()
    x, t, rgb = inputs()
    with torch.no_grad():
        ref = net(x, t, rgb=rgb)
        cl = net.to(memory_format=torch.channels_last)
        out = cl(x.to(memory_format=torch.channels_last), t,
                 rgb=rgb.to(memory_format=torch.channels_last))
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            guidance = net.encode_guidance(rgb)
            out = net(x, t, guidance=guidance)
        assert torch.isfinite(out).all()
        assert (out.float() - ref).abs().max() < 0.1
