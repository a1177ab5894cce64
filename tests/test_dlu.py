"""DLU: the module against a reference written from the paper's pipeline, its closed-form
limits, gradients, official checkpoints and the published parameter figures."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from conftest import assert_close
from reference import dynamic_sample_loop, reassemble_loop
from resamplers import create_upsampler
from resamplers.functional import carafe
from resamplers.upsampling import CARAFEPack, DLUPack

# (scale, up_kernel, up_group, encoder_kernel, encoder_dilation, size)
CONFIGS = [
    (2, 5, 1, 3, 1, (4, 5)),
    (3, 3, 2, 5, 2, (3, 4)),
    (1, 5, 1, 3, 1, (4, 4)),
    (4, 7, 1, 1, 1, (2, 3)),
    (2, 3, 2, 3, 1, (1, 4)),
    (2, 3, 1, 3, 1, (3, 1)),
]


def _official_state(c, cm, s, k, groups, k_e, seed=0, offset_std=0.3, space_std=0.3):
    """A state dict with the official DLUPack's keys and shapes, random 'trained' values."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape, std=0.3):
        return torch.randn(*shape, generator=g, dtype=torch.float64) * std

    return {
        "channel_compressor.weight": rand(cm, c, 1, 1),
        "channel_compressor.bias": rand(cm),
        "kernel_space_generator.weight": rand(k * k * groups, cm, k_e, k_e, std=space_std),
        "kernel_space_generator.bias": rand(k * k * groups, std=space_std),
        "conv_offset.weight": rand(2 * groups * s * s, cm, k_e, k_e, std=offset_std),
        "conv_offset.bias": rand(2 * groups * s * s, std=offset_std),
    }


def _bilinear_border(space: torch.Tensor, row: torch.Tensor, col: torch.Tensor) -> torch.Tensor:
    """``space`` (``N x T x H x W``) at real positions ``row``, ``col`` (``N x Ho x Wo``), bilinear,
    positions clamped to the image (replicated border); differentiable in all three."""
    n, t, h, w = space.shape
    row, col = row.clamp(0, h - 1), col.clamp(0, w - 1)
    r0 = row.detach().floor().clamp(max=max(h - 2, 0)).long()
    c0 = col.detach().floor().clamp(max=max(w - 2, 0)).long()
    r1, c1 = (r0 + 1).clamp(max=h - 1), (c0 + 1).clamp(max=w - 1)
    fr, fc = (row - r0).unsqueeze(1), (col - c0).unsqueeze(1)
    flat = space.reshape(n, t, h * w)

    def at(r, c):
        index = (r * w + c).reshape(n, 1, -1).expand(n, t, -1)
        return flat.gather(2, index).reshape(n, t, *row.shape[1:])

    return (1 - fr) * ((1 - fc) * at(r0, c0) + fc * at(r0, c1)) + fr * ((1 - fc) * at(r1, c0) + fc * at(r1, c1))


def _reference(x, state, s, k, groups, k_e, d):
    """DLU written from the formulas with plain torch ops (no library code)."""
    n, c, h, w = x.shape
    pad = (k_e - 1) * d // 2
    z = F.conv2d(x, state["channel_compressor.weight"], state["channel_compressor.bias"])
    logits = F.conv2d(
        z, state["kernel_space_generator.weight"], state["kernel_space_generator.bias"], padding=pad, dilation=d
    )
    space = logits.reshape(n, groups, k * k, h, w).softmax(2)  # n G k^2 h w
    offsets = F.conv2d(z, state["conv_offset.weight"], state["conv_offset.bias"], padding=pad, dilation=d)
    # channel (e*G + g)*s*s + i*s + j at (h, w) -> component e of group g at output (s*h + i, s*w + j)
    offsets = offsets.reshape(n, 2, groups, s, s, h, w).permute(0, 1, 2, 5, 3, 6, 4).reshape(n, 2, groups, s * h, s * w)
    base_row = (torch.arange(s * h) // s).to(x.dtype).view(1, -1, 1)
    base_col = (torch.arange(s * w) // s).to(x.dtype).view(1, 1, -1)
    kernels = torch.stack(
        [
            _bilinear_border(space[:, g], base_row + offsets[:, 1, g], base_col + offsets[:, 0, g])
            for g in range(groups)
        ],
        dim=1,
    )  # n G k^2 sh sw
    # CARAFE: zero-padded k x k window around input pixel (Y // s, X // s), tap a*k + b
    windows = F.unfold(x, k, padding=(k - 1) // 2).reshape(n, groups, c // groups, k * k, h, w)
    windows = windows.repeat_interleave(s, dim=4).repeat_interleave(s, dim=5)
    return (windows * kernels.unsqueeze(2)).sum(3).reshape(n, c, s * h, s * w)


def _module(c, cm, s, k, groups, k_e, d, state):
    up = DLUPack(c, s, k, groups, k_e, d, cm).double()
    up.load_state_dict(state, strict=True)
    return up


class TestAgainstReference:
    @pytest.mark.parametrize("s, k, groups, k_e, d, size", CONFIGS)
    def test_output_and_gradients(self, s, k, groups, k_e, d, size):
        c, cm = 4 * groups, 6
        state = _official_state(c, cm, s, k, groups, k_e, seed=s + k)
        up = _module(c, cm, s, k, groups, k_e, d, state)
        x = torch.randn(2, c, *size, dtype=torch.float64)
        ref_state = {name: t.clone().requires_grad_() for name, t in state.items()}
        x_ours, x_ref = x.clone().requires_grad_(), x.clone().requires_grad_()
        ours = up(x_ours)
        ref = _reference(x_ref, ref_state, s, k, groups, k_e, d)
        assert_close(ours, ref)
        upstream = torch.randn_like(ref)
        ours.backward(upstream)
        ref.backward(upstream)
        assert_close(x_ours.grad, x_ref.grad)
        for name, p in up.named_parameters():
            assert_close(p.grad, ref_state[name].grad)

    def test_output_against_slow_loops(self):
        """The same pipeline through the tests' slow loops (sampler and reassembly)."""
        s, k, groups, c, cm = 2, 3, 2, 4, 5
        state = _official_state(c, cm, s, k, groups, 3, seed=7, offset_std=0.6)
        up = _module(c, cm, s, k, groups, 3, 1, state)
        x = torch.randn(1, c, 3, 4, dtype=torch.float64)
        with torch.no_grad():
            z = up.channel_compressor(x)
            kernels = dynamic_sample_loop(up.kernel_space(z), up.offsets(z), s, groups)
            assert up.offsets(z).abs().max() > 1.5  # positions reach past the border
            assert_close(up.kernels(x), kernels)
            assert_close(up(x), reassemble_loop(x, kernels, k, groups, up=s))


class TestClosedForms:
    def test_zero_offsets_nearest_upsample_the_kernel_space(self):
        s, k = 3, 5
        state = _official_state(8, 6, s, k, 1, 3, seed=1, offset_std=0.0)
        up = _module(8, 6, s, k, 1, 3, 1, state)
        x = torch.randn(2, 8, 4, 5, dtype=torch.float64)
        with torch.no_grad():
            space = up.kernel_space(up.channel_compressor(x))
            nearest = F.interpolate(space, scale_factor=s, mode="nearest")
            assert_close(up.kernels(x), nearest)
            assert_close(up(x), carafe(x, nearest, k, 1, s))

    @pytest.mark.parametrize("s, k", [(2, 5), (3, 3), (1, 7)])
    def test_uniform_kernel_space_is_box_filter_then_nearest_for_any_offsets(self, s, k):
        state = _official_state(6, 4, s, k, 1, 3, seed=2, offset_std=1.0)
        state["kernel_space_generator.weight"].zero_()
        state["kernel_space_generator.bias"].zero_()
        up = _module(6, 4, s, k, 1, 3, 1, state)
        x = torch.randn(2, 6, 5, 4, dtype=torch.float64)
        box = F.avg_pool2d(x, k, stride=1, padding=k // 2, count_include_pad=True)
        with torch.no_grad():
            assert_close(up(x), F.interpolate(box, scale_factor=s, mode="nearest"))

    def test_one_pixel_offset_reads_the_right_neighbour_border_replicated(self):
        s, k, c = 2, 3, 4
        state = _official_state(c, 5, s, k, 1, 3, seed=3)
        state["conv_offset.weight"].zero_()
        state["conv_offset.bias"].zero_()
        state["conv_offset.bias"][: s * s] = 1.0  # x components: one pixel to the right
        up = _module(c, 5, s, k, 1, 3, 1, state)
        x = torch.randn(1, c, 3, 4, dtype=torch.float64)
        with torch.no_grad():
            space = up.kernel_space(up.channel_compressor(x))
            shifted = torch.cat([space[..., 1:], space[..., -1:]], dim=-1)
            assert_close(up.kernels(x), F.interpolate(shifted, scale_factor=s, mode="nearest"))

    def test_kernels_sum_to_one_per_group(self):
        s, k, groups = 2, 5, 2
        up = _module(8, 6, s, k, groups, 3, 1, _official_state(8, 6, s, k, groups, 3, seed=4, offset_std=1.0))
        kernels = up.kernels(torch.randn(2, 8, 4, 3, dtype=torch.float64))
        assert (kernels >= 0).all()
        assert_close(kernels.reshape(2, groups, k * k, 8, 6).sum(2), torch.ones(2, groups, 8, 6, dtype=torch.float64))

    def test_groups_read_their_own_offsets_and_channel_blocks(self):
        s, k, groups, c = 2, 3, 2, 4
        state = _official_state(c, 5, s, k, groups, 3, seed=5, offset_std=0.0)
        up = _module(c, 5, s, k, groups, 3, 1, state)
        x = torch.randn(1, c, 4, 4, dtype=torch.float64)
        before = up(x).detach()
        with torch.no_grad():
            up.conv_offset.bias[(0 * groups + 1) * s * s : (0 * groups + 2) * s * s] = 0.7  # x of group 1
            after = up(x)
        assert_close(after[:, :2], before[:, :2])  # group 0: channels 0-1, unchanged
        assert (after[:, 2:] - before[:, 2:]).abs().max() > 1e-3


class TestGradients:
    @pytest.mark.parametrize("s, groups", [(2, 1), (3, 2)])
    def test_gradcheck_input_and_parameters(self, s, groups):
        c, cm, k = 2 * groups, 3, 3
        up = _module(c, cm, s, k, groups, 3, 1, _official_state(c, cm, s, k, groups, 3, seed=s, offset_std=0.4))
        names = [name for name, _ in up.named_parameters()]
        params = tuple(up.get_parameter(name).detach().requires_grad_() for name in names)
        x = torch.randn(1, c, 3, 2, dtype=torch.float64, requires_grad=True)

        def fn(x, *values):
            return torch.func.functional_call(up, dict(zip(names, values)), (x,))

        assert torch.autograd.gradcheck(fn, (x, *params))


class TestModule:
    def test_state_dict_keys_are_the_official_keys(self):
        assert set(DLUPack(16).state_dict()) == {
            "channel_compressor.weight",
            "channel_compressor.bias",
            "kernel_space_generator.weight",
            "kernel_space_generator.bias",
            "conv_offset.weight",
            "conv_offset.bias",
        }

    @pytest.mark.parametrize("s, k, groups, k_e", [(2, 5, 1, 3), (4, 3, 2, 5)])
    def test_official_state_dict_loads_key_for_key(self, s, k, groups, k_e):
        state = _official_state(8, 6, s, k, groups, k_e)
        up = create_upsampler(
            "dlu", channels=8, scale_factor=s, up_kernel=k, up_group=groups, encoder_kernel=k_e, compressed_channels=6
        ).double()
        result = up.load_state_dict(state, strict=True)
        assert not result.missing_keys and not result.unexpected_keys
        ours = up.state_dict()
        assert list(ours) == list(state)  # the official module's registration order
        for name, value in state.items():
            assert torch.equal(ours[name], value)

    def test_official_initialisation(self):
        torch.manual_seed(0)
        up = DLUPack(32, 2)
        assert torch.count_nonzero(up.conv_offset.weight) == 0 and torch.count_nonzero(up.conv_offset.bias) == 0
        assert torch.count_nonzero(up.channel_compressor.bias) == 0
        assert torch.count_nonzero(up.kernel_space_generator.bias) == 0
        assert up.kernel_space_generator.weight.std() < 0.002
        bound = (6 / (32 + 64)) ** 0.5  # Xavier-uniform, fan_in 32, fan_out 64
        assert up.channel_compressor.weight.abs().max() <= bound
        kernels = up.kernels(torch.randn(1, 32, 5, 6))
        assert (kernels * 25 - 1).abs().max() < 0.2  # nearly uniform

    def test_offset_init_std(self):
        torch.manual_seed(0)
        up = DLUPack(8, 2, offset_init_std=0.01)
        assert 0.005 < up.conv_offset.weight.std() < 0.02
        assert torch.count_nonzero(up.conv_offset.bias) == 0
        assert "offset_init_std=0.01" in repr(up)
        assert "offset_init_std" not in repr(DLUPack(8, 2))

    @pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
    def test_low_precision_kernels_in_input_dtype(self, dtype):
        up = DLUPack(8, offset_init_std=0.01).to(dtype)
        x = torch.randn(1, 8, 4, 4, dtype=dtype)
        assert up.kernels(x).dtype == dtype
        assert up(x).dtype == dtype

    @pytest.mark.parametrize("size", [(1, 1), (1, 5), (4, 1)])
    def test_sizes_of_one_are_finite_with_finite_gradients(self, size):
        up = _module(4, 3, 2, 3, 1, 3, 1, _official_state(4, 3, 2, 3, 1, 3, offset_std=1.0)).double()
        x = torch.randn(1, 4, *size, dtype=torch.float64, requires_grad=True)
        y = up(x)
        y.sum().backward()
        assert torch.isfinite(y).all() and torch.isfinite(x.grad).all()
        assert all(torch.isfinite(p.grad).all() for p in up.parameters())

    @pytest.mark.parametrize(
        "kwargs, error, argument",
        [
            (dict(up_kernel=4), ValueError, "up_kernel"),
            (dict(up_group=3), ValueError, "up_group"),
            (dict(encoder_kernel=0), ValueError, "encoder_kernel"),
            (dict(encoder_kernel=2), ValueError, "encoder_kernel"),
            (dict(encoder_dilation=0), ValueError, "encoder_dilation"),
            (dict(scale_factor=0), ValueError, "scale_factor"),
            (dict(compressed_channels=0), ValueError, "compressed_channels"),
            (dict(offset_init_std=-0.1), ValueError, "offset_init_std"),
            (dict(offset_init_std=float("nan")), ValueError, "offset_init_std"),
            (dict(offset_init_std="0.1"), TypeError, "offset_init_std"),
        ],
    )
    def test_constructor_errors_name_the_argument(self, kwargs, error, argument):
        with pytest.raises(error, match=f"`{argument}`"):
            DLUPack(8, **kwargs)


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class TestParameterCounts:
    @pytest.mark.parametrize("c, s", [(256, 2), (64, 4), (256, 16)])
    def test_formula_and_carafe_at_the_same_settings(self, c, s):
        k, k_e, cm = 5, 3, 64
        compressor = c * cm + cm
        expected = compressor + (cm * k * k * k_e**2 + k * k) + (cm * 2 * s * s * k_e**2 + 2 * s * s)
        carafe_params = compressor + cm * s * s * k * k * k_e**2 + s * s * k * k
        assert _count(create_upsampler("dlu", channels=c, scale_factor=s)) == expected
        assert _count(CARAFEPack(c, s)) == carafe_params
        assert expected < carafe_params

    def test_defaults_at_fpn_width(self):
        assert _count(create_upsampler("dlu", channels=256)) == 35_489
        assert _count(create_upsampler("carafe", channels=256)) == 74_148

    def test_readme_additional_model_size(self):
        """README: CARAFE +1.2MB, DLU +0.6MB over bilinear in the FPN (coco_custom_dlu.py):
        four upsamplers (three top-down, one for the extra level) at C = 256, s = 2, float32."""
        megabytes = {name: 4 * _count(create_upsampler(name, channels=256)) * 4 / 1e6 for name in ("carafe", "dlu")}
        assert round(megabytes["carafe"], 1) == 1.2
        assert round(megabytes["dlu"], 1) == 0.6

    @pytest.mark.parametrize("c", [64, 128, 256])
    def test_paper_91_percent_fewer_parameters_at_16x(self, c):
        dlu = _count(create_upsampler("dlu", channels=c, scale_factor=16))
        carafe_params = _count(create_upsampler("carafe", channels=c, scale_factor=16))
        assert 0.91 <= 1 - dlu / carafe_params < 0.92
