"""Sampling: guidance computed once equals recomputing it; tiles blend without seams."""

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from rawdiffusion.diffusion import Diffusion
from rawdiffusion.model import build_model
from rawdiffusion.sampling import (
    generate,
    generate_tiled,
    guide_tensor,
    pad_to_multiple,
    tile_starts,
)


def smooth_rgb(h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand((1, 3, h // 8, w // 8), generator=g) * 2 - 1
    return nn.functional.interpolate(coarse, size=(h, w), mode="bilinear")


def busy_unet():
    """The small preset with its zero-initialised output layers randomised, so that its x0
    depends on x_t, t and the guide (an untrained U-Net predicts exactly 0)."""
    torch.manual_seed(0)
    net = build_model("small").eval()
    nn.init.normal_(net.conv_out.weight, std=0.05)
    for block in net.dec:
        nn.init.normal_(block.conv1.weight, std=0.02)
    return net


class LocalDenoiser(nn.Module):
    """A denoiser that sees 1 pixel around each pixel of x_t and of the guide: a tile's output
    matches the whole image's wherever the tile's border is out of reach."""

    multiple = 8

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.g = nn.Conv2d(3, 8, 3, padding=1, padding_mode="reflect")
        self.f = nn.Conv2d(12, 4, 3, padding=1, padding_mode="reflect")

    def encode_guidance(self, rgb):
        return self.g(rgb)

    def forward(self, x, t, guidance):
        return torch.tanh(2 * self.f(torch.cat([x, guidance], 1)))


def near_tile_edges(h, w, tile, overlap, reach):
    """(h, w) mask of the pixels within `reach` of an inner tile edge."""
    mask = torch.zeros(h, w, dtype=torch.bool)
    for size, view in ((w, lambda a, b: mask[:, a:b]), (h, lambda a, b: mask[a:b, :])):
        for start in tile_starts(size, tile, overlap):
            for edge in (start, start + tile):
                if 0 < edge < size:
                    view(max(edge - reach, 0), edge + reach).fill_(True)
    return mask


def test_cached_guidance_equals_recomputing_it_at_every_step():
    net, diffusion, rgb = busy_unet(), Diffusion(), smooth_rgb(32, 48)
    calls = []
    cached = generate(net, diffusion, rgb, 6, torch.Generator().manual_seed(3),
                      callback=lambda d: calls.append(d["t"]))
    recomputed = generate(net, diffusion, rgb, 6, torch.Generator().manual_seed(3),
                          cache_guidance=False)
    assert calls == [835, 668, 501, 334, 167, 0]
    assert cached.abs().mean() > 0.05  # a real sample, not the untrained network's zeros
    torch.testing.assert_close(cached, recomputed, atol=1e-5, rtol=1e-5)


def test_tiles_equal_the_untiled_run_away_from_their_edges_and_blend_at_them():
    net, diffusion, rgb = LocalDenoiser(), Diffusion(), smooth_rgb(96, 160)
    run = lambda **kw: generate_tiled(net, diffusion, rgb, 6, torch.Generator().manual_seed(1),
                                      **kw)[0]
    whole = run(tile=256)
    blended = (run(tile=48, overlap=16) - whole).abs().amax(0)
    cut = (run(tile=48, overlap=0) - whole).abs().amax(0)
    # 6 steps of a 3x3 conv reach 6 px (the guide's conv one more): beyond that, exact.
    assert blended[~near_tile_edges(96, 160, 48, 16, 8)].max() < 1e-5
    seams_blended = blended[near_tile_edges(96, 160, 48, 16, 8)].mean()
    seams_cut = cut[near_tile_edges(96, 160, 48, 0, 8)].mean()
    assert seams_cut > 0.03                     # cutting without overlap does leave seams
    assert seams_blended < 0.2 * seams_cut      # the overlap ramps remove most of the error


def test_unet_tiles_put_no_extra_error_along_tile_borders():
    # The U-Net's attention sees its whole tile, so tiles differ from the untiled run
    # everywhere; what blending must avoid is error concentrated along the tile borders.
    net, diffusion, rgb = busy_unet(), Diffusion(), smooth_rgb(96, 160)
    run = lambda **kw: generate_tiled(net, diffusion, rgb, 6, torch.Generator().manual_seed(1),
                                      **kw)[0]
    whole = run(tile=256)
    ratios = {}
    for overlap in (16, 0):
        err = (run(tile=48, overlap=overlap) - whole).abs().mean(0)
        border = near_tile_edges(96, 160, 48, overlap, 2)
        ratios[overlap] = (err[border].mean() / err[~border].mean()).item()
    assert ratios[16] < 1.4, ratios
    assert ratios[0] > ratios[16], ratios


def test_tile_starts_cover_the_image_with_the_overlap():
    assert tile_starts(96, 48, 16) == [0, 32, 48]
    assert tile_starts(160, 48, 16) == [0, 32, 64, 96, 112]
    assert tile_starts(40, 48, 16) == [0]
    with pytest.raises(ValueError, match="multiple of 8"):
        generate_tiled(LocalDenoiser(), Diffusion(), smooth_rgb(32, 32), 2, tile=44)


def test_pad_to_multiple_pads_and_reports_the_size():
    x = torch.arange(2 * 3 * 5 * 7, dtype=torch.float32).reshape(2, 3, 5, 7)
    padded, size = pad_to_multiple(x, 8)
    assert padded.shape == (2, 3, 16, 16) and size == (5, 7)
    assert torch.equal(padded[..., :5, :7], x)


def test_guide_tensor_maps_read_only_uint8_to_minus_one_one_without_warning():
    rgb = np.array([[[0, 255, 51]], [[102, 153, 204]]], dtype=np.uint8)  # (2, 1, 3)
    rgb.flags.writeable = False  # as decoders and np.broadcast_to hand them out
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x = guide_tensor(rgb)
    assert x.shape == (1, 3, 2, 1) and x.dtype == torch.float32
    assert torch.allclose(x[0, :, 0, 0], torch.tensor([-1.0, 1.0, 51 / 127.5 - 1]))
    assert torch.allclose(x[0, :, 1, 0], torch.tensor([102, 153, 204]) / 127.5 - 1)
