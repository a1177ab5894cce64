"""SAPA-Deform: the module against a reference written from the formulas (outputs and
gradients), its limits (plain SAPA, nearest upsampling), the official keys and parameter
figures, and errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from conftest import assert_close
from offset_reference import bilinear_zero_gather
from resamplers import create_pair, create_upsampler
from resamplers.guided import SAPADeform


def _conv1x1(x, weight, bias):
    return torch.einsum("oc,nchw->nohw", weight.flatten(1), x) + (0 if bias is None else bias[:, None, None])


def _reference(x, y, p, s, num_point, groups, dim, high_offset, norm):
    """SAPA-D from the formulas with plain torch ops (no library code): ``x`` decoder, ``y`` encoder."""
    n, c, h, w = x.shape
    if norm:
        xn = F.group_norm(x, 32, p["norm_x.weight"], p["norm_x.bias"])
        yn = F.group_norm(y, 32, p["norm_y.weight"], p["norm_y.bias"])
    else:
        xn, yn = x, y
    q = _conv1x1(yn, p["q.weight"], p.get("q.bias"))
    k = _conv1x1(xn, p["k.weight"], p.get("k.bias"))
    o = _conv1x1(xn, p["offset.weight"], p.get("offset.bias"))
    if high_offset:  # channel c s^2 + i s + j at (h, w) -> channel c at (s h + i, s w + j)
        o = o.reshape(n, -1, s, s, h, w).permute(0, 1, 4, 2, 5, 3).reshape(n, -1, s * h, s * w)
    else:
        o = o.repeat_interleave(s, 2).repeat_interleave(s, 3)
    base_row = (torch.arange(s * h) // s).to(x.dtype)[:, None].expand(s * h, s * w).reshape(1, -1)
    base_col = (torch.arange(s * w) // s).to(x.dtype)[None, :].expand(s * h, s * w).reshape(1, -1)
    out = torch.zeros(n, c, s * h * s * w, dtype=x.dtype)
    cg = c // groups
    for g in range(groups):
        rows = [base_row + o[:, 2 * (g * num_point + t) + 1].reshape(n, -1) for t in range(num_point)]
        cols = [base_col + o[:, 2 * (g * num_point + t)].reshape(n, -1) for t in range(num_point)]
        q_g = q[:, g * dim : (g + 1) * dim].reshape(n, dim, -1)
        k_g = k[:, g * dim : (g + 1) * dim]
        sim = torch.stack([(q_g * bilinear_zero_gather(k_g, r, cc)).sum(1) for r, cc in zip(rows, cols)], 1)
        attn = sim.softmax(1)  # over the points
        for t in range(num_point):
            values = bilinear_zero_gather(x[:, g * cg : (g + 1) * cg], rows[t], cols[t])
            out[:, g * cg : (g + 1) * cg] += attn[:, None, t] * values
    return out.reshape(n, c, s * h, s * w)


def _randomise(module, seed=0, std=0.3, offset_std=0.5):
    """'Trained' weights: offsets of a few pixels, some points outside the image."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            value = torch.randn(p.shape, generator=g, dtype=torch.float64)
            p.copy_(
                value * (offset_std if name.startswith("offset") else std)
                + name.startswith("norm") * (name.endswith("weight"))
            )


# (channels, guide channels, scale, num_point, groups, embedding_dim, high_offset, norm, size)
CONFIGS = [
    (8, 8, 2, 9, 4, 3, True, False, (3, 4)),
    (6, 4, 3, 9, 2, 2, False, False, (2, 3)),
    (32, 64, 2, 4, 2, 3, True, True, (2, 3)),
    (4, 4, 2, 25, 1, 2, True, False, (2, 2)),
    (4, 6, 1, 1, 2, 2, False, False, (3, 3)),
]


@pytest.mark.parametrize("c, c_y, s, points, groups, dim, high, norm, size", CONFIGS)
def test_outputs_and_gradients_against_the_formulas(c, c_y, s, points, groups, dim, high, norm, size):
    up = SAPADeform(
        c, s, num_point=points, groups=groups, embedding_dim=dim, high_offset=high, norm=norm, guide_channels=c_y
    ).double()
    _randomise(up, seed=s + points)
    params = dict(up.named_parameters())
    h, w = size
    x = torch.randn(2, c, h, w, dtype=torch.float64, requires_grad=True)
    y = torch.randn(2, c_y, s * h, s * w, dtype=torch.float64, requires_grad=True)
    out = up(x, y)
    want = _reference(x, y, params, s, points, groups, dim, high, norm)
    assert_close(out, want)
    grad = torch.randn_like(out)
    inputs = [x, y, *params.values()]
    for a, b in zip(torch.autograd.grad(out, inputs, grad), torch.autograd.grad(want, inputs, grad), strict=True):
        assert_close(a, b)


def test_gradcheck_at_the_official_initialisation():
    up = SAPADeform(8, 2, groups=2, embedding_dim=3).double()
    x = torch.randn(1, 8, 2, 3, dtype=torch.float64, requires_grad=True)
    y = torch.randn(1, 8, 4, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(up, (x, y), fast_mode=True)


@pytest.mark.parametrize("k", [3, 5])
def test_tap_offsets_reduce_to_sapa_b_with_the_same_weights(k):
    """Offsets equal to the window's tap displacements (conv weights 0, bias = the taps),
    one group, GroupNorm: the registered SAPA-B over the k x k window, with the same q, k
    and norms."""
    s = 2
    deform = SAPADeform(32, s, num_point=k * k, groups=1, norm=True, guide_channels=64).double()
    _randomise(deform, seed=k)
    taps = torch.arange(k, dtype=torch.float64) - (k - 1) // 2
    shift = torch.stack([taps.repeat(k), taps.repeat_interleave(k)], 1).flatten()  # (col, row) of tap a k + b
    with torch.no_grad():
        deform.offset.weight.zero_()
        deform.offset.bias.copy_(shift.repeat_interleave(s * s))  # channel (2 t + e) s^2 + i s + j
    sapa = create_upsampler("sapa_b", channels=32, guide_channels=64, up_kernel=k).double()
    sapa.load_state_dict({key: v for key, v in deform.state_dict().items() if not key.startswith("offset")})
    x = torch.randn(2, 32, 3, 4, dtype=torch.float64)
    y = torch.randn(2, 64, 6, 8, dtype=torch.float64)
    assert_close(deform(x, y), sapa(x, y))


def test_zero_offsets_read_the_pixel_itself_nearest_upsampling():
    """With the official offsets all 0 every point reads the output pixel's own input pixel."""
    up = SAPADeform(8, 3, groups=2, embedding_dim=4).double()
    with torch.no_grad():
        up.offset.weight.zero_()
    x = torch.randn(2, 8, 3, 4, dtype=torch.float64)
    y = torch.randn(2, 8, 9, 12, dtype=torch.float64)
    assert_close(up(x, y), x.repeat_interleave(3, 2).repeat_interleave(3, 3))


def test_pair_up_step_is_the_module():
    pair = create_pair("sapa_deform", channels=8, up_channels=8, groups=2, embedding_dim=4).double()
    y = torch.randn(1, 8, 6, 8, dtype=torch.float64)
    x = torch.randn(1, 8, 3, 4, dtype=torch.float64)
    _, guide = pair.down(y)
    assert_close(pair.up(x, guide), pair.upsampler(x, y))


def test_official_defaults_and_initialisation():
    up = SAPADeform(64)
    assert (up.num_point, up.groups, up.embedding_dim, up.high_offset, up.norm) == (9, 4, 32, True, False)
    assert up.offset.weight.shape == (4 * 9 * 2 * 4, 64, 1, 1)
    for conv in (up.q, up.k, up.offset):
        assert 0.015 < conv.weight.std().item() < 0.025
        assert torch.equal(conv.bias, torch.zeros_like(conv.bias))


def test_parameter_count_and_the_published_figure():
    assert sum(p.numel() for p in create_pair("sapa_deform", channels=256).parameters()) == 139_808
    # SegFormer-B1 has six x2 upsamplers at C=256: the published "+0.8M" for SAPA-D.
    assert 6 * 139_808 == 838_848


def test_state_dict_keys_are_the_official_ones():
    assert set(SAPADeform(8).state_dict()) == {
        "q.weight",
        "q.bias",
        "k.weight",
        "k.bias",
        "offset.weight",
        "offset.bias",
    }
    assert set(SAPADeform(32, norm=True).state_dict()) == {
        "norm_y.weight",
        "norm_y.bias",
        "norm_x.weight",
        "norm_x.bias",
        "q.weight",
        "q.bias",
        "k.weight",
        "k.bias",
        "offset.weight",
        "offset.bias",
    }
    assert set(SAPADeform(8, qkv_bias=False).state_dict()) == {"q.weight", "k.weight", "offset.weight"}


def test_official_shaped_state_dict_loads_strictly():
    """Conv2d weights as the official module stores them (G*d x C x 1 x 1, 2GPs^2 x C x 1 x 1)."""
    state = {
        "q.weight": torch.randn(4 * 32, 16, 1, 1),
        "q.bias": torch.randn(4 * 32),
        "k.weight": torch.randn(4 * 32, 24, 1, 1),
        "k.bias": torch.randn(4 * 32),
        "offset.weight": torch.randn(4 * 9 * 2 * 9, 24, 1, 1),
        "offset.bias": torch.randn(4 * 9 * 2 * 9),
    }
    up = SAPADeform(24, 3, guide_channels=16)
    up.load_state_dict(state, strict=True)
    assert torch.equal(up.offset.weight, state["offset.weight"])


def test_encoder_of_wrong_size_is_rejected():
    up = SAPADeform(8, 2, groups=2)
    with pytest.raises(ValueError, match="`encoder`.*6 x 8"):
        up(torch.randn(1, 8, 3, 4), torch.randn(1, 8, 6, 9))
    with pytest.raises(ValueError, match="`encoder`.*channels"):
        up(torch.randn(1, 8, 3, 4), torch.randn(1, 4, 6, 8))
    with pytest.raises(ValueError, match="`d`.*channels"):
        up(torch.randn(1, 6, 3, 4), torch.randn(1, 8, 6, 8))


def test_group_norm_needs_more_than_one_value_per_group():
    with pytest.raises(ValueError, match="`d`.*GroupNorm"):
        SAPADeform(32, norm=True)(torch.randn(1, 32, 1, 1), torch.randn(1, 32, 2, 2))


@pytest.mark.parametrize(
    "kwargs, error, argument",
    [
        (dict(num_point=5), ValueError, "num_point"),
        (dict(num_point=0), ValueError, "num_point"),
        (dict(groups=3), ValueError, "groups"),
        (dict(embedding_dim=0), ValueError, "embedding_dim"),
        (dict(norm=True), ValueError, "norm_groups"),
        (dict(norm="group"), TypeError, "norm"),
        (dict(qkv_bias=1), TypeError, "qkv_bias"),
        (dict(high_offset=None), TypeError, "high_offset"),
        (dict(scale_factor=0), ValueError, "scale_factor"),
    ],
)
def test_constructor_errors_name_the_argument(kwargs, error, argument):
    with pytest.raises(error, match=f"`{argument}`"):
        SAPADeform(8, **kwargs)
