"""FreqFusion (``freqfusion``, ``freqfusion_resample``) against a reference written from the formulas.

The reference below reads the module's parameters by their (official) names and computes
every step with plain tensor ops: CARAFE by ``unfold`` with zero padding (mmcv's semantics),
the kernel normaliser by softmax, window and sum, the local similarities by a dilated
``unfold`` and ``F.cosine_similarity`` (as the official ``compute_similarity``), and the
sampler by ``grid_sample`` on positions written in high-resolution pixels.  It shares no
code with the implementation, which uses the library's core.  The comparison with the
official module itself (its mmcv ``carafe`` replaced by an unfold-based one written from
mmcv's CUDA kernel) was run once, outside the repository (it needs the official source,
which is not vendored here); its results are in the module docstring.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import resamplers
from conftest import assert_close
from resamplers.complexity import count_parameters
from resamplers.guided import FreqFusion, LocalSimGuidedSampler

DOUBLE = torch.float64

# The official module's state-dict keys (FreqFusion.py: FreqFusion.__init__ and
# LocalSimGuidedSampler.__init__ with direction_feat='sim_concat'), with their shapes at
# hr_channels = lr_channels = 256 and the official defaults.
OFFICIAL_KEYS = [
    ("hamming_lowpass", (1, 1, 5, 5)),
    ("hamming_highpass", (1, 1, 3, 3)),
    ("hr_channel_compressor.weight", (64, 256, 1, 1)),
    ("hr_channel_compressor.bias", (64,)),
    ("lr_channel_compressor.weight", (64, 256, 1, 1)),
    ("lr_channel_compressor.bias", (64,)),
    ("content_encoder.weight", (25, 64, 3, 3)),
    ("content_encoder.bias", (25,)),
    ("content_encoder2.weight", (9, 64, 3, 3)),
    ("content_encoder2.bias", (9,)),
]
OFFICIAL_RESAMPLER_KEYS = [
    ("dysampler.init_pos", (1, 32, 1, 1)),
    ("dysampler.offset.weight", (32, 72, 3, 3)),
    ("dysampler.offset.bias", (32,)),
    ("dysampler.direct_scale.weight", (32, 72, 3, 3)),
    ("dysampler.direct_scale.bias", (32,)),
    ("dysampler.hr_offset.weight", (8, 72, 3, 3)),
    ("dysampler.hr_offset.bias", (8,)),
    ("dysampler.hr_direct_scale.weight", (8, 72, 3, 3)),
    ("dysampler.hr_direct_scale.bias", (8,)),
    ("dysampler.norm_hr.weight", (64,)),
    ("dysampler.norm_hr.bias", (64,)),
    ("dysampler.norm_lr.weight", (64,)),
    ("dysampler.norm_lr.bias", (64,)),
]


# -- the reference ------------------------------------------------------------------------------


def ref_carafe(x: torch.Tensor, kernels: torch.Tensor, k: int, groups: int, s: int) -> torch.Tensor:
    """``out[c, Y, X] = sum_t K[g k^2 + t, Y, X] x[c, Y // s + a - r, X // s + b - r]``, zeros outside."""
    n, c, h, w = x.shape
    win = F.unfold(x, k, padding=k // 2).reshape(n, groups, c // groups, k * k, h, w)
    win = win.repeat_interleave(s, dim=4).repeat_interleave(s, dim=5)
    return (win * kernels.reshape(n, groups, 1, k * k, s * h, s * w)).sum(3).reshape(n, c, s * h, s * w)


def ref_hamming(k: int) -> torch.Tensor:
    w = torch.hamming_window(k, periodic=False, dtype=DOUBLE)
    return torch.outer(w, w).float()


def ref_normalise(logits: torch.Tensor, k: int, groups: int, hamming: bool) -> torch.Tensor:
    n, _, h, w = logits.shape
    probs = torch.softmax(logits.reshape(n, groups, k * k, h, w), dim=2)
    if hamming:
        probs = probs * ref_hamming(k).to(probs.dtype).reshape(1, 1, k * k, 1, 1)
    return (probs / probs.sum(2, keepdim=True)).reshape(n, groups * k * k, h, w)


def ref_similarity(x: torch.Tensor) -> torch.Tensor:
    n, c, h, w = x.shape
    win = F.unfold(x, 3, padding=2, dilation=2).reshape(n, c, 9, h, w)
    cos = F.cosine_similarity(win[:, :, 4:5], win, dim=1)
    return torch.cat([cos[:, :4], cos[:, 5:]], dim=1)


def ref_sample(u: torch.Tensor, offsets: torch.Tensor, s: int, groups: int) -> torch.Tensor:
    """``u`` at column ``s (x + 0.5 + O_x) - 0.5``, row ``s (y + 0.5 + O_y) - 0.5`` (high-res pixels)."""
    n, c, hh, ww = u.shape
    h, w = hh // s, ww // s
    # channel ((xy G + g) s + i) s + j at (y, x) -> output pixel (s y + i, s x + j)
    o = offsets.reshape(n, 2, groups, s, s, h, w).permute(0, 1, 2, 5, 3, 6, 4).reshape(n, 2, groups, hh, ww)
    xs = torch.arange(w, dtype=u.dtype).repeat_interleave(s).view(1, 1, 1, ww)
    ys = torch.arange(h, dtype=u.dtype).repeat_interleave(s).view(1, 1, hh, 1)
    col = s * (xs + 0.5 + o[:, 0]) - 0.5
    row = s * (ys + 0.5 + o[:, 1]) - 0.5
    grid = torch.stack([(2 * col + 1) / ww - 1, (2 * row + 1) / hh - 1], dim=-1).reshape(n * groups, hh, ww, 2)
    out = F.grid_sample(
        u.reshape(n * groups, c // groups, hh, ww), grid, mode="bilinear", padding_mode="border", align_corners=False
    )
    return out.reshape(n, c, hh, ww)


def ref_init_pos(s: int, groups: int) -> torch.Tensor:
    step = (torch.arange(s, dtype=DOUBLE) - (s - 1) / 2) / s
    along_x = step.view(1, 1, s).expand(groups, s, s)
    along_y = step.view(1, s, 1).expand(groups, s, s)
    return torch.stack([along_x, along_y]).reshape(1, -1, 1, 1)


def reference(p: dict, d: torch.Tensor, e: torch.Tensor, cfg: dict) -> tuple[torch.Tensor, ...]:
    """The official ``(mask, hr_feat, lr_feat)`` from the formulas; ``cfg``: the module's settings."""
    s, g, kl, kh = cfg["scale_factor"], cfg["up_group"], cfg["lowpass_kernel"], cfg["highpass_kernel"]
    ke, dil, hamming = cfg["encoder_kernel"], cfg["encoder_dilation"], cfg["hamming_window"]
    pad = (ke - 1) * dil // 2

    def conv(x, name, padding=0, dilation=1):
        return F.conv2d(x, p[f"{name}.weight"], p[f"{name}.bias"], padding=padding, dilation=dilation)

    def enc_low(x):
        return conv(x, "content_encoder", pad, dil)

    def enc_high(x):
        return conv(x, "content_encoder2", pad, dil)

    def up(x):
        return x.repeat_interleave(s, dim=2).repeat_interleave(s, dim=3)

    z_e, z_d = conv(e, "hr_channel_compressor"), conv(d, "lr_channel_compressor")
    high = None
    if cfg["semi_conv"] and cfg["comp_feat_upsample"]:
        high_e = enc_high(z_e)
        z_e = 2 * z_e - ref_carafe(z_e, ref_normalise(high_e, kh, g, hamming), kh, g, 1)
        low_e = enc_low(z_e)
        low = low_e + ref_carafe(enc_low(z_d), ref_normalise(low_e, kl, g, hamming), kl, g, s)
        mask = ref_normalise(low, kl, g, hamming)
        high = high_e + ref_carafe(enc_high(z_d), mask, kl, g, s)
    elif cfg["semi_conv"]:
        low = enc_low(z_e) + up(enc_low(z_d))
        if cfg["use_high_pass"]:
            high = enc_high(z_e) + up(enc_high(z_d))
        mask = ref_normalise(low, kl, g, hamming)
    else:
        fused = up(z_d) + z_e
        mask = ref_normalise(enc_low(fused), kl, g, hamming)
        if cfg["use_high_pass"]:
            high = enc_high(fused)
    if cfg["semi_conv"]:
        lr = ref_carafe(d, mask, kl, g, s)
    else:
        mode = cfg["upsample_mode"]
        corners = None if mode == "nearest" else cfg["align_corners"]
        big = F.interpolate(d, size=e.shape[-2:], mode=mode, align_corners=corners)
        lr = ref_carafe(big, mask, kl, g, 1)
    hr = e
    if high is not None:
        high_pass = e - ref_carafe(e, ref_normalise(high, kh, g, hamming), kh, g, 1)
        hr = high_pass + e if cfg["hr_residual"] else high_pass
    if cfg["feature_resample"]:
        gr, cm = cfg["feature_resample_group"], z_d.shape[1]
        if cfg["feature_resample_norm"]:
            x_e = F.group_norm(z_e, cm // 8, p["dysampler.norm_hr.weight"], p["dysampler.norm_hr.bias"])
            x_d = F.group_norm(z_d, cm // 8, p["dysampler.norm_lr.weight"], p["dysampler.norm_lr.bias"])
        else:
            x_e, x_d = z_e, z_d
        if cfg["direction_feat"] == "sim_concat":
            off_e = scope_e = torch.cat([x_e, ref_similarity(x_e)], 1)
            off_d = scope_d = torch.cat([x_d, ref_similarity(x_d)], 1)
        else:
            off_e, off_d, scope_e, scope_d = ref_similarity(x_e), ref_similarity(x_d), x_e, x_d
        cp = ke // 2
        step = conv(off_d, "dysampler.offset", cp) + F.pixel_unshuffle(conv(off_e, "dysampler.hr_offset", cp), s)
        scope = conv(scope_d, "dysampler.direct_scale", cp) + F.pixel_unshuffle(
            conv(scope_e, "dysampler.hr_direct_scale", cp), s
        )
        offsets = step * scope.sigmoid() + ref_init_pos(s, gr)
        lr = ref_sample(lr, offsets, s, gr)
    return mask, hr, lr


def settings(module: FreqFusion) -> dict:
    names = [
        "scale_factor",
        "up_group",
        "lowpass_kernel",
        "highpass_kernel",
        "encoder_kernel",
        "encoder_dilation",
        "hamming_window",
        "semi_conv",
        "comp_feat_upsample",
        "use_high_pass",
        "hr_residual",
        "feature_resample",
        "feature_resample_group",
        "feature_resample_norm",
        "direction_feat",
        "upsample_mode",
        "align_corners",
    ]
    return {name: getattr(module, name) for name in names}


def randomise(module: torch.nn.Module, seed: int = 0, std: float = 0.3) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * std)


# -- against the reference ----------------------------------------------------------------------

# (decoder channels, options, low-resolution size)
CONFIGS = [
    (8, dict(), (3, 4)),
    (8, dict(feature_resample=True, hamming_window=False), (4, 3)),
    (8, dict(scale_factor=3, lowpass_kernel=3, highpass_kernel=5, feature_resample=True), (2, 3)),
    (8, dict(up_group=2, encoder_dilation=2, feature_resample=True, feature_resample_group=2), (3, 3)),
    (8, dict(feature_resample=True, feature_resample_norm=False, encoder_kernel=5, lowpass_kernel=7), (2, 4)),
    (8, dict(feature_resample=True, direction_feat="sim"), (3, 4)),
    (8, dict(comp_feat_upsample=False, feature_resample=True), (2, 5)),
    (8, dict(semi_conv=False, upsample_mode="bilinear", align_corners=True, feature_resample=True), (3, 2)),
    (8, dict(semi_conv=False), (2, 3)),
    (8, dict(use_high_pass=False, comp_feat_upsample=False), (2, 2)),
    (8, dict(hr_residual=False, feature_resample=True), (2, 3)),
    (8, dict(fusion="none", guide_channels=12, feature_resample=True), (2, 3)),
    (8, dict(scale_factor=1, feature_resample=True), (3, 3)),
    (8, dict(feature_resample=True), (1, 1)),
]


@pytest.mark.parametrize("channels, options, size", CONFIGS)
def test_output_and_gradients_equal_the_reference(channels, options, size):
    module = FreqFusion(channels, compressed_channels=16, **options).double()
    randomise(module, seed=len(options))
    s, h, w = module.scale_factor, *size
    params = {name: p.detach().clone().requires_grad_() for name, p in module.named_parameters()}
    d = torch.randn(2, channels, h, w, dtype=DOUBLE)
    e = torch.randn(2, module.guide_channels, s * h, s * w, dtype=DOUBLE)
    d_ours, e_ours, d_ref, e_ref = (t.clone().requires_grad_() for t in (d, e, d, e))
    ours = module.parts(d_ours, e_ours)
    expected = reference(params, d_ref, e_ref, settings(module))
    weights = [torch.randn_like(t) for t in expected]
    for a, b in zip(ours, expected, strict=True):
        assert_close(a, b)
    fused = expected[1] + expected[2] if module.fusion == "add" else expected[2]
    assert_close(module(d, e), fused)
    sum((t * u).sum() for t, u in zip(ours, weights)).backward()
    sum((t * u).sum() for t, u in zip(expected, weights)).backward()
    assert_close(d_ours.grad, d_ref.grad)
    assert_close(e_ours.grad, e_ref.grad)
    for name, p in module.named_parameters():
        assert_close(p.grad, params[name].grad)


@pytest.mark.parametrize("options", [dict(scale_factor=3), dict(up_group=2, feature_resample_group=2)])
def test_gradcheck_float64(options):
    module = FreqFusion(4, compressed_channels=8, lowpass_kernel=3, feature_resample=True, **options).double()
    randomise(module, seed=3, std=0.2)
    s = module.scale_factor
    d = torch.randn(1, 4, 2, 3, dtype=DOUBLE, requires_grad=True)
    e = torch.randn(1, 4, 2 * s, 3 * s, dtype=DOUBLE, requires_grad=True)
    assert torch.autograd.gradcheck(module, (d, e))


# -- closed forms -------------------------------------------------------------------------------


@pytest.mark.parametrize("hamming", [True, False])
def test_constant_kernels_are_a_fixed_window_filter(hamming):
    """Zero kernel encoders: every kernel is the normalised Hamming window (or a box), so the
    ALPF is that filter then nearest upsampling and the AHPF ``2 e - filter(e)``."""
    module = FreqFusion(6, lowpass_kernel=5, highpass_kernel=3, hamming_window=hamming, compressed_channels=8).double()
    randomise(module)
    with torch.no_grad():
        for conv in (module.content_encoder, module.content_encoder2):
            conv.weight.zero_()
            conv.bias.zero_()

    def window(k):
        w = ref_hamming(k).double() if hamming else torch.ones(k, k, dtype=DOUBLE)
        return (w / w.sum()).expand(6, 1, k, k)

    d = torch.randn(2, 6, 3, 5, dtype=DOUBLE)
    e = torch.randn(2, 6, 6, 10, dtype=DOUBLE)
    low = F.conv2d(d, window(5), padding=2, groups=6).repeat_interleave(2, 2).repeat_interleave(2, 3)
    high = 2 * e - F.conv2d(e, window(3), padding=1, groups=6)
    mask, hr, lr = module.parts(d, e)
    assert_close(lr, low)
    assert_close(hr, high)
    assert_close(module(d, e), high + low)
    assert_close(mask[:, :, :1, :1].flatten(), window(5)[0].flatten().expand(2, -1).flatten())


def test_kernels_sum_to_one_per_group():
    module = FreqFusion(8, up_group=2, compressed_channels=8).double()
    randomise(module, seed=1)
    mask, _, _ = module.parts(torch.randn(1, 8, 3, 4, dtype=DOUBLE), torch.randn(1, 8, 6, 8, dtype=DOUBLE))
    assert mask.shape == (1, 2 * 25, 6, 8)
    assert_close(mask.reshape(1, 2, 25, 6, 8).sum(2), torch.ones(1, 2, 6, 8, dtype=DOUBLE))


def test_zero_offsets_leave_the_upsampled_feature_unchanged():
    """With the offset convolutions at zero, ``O = init_pos`` and every pixel reads itself."""
    resampled = FreqFusion(8, feature_resample=True, compressed_channels=16).double()
    randomise(resampled, seed=2)
    with torch.no_grad():
        for conv in (resampled.dysampler.offset, resampled.dysampler.hr_offset):
            conv.weight.zero_()
            conv.bias.zero_()
    plain = FreqFusion(8, compressed_channels=16).double()
    plain.load_state_dict({k: v for k, v in resampled.state_dict().items() if not k.startswith("dysampler.")})
    d, e = torch.randn(2, 8, 3, 4, dtype=DOUBLE), torch.randn(2, 8, 6, 8, dtype=DOUBLE)
    assert_close(resampled(d, e), plain(d, e))


@pytest.mark.parametrize("s", [2, 3])
def test_a_one_pixel_offset_reads_s_pixels_to_the_right_border_replicated(s):
    sampler = LocalSimGuidedSampler(8, scale_factor=s, groups=2, kernel_size=3).double()
    randomise(sampler, seed=4)
    with torch.no_grad():
        for conv in (sampler.offset, sampler.hr_offset, sampler.direct_scale, sampler.hr_direct_scale):
            conv.weight.zero_()
            conv.bias.zero_()
        sampler.offset.bias[: 2 * s * s].fill_(2.0)  # x components; the scope is sigmoid(0) = 1/2
    u = torch.randn(1, 4, 3 * s, 4 * s, dtype=DOUBLE)
    out = sampler(torch.randn(1, 8, 3 * s, 4 * s, dtype=DOUBLE), torch.randn(1, 8, 3, 4, dtype=DOUBLE), u)
    columns = (torch.arange(4 * s) + s).clamp(max=4 * s - 1)
    assert_close(out, u[..., columns])


def test_fusion_modes_and_the_official_tuple():
    module = FreqFusion(8, compressed_channels=8).double()
    randomise(module, seed=5)
    d, e = torch.randn(1, 8, 2, 3, dtype=DOUBLE), torch.randn(1, 8, 4, 6, dtype=DOUBLE)
    mask, hr, lr = module.parts(d, e)
    assert (mask.shape, hr.shape, lr.shape) == ((1, 25, 4, 6), (1, 8, 4, 6), (1, 8, 4, 6))
    assert_close(module(d, e), hr + lr)
    lr_only = FreqFusion(8, compressed_channels=8, fusion="none").double()
    lr_only.load_state_dict(module.state_dict())
    assert_close(lr_only(d, e), lr)
    wide = FreqFusion(8, guide_channels=12, fusion="none", compressed_channels=8)
    assert wide(torch.randn(1, 8, 2, 3), torch.randn(1, 12, 4, 6)).shape == (1, 8, 4, 6)
    assert wide.output_shapes([(1, 8, 2, 3), (1, 12, 4, 6)]) == [(1, 8, 4, 6)]


# -- parameters, keys, checkpoints, initialisation ----------------------------------------------


@pytest.mark.parametrize(
    "name, options, params",
    [
        ("freqfusion", {}, 52_514),
        ("freqfusion_resample", {}, 104_690),
        # Mask2Former's "3xFreqFusion" pixel decoder: (256 + 256) // 8 channels, no GroupNorm, no window
        (
            "freqfusion_resample",
            dict(compressed_channels=64, feature_resample_norm=False, hamming_window=False),
            104_434,
        ),
    ],
)
def test_parameter_counts(name, options, params):
    assert count_parameters(resamplers.create_upsampler(name, channels=256, **options)) == params
    assert count_parameters(resamplers.create_pair(name, channels=256, **options)) == params


def test_state_dict_keys_and_shapes_are_the_official_ones():
    plain = resamplers.create_upsampler("freqfusion", channels=256)
    assert {(k, tuple(v.shape)) for k, v in plain.state_dict().items()} == set(OFFICIAL_KEYS)
    full = resamplers.create_upsampler("freqfusion_resample", channels=256)
    assert {(k, tuple(v.shape)) for k, v in full.state_dict().items()} == set(OFFICIAL_KEYS + OFFICIAL_RESAMPLER_KEYS)
    pair = resamplers.create_pair("freqfusion_resample", channels=256)
    assert set(pair.state_dict()) == {k for k, _ in OFFICIAL_KEYS + OFFICIAL_RESAMPLER_KEYS}
    no_window = FreqFusion(256, hamming_window=False, use_high_pass=False, comp_feat_upsample=False)
    keys = {k: tuple(v.shape) for k, v in no_window.state_dict().items()}
    assert keys["hamming_lowpass"] == keys["hamming_highpass"] == (1,)
    assert not any(k.startswith("content_encoder2") for k in keys)


def test_an_official_state_dict_loads_key_for_key_in_the_module_and_the_pair():
    g = torch.Generator().manual_seed(0)
    official = {k: torch.randn(shape, generator=g) for k, shape in OFFICIAL_KEYS + OFFICIAL_RESAMPLER_KEYS}
    official["hamming_lowpass"], official["hamming_highpass"] = ref_hamming(5)[None, None], ref_hamming(3)[None, None]
    official["dysampler.init_pos"] = ref_init_pos(2, 4).float()
    module = resamplers.create_upsampler("freqfusion_resample", channels=256)
    module.load_state_dict(official, strict=True)
    for name, value in module.state_dict().items():
        assert torch.equal(value, official[name]), name
    pair = resamplers.create_pair("freqfusion_resample", channels=256)
    pair.load_state_dict(official, strict=True)
    x = torch.randn(1, 256, 4, 6)
    y, guide = pair.down(x)
    assert_close(pair.up(y, guide), module(y, x))


def test_fresh_buffers_equal_the_official_hamming_windows_and_init_pos():
    module = FreqFusion(8, feature_resample=True, lowpass_kernel=7, highpass_kernel=5)
    assert module.hamming_lowpass.dtype == torch.float32
    assert torch.equal(module.hamming_lowpass[0, 0], ref_hamming(7))
    assert torch.equal(module.hamming_highpass[0, 0], ref_hamming(5))
    assert torch.equal(module.dysampler.init_pos, ref_init_pos(2, 4).float())
    assert torch.equal(FreqFusion(8, hamming_window=False).hamming_lowpass, torch.ones(1))


def test_official_initialisation():
    torch.manual_seed(0)
    module = FreqFusion(64, feature_resample=True)
    for conv in (module.content_encoder, module.content_encoder2):
        assert 0.0007 < conv.weight.std().item() < 0.0013
    # FreqFusion.init_weights re-initialises the offset generator's convolutions Xavier-uniform too
    for name in ("hr_channel_compressor", "dysampler.direct_scale", "dysampler.hr_offset"):
        conv = module.get_submodule(name)
        fan_in = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
        bound = (6 / (fan_in + conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1])) ** 0.5
        assert 0.9 * bound < conv.weight.abs().max().item() <= bound, name
    assert all(
        torch.count_nonzero(p) == 0 for n, p in module.named_parameters() if n.endswith(".bias") and "norm" not in n
    )
    alone = LocalSimGuidedSampler(64, kernel_size=3)
    assert torch.count_nonzero(alone.direct_scale.weight) == 0
    assert 0.0007 < alone.offset.weight.std().item() < 0.0013


# -- arguments ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, error, argument",
    [
        (dict(lowpass_kernel=4), ValueError, "lowpass_kernel"),
        (dict(highpass_kernel=0), ValueError, "highpass_kernel"),
        (dict(up_group=3), ValueError, "up_group"),
        (dict(encoder_kernel=2), ValueError, "encoder_kernel"),
        (dict(compressed_channels=0), ValueError, "compressed_channels"),
        (dict(fusion="concat"), ValueError, "fusion"),
        (dict(guide_channels=12), ValueError, "guide_channels"),
        (dict(use_high_pass=False), ValueError, "use_high_pass"),
        (dict(feature_resample=True, feature_resample_group=3), ValueError, "feature_resample_group"),
        (dict(feature_resample=True, compressed_channels=4), ValueError, "compressed_channels"),
        (dict(feature_resample=True, compressed_channels=68), ValueError, "compressed_channels"),
        (dict(direction_feat="concat"), ValueError, "direction_feat"),
        (dict(upsample_mode="bicubic"), ValueError, "upsample_mode"),
        (dict(feature_resample=1), TypeError, "feature_resample"),
        (dict(hamming_window="yes"), TypeError, "hamming_window"),
    ],
)
def test_constructor_errors_name_the_argument(kwargs, error, argument):
    with pytest.raises(error, match=f"`{argument}`"):
        FreqFusion(8, **kwargs)


def test_input_errors_name_the_argument():
    module = FreqFusion(8, compressed_channels=8)
    d = torch.randn(1, 8, 3, 4)
    with pytest.raises(ValueError, match="`encoder`.*6 x 8"):
        module(d, torch.randn(1, 8, 6, 9))
    with pytest.raises(ValueError, match="`encoder`.*channels"):
        module(d, torch.randn(1, 5, 6, 8))
    with pytest.raises(ValueError, match="`d`.*channels"):
        module(torch.randn(1, 5, 3, 4), torch.randn(1, 8, 6, 8))
    with pytest.raises(ValueError, match="`encoder`.*dtype"):
        module(d, torch.randn(1, 8, 6, 8, dtype=DOUBLE))
    with pytest.raises(ValueError, match="`d`.*4-D"):
        module.parts(d[0], torch.randn(1, 8, 6, 8))
