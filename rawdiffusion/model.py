"""The RGB-guided U-Net of RAW-Diffusion (Reinders et al., WACV 2025).

A guided-diffusion U-Net that predicts the packed RAW image x0 from a noisy x_t and a
timestep, guided by the sRGB image. An RGB-guidance network (EDSR, RRDB or NAFNet)
turns the sRGB image into a feature map c; the middle and decoder blocks normalise with
SPADE, GN(x) * (1 + gamma(c)) + beta(c), where c is bilinearly resized to x's size.

With a colour prior (`prior` = a colour map kind of prior.py, e.g. "curves+poly3+local",
the project's colour-faithful design),
a colour map fitted in closed form on the training split (prior.ColourMap, stored in the
network's buffers) gives an estimate x_prior of the packed RAW from the guide; the network
conditions on it (it joins the RGB at the guidance network's input and x_t at the U-Net's
input) and predicts only what the map cannot, x0 = x_prior + D(x_t, t; rgb, x_prior): the
residual where the guide is clipped, local tone, texture, vignetting. The residual's output
conv starts at zero, so an untrained network reproduces the map. `prior=None` is the paper's
model.

gamma, beta and x_prior depend on the RGB image only, so `UNet.encode_guidance` computes all
of them once per image and `UNet.forward` reuses them for every denoising step:

    net = build_model("paper")
    guidance = net.encode_guidance(rgb)         # once per image
    x0 = net(x_t, t, guidance=guidance)         # any number of times
"""

import math
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from .prior import ColourMap, guide_codes

RAW_CHANNELS = 4  # packed R, G1, G2, B
GROUPS = 8  # GroupNorm groups
HEAD_CHANNELS = 64  # channels per attention head

PRESETS = {
    # The paper's network: 25,004,644 parameters with EDSR, 16,089,856 of them in SPADE.
    "paper": dict(
        channels=32, channel_mult=(1, 1, 2, 2, 4, 4), num_blocks=2, attn_ds=(16, 32),
        guide="edsr", guide_channels=64, spade_hidden=128,
    ),
    # For a 2-core CPU and 64-128 px crops: 2,562,100 parameters, a training step on a
    # batch of 4 64x64 crops takes ~0.4 s on 2 cores (the paper preset ~1.6 s). Inputs:
    # multiples of 8.
    "small": dict(
        channels=16, channel_mult=(1, 2, 4, 4), num_blocks=1, attn_ds=(8,),
        guide="edsr", guide_channels=32, spade_hidden=32,
    ),
}


def build_model(preset="paper", **overrides):
    """The U-Net of a preset in PRESETS, with some of its arguments replaced."""
    return UNet(**{**PRESETS[preset], **overrides})


def timestep_embedding(t, dim):
    """Sinusoidal embedding of t: (B,) timesteps in [0, 1000) -> (B, dim) (Vaswani et al. 2017)."""
    freqs = torch.exp(-math.log(10000) * torch.arange(dim // 2, device=t.device) / (dim // 2))
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


def conv3x3(cin, cout):
    # Reflect padding, as in the reference, keeps image borders free of zero-padding bias.
    return nn.Conv2d(cin, cout, 3, padding=1, padding_mode="reflect")


def zero_init(module):
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class Modulation(NamedTuple):
    """The SPADE parameters of one guided Block (`Block.modulation`), which replace the affine
    parameters of its two GroupNorms: norm0 (of the block's input x) and norm1 (after its first
    conv), each GN(h) * (1 + gamma) + beta. With cin, cout the block's channels and (h, w),
    (h', w') its input and output size:

    norm0_scale: 1 + gamma0, (B, cin, h, w)     norm0_shift: beta0, (B, cin, h, w)
    norm1_scale: 1 + gamma1, (B, cout, h', w')  norm1_shift: beta1, (B, cout, h', w')
    """

    norm0_scale: torch.Tensor
    norm0_shift: torch.Tensor
    norm1_scale: torch.Tensor
    norm1_shift: torch.Tensor


class Guidance(tuple):
    """What `UNet.encode_guidance` computes from an RGB guide: a tuple with one Modulation per
    guided block, in the order of `UNet.dec`, and `prior`, the colour prior's estimate x_prior
    (B, 4, H, W) in [-1, 1], or None."""

    prior: torch.Tensor | None = None


def resize(c, size):
    """Bilinear resize of c (B, C, H, W) to size (h, w); c itself when it already fits."""
    if tuple(c.shape[-2:]) == tuple(size):
        return c
    return F.interpolate(c, size=size, mode="bilinear", align_corners=False)


class Spade(nn.Module):
    """gamma(c), beta(c) of SPADE (Park et al. 2019) as used by semantic-diffusion-model."""

    def __init__(self, guide_channels, hidden, channels):
        super().__init__()
        self.shared = nn.Conv2d(guide_channels, hidden, 3, padding=1)
        self.gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.beta = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, c):
        """c: (B, guide_channels, h, w) -> (1 + gamma, beta): (B, channels, h, w) each.

        1 + gamma rather than gamma: it is what the norm multiplies by, so computing it here,
        once per image, saves an addition at every denoising step."""
        a = F.relu(self.shared(c))
        return 1 + self.gamma(a), self.beta(a)


class Block(nn.Module):
    """The U-Net's residual block (guided-diffusion's ResBlock with scale-shift norm).

    Flags: `resample` "up"/"down" resamples inside the block (nearest / 2x2 average), as
    guided-diffusion's resblock_updown; `guide_channels` > 0 makes it RGB-guided: both
    GroupNorms become GN(x) * (1 + gamma) + beta, with gamma, beta from `modulation`;
    `attention` appends a self-attention layer (64 channels per head).
    """

    def __init__(self, cin, cout, emb_dim, *, resample=None, guide_channels=0, spade_hidden=128,
                 attention=False):
        super().__init__()
        guided = guide_channels > 0
        self.resample = resample
        # The SPADE gamma, beta replace the affine parameters of a guided block's norms.
        self.norm0 = nn.GroupNorm(GROUPS, cin, affine=not guided)
        self.conv0 = conv3x3(cin, cout)
        self.emb = nn.Linear(emb_dim, 2 * cout)
        self.norm1 = nn.GroupNorm(GROUPS, cout, affine=not guided)
        self.conv1 = zero_init(conv3x3(cout, cout))
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        if guided:
            self.spade0 = Spade(guide_channels, spade_hidden, cin)
            self.spade1 = Spade(guide_channels, spade_hidden, cout)
        self.heads = max(cout // HEAD_CHANNELS, 1) if attention else 0
        if attention:
            self.attn_norm = nn.GroupNorm(GROUPS, cout)
            self.qkv = nn.Conv2d(cout, 3 * cout, 1)
            self.proj = zero_init(nn.Conv2d(cout, cout, 1))

    def modulation(self, c0, c1) -> Modulation:
        """SPADE parameters from the guide features at the block's input size (c0) and
        output size (c1), shaped like the two norms' inputs."""
        return Modulation(*self.spade0(c0), *self.spade1(c1))

    def forward(self, x, emb, mod=None):
        """x: (B, cin, h, w); emb: (B, emb_dim); mod: `modulation`'s output (a Modulation)
        for guided blocks, else None. Returns (B, cout, h', w'), h' = 2h / h / h/2 for up /
        none / down."""
        # In-place activations and sums, and fused multiply-adds: each saves a pass over
        # an activation map, which is a tenth of a sampling step on CPU.
        h = self.norm0(x)
        if mod is not None:
            h = torch.addcmul(mod.norm0_shift, h, mod.norm0_scale)  # GN(x) * (1 + gamma) + beta
        h = F.silu(h, inplace=True)
        if self.resample == "up":
            h, x = F.interpolate(h, scale_factor=2.0), F.interpolate(x, scale_factor=2.0)
        elif self.resample == "down":
            h, x = F.avg_pool2d(h, 2), F.avg_pool2d(x, 2)
        h = self.conv0(h)
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.norm1(h)
        if mod is not None:
            h = torch.addcmul(mod.norm1_shift, h, mod.norm1_scale)
        h = self.conv1(F.silu(torch.addcmul(shift, h, 1 + scale), inplace=True))
        h += self.skip(x)
        if self.heads:
            h = h + self.attend(h)  # not in place: the attention norm keeps h for autograd
        return h

    def attend(self, x):
        B, C, H, W = x.shape
        qkv = self.qkv(self.attn_norm(x)).reshape(B, 3, self.heads, C // self.heads, H * W)
        q, k, v = qkv.transpose(-1, -2).unbind(1)  # (B, heads, HW, C / heads) each
        h = F.scaled_dot_product_attention(q, k, v)
        return self.proj(h.transpose(-1, -2).reshape(B, C, H, W))


class UNet(nn.Module):
    """RAW-Diffusion's denoiser: (x_t, t, RGB guide) -> x0.

    Arguments: `channels` base width; `channel_mult` width multipliers per level (each
    level after the first halves the resolution); `num_blocks` residual blocks per level;
    `attn_ds` downsampling factors with self-attention (plus the middle); `guide` "edsr",
    "rrdb" or "nafnet" with `guide_channels` features; `spade_hidden` SPADE hidden width.
    `prior`: None (the paper's model) or a colour map kind (prior.map_groups): the network
    predicts the residual to that map's estimate (module docstring); the map's weights are the
    buffer `prior.weights`, fitted by training (prior.fit_colour_map) before step 0.
    `config` holds these as a plain dict: UNet(**net.config) rebuilds the network.
    Set `checkpointing = True` for gradient checkpointing of every block while training.
    """

    def __init__(self, channels, channel_mult, num_blocks, attn_ds, guide, guide_channels,
                 spade_hidden, prior=None):
        super().__init__()
        channel_mult, attn_ds = tuple(channel_mult), tuple(attn_ds)
        self.config = dict(
            channels=channels, channel_mult=channel_mult, num_blocks=num_blocks, attn_ds=attn_ds,
            guide=guide, guide_channels=guide_channels, spade_hidden=spade_hidden,
        )
        if prior is not None:  # absent for the paper's model: its config stays as it was
            self.config["prior"] = prior
        self.multiple = 2 ** (len(channel_mult) - 1)
        self.checkpointing = False
        extra = 0
        if prior is not None:
            self.prior = ColourMap(prior)
            extra = RAW_CHANNELS  # x_prior joins the RGB and x_t
        self.guide = GUIDES[guide](guide_channels, in_channels=3 + extra)
        emb_dim = 4 * channels
        self.time_embed = nn.Sequential(
            nn.Linear(channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)
        )
        plain = dict(emb_dim=emb_dim)
        guided = dict(emb_dim=emb_dim, guide_channels=guide_channels, spade_hidden=spade_hidden)

        # Encoder of plain blocks; `skips` tracks the channels of the features it passes on.
        self.conv_in = conv3x3(RAW_CHANNELS + extra, channels)
        self.enc = nn.ModuleList()
        skips, ch, ds = [channels], channels, 1
        for level, mult in enumerate(channel_mult):
            for _ in range(num_blocks):
                self.enc.append(Block(ch, channels * mult, attention=ds in attn_ds, **plain))
                ch = channels * mult
                skips.append(ch)
            if level < len(channel_mult) - 1:
                self.enc.append(Block(ch, ch, resample="down", **plain))
                skips.append(ch)
                ds *= 2

        # Middle and decoder: guided blocks, in the order forward and encode_guidance use.
        # Each block records the downsampling factors of its input and output (ds_in, ds_out)
        # and whether it takes an encoder skip.
        self.dec = nn.ModuleList()

        def add(block, ds_in, ds_out, takes_skip):
            block.ds_in, block.ds_out, block.takes_skip = ds_in, ds_out, takes_skip
            self.dec.append(block)

        add(Block(ch, ch, attention=True, **guided), ds, ds, False)
        add(Block(ch, ch, **guided), ds, ds, False)
        for level, mult in reversed(list(enumerate(channel_mult))):
            for _ in range(num_blocks + 1):
                block = Block(ch + skips.pop(), channels * mult, attention=ds in attn_ds, **guided)
                add(block, ds, ds, True)
                ch = channels * mult
            if level > 0:
                add(Block(ch, ch, resample="up", **guided), ds, ds // 2, False)
                ds //= 2

        self.norm_out = nn.GroupNorm(GROUPS, ch)
        self.conv_out = zero_init(conv3x3(ch, RAW_CHANNELS))

    def for_sampling(self) -> "UNet":
        """This network in eval mode without gradients; on CPU also in channels_last, where
        oneDNN convolutions run 5-30 % faster (same results up to rounding)."""
        if next(self.parameters()).device.type == "cpu":
            self.to(memory_format=torch.channels_last)
        return self.eval().requires_grad_(False)

    def _run(self, fn, *args):
        if self.checkpointing and torch.is_grad_enabled():
            return checkpoint(fn, *args, use_reentrant=False)
        return fn(*args)

    def encode_guidance(self, rgb, prior=None):
        """All SPADE parameters for an RGB guide; they depend on nothing else.

        rgb: (B, 3, H, W) in [-1, 1]; H and W multiples of `self.multiple`, at least twice it
        (the reflect padding needs 2x2 maps at the lowest resolution).
        Returns a Guidance: a tuple with one Modulation (1 + gamma, beta of each of the block's
        two norms) per guided block, in the order of `self.dec`, each shaped like the
        activation it modulates, and the colour prior's estimate `prior` (None without a
        prior). That is 972 values per pixel for the paper preset (243 MiB for 256x256 in
        float32): tile large images.
        prior: the colour prior's estimate (B, 4, H, W) in [-1, 1] when it is computed outside,
        as training does before its dihedral augmentation (the map's `local` terms are not
        invariant to rotations); None: computed here from rgb.
        """
        H, W = rgb.shape[-2:]
        m = self.multiple
        if H % m or W % m or min(H, W) < 2 * m:
            raise ValueError(f"height and width must be multiples of {m}, >= {2 * m}; got {H}x{W}")
        if not hasattr(self, "prior"):
            prior = None
        else:
            if prior is None:
                prior = self.prior(guide_codes(rgb)) * 2 - 1
            prior = prior.to(rgb.dtype)
            rgb = torch.cat([rgb, prior], dim=1)
        c = self._run(self.guide, rgb)
        pyramid = {}  # c resized once per resolution, shared by the blocks there

        def at(ds):
            if ds not in pyramid:
                pyramid[ds] = resize(c, (H // ds, W // ds))
            return pyramid[ds]

        guidance = Guidance(self._run(b.modulation, at(b.ds_in), at(b.ds_out)) for b in self.dec)
        guidance.prior = prior
        return guidance

    def forward(self, x, t, rgb=None, guidance=None, prior=None):
        """x0 prediction.

        x: x_t (B, 4, H, W), packed RAW in [-1, 1] plus noise; H, W as in `encode_guidance`.
        t: (B,) integer timesteps in [0, 1000).
        rgb: (B, 3, H, W) in [-1, 1], the guide; or, instead of it,
        guidance: `encode_guidance(rgb)`, computed once and reused across timesteps.
        prior: with rgb, the colour prior's estimate computed outside (see encode_guidance).
        Returns x0: (B, 4, H, W) in [-1, 1]; with a prior, x_prior + the predicted residual.
        """
        if guidance is None:
            guidance = self.encode_guidance(rgb, prior)
        prior = getattr(guidance, "prior", None)
        emb = self.time_embed(timestep_embedding(t, self.config["channels"]))
        h = self.conv_in(x if prior is None else torch.cat([x, prior], dim=1))
        skips = [h]
        for block in self.enc:
            h = self._run(block, h, emb)
            skips.append(h)
        for block, mod in zip(self.dec, guidance, strict=True):
            if block.takes_skip:
                h = torch.cat([h, skips.pop()], dim=1)
            h = self._run(block, h, emb, mod)
        out = torch.tanh(self.conv_out(F.silu(self.norm_out(h))))
        return out if prior is None else (prior + out).clamp(-1, 1)


# RGB-guidance networks: (B, in_channels, H, W) in [-1, 1] -> (B, width, H, W), at full
# resolution; in_channels is 3 (RGB), or 7 with a colour prior (RGB and x_prior).


def _conv_relu_conv(width):
    return nn.Sequential(
        nn.Conv2d(width, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, width, 3, padding=1)
    )


class EDSR(nn.Module):
    """EDSR (Lim et al. 2017) without its upsampler: conv, 4 residual blocks, conv, global skip."""

    def __init__(self, width, blocks=4, in_channels=3):
        super().__init__()
        self.head = nn.Conv2d(in_channels, width, 3, padding=1)
        self.body = nn.ModuleList(_conv_relu_conv(width) for _ in range(blocks))
        self.tail = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, rgb):
        x = h = self.head(rgb)
        for block in self.body:
            h = h + block(h)
        return x + self.tail(h)


class DenseBlock(nn.Module):
    """ESRGAN's residual dense block: 5 densely connected convs, residual scaled by 0.2."""

    def __init__(self, width, growth=32):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(width + i * growth, growth if i < 4 else width, 3, padding=1)
            for i in range(5)
        )

    def forward(self, x):
        feats = [x]
        for conv in self.convs[:-1]:
            feats.append(F.leaky_relu(conv(torch.cat(feats, dim=1)), 0.2))
        return x + 0.2 * self.convs[-1](torch.cat(feats, dim=1))


class RRDB(nn.Module):
    """RRDBNet (Wang et al. 2018, ESRGAN) without its upsampler: conv, 4 residual-in-residual
    dense blocks, conv, global skip."""

    def __init__(self, width, blocks=4, in_channels=3):
        super().__init__()
        self.head = nn.Conv2d(in_channels, width, 3, padding=1)
        self.body = nn.ModuleList(
            nn.Sequential(*(DenseBlock(width) for _ in range(3))) for _ in range(blocks)
        )
        self.tail = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, rgb):
        x = h = self.head(rgb)
        for block in self.body:
            h = h + 0.2 * block(h)
        return x + self.tail(h)


class ChannelNorm(nn.LayerNorm):
    """LayerNorm over the channels of (B, C, H, W)."""

    def forward(self, x):
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class NAFBlock(nn.Module):
    """NAFNet's block (Chen et al. 2022): gated depthwise conv with channel attention, gated FFN."""

    def __init__(self, c):
        super().__init__()
        self.norm1, self.norm2 = ChannelNorm(c), ChannelNorm(c)
        self.conv1 = nn.Conv2d(c, 2 * c, 1)
        self.conv2 = nn.Conv2d(2 * c, 2 * c, 3, padding=1, groups=2 * c)
        self.sca = nn.Conv2d(c, c, 1)
        self.conv3 = nn.Conv2d(c, c, 1)
        self.conv4 = nn.Conv2d(c, 2 * c, 1)
        self.conv5 = nn.Conv2d(c, c, 1)
        # Zero residual scales: every block starts as the identity.
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    def forward(self, x):
        a, b = self.conv2(self.conv1(self.norm1(x))).chunk(2, dim=1)
        h = a * b
        h = h * self.sca(h.mean(dim=(2, 3), keepdim=True))
        y = x + self.beta * self.conv3(h)
        a, b = self.conv4(self.norm2(y)).chunk(2, dim=1)
        return y + self.gamma * self.conv5(a * b)


class NAFNet(nn.Module):
    """NAFNet U-Net with the reference's sizes (encoder 2, 2, 4, 8 blocks, middle 4, decoder
    2, 2, 2, 2); its last decoder features are the guidance. H, W: multiples of 16."""

    def __init__(self, width, enc=(2, 2, 4, 8), middle=4, dec=(2, 2, 2, 2), in_channels=3):
        super().__init__()
        self.intro = nn.Conv2d(in_channels, width, 3, padding=1)
        self.encoders, self.downs, self.ups, self.decoders = (nn.ModuleList() for _ in range(4))
        c = width
        for n in enc:
            self.encoders.append(nn.Sequential(*(NAFBlock(c) for _ in range(n))))
            self.downs.append(nn.Conv2d(c, 2 * c, 2, stride=2))
            c *= 2
        self.middle = nn.Sequential(*(NAFBlock(c) for _ in range(middle)))
        for n in dec:
            self.ups.append(nn.Sequential(nn.Conv2d(c, 2 * c, 1, bias=False), nn.PixelShuffle(2)))
            c //= 2
            self.decoders.append(nn.Sequential(*(NAFBlock(c) for _ in range(n))))

    def forward(self, rgb):
        h, skips = self.intro(rgb), []
        for encoder, down in zip(self.encoders, self.downs):
            h = encoder(h)
            skips.append(h)
            h = down(h)
        h = self.middle(h)
        for up, decoder in zip(self.ups, self.decoders):
            h = decoder(up(h) + skips.pop())
        return h


GUIDES = {"edsr": EDSR, "rrdb": RRDB, "nafnet": NAFNet}
