"""The local pools (registered downsamplers) against loop references and closed forms."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import pool_reference as ref
from conftest import assert_close
from resamplers import create_downsampler
from resamplers.functional import (
    avgmax_pool2d,
    blur_pool2d,
    catavgmax_pool2d,
    gem_pool2d,
    lp_pool2d,
    median_pool2d,
    mixed_pool2d,
    soft_pool2d,
    stochastic_pool2d,
    window_taps,
)

# (kernel, stride, padding, input size): non-overlapping, overlapping (3/2 and 3/1),
# larger stride than window, odd and non-square inputs.
WINDOWS = [(2, 2, 0, (6, 5)), (3, 2, 1, (7, 8)), (3, 1, 1, (4, 5)), (2, 3, 0, (8, 7)), (4, 2, 2, (5, 6))]
WINDOW_IDS = [f"k{k}s{s}p{p}" for k, s, p, _ in WINDOWS]


def _x(size, c=3, n=2, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, *size, generator=g, dtype=dtype)


def _sum_pool(x, k, s, p):
    """Sum pooling as a convolution with ones (zero padding)."""
    c = x.shape[1]
    return F.conv2d(x, torch.ones(c, 1, k, k, dtype=x.dtype), stride=s, padding=p, groups=c)


def test_window_taps_are_the_windows():
    x = _x((5, 6))
    taps = window_taps(x, 3, 2, 1, value=-7.0)
    for n, c, y, xx, values, inside in ref.windows(x, 3, 2, 1):
        expected = [v if ok else -7.0 for v, ok in zip(values, inside)]
        assert taps[n, c, :, y, xx].tolist() == expected


class TestLPPool:
    @pytest.mark.parametrize("k, s, p, size", WINDOWS, ids=WINDOW_IDS)
    @pytest.mark.parametrize("norm_type", [1.0, 2.0, 3.5, math.inf])
    def test_loop_reference(self, k, s, p, size, norm_type):
        x = _x(size)
        assert_close(lp_pool2d(x, norm_type, k, s, p), ref.window_loop(x, k, s, p, ref.lp_reduce(norm_type)))

    def test_p1_is_sum_pooling_of_abs(self):
        x = _x((7, 8))
        assert_close(lp_pool2d(x, 1, 3, 2, 1), _sum_pool(x.abs(), 3, 2, 1))

    def test_p_inf_is_max_pooling_and_the_limit(self):
        x = _x((7, 8))
        assert_close(lp_pool2d(x, math.inf, 3, 2, 1), F.max_pool2d(x.abs(), 3, 2, 1))
        # ||v||_p -> max |v| with ||v||_p <= k^(2/p) max |v|: within 2% at p = 400 for 9 taps.
        big = lp_pool2d(x, 400.0, 3, 2, 1)
        assert (big >= F.max_pool2d(x.abs(), 3, 2, 1) - 1e-12).all()
        assert (big / F.max_pool2d(x.abs(), 3, 2, 1) - 1).abs().max() < 0.02

    def test_negative_inputs_and_fractional_p_give_no_nan(self):
        x = -_x((6, 6)).abs()
        torch_lp = F.lp_pool2d(x, 2.5, 2)
        assert torch.isnan(torch_lp).any()  # torch's x ** p
        ours = lp_pool2d(x, 2.5, 2)
        assert torch.isfinite(ours).all()
        assert_close(ours, F.lp_pool2d(x.abs(), 2.5, 2))

    def test_no_overflow_for_large_p_or_activations(self):
        x = torch.full((1, 1, 4, 4), 1e20)
        assert_close(lp_pool2d(x, 4.0, 2), torch.full((1, 1, 2, 2), 1e20 * 4**0.25))
        y = _x((4, 4), dtype=torch.float32) * 100
        out = lp_pool2d(y, 60.0, 2)
        assert torch.isfinite(out).all()
        assert_close(out, ref.window_loop(y, 2, 2, 0, ref.lp_reduce(60.0)).float())

    def test_all_zero_window_has_zero_output_and_gradient(self):
        x = torch.zeros(1, 1, 4, 4, dtype=torch.float64)
        x[0, 0, 2:, 2:] = torch.tensor([[1.0, -2.0], [0.5, 0.0]])
        x.requires_grad_()
        out = lp_pool2d(x, 2.0, 2)
        out.sum().backward()
        assert out[0, 0, 0, 0] == 0 and torch.isfinite(x.grad).all()
        assert x.grad[0, 0, :2, :2].abs().sum() == 0

    @pytest.mark.parametrize("bad", [0.5, 0, -1, float("nan"), True])
    def test_norm_type_must_be_at_least_one(self, bad):
        with pytest.raises(ValueError, match="`norm_type`"):
            lp_pool2d(_x((4, 4)), bad, 2)
        with pytest.raises(ValueError, match="`norm_type`"):
            create_downsampler("lp", norm_type=bad)


class TestMedianPool:
    @pytest.mark.parametrize("k, s, p, size", [w for w in WINDOWS if w[2] == 0])
    def test_loop_reference_without_padding(self, k, s, p, size):
        x = _x(size)
        assert_close(median_pool2d(x, k, s, p), ref.window_loop(x, k, s, p, ref.lower_median))

    def test_even_window_gives_the_lower_median(self):
        x = torch.tensor([[[[4.0, 1.0, 10.0, 20.0], [3.0, 2.0, 30.0, 40.0]]]])
        assert median_pool2d(x, 2).flatten().tolist() == [2.0, 20.0]  # not 2.5 and 25

    @pytest.mark.parametrize("mode", ["reflect", "replicate", "constant"])
    def test_padding_modes(self, mode):
        x = _x((5, 6))
        padded = F.pad(x, (1, 1, 1, 1), mode=mode)
        expected = ref.window_loop(padded, 3, 2, 0, ref.lower_median)
        assert_close(median_pool2d(x, 3, 2, 1, padding_mode=mode), expected)

    def test_gradient_goes_to_the_selected_element(self):
        x = torch.tensor([[[[4.0, 1.0], [3.0, 2.0]]]], requires_grad=True)
        median_pool2d(x, 2).sum().backward()
        assert x.grad.tolist() == [[[[0.0, 0.0], [0.0, 1.0]]]]

    def test_reflect_needs_padding_below_the_size(self):
        pool = create_downsampler("median", kernel_size=3, stride=1, padding=1)
        with pytest.raises(ValueError, match="`x`.*reflect"):
            pool(torch.randn(1, 1, 1, 5))
        replicate = create_downsampler("median", kernel_size=3, stride=1, padding=1, padding_mode="replicate")
        assert replicate(torch.randn(1, 1, 1, 5)).shape == (1, 1, 1, 5)

    def test_median_filter_removes_impulse_noise(self):
        x = torch.ones(1, 1, 6, 6)
        x[0, 0, 2, 3] = 100.0
        assert torch.equal(median_pool2d(x, 3, 1, 1, padding_mode="replicate"), torch.ones(1, 1, 6, 6))


class TestAvgMax:
    @pytest.mark.parametrize("k, s, p, size", WINDOWS, ids=WINDOW_IDS)
    def test_closed_forms(self, k, s, p, size):
        x = _x(size)
        avg, mx = F.avg_pool2d(x, k, s, p), F.max_pool2d(x, k, s, p)
        assert_close(avgmax_pool2d(x, k, s, p), 0.5 * (avg + mx))
        assert_close(catavgmax_pool2d(x, k, s, p), torch.cat([avg, mx], 1))
        assert_close(create_downsampler("avgmax", kernel_size=k, stride=s, padding=p)(x), 0.5 * (avg + mx))

    def test_padding_never_wins_the_max(self):
        x = -torch.ones(1, 1, 3, 3, dtype=torch.float64)
        assert (catavgmax_pool2d(x, 3, 2, 1)[:, 1] == -1).all()

    def test_catavgmax_doubles_channels_with_or_without_channels(self):
        assert create_downsampler("catavgmax")(torch.randn(1, 3, 4, 4)).shape == (1, 6, 2, 2)
        pool = create_downsampler("catavgmax", channels=3)
        assert pool.out_channels == 6 and pool(torch.randn(1, 3, 4, 4)).shape == (1, 6, 2, 2)


class TestMixedPool:
    def test_formula_and_limits(self):
        x = _x((7, 8))
        avg, mx = F.avg_pool2d(x, 3, 2, 1), F.max_pool2d(x, 3, 2, 1)
        assert_close(mixed_pool2d(x, 0.3, 3, 2, 1), 0.3 * mx + 0.7 * avg)
        assert_close(mixed_pool2d(x, 1.0, 3, 2, 1), mx)
        assert_close(mixed_pool2d(x, 0.0, 3, 2, 1), avg)
        per_channel = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
        assert_close(
            mixed_pool2d(x, per_channel, 3, 2, 1), torch.stack([avg[:, 0], 0.5 * (avg[:, 1] + mx[:, 1]), mx[:, 2]], 1)
        )

    def test_module_learns_a_proportion_in_0_1(self):
        pool = create_downsampler("mixed", channels=3, per_channel=True, init_mix=0.2).double()
        assert pool.mix_logit.shape == (3,)
        assert_close(pool.mix.float(), torch.full((3,), 0.2))  # stored in float32
        x = _x((6, 6))
        pool(x).sum().backward()
        # d out / d a = max - avg >= 0, times sigmoid' > 0.
        assert (pool.mix_logit.grad > 0).all()
        with torch.no_grad():
            pool.mix_logit.fill_(1e3)
        assert_close(pool(x), F.max_pool2d(x, 2))
        layer = create_downsampler("mixed")
        assert layer.mix_logit.shape == () and layer.mix.item() == 0.5

    def test_errors(self):
        with pytest.raises(ValueError, match="`channels`"):
            create_downsampler("mixed", per_channel=True)
        with pytest.raises(ValueError, match="`init_mix`"):
            create_downsampler("mixed", init_mix=1.0)
        with pytest.raises(ValueError, match="`mix`"):
            mixed_pool2d(_x((4, 4)), torch.ones(2), 2)


class TestGeM:
    @pytest.mark.parametrize("k, s, p, size", WINDOWS, ids=WINDOW_IDS)
    def test_loop_reference(self, k, s, p, size):
        x = _x(size).abs() + 0.1
        assert_close(gem_pool2d(x, 3.0, k, s, p), ref.window_loop(x, k, s, p, ref.gem_reduce(3.0, 1e-6)))

    def test_clamps_negative_inputs(self):
        x = _x((6, 6))
        assert_close(gem_pool2d(x, 2.5, 3, 2, 1), ref.window_loop(x, 3, 2, 1, ref.gem_reduce(2.5, 1e-6)))

    def test_limits(self):
        x = _x((6, 6)).abs() + 0.1
        assert_close(gem_pool2d(x, 1.0, 2), F.avg_pool2d(x, 2))
        # (mean v^p)^(1/p) -> max v from below, within a factor 4^(1/p) for 4 taps.
        big = gem_pool2d(x, 300.0, 2)
        mx = F.max_pool2d(x, 2)
        assert (big <= mx + 1e-12).all() and (big >= mx * 4 ** (-1 / 300) - 1e-12).all()

    def test_learnable_p_has_cirtorch_layout_and_gradient(self):
        pool = create_downsampler("gem", channels=3).double()
        assert list(pool.state_dict()) == ["p"] and pool.p.shape == (1,) and pool.p.item() == 3.0
        pool(_x((6, 6)).abs() + 0.1).sum().backward()
        assert pool.p.grad is not None and pool.p.grad.abs().item() > 0
        pool.load_state_dict({"p": torch.tensor([4.0], dtype=torch.float64)})
        assert pool.p.item() == 4.0
        assert create_downsampler("gem", learn_p=False).p.requires_grad is False

    def test_p_is_clamped_to_at_least_one(self):
        pool = create_downsampler("gem").double()
        with torch.no_grad():
            pool.p.fill_(0.25)
        x = _x((4, 4)).abs() + 0.1
        assert_close(pool(x), F.avg_pool2d(x, 2))
        with pytest.raises(ValueError, match="`p`"):
            create_downsampler("gem", p=0.5)

    @pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
    def test_low_precision_is_computed_in_float32(self, dtype):
        # Small activations: eps^3 and x^3 underflow in half precision.
        x = torch.rand(1, 4, 6, 6) * 1e-3
        out = gem_pool2d(x.to(dtype), 3.0, 2)
        assert out.dtype == dtype and torch.isfinite(out).all()
        assert_close(out.float(), gem_pool2d(x.to(dtype).float(), 3.0, 2), dtype=dtype)
        xg = x.to(dtype).requires_grad_()
        gem_pool2d(xg, 3.0, 2).sum().backward()
        assert torch.isfinite(xg.grad).all()


class TestSoftPool:
    @pytest.mark.parametrize("k, s, p, size", WINDOWS, ids=WINDOW_IDS)
    def test_loop_reference(self, k, s, p, size):
        x = _x(size) * 3
        assert_close(soft_pool2d(x, k, s, p), ref.window_loop(x, k, s, p, ref.soft_reduce))

    def test_limits_max_and_mean(self):
        x = _x((6, 8))
        # Scaling the values sharpens the softmax: t x -> t max(x) as t grows ...
        assert_close(soft_pool2d(1e6 * x, 2) / 1e6, F.max_pool2d(x, 2), scale=1e4)
        # ... and flattens it: softpool(t x) / t -> mean(x) as t -> 0.
        assert_close(soft_pool2d(1e-7 * x, 2) / 1e-7, F.avg_pool2d(x, 2), scale=1e5)
        const = torch.full((1, 2, 4, 4), 3.25, dtype=torch.float64)
        assert_close(soft_pool2d(const, 3, 1, 1), const)

    def test_stable_for_large_activations(self):
        x = torch.tensor([[[[0.0, 500.0], [1000.0, 999.0]]]], requires_grad=True)
        out = soft_pool2d(x, 2)
        e = 1 / (1 + math.exp(-1))  # softmax of (1000, 999)
        assert_close(out.detach(), torch.tensor([[[[1000 * e + 999 * (1 - e)]]]]))
        out.sum().backward()
        assert torch.isfinite(x.grad).all()
        assert torch.isfinite(soft_pool2d(torch.full((1, 1, 2, 2), -1e4), 2)).all()

    @pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
    def test_low_precision_large_values(self, dtype):
        x = (torch.rand(1, 3, 6, 6) * 60).to(dtype)  # e^60 overflows half precision
        out = soft_pool2d(x, 2)
        assert out.dtype == dtype and torch.isfinite(out).all()
        assert_close(out.float(), soft_pool2d(x.float(), 2), dtype=dtype)


class TestStochasticPool:
    @pytest.mark.parametrize("k, s, p, size", WINDOWS, ids=WINDOW_IDS)
    def test_eval_form_loop_reference(self, k, s, p, size):
        x = _x(size)  # half the values are negative: probability 0
        assert_close(stochastic_pool2d(x, k, s, p), ref.window_loop(x, k, s, p, ref.stochastic_eval_reduce))

    def test_eval_form_by_hand_and_zero_windows(self):
        x = torch.tensor([[[[1.0, 3.0, 0.0, -1.0], [0.0, -2.0, 0.0, 0.0]]]])
        assert stochastic_pool2d(x, 2).flatten().tolist() == [2.5, 0.0]
        xg = x.clone().requires_grad_()
        stochastic_pool2d(xg, 2).sum().backward()
        assert torch.isfinite(xg.grad).all() and xg.grad[..., 2:].abs().sum() == 0

    def test_training_samples_with_probability_proportional_to_value(self):
        """Chi-square goodness of fit of 6000 draws per window, fixed seed."""
        values = torch.tensor([1.0, 2.0, 3.0, 4.0, 0.0, 2.0, 0.0, 6.0])  # two 2x2 windows
        x = values.reshape(2, 2, 2).permute(1, 0, 2).reshape(1, 1, 2, 4)
        x = x.expand(6000, 1, 2, 4).contiguous()
        g = torch.Generator().manual_seed(1234)
        out = stochastic_pool2d(x, 2, training=True, generator=g)
        for window, probs in ((0, [1, 2, 3, 4]), (1, [0, 2, 0, 6])):
            cells = values[4 * window : 4 * window + 4]
            draws = out[:, 0, 0, window]
            assert set(draws.unique().tolist()) <= {v for v, pr in zip(cells.tolist(), probs) if pr > 0}
            support = sorted({v for v, pr in zip(cells.tolist(), probs) if pr > 0})
            counts = torch.tensor([(draws == v).sum().item() for v in support], dtype=torch.float64)
            expected = torch.tensor(
                [sum(pr for c, pr in zip(cells.tolist(), probs) if c == v) for v in support], dtype=torch.float64
            )
            expected = expected / expected.sum() * len(draws)
            chi2 = ((counts - expected) ** 2 / expected).sum().item()
            # 99.9% quantiles of chi-square with 3 and 1 degrees of freedom: 16.27, 10.83.
            assert chi2 < {3: 16.27, 1: 10.83}[len(support) - 1], (window, chi2, counts)

    def test_training_generator_reproducible_and_gradient_to_sample(self):
        x = torch.rand(2, 3, 6, 6, dtype=torch.float64) + 0.1
        a = stochastic_pool2d(x, 3, 2, 1, training=True, generator=torch.Generator().manual_seed(5))
        b = stochastic_pool2d(x, 3, 2, 1, training=True, generator=torch.Generator().manual_seed(5))
        assert torch.equal(a, b)
        # Every output is one of its window's values.
        taps = window_taps(x, 3, 2, 1)
        assert ((taps == a[:, :, None]).any(dim=2)).all()
        xg = x.clone().requires_grad_()
        out = stochastic_pool2d(xg, 2, training=True, generator=torch.Generator().manual_seed(0))
        out.sum().backward()
        assert xg.grad.sum().item() == out.numel()  # one 1 per window
        assert set(xg.grad.unique().tolist()) <= {0.0, 1.0}

    def test_all_zero_or_negative_window_returns_zero_in_training(self):
        x = -torch.rand(1, 2, 4, 4)
        assert torch.equal(stochastic_pool2d(x, 2, training=True), torch.zeros(1, 2, 2, 2))

    def test_module_uses_training_flag_and_generator(self):
        pool = create_downsampler("stochastic", generator=torch.Generator().manual_seed(3))
        x = torch.rand(4, 2, 6, 6)
        assert torch.equal(pool.eval()(x), stochastic_pool2d(x, 2))
        first = pool.train()(x)
        pool.generator.manual_seed(3)
        assert torch.equal(pool(x), first)
        with pytest.raises(TypeError, match="`generator`"):
            create_downsampler("stochastic", generator=3)


class TestBlurPool:
    @pytest.mark.parametrize("filt_size", [2, 3, 4, 5, 7])
    @pytest.mark.parametrize("stride, size", [(2, (9, 8)), (2, (6, 7)), (3, (10, 8))])
    def test_loop_reference(self, filt_size, stride, size):
        x = _x(size)
        out = create_downsampler("blur", channels=3, scale_factor=stride, filt_size=filt_size).double()(x)
        assert_close(out, ref.blur_loop(x, filt_size, stride))

    def test_filter_one_is_subsampling_and_constants_are_preserved(self):
        x = _x((7, 6))
        assert torch.equal(blur_pool2d(x, 1, 2), x[..., ::2, ::2])
        const = torch.full((1, 2, 9, 9), 2.5, dtype=torch.float64)
        assert_close(blur_pool2d(const, 5, 2), torch.full((1, 2, 5, 5), 2.5, dtype=torch.float64))

    def test_buffer_layout_and_sizes(self):
        pool = create_downsampler("blur", channels=4, filt_size=3)
        assert list(pool.state_dict()) == ["filt"] and pool.filt.shape == (4, 1, 3, 3)
        assert_close(pool.filt[0, 0] * 16, torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]))
        assert pool(torch.randn(1, 4, 7, 10)).shape == (1, 4, 4, 5)

    def test_reflect_on_tiny_maps_is_a_clear_error(self):
        with pytest.raises(ValueError, match="`x`.*reflect"):
            create_downsampler("blur", channels=1, filt_size=4)(torch.randn(1, 1, 2, 8))
        assert create_downsampler("blur", channels=1, filt_size=4, pad_mode="replicate")(
            torch.randn(1, 1, 2, 8)
        ).shape == (1, 1, 1, 4)
        with pytest.raises(ValueError, match="`filt_size`"):
            create_downsampler("blur", channels=1, filt_size=8)

    def test_reduces_aliasing(self):
        """A one-pixel shift of a high-frequency pattern changes blurred outputs far less."""
        x = torch.zeros(1, 1, 16, 16)
        x[..., ::2, :] = 1.0  # period-2 stripes: aliased to a constant by plain subsampling
        shifted = torch.roll(x, 1, dims=2)
        plain = (x[..., ::2, ::2] - shifted[..., ::2, ::2]).abs().mean()
        blurred = (blur_pool2d(x, 4) - blur_pool2d(shifted, 4)).abs().mean()
        assert plain == 1.0 and blurred < 0.2


@pytest.mark.parametrize(
    "name, kwargs, argument",
    [
        ("softpool", dict(kernel_size=2, padding=2), "padding"),
        ("lp", dict(stride=0), "stride"),
        ("median", dict(padding_mode="circular"), "padding_mode"),
        ("blur", dict(channels=2, pad_mode="circular"), "pad_mode"),
    ],
)
def test_constructor_errors_name_the_argument(name, kwargs, argument):
    with pytest.raises(ValueError, match=f"`{argument}`"):
        create_downsampler(name, **kwargs)


def test_softpool_bench_baseline_agrees_where_it_does_not_overflow():
    from resamplers.bench.baselines import exp_ratio_soft_pool

    x = _x((8, 6))
    assert_close(exp_ratio_soft_pool(x, 2, 2), soft_pool2d(x, 2))
    big = torch.full((1, 1, 2, 2), 100.0)
    assert torch.isnan(exp_ratio_soft_pool(big, 2, 2)).all() and soft_pool2d(big, 2).item() == 100.0
