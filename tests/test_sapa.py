"""SAPA: the window similarity against a loop, the pair against its formulas, checkpoints."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from conftest import assert_close
from reference import reassemble_loop, window_similarity_loop
from resamplers import create_pair
from resamplers.functional import native_available, reassemble, window_similarity
from resamplers.guided import SAPA

BACKENDS = ["torch", pytest.param("native", marks=pytest.mark.skipif(not native_available(), reason="no native build"))]

# kernel, groups, up, stride, key size, padding
GEOMETRIES = [
    (5, 1, 2, 1, (3, 4), None),
    (3, 2, 3, 1, (2, 5), None),
    (3, 1, 1, 1, (4, 3), None),
    (5, 1, 1, 2, (7, 6), None),
    (4, 2, 1, 2, (6, 5), (1, 1)),
    (1, 4, 2, 1, (1, 1), None),
]


def _similarity_inputs(k, groups, up, stride, size, pad, seed=0):
    g = torch.Generator().manual_seed(seed)
    pt, pl = ((k - 1) // 2,) * 2 if pad is None else pad
    h, w = size
    ho, wo = (h * up, w * up) if up > 1 else ((h - 1 + pt) // stride + 1, (w - 1 + pl) // stride + 1)
    keys = torch.randn(2, 4, h, w, generator=g, dtype=torch.float64)
    query = torch.randn(2, 4, ho, wo, generator=g, dtype=torch.float64)
    return query, keys


class TestWindowSimilarity:
    @pytest.mark.parametrize("backend", BACKENDS)
    @pytest.mark.parametrize("k, groups, up, stride, size, pad", GEOMETRIES)
    def test_slow_loop(self, k, groups, up, stride, size, pad, backend):
        query, keys = _similarity_inputs(k, groups, up, stride, size, pad)
        out = window_similarity(query, keys, k, groups, scale_factor=up, stride=stride, padding=pad, backend=backend)
        assert_close(out, window_similarity_loop(query, keys, k, groups, up, stride, pad))

    @pytest.mark.parametrize("backend", BACKENDS)
    @pytest.mark.parametrize("k, groups, up, stride, size, pad", GEOMETRIES[:5])
    def test_gradcheck(self, k, groups, up, stride, size, pad, backend):
        query, keys = _similarity_inputs(k, groups, up, stride, size, pad, seed=1)
        query.requires_grad_()
        keys.requires_grad_()

        def fn(q, kk):
            return window_similarity(q, kk, k, groups, scale_factor=up, stride=stride, padding=pad, backend=backend)

        assert torch.autograd.gradcheck(fn, (query, keys), fast_mode=True)

    def test_is_the_adjoint_of_reassembly_in_its_kernels(self):
        """<q, reassemble(keys, w)> == <window_similarity(q, keys), w> for every w."""
        query, keys = _similarity_inputs(3, 2, 2, 1, (3, 4), None, seed=2)
        w = torch.randn(2, 18, 6, 8, dtype=torch.float64)
        lhs = (query * reassemble(keys, w, 3, 2, scale_factor=2)).sum()
        rhs = (window_similarity(query, keys, 3, 2, scale_factor=2) * w).sum()
        assert_close(lhs, rhs)

    def test_out_of_image_keys_give_zero_not_minus_infinity(self):
        keys = torch.ones(1, 2, 1, 1)
        query = torch.ones(1, 2, 2, 2)
        sim = window_similarity(query, keys, 3, scale_factor=2)
        expected = torch.zeros(9)
        expected[4] = 2.0
        assert_close(sim[0, :, 1, 1], expected)

    @pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
    def test_dtype_follows_query(self, dtype):
        query, keys = _similarity_inputs(3, 1, 2, 1, (3, 3), None)
        out = window_similarity(query.to(dtype), keys.to(dtype), 3, scale_factor=2)
        assert out.dtype == dtype
        assert_close(out.double(), window_similarity_loop(query, keys, 3, 1, 2), dtype=dtype, scale=10)

    @pytest.mark.parametrize(
        "q_shape, k_shape, kwargs, argument",
        [
            ((1, 4, 6, 6), (1, 4, 3, 3), dict(scale_factor=2, groups=3), "groups"),
            ((1, 4, 6, 5), (1, 4, 3, 3), dict(scale_factor=2), "query"),
            ((1, 3, 6, 6), (1, 4, 3, 3), dict(scale_factor=2), "query"),
            ((1, 4, 6, 6), (1, 4, 3, 3), dict(scale_factor=2, stride=2), "stride"),
            ((1, 4, 9, 9), (1, 4, 3, 3), dict(), "query"),
        ],
    )
    def test_errors_name_the_argument(self, q_shape, k_shape, kwargs, argument):
        with pytest.raises(ValueError, match=f"`{argument}`"):
            window_similarity(torch.randn(q_shape), torch.randn(k_shape), 3, **kwargs)


def _layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    mean = x.mean(1, keepdim=True)
    var = ((x - mean) ** 2).mean(1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * weight[:, None, None] + bias[:, None, None]


def _project(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    return torch.einsum("oc,nchw->nohw", weight.reshape(weight.shape[0], -1), x) + bias[:, None, None]


def _nearest(x: torch.Tensor, s: int) -> torch.Tensor:
    return x.repeat_interleave(s, -2).repeat_interleave(s, -1)


def _randomise(module: torch.nn.Module, seed: int = 0, std: float = 0.3) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * std)


class TestSAPAPair:
    @pytest.mark.parametrize("scale, k, size", [(2, 5, (3, 4)), (3, 3, (2, 3)), (2, 3, (1, 5))])
    @pytest.mark.parametrize("query", ["encoder", "gate"])
    def test_pipeline_against_formulas(self, scale, k, size, query):
        pair = create_pair(
            "sapa", channels=6, scale_factor=scale, up_kernel=k, embedding_dim=5, query=query, up_channels=4
        ).double()
        _randomise(pair, seed=scale + k)
        p = dict(pair.upsampler.named_parameters())
        h, w = size
        y = torch.randn(2, 6, scale * h, scale * w, dtype=torch.float64)  # encoder
        x = torch.randn(2, 4, h, w, dtype=torch.float64)  # decoder
        y_n = _layer_norm(y, p["norm_y.weight"], p["norm_y.bias"])
        x_n = _layer_norm(x, p["norm_x.weight"], p["norm_x.bias"])
        if query == "encoder":
            q = _project(y_n, p["q.weight"], p["q.bias"])
        else:
            gate = _nearest(torch.sigmoid(_project(x_n, p["gate.weight"], p["gate.bias"])), scale)
            q = gate * _project(y_n, p["qy.weight"], p["qy.bias"]) + (1 - gate) * _project(
                _nearest(x, scale), p["qx.weight"], p["qx.bias"]
            )
        keys = _project(x_n, p["k.weight"], p["k.bias"])
        attn = window_similarity_loop(q, keys, k, 1, scale).softmax(1)
        expected = reassemble_loop(x, attn, k, 1, up=scale)
        assert_close(pair.upsampler(x, y), expected)
        alone = SAPA(4, scale, up_kernel=k, embedding_dim=5, query=query, guide_channels=6).double()
        alone.load_state_dict(pair.state_dict())  # the pair's keys are the upsampler's own
        assert_close(alone(x, y), expected)
        _, guide = pair.down(y)
        assert_close(pair.up(x, guide), expected)

    def test_group_norm_variant_is_sapa_b(self):
        pair = create_pair("sapa_b", channels=64, up_channels=32).double()
        _randomise(pair, seed=4)
        sapa = pair.upsampler
        assert (sapa.embedding_dim, sapa.norm) == (32, "group")
        y = torch.randn(1, 64, 6, 8, dtype=torch.float64)
        x = torch.randn(1, 32, 3, 4, dtype=torch.float64)
        p = dict(sapa.named_parameters())
        q = _project(F.group_norm(y, 32, p["norm_y.weight"], p["norm_y.bias"]), p["q.weight"], p["q.bias"])
        keys = _project(F.group_norm(x, 32, p["norm_x.weight"], p["norm_x.bias"]), p["k.weight"], p["k.bias"])
        attn = window_similarity_loop(q, keys, 5, 1, 2).softmax(1)
        assert_close(sapa(x, y), reassemble_loop(x, attn, 5, 1, up=2))

    def test_zero_queries_give_uniform_kernels_box_filter_then_nearest(self):
        pair = SAPA(8, 2, up_kernel=5).double()
        with torch.no_grad():
            pair.q.weight.zero_()
            pair.q.bias.zero_()
        x = torch.randn(2, 8, 4, 5, dtype=torch.float64)
        y = torch.randn(2, 8, 8, 10, dtype=torch.float64)
        box = F.avg_pool2d(x, 5, stride=1, padding=2, count_include_pad=True)
        assert_close(pair(x, y), _nearest(box, 2))

    @pytest.mark.parametrize("name, params", [("sapa", 33_920), ("sapa_b", 17_472), ("sapa_g", 50_625)])
    def test_parameter_counts(self, name, params):
        pair = create_pair(name, channels=256)
        assert sum(p.numel() for p in pair.parameters()) == params

    def test_sapa_b_reproduces_the_published_segformer_count(self):
        # SegFormer-B1 uses six x2 upsamplers at C=256: "+0.1M" for SAPA-B.
        assert 6 * sum(p.numel() for p in create_pair("sapa_b", channels=256).parameters()) == 104_832

    def test_official_linear_weights_load(self):
        """SAPA.py stores q/k as nn.Linear (d x C); they load as 1x1 convolutions."""
        pair = SAPA(8, 2, embedding_dim=4).double()
        g = torch.Generator().manual_seed(0)
        state = {
            "norm_y.weight": torch.rand(8, generator=g, dtype=torch.float64) + 0.5,
            "norm_y.bias": torch.randn(8, generator=g, dtype=torch.float64),
            "norm_x.weight": torch.rand(8, generator=g, dtype=torch.float64) + 0.5,
            "norm_x.bias": torch.randn(8, generator=g, dtype=torch.float64),
            "q.weight": torch.randn(4, 8, generator=g, dtype=torch.float64),
            "q.bias": torch.randn(4, generator=g, dtype=torch.float64),
            "k.weight": torch.randn(4, 8, generator=g, dtype=torch.float64),
            "k.bias": torch.randn(4, generator=g, dtype=torch.float64),
        }
        pair.load_state_dict(state, strict=True)
        assert pair.q.weight.shape == (4, 8, 1, 1)
        y = torch.randn(1, 8, 6, 4, dtype=torch.float64)
        x = torch.randn(1, 8, 3, 2, dtype=torch.float64)
        # channels-last, as the official module computes it
        q = F.linear(
            F.layer_norm(y.permute(0, 2, 3, 1), (8,), state["norm_y.weight"], state["norm_y.bias"]),
            state["q.weight"],
            state["q.bias"],
        )
        k = F.linear(
            F.layer_norm(x.permute(0, 2, 3, 1), (8,), state["norm_x.weight"], state["norm_x.bias"]),
            state["k.weight"],
            state["k.bias"],
        )
        attn = window_similarity_loop(q.permute(0, 3, 1, 2), k.permute(0, 3, 1, 2), 5, 1, 2).softmax(1)
        assert_close(pair(x, y), reassemble_loop(x, attn, 5, 1, up=2))

    def test_state_dict_keys(self):
        assert set(SAPA(8).state_dict()) == {
            "norm_y.weight",
            "norm_y.bias",
            "norm_x.weight",
            "norm_x.bias",
            "q.weight",
            "q.bias",
            "k.weight",
            "k.bias",
        }
        assert {"qy.weight", "qx.weight", "gate.weight"} <= set(SAPA(8, query="gate").state_dict())

    def test_encoder_of_wrong_size_is_rejected(self):
        pair = SAPA(8, 2)
        with pytest.raises(ValueError, match="`encoder`.*6 x 8"):
            pair(torch.randn(1, 8, 3, 4), torch.randn(1, 8, 6, 9))
        with pytest.raises(ValueError, match="`encoder`.*channels"):
            pair(torch.randn(1, 8, 3, 4), torch.randn(1, 4, 6, 8))

    @pytest.mark.parametrize(
        "kwargs, argument",
        [
            (dict(up_kernel=4), "up_kernel"),
            (dict(norm="batch"), "norm"),
            (dict(norm="group", norm_groups=3), "norm_groups"),
            (dict(query="cat"), "query"),
            (dict(embedding_dim=0), "embedding_dim"),
        ],
    )
    def test_constructor_errors(self, kwargs, argument):
        with pytest.raises(ValueError, match=f"`{argument}`"):
            SAPA(8, **kwargs)
