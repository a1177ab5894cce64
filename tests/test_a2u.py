"""A2U: the kernel generator against a per-sample reference written from the spec, the two
reassemblies against the official ops' formulas, limits, parameter counts and checkpoint keys."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from conftest import assert_close
from reference import a2u_down_loop, a2u_kernels_reference, a2u_up_loop
from resamplers import create_downsampler, create_pair
from resamplers.functional import a2u_downsample, a2u_upsample, adaptive_avg_pool2d, dynamic_depthwise_conv2d
from resamplers.functional.adaptive_pool import _pooling_matrix

OFFICIAL_KEYS = {
    "bnu.0.weight", "bnu.0.bias", "bnv.0.weight", "bnv.0.bias",
    "bconv_UP.1.weight", "bconv_UP.1.bias", "bconv_DP.1.weight", "bconv_DP.1.bias",
    "bconv_U.1.weight", "bconv_U.1.bias", "bconv_V.1.weight", "bconv_V.1.bias",
}  # fmt: skip


def official_state_dict(c: int, s: int, g: int, share: bool, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights with the official ``InterChannelUpDown`` keys and shapes (rank 1)."""
    gen = torch.Generator().manual_seed(seed)
    r = 1 if share else c
    taps = 4 * s * s * g

    def rand(*shape: int, scale: float = 0.3) -> torch.Tensor:
        return torch.randn(*shape, generator=gen, dtype=torch.float64) * scale

    return {
        "bnu.0.weight": 1 + rand(c), "bnu.0.bias": rand(c), "bnv.0.weight": 1 + rand(c), "bnv.0.bias": rand(c),
        "bconv_UP.1.weight": rand(taps, c, 1, 1), "bconv_UP.1.bias": rand(taps),
        "bconv_DP.1.weight": rand(taps, c, 1, 1), "bconv_DP.1.bias": rand(taps),
        "bconv_U.1.weight": rand(r, c, 1, 1), "bconv_U.1.bias": rand(r),
        "bconv_V.1.weight": rand(r, c, 1, 1), "bconv_V.1.bias": rand(r),
    }  # fmt: skip


def _pair(c: int, **kwargs) -> torch.nn.Module:
    return create_pair("a2u", channels=c, **kwargs).double().eval()


class TestParametersAndCheckpoints:
    @pytest.mark.parametrize("c", [32, 64, 96])
    def test_parameter_counts(self, c):
        share = create_pair("a2u", channels=c)
        unshare = create_pair("a2u", channels=c, share=False)
        assert sum(p.numel() for p in share.parameters()) == 78 * c + 74
        assert sum(p.numel() for p in unshare.parameters()) == 2 * c * c + 78 * c + 72
        grouped = create_pair("a2u", channels=c, groups=2, up_kernel=5)
        r, taps = 1, 4 * 25 * 2
        assert sum(p.numel() for p in grouped.parameters()) == 4 * c + 2 * (taps * c + taps) + 2 * (c * r + r)

    @pytest.mark.parametrize("share", [True, False])
    def test_official_state_dict_loads_directly(self, share):
        pair = _pair(32, share=share)
        state = official_state_dict(32, 3, 1, share)
        assert set(pair.state_dict()) == OFFICIAL_KEYS
        pair.load_state_dict(state, strict=True)
        assert torch.equal(pair.bconv_U[1].weight, state["bconv_U.1.weight"])

    def test_released_defaults_and_initialisation(self):
        torch.manual_seed(0)
        pair = create_pair("a2u", channels=64)
        assert (pair.up_kernel, pair.encoder_kernel, pair.groups, pair.share, pair.down_kernel) == (3, 6, 1, True, 6)
        gain = torch.nn.init.calculate_gain("leaky_relu", 0.01)
        expected_std = gain * (2.0 / (64 + 36)) ** 0.5  # Xavier normal, fan_in 64, fan_out 36
        assert abs(pair.bconv_UP[1].weight.std().item() - expected_std) < 0.02
        assert torch.equal(pair.bconv_UP[1].bias, torch.zeros(36))

    def test_group_norm_divisibility_is_a_clear_error(self):
        with pytest.raises(ValueError, match="`channels`.*multiple of 32"):
            create_pair("a2u", channels=48, norm_groups=32)
        assert create_pair("a2u", channels=12, norm_groups=4).bnu[0].num_groups == 4
        # default: the official 32 groups where they fit, else the largest power of two dividing C
        assert create_pair("a2u", channels=64).bnu[0].num_groups == 32
        assert create_pair("a2u", channels=24).bnu[0].num_groups == 8
        assert create_pair("a2u", channels=160).bnu[0].num_groups == 32
        with pytest.raises(ValueError, match="`groups`"):
            create_pair("a2u", channels=32, groups=3)
        with pytest.raises(ValueError, match="`up_kernel`"):
            create_pair("a2u", channels=32, up_kernel=2)
        with pytest.raises(ValueError, match="`scale_factor`"):
            create_pair("a2u", channels=32, scale_factor=4)


CONFIGS = [(True, 3, 6, 1), (False, 3, 6, 1), (True, 3, 5, 1), (False, 1, 4, 1), (True, 3, 6, 2), (False, 3, 4, 4)]


@pytest.mark.parametrize("share, s, k, g", CONFIGS, ids=[f"share{int(a)}-s{b}-k{c}-g{d}" for a, b, c, d in CONFIGS])
class TestAgainstSpec:
    def test_kernels_match_per_sample_reference(self, share, s, k, g):
        c = 32
        state = official_state_dict(c, s, g, share, seed=s + k + g)
        x = torch.randn(3, c, 10, 8, dtype=torch.float64)
        for official_order in (False, True):
            pair = _pair(c, up_kernel=s, encoder_kernel=k, groups=g, share=share, official_group_order=official_order)
            pair.load_state_dict(state)
            with torch.no_grad():
                down, up = pair.kernels(x)
            ref_down, ref_up = a2u_kernels_reference(x, state, s, k, g, share, 32, kernel_major=official_order)
            assert_close(down, ref_down)
            assert_close(up, ref_up)

    def test_reassemblies_match_the_official_op_formulas(self, share, s, k, g):
        c = 32
        pair = _pair(c, up_kernel=s, encoder_kernel=k, groups=g, share=share)
        pair.load_state_dict(official_state_dict(c, s, g, share, seed=1))
        x = torch.randn(1, c, 6, 4, dtype=torch.float64)
        d = torch.randn(1, 2 * g, 3, 2, dtype=torch.float64)  # decoder width unrelated to the encoder's
        with torch.no_grad():
            y, guide = pair.down(x)
            z = pair.up(d, guide)
        assert_close(y, a2u_down_loop(x, guide.tensors["down_kernels"], 2 * s, g))
        assert_close(z, a2u_up_loop(d, guide.tensors["up_kernels"], s, g))
        assert torch.equal(guide.skip, x)


class TestLimitsAndSemantics:
    def test_zero_weights_give_box_kernels_and_box_filters(self):
        pair = _pair(32)
        for p in pair.parameters():
            torch.nn.init.zeros_(p)
        x = torch.randn(2, 32, 8, 6, dtype=torch.float64)
        down, up = pair.kernels(x)
        assert_close(down, torch.full_like(down, 1 / 36))
        assert_close(up, torch.full_like(up, 1 / 9))
        y, guide = pair.down(x)
        # zero padding, no renormalisation at the border: a box filter counting the padding
        assert_close(y, F.avg_pool2d(x, 6, stride=2, padding=2, count_include_pad=True))
        d = torch.randn(2, 5, 4, 3, dtype=torch.float64)
        box = F.avg_pool2d(d, 3, stride=1, padding=1, count_include_pad=True)
        assert_close(pair.up(d, guide), F.interpolate(box, scale_factor=2.0, mode="nearest"))

    def test_kernels_are_normalised(self):
        pair = _pair(32, groups=2)
        pair.load_state_dict(official_state_dict(32, 3, 2, True, seed=4))
        down, up = pair.kernels(torch.randn(2, 32, 6, 6, dtype=torch.float64))
        assert_close(down.reshape(2, 2, 36, 3, 3).sum(2), torch.ones(2, 2, 3, 3, dtype=torch.float64))
        assert_close(up.reshape(2, 2, 9, 6, 6).sum(2), torch.ones(2, 2, 6, 6, dtype=torch.float64))

    def test_official_group_order_differs_only_for_several_groups(self):
        x = torch.randn(2, 32, 6, 8, dtype=torch.float64)
        for g, same in ((1, True), (2, False)):
            state = official_state_dict(32, 3, g, True, seed=5)
            kernels = []
            for order in (False, True):
                pair = _pair(32, groups=g, official_group_order=order)
                pair.load_state_dict(state)
                kernels.append(pair.kernels(x)[1])
            assert torch.allclose(kernels[0], kernels[1]) == same

    def test_batch_is_vectorised_without_mixing_samples(self):
        pair = _pair(32, share=False)
        pair.load_state_dict(official_state_dict(32, 3, 1, False, seed=6))
        x = torch.randn(3, 32, 6, 4, dtype=torch.float64)
        together = pair.kernels(x)
        for i in range(3):
            alone = pair.kernels(x[i : i + 1])
            assert_close(alone[0], together[0][i : i + 1])
            assert_close(alone[1], together[1][i : i + 1])

    def test_decoder_channels_must_divide_by_groups(self):
        pair = create_pair("a2u", channels=32, groups=4)
        _, guide = pair.down(torch.randn(1, 32, 4, 4))
        assert pair.up(torch.randn(1, 8, 2, 2), guide).shape == (1, 8, 4, 4)
        with pytest.raises(ValueError, match="`d`.*divisible by groups=4"):
            pair.up(torch.randn(1, 6, 2, 2), guide)
        with pytest.raises(ValueError, match="`d`.*2 x 2"):
            pair.up(torch.randn(1, 8, 3, 2), guide)

    def test_downsampler_is_the_pair_down_step(self):
        torch.manual_seed(0)
        pair = create_pair("a2u", channels=32).eval()
        down = create_downsampler("a2u", channels=32).eval()
        down.load_state_dict(pair.state_dict())
        x = torch.randn(2, 32, 6, 4)
        assert torch.equal(down(x), pair.down(x)[0])


class TestFunctional:
    @pytest.mark.parametrize("rank, k, stride, padding", [(1, 6, 2, 2), (4, 5, 2, 2), (4, 3, 1, 1), (1, 2, 2, 0)])
    def test_dynamic_depthwise_conv_is_a_per_sample_convolution(self, rank, k, stride, padding):
        x = torch.randn(3, 4, 9, 8, dtype=torch.float64)
        filters = torch.randn(3, rank, k, k, dtype=torch.float64)
        out = dynamic_depthwise_conv2d(x, filters, stride, padding)
        for i in range(3):
            weight = filters[i].expand(4, k, k)[:, None]
            assert_close(out[i : i + 1], F.conv2d(x[i : i + 1], weight, stride=stride, padding=padding, groups=4))

    def test_dynamic_depthwise_conv_errors(self):
        with pytest.raises(ValueError, match="`filters`"):
            dynamic_depthwise_conv2d(torch.randn(2, 4, 6, 6), torch.randn(2, 3, 3, 3))
        with pytest.raises(ValueError, match="`padding`"):
            dynamic_depthwise_conv2d(torch.randn(2, 4, 6, 6), torch.randn(2, 1, 3, 3), padding=3)

    def test_reassembly_functions_check_their_arguments(self):
        with pytest.raises(ValueError, match="`kernel_size`.*even"):
            a2u_downsample(torch.randn(1, 2, 4, 4), torch.rand(1, 25, 2, 2), 5)
        with pytest.raises(ValueError, match="`kernels`.*2 x 2"):
            a2u_downsample(torch.randn(1, 2, 4, 4), torch.rand(1, 36, 2, 3), 6)
        with pytest.raises(ValueError, match="`masks`"):
            a2u_upsample(torch.randn(1, 2, 2, 2), torch.rand(1, 9, 4, 5), 3)

    @pytest.mark.parametrize("size_in, size_out", [((7, 5), 6), ((13, 9), 5), ((6, 6), 6), ((3, 11), 4), ((1, 2), 3)])
    def test_adaptive_pooling_matrices_equal_torch_windows(self, size_in, size_out):
        x = torch.randn(2, 3, *size_in, dtype=torch.float64)
        rows = _pooling_matrix(size_in[0], size_out, x)
        cols = _pooling_matrix(size_in[1], size_out, x)
        expected = F.adaptive_avg_pool2d(x, size_out)
        assert_close(rows @ x @ cols.T, expected)
        assert_close(adaptive_avg_pool2d(x, size_out), expected)
