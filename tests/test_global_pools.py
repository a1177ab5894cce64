"""Global and pyramid pools: adaptive bins, SPP/SPPF, SPP-net bins, GeM, NetVLAD, bilinear pooling."""

from __future__ import annotations

import math
from unittest import mock

import pytest
import torch
import torch.nn.functional as F

import pool_reference as ref
from conftest import assert_close
from resamplers import create_pool, list_pools
from resamplers.functional import (
    adaptive_avg_pool2d,
    adaptive_gem_pool2d,
    adaptive_max_pool2d,
    bilinear_pool,
    netvlad,
    spp_bins,
    spp_yolo,
    sppf,
)
from resamplers.functional import adaptive_pool as adaptive_module


def _x(size, c=3, n=2, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, *size, generator=g, dtype=dtype)


def test_registered_pools():
    assert set(list_pools()) >= {
        "gap",
        "gmp",
        "avgmax",
        "catavgmax",
        "gem",
        "spp",
        "sppf",
        "spp_bins",
        "netvlad",
        "bilinear",
    }


# Output sizes that divide the input, that do not, larger than the input, and strips.
ADAPTIVE = [
    ((7, 11), (3, 5)),
    ((6, 8), (2, 4)),
    ((5, 4), (7, 6)),
    ((9, 7), (9, 1)),
    ((4, 13), (1, 3)),
    ((1, 1), (2, 3)),
]


class TestAdaptivePools:
    @pytest.mark.parametrize("exporting", [False, True], ids=["eager", "export-path"])
    @pytest.mark.parametrize("size, out", ADAPTIVE)
    def test_bins_loop_reference(self, size, out, exporting):
        x = _x(size)
        with mock.patch.object(adaptive_module, "is_exporting", return_value=exporting):
            assert_close(adaptive_avg_pool2d(x, out), ref.adaptive_loop(x, *out, "avg"))
            assert_close(adaptive_max_pool2d(x, out), ref.adaptive_loop(x, *out, "max"))

    def test_none_keeps_an_axis(self):
        x = _x((5, 7))
        for exporting in (False, True):
            with mock.patch.object(adaptive_module, "is_exporting", return_value=exporting):
                assert_close(adaptive_avg_pool2d(x, (None, 1)), x.mean(-1, keepdim=True))
                assert_close(adaptive_max_pool2d(x, (1, None)), x.amax(-2, keepdim=True))
                assert_close(adaptive_avg_pool2d(x, (None, 3)), F.adaptive_avg_pool2d(x, (5, 3)))

    def test_export_path_gradients_match(self):
        x = _x((7, 9)).requires_grad_()
        grads = []
        for exporting in (False, True):
            with mock.patch.object(adaptive_module, "is_exporting", return_value=exporting):
                (g,) = torch.autograd.grad(adaptive_avg_pool2d(x, (3, 4)).sum(), x)
            grads.append(g)
        assert_close(grads[1], grads[0])

    def test_non_dividing_sizes_export_exactly(self):
        class Pool(torch.nn.Module):
            def forward(self, x):
                return torch.cat([adaptive_avg_pool2d(x, (3, 5)), adaptive_max_pool2d(x, (3, 5))], 1)

        dims = {"x": {2: torch.export.Dim("h", min=4, max=256), 3: torch.export.Dim("w", min=6, max=256)}}
        program = torch.export.export(Pool(), (_x((7, 11), dtype=torch.float32),), dynamic_shapes=dims)
        for size in [(13, 6), (10, 23), (4, 7)]:
            x = _x(size, dtype=torch.float32)
            expected = torch.cat([F.adaptive_avg_pool2d(x, (3, 5)), F.adaptive_max_pool2d(x, (3, 5))], 1)
            assert_close(program.module()(x), expected)

    def test_global_closed_forms(self):
        x = _x((5, 7))
        avg, mx = x.mean((2, 3), keepdim=True), x.amax((2, 3), keepdim=True)
        assert_close(create_pool("gap")(x), avg)
        assert_close(create_pool("gmp")(x), mx)
        assert_close(create_pool("avgmax")(x), 0.5 * (avg + mx))
        assert_close(create_pool("catavgmax")(x), torch.cat([avg, mx], 1))
        assert create_pool("catavgmax", output_size=2)(x).shape == (2, 6, 2, 2)

    def test_output_size_validation(self):
        with pytest.raises(ValueError, match="`output_size`"):
            create_pool("gap", output_size=(1, 2, 3))
        with pytest.raises(ValueError, match="`output_size`"):
            create_pool("gmp", output_size=0)


class TestGlobalGeM:
    @pytest.mark.parametrize("p", [1.0, 3.0, 6.5])
    def test_formula_per_channel(self, p):
        x = _x((5, 6))
        expected = (x.clamp(min=1e-6) ** p).mean((2, 3), keepdim=True) ** (1 / p)
        assert_close(create_pool("gem", p=p).double()(x), expected)
        assert_close(
            adaptive_gem_pool2d(x, p, (2, 3)), F.adaptive_avg_pool2d(x.clamp(min=1e-6) ** p, (2, 3)) ** (1 / p)
        )

    def test_limits_average_and_max(self):
        x = _x((5, 6)).abs() + 0.1
        assert_close(adaptive_gem_pool2d(x, 1.0), x.mean((2, 3), keepdim=True))
        big = adaptive_gem_pool2d(x, 500.0)
        mx = x.amax((2, 3), keepdim=True)
        assert (big <= mx + 1e-12).all() and (big >= mx * 30 ** (-1 / 500) - 1e-12).all()

    def test_cirtorch_state_dict_and_gradient(self):
        pool = create_pool("gem", channels=4).double()
        pool.load_state_dict({"p": torch.tensor([2.0], dtype=torch.float64)})
        x = _x((5, 6), c=4).abs() + 0.1
        pool(x).sum().backward()
        assert pool.p.grad.abs().item() > 0
        assert_close(pool(x), (x**2).mean((2, 3), keepdim=True).sqrt())

    def test_half_precision(self):
        x = torch.rand(2, 4, 7, 7) * 1e-3
        out = create_pool("gem").half()(x.half())
        assert out.dtype == torch.float16 and torch.isfinite(out).all()
        assert_close(out.float(), adaptive_gem_pool2d(x.half().float(), 3.0), dtype=torch.float16)


class TestSPP:
    @pytest.mark.parametrize("order", ["ultralytics", "darknet"])
    def test_pools_and_order(self, order):
        x = _x((7, 9))
        pools = [
            ref.window_loop(x, k, 1, k // 2, lambda v, inside: max(a for a, ok in zip(v, inside) if ok))
            for k in (5, 9, 13)
        ]
        expected = torch.cat([x, *pools] if order == "ultralytics" else [*reversed(pools), x], 1)
        assert_close(create_pool("spp", order=order)(x), expected)

    @pytest.mark.parametrize("size", [(1, 1), (6, 4), (13, 11), (20, 31)])
    def test_sppf_equals_spp(self, size):
        x = _x(size, c=4) - 2.0  # mostly negative: needs -inf padding to hold
        assert torch.equal(sppf(x), spp_yolo(x))
        assert torch.equal(sppf(x, order="darknet"), spp_yolo(x, order="darknet"))
        assert torch.equal(create_pool("sppf", kernel_size=3, repeats=2)(x), create_pool("spp", kernel_sizes=(3, 5))(x))

    def test_zero_padding_would_break_the_equality(self):
        """The composition needs implicit -inf padding: zero padding differs on negative maps."""
        x = _x((9, 9)) - 3.0
        zero_padded = F.max_pool2d(F.pad(x, (2, 2, 2, 2)), 5, 1)
        chained = F.max_pool2d(F.pad(zero_padded, (2, 2, 2, 2)), 5, 1)
        assert not torch.equal(chained, spp_yolo(x)[:, 2 * 3 : 3 * 3])

    def test_errors(self):
        with pytest.raises(ValueError, match="`kernel_sizes`"):
            create_pool("spp", kernel_sizes=(4, 8))
        with pytest.raises(ValueError, match="`order`"):
            create_pool("sppf", order="yolo")


class TestSPPBins:
    @pytest.mark.parametrize("size", [(13, 9), (7, 7), (30, 6), (1, 1)])
    def test_fixed_length_and_reference(self, size):
        x = _x(size)
        levels = (1, 2, 4)
        expected = torch.cat([ref.adaptive_loop(x, n, n, "max").flatten(1) for n in levels], 1)
        out = create_pool("spp_bins")(x)
        assert out.shape == (2, 3 * 21)
        assert_close(out, expected)
        assert_close(
            spp_bins(x, (3, 1), mode="avg"),
            torch.cat([ref.adaptive_loop(x, 3, 3, "avg").flatten(1), x.mean((2, 3))], 1),
        )

    def test_paper_window_formula_is_not_fixed_length(self):
        """The paper's win = ceil(a/n), stride = floor(a/n) gives 6 bins for a = 7, n = 4; adaptive bins give 4."""
        a, n = 7, 4
        win, stride = math.ceil(a / n), a // n
        assert (a - win) // stride + 1 == 6
        assert spp_bins(torch.randn(1, 1, a, a), (n,)).shape == (1, n * n)


class TestNetVLAD:
    @pytest.mark.parametrize("vladv2, normalize_input", [(False, True), (True, True), (False, False)])
    def test_loop_reference(self, vladv2, normalize_input):
        torch.manual_seed(0)
        pool = create_pool(
            "netvlad", channels=6, num_clusters=4, vladv2=vladv2, normalize_input=normalize_input
        ).double()
        with torch.no_grad():
            pool.centroids.normal_()
            if vladv2:
                pool.conv.bias.normal_()
        x = _x((3, 4), c=6)
        expected = ref.netvlad_loop(x, pool.conv.weight, pool.conv.bias, pool.centroids, normalize_input)
        assert_close(pool(x), expected)
        assert_close(pool(x).norm(dim=1), torch.ones(2, dtype=torch.float64))

    def test_state_dict_keys_are_the_reference_implementation_keys(self):
        assert set(create_pool("netvlad", channels=8).state_dict()) == {"conv.weight", "centroids"}
        assert set(create_pool("netvlad", channels=8, vladv2=True).state_dict()) == {
            "conv.weight",
            "conv.bias",
            "centroids",
        }

    @pytest.mark.parametrize("vladv2", [False, True])
    def test_init_from_descriptors(self, vladv2):
        g = torch.Generator().manual_seed(0)
        centroids = torch.randn(4, 8, generator=g, dtype=torch.float64)
        descriptors = torch.randn(200, 8, generator=g, dtype=torch.float64)
        pool = create_pool("netvlad", channels=8, num_clusters=4, vladv2=vladv2).double()
        alpha = pool.init_from_descriptors(centroids, descriptors)
        assert alpha > 0
        assert_close(pool.centroids, centroids)
        if vladv2:
            # w_k . x + b_k = -alpha |x - c_k|^2 + alpha |x|^2: the softmax ranks clusters by distance.
            assert_close(pool.conv.weight.flatten(1), 2 * alpha * centroids)
            assert_close(pool.conv.bias, -alpha * (centroids**2).sum(1))
        else:
            unit = centroids / centroids.norm(dim=1, keepdim=True)
            assert_close(pool.conv.weight.flatten(1), alpha * unit)
            top = (unit @ descriptors.T).topk(2, dim=0).values
            assert math.isclose(alpha, -math.log(0.01) / (top[0] - top[1]).mean().item())

    def test_functional_channels_must_match_centroids(self):
        with pytest.raises(ValueError, match="`x`.*channels"):
            netvlad(torch.randn(1, 5, 2, 2), torch.randn(3, 4, 1, 1), None, torch.randn(3, 4))


class TestBilinear:
    def test_second_order_loop_reference(self):
        x = _x((3, 4), c=5)
        assert_close(create_pool("bilinear")(x), ref.bilinear_loop(x, x, 1e-5))

    def test_two_stream(self):
        x, y = _x((3, 4), c=3), _x((3, 4), c=4, seed=1)
        out = create_pool("bilinear")(x, y)
        assert out.shape == (2, 12)
        assert_close(out, ref.bilinear_loop(x, y, 1e-5))
        assert_close(bilinear_pool(x, y, eps=0.0).norm(dim=1), torch.ones(2, dtype=torch.float64))

    def test_gradient_is_finite_at_zero_correlation(self):
        x = torch.zeros(1, 2, 2, 2, dtype=torch.float64)
        x[0, 0] = 1.0  # channel 1 is zero: B has zero entries
        x.requires_grad_()
        bilinear_pool(x).sum().backward()
        assert torch.isfinite(x.grad).all()

    def test_mismatched_streams(self):
        with pytest.raises(ValueError, match="`y`"):
            bilinear_pool(torch.randn(1, 2, 3, 3), torch.randn(1, 2, 3, 4))


def test_netvlad_bench_baseline_agrees():
    from resamplers.bench.baselines import per_cluster_netvlad

    pool = create_pool("netvlad", channels=6, num_clusters=3, vladv2=True).double()
    x = _x((4, 5), c=6)
    assert_close(per_cluster_netvlad(pool, x), pool(x))
