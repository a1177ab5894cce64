"""FeatUp's JBU (``featup_jbu``, ``featup_jbu_stage``) against a reference written from the formulas.

The reference below reads the module's parameters by their (official) names and computes
every step with plain tensor ops: reflect padding by explicit index arithmetic, windows by
``unfold``, the spatial kernel tap by tap, the stack's guidance with ``adaptive_avg_pool2d``
(as the official ``JBUStack``).  It shares no code with the implementation, which uses the
reassembly core.  The comparison with the official module itself (its ``adaptive_conv``
replaced by a reference written from its C++ source) was run once, outside the repository
(it needs the official source, which is not vendored here).
"""

from __future__ import annotations

import math
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F

import resamplers
from resamplers.complexity import count_parameters
from resamplers.guided import FeatUpJBU, FeatUpJBUStage, featup_checkpoint_state_dict

DOUBLE = torch.float64


# -- the reference ------------------------------------------------------------------------------


def reflect_index(i: int, n: int) -> int:
    """torch's 'reflect' padding: mirror about the edge pixel without repeating it."""
    if i < 0:
        return -i
    if i >= n:
        return 2 * (n - 1) - i
    return i


def reflect_pad(x: torch.Tensor, r: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    rows = torch.tensor([reflect_index(i, h) for i in range(-r, h + r)])
    cols = torch.tensor([reflect_index(j, w) for j in range(-r, w + r)])
    return x.index_select(-2, rows).index_select(-1, cols)


def conv1x1(x: torch.Tensor, p: dict, name: str) -> torch.Tensor:
    weight, bias = p[f"{name}.weight"], p[f"{name}.bias"]
    return torch.einsum("oc,nchw->nohw", weight[:, :, 0, 0], x) + bias[None, :, None, None]


def windows(x: torch.Tensor, diameter: int) -> torch.Tensor:
    """``N x C x D^2 x H x W`` windows of a map padded by ``r`` (tap ``a D + b``: row ``a``, column ``b``)."""
    n, c, hp, wp = x.shape
    h, w = hp - diameter + 1, wp - diameter + 1
    return F.unfold(x, diameter).reshape(n, c, diameter * diameter, h, w)


def reference_stage(p: dict, d: torch.Tensor, g: torch.Tensor, radius: int) -> torch.Tensor:
    """One official ``JBULearnedRange`` forward (eval mode), from the formulas."""
    D = 2 * radius + 1
    keys = conv1x1(F.gelu(conv1x1(g, p, "range_proj.0")), p, "range_proj.3")
    neighbours = windows(reflect_pad(keys, radius), D)  # N x d_k x D^2 x H x W
    temperature = p["range_temp"].exp().clamp(1e-4, 1e4)
    range_kernel = torch.softmax(temperature * (neighbours * keys[:, :, None]).sum(1), dim=1)
    sigma = p["sigma_spatial"]
    spatial = torch.stack(
        [
            torch.exp(-(((a - radius) / radius) ** 2 + ((b - radius) / radius) ** 2) / (2 * sigma**2))
            for a in range(D)
            for b in range(D)
        ]
    ).reshape(1, D * D, 1, 1)
    combined = range_kernel * spatial
    combined = combined / combined.sum(1, keepdim=True).clamp_min(1e-7)
    fixup = conv1x1(F.gelu(conv1x1(torch.cat([combined, g], 1), p, "fixup_proj.0")), p, "fixup_proj.3")
    kernel = combined + 0.1 * fixup
    high = F.interpolate(d, size=g.shape[-2:], mode="bicubic", align_corners=False)
    return (windows(reflect_pad(high, radius), D) * kernel[:, None]).sum(2)


def reference_stack(p: dict, d: torch.Tensor, image: torch.Tensor, stages: int, radius: int) -> torch.Tensor:
    """The official ``JBUStack`` forward (eval mode): adaptive pooling of the guidance per stage."""
    x = d
    for k in range(1, stages + 1):
        guide = F.adaptive_avg_pool2d(image, (2 * x.shape[-2], 2 * x.shape[-1]))
        prefix = f"up{k}."
        x = reference_stage({n[len(prefix) :]: v for n, v in p.items() if n.startswith(prefix)}, x, guide, radius)
    return 0.1 * conv1x1(x, p, "fixup_proj.1") + x


def randomise(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Weights away from the defaults, so that every kernel part matters."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("range_temp"):
                p.fill_(float(torch.rand((), generator=generator)) * 1.5 - 0.5)
            elif name.endswith("sigma_spatial"):
                p.fill_(float(torch.rand((), generator=generator)) * 0.8 + 0.4)
            else:
                p.copy_(torch.randn(p.shape, generator=generator, dtype=DOUBLE) * 0.3)
    return module.eval()


def inputs(*shapes: tuple[int, ...], seed: int = 1) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=generator, dtype=DOUBLE).requires_grad_() for shape in shapes]


def assert_same_outputs_and_gradients(module, reference, args, tol=1e-10):
    """Outputs and the gradients of a random projection (inputs and every parameter)."""
    names = [n for n, _ in module.named_parameters()]
    params = [p.detach().clone().requires_grad_() for _, p in module.named_parameters()]
    ref_args = [a.detach().clone().requires_grad_() for a in args]
    out = module(*args)
    ref = reference(dict(zip(names, params)), *ref_args)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, rtol=0, atol=tol)
    weight = torch.randn(out.shape, generator=torch.Generator().manual_seed(5), dtype=DOUBLE)
    got = torch.autograd.grad((out * weight).sum(), [*args, *module.parameters()])
    want = torch.autograd.grad((ref * weight).sum(), [*ref_args, *params])
    for name, a, b in zip(["d", "guidance", *names], got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=tol * max(1.0, b.abs().max().item()), msg=name)


# -- (a) the formulas -------------------------------------------------------------------------


@pytest.mark.parametrize("radius, scale, key_dim", [(3, 2, 32), (2, 3, 8), (1, 1, 4)])
def test_stage_equals_the_formula_reference(radius, scale, key_dim):
    stage = randomise(FeatUpJBUStage(5, scale, guide_channels=3, key_dim=key_dim, radius=radius).to(DOUBLE))
    h, w = max(2, math.ceil((radius + 1) / scale)), 3
    d, g = inputs((2, 5, h, w), (2, 3, scale * h, scale * w))
    assert_same_outputs_and_gradients(stage, lambda p, d, g: reference_stage(p, d, g, radius), [d, g])


def test_stack_equals_the_formula_reference_at_the_official_16x():
    stack = randomise(FeatUpJBU(4).to(DOUBLE))
    assert stack.num_stages == 4
    d, image = inputs((1, 4, 2, 3), (1, 3, 32, 48))
    assert_same_outputs_and_gradients(stack, lambda p, d, g: reference_stack(p, d, g, 4, 3), [d, image])


def test_any_guidance_size_pools_adaptively_as_the_official_stack():
    # DINOv2's case: 224 px image, patch 14, 16 x 16 tokens; here 4 x 4 tokens of a 28 x 28 image.
    stack = randomise(FeatUpJBU(3, scale_factor=4, radius=2, key_dim=8, any_guidance_size=True).to(DOUBLE))
    d, image = inputs((1, 3, 4, 4), (1, 3, 28, 28))
    assert_same_outputs_and_gradients(stack, lambda p, d, g: reference_stack(p, d, g, 2, 2), [d, image])
    strict = FeatUpJBU(3, scale_factor=4, radius=2, key_dim=8).to(DOUBLE)
    with pytest.raises(ValueError, match="`guidance`.*16 x 16"):
        strict(d, image)


def test_exact_guidance_pooling_equals_adaptive_pooling():
    exact = randomise(FeatUpJBU(4, scale_factor=8).to(DOUBLE))
    adaptive = FeatUpJBU(4, scale_factor=8, any_guidance_size=True).to(DOUBLE).eval()
    adaptive.load_state_dict(exact.state_dict())
    d, image = inputs((2, 4, 3, 2), (2, 3, 24, 16))
    with torch.no_grad():
        torch.testing.assert_close(exact(d, image), adaptive(d, image), rtol=0, atol=1e-12)


# -- (b) closed-form limits -------------------------------------------------------------------


def zero_fixups(module: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.startswith("fixup_proj.") or ".fixup_proj." in name:
                p.zero_()
    return module


def test_constant_guidance_gives_a_uniform_range_kernel_and_a_pure_gaussian_filter():
    radius, s = 3, 2
    stage = zero_fixups(randomise(FeatUpJBUStage(3, s).to(DOUBLE)))
    d = torch.randn(1, 3, 4, 5, dtype=DOUBLE)
    guidance = torch.full((1, 3, 8, 10), 0.7, dtype=DOUBLE)
    with torch.no_grad():
        uniform = stage.range_kernel(guidance)
        torch.testing.assert_close(uniform, torch.full_like(uniform, 1 / 49), rtol=0, atol=1e-14)
        sigma = stage.sigma_spatial.item()
        u = torch.linspace(-1, 1, 2 * radius + 1, dtype=DOUBLE)
        gauss = torch.exp(-(u[:, None] ** 2 + u[None, :] ** 2) / (2 * sigma**2))
        gauss = (gauss / gauss.sum()).expand(3, 1, 7, 7)
        high = F.interpolate(d, scale_factor=s, mode="bicubic", align_corners=False)
        expected = F.conv2d(F.pad(high, [radius] * 4, mode="reflect"), gauss, groups=3)
        torch.testing.assert_close(stage(d, guidance), expected, rtol=0, atol=1e-12)


def test_a_constant_feature_stays_constant_for_any_guidance_without_the_fixups():
    stack = zero_fixups(randomise(FeatUpJBU(2, scale_factor=8).to(DOUBLE)))
    d = torch.tensor([1.5, -0.25], dtype=DOUBLE).reshape(1, 2, 1, 1).expand(1, 2, 3, 4)
    out = stack(d, torch.randn(1, 3, 24, 32, dtype=DOUBLE))
    torch.testing.assert_close(out, d[:, :, :1, :1].expand_as(out), rtol=0, atol=1e-12)


def test_the_kernel_before_its_fixup_is_normalised_and_the_default_sigma_is_one():
    stage = FeatUpJBUStage(2).eval()
    assert stage.range_temp.item() == 0.0 and stage.sigma_spatial.item() == 1.0
    spatial = stage.spatial_kernel().flatten()
    assert spatial[24].item() == 1.0 and spatial[0].item() == pytest.approx(math.exp(-1.0))  # centre, corner
    combined = stage.range_kernel(torch.randn(1, 3, 6, 6)) * stage.spatial_kernel()
    assert (combined.sum(1) > 0).all()


# -- (c) gradients ----------------------------------------------------------------------------


def _gradcheck(module, args, fast):
    names = [n for n, _ in module.named_parameters()]
    params = [p.detach().clone().requires_grad_() for _, p in module.named_parameters()]

    def fn(*values):
        return torch.func.functional_call(module, dict(zip(names, values[len(args) :])), tuple(values[: len(args)]))

    assert torch.autograd.gradcheck(fn, (*args, *params), fast_mode=fast)


def test_gradcheck_float64_stage():
    stage = randomise(FeatUpJBUStage(2, key_dim=3, radius=1).to(DOUBLE))
    _gradcheck(stage, inputs((1, 2, 2, 3), (1, 3, 4, 6)), fast=False)


def test_gradcheck_float64_stack():
    stack = randomise(FeatUpJBU(2, scale_factor=4, key_dim=3, radius=1).to(DOUBLE))
    _gradcheck(stack, inputs((1, 2, 1, 2), (1, 3, 4, 8)), fast=True)


# -- (d) checkpoints ----------------------------------------------------------------------------


def official_stage_keys(guide: int = 3, key_dim: int = 32, radius: int = 3) -> list[tuple[str, tuple[int, ...]]]:
    """``JBULearnedRange``'s state dict, in its order: parameters (``range_temp``,
    ``sigma_spatial``), then ``range_proj`` and ``fixup_proj`` (Conv, GELU, Dropout2d, Conv)."""
    taps = (2 * radius + 1) ** 2
    return [
        ("range_temp", ()),
        ("sigma_spatial", ()),
        ("range_proj.0.weight", (key_dim, guide, 1, 1)),
        ("range_proj.0.bias", (key_dim,)),
        ("range_proj.3.weight", (key_dim, key_dim, 1, 1)),
        ("range_proj.3.bias", (key_dim,)),
        ("fixup_proj.0.weight", (taps, guide + taps, 1, 1)),
        ("fixup_proj.0.bias", (taps,)),
        ("fixup_proj.3.weight", (taps, taps, 1, 1)),
        ("fixup_proj.3.bias", (taps,)),
    ]


def official_stack_state_dict(feat_dim: int) -> OrderedDict[str, torch.Tensor]:
    """``JBUStack(feat_dim)``'s state dict (``up1`` ... ``up4``, then ``fixup_proj`` =
    Dropout2d, Conv), random values."""
    generator = torch.Generator().manual_seed(0)
    keys = [(f"up{k}.{name}", shape) for k in range(1, 5) for name, shape in official_stage_keys()]
    keys += [("fixup_proj.1.weight", (feat_dim, feat_dim, 1, 1)), ("fixup_proj.1.bias", (feat_dim,))]
    return OrderedDict((name, torch.randn(shape, generator=generator)) for name, shape in keys)


def test_the_official_stack_state_dict_loads_key_for_key():
    official = official_stack_state_dict(384)
    stack = resamplers.create_upsampler("featup_jbu", channels=384)
    assert [(k, tuple(v.shape)) for k, v in stack.state_dict().items()] == [
        (k, tuple(v.shape)) for k, v in official.items()
    ]
    stack.load_state_dict(official, strict=True)
    for name, value in stack.state_dict().items():
        assert torch.equal(value, official[name]), name
    assert count_parameters(stack) == 172_772  # 4 x 6,233 + 384^2 + 384


def test_the_official_stage_state_dict_loads_key_for_key():
    stage = resamplers.create_upsampler("featup_jbu_stage", channels=8)
    assert [(k, tuple(v.shape)) for k, v in stage.state_dict().items()] == official_stage_keys()
    assert count_parameters(stage) == 6_233


def test_a_hub_checkpoint_loads_through_its_upsampler_prefix():
    official = official_stack_state_dict(16)
    checkpoint = {
        "model.0.weight": torch.zeros(2),
        **{f"upsampler.{k}": v for k, v in official.items()},
        "downsampler.kernel": torch.zeros(3),
        "scale_net.net.weight": torch.zeros(1, 16, 1, 1),
    }
    stack = FeatUpJBU(16)
    stack.load_state_dict(featup_checkpoint_state_dict(checkpoint), strict=True)
    assert torch.equal(stack.fixup_proj[1].weight, official["fixup_proj.1.weight"])
    with pytest.raises(ValueError, match="`state_dict`.*'upsampler.'"):
        featup_checkpoint_state_dict({"model.0.weight": torch.zeros(1)})


def test_in_a_pair_the_guide_is_the_encoder_feature_and_the_keys_stay_official():
    pair = resamplers.create_pair("featup_jbu", channels=16)
    assert pair.upsampler.guide_channels == 16 and pair.upsampler.num_stages == 1
    assert next(iter(pair.state_dict())) == "up1.range_temp"  # stored without the `upsampler.` prefix
    x = torch.randn(2, 16, 8, 6)
    y, guide = pair.down(x)
    assert pair.up(y, guide).shape == x.shape
    stage_pair = resamplers.create_pair("featup_jbu_stage", channels=8)
    assert [k for k, _ in official_stage_keys(guide=8)] == list(stage_pair.state_dict())


# -- arguments ----------------------------------------------------------------------------------


def test_arguments_are_checked_with_errors_naming_them():
    with pytest.raises(ValueError, match="`scale_factor`.*power of two"):
        FeatUpJBU(8, scale_factor=6)
    with pytest.raises(ValueError, match="`scale_factor`"):
        FeatUpJBU(8, scale_factor=1)
    with pytest.raises(ValueError, match="`radius`"):
        FeatUpJBUStage(8, radius=0)
    with pytest.raises(ValueError, match="`key_dim`"):
        FeatUpJBU(8, key_dim=0)
    with pytest.raises(ValueError, match="`guide_channels`"):
        FeatUpJBUStage(8, guide_channels=0)
    with pytest.raises(TypeError, match="`any_guidance_size`"):
        FeatUpJBU(8, any_guidance_size=1)  # type: ignore[arg-type]
    stage = FeatUpJBUStage(8)
    d = torch.randn(1, 8, 3, 4)
    with pytest.raises(ValueError, match="`guidance`.*3 channels"):
        stage(d, torch.randn(1, 4, 6, 8))
    with pytest.raises(ValueError, match="`guidance`.*6 x 8"):
        stage(d, torch.randn(1, 3, 6, 9))
    with pytest.raises(ValueError, match="`guidance`.*batch size 1"):
        stage(d, torch.randn(2, 3, 6, 8))
    with pytest.raises(ValueError, match="`guidance`.*dtype"):
        stage(d, torch.randn(1, 3, 6, 8, dtype=DOUBLE))
    with pytest.raises(ValueError, match="`d`.*reflect padding by radius 3.*>= 4"):
        stage(torch.randn(1, 8, 1, 4), torch.randn(1, 3, 2, 8))
    with pytest.raises(ValueError, match="`d`.*reflect padding"):
        FeatUpJBU(8)(torch.randn(1, 8, 1, 1), torch.randn(1, 3, 16, 16))


def test_training_mode_applies_the_official_dropout():
    stack = FeatUpJBU(4, scale_factor=2).train()
    d, image = torch.randn(1, 4, 4, 4), torch.randn(1, 3, 8, 8)
    torch.manual_seed(0)
    a = stack(d, image)
    torch.manual_seed(1)
    b = stack(d, image)
    assert not torch.equal(a, b)
    stack.eval()
    assert torch.equal(stack(d, image), stack(d, image))
