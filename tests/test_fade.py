"""FADE: the upsampler and its pair against the formulas, gate limits, checkpoints of both official forms."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from conftest import assert_close
from reference import reassemble_loop
from resamplers import create_pair
from resamplers.guided import FADE


def _randomise(module: torch.nn.Module, seed: int = 0, std: float = 0.3) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * std)


def _nearest(x: torch.Tensor, s: int) -> torch.Tensor:
    return x.repeat_interleave(s, -2).repeat_interleave(s, -1)


def _pair(channels: int, **kwargs):
    return create_pair("fade", channels=channels, **kwargs)


def _expected(pair: FADE, d: torch.Tensor, en: torch.Tensor) -> torch.Tensor:
    """FADE from its published formulas, with explicit convolutions and index-repeat upsampling."""
    s, k = pair.scale_factor, pair.up_kernel
    p = dict(pair.named_parameters())
    groups = k * k if pair.lite else 1
    pad = p["ker_generator.content_encoder.weight"].shape[-1] // 2

    def encode(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(
            t,
            p["ker_generator.content_encoder.weight"],
            p["ker_generator.content_encoder.bias"],
            padding=pad,
            groups=groups,
        )

    enc = F.conv2d(en, p["ker_generator.compressor_en.weight"], p["ker_generator.compressor_en.bias"])
    dec = F.conv2d(d, p["ker_generator.compressor_de.weight"])
    kernels = (encode(enc) + _nearest(encode(dec), s)).softmax(1)
    reassembled = reassemble_loop(d, kernels, k, 1, up=s)
    if not pair.gate:
        return reassembled
    gate = torch.sigmoid(_nearest(F.conv2d(d, p["gate_generator.conv.weight"], p["gate_generator.conv.bias"]), s))
    skip = F.conv2d(en, p["aligner.weight"], p["aligner.bias"]) if "aligner.weight" in p else en
    return gate * skip + (1 - gate) * reassembled


@pytest.mark.parametrize(
    "kwargs, size",
    [
        (dict(), (3, 4)),
        (dict(gate=False), (4, 3)),
        (dict(lite=True), (2, 5)),
        (dict(scale_factor=3, up_kernel=3), (2, 3)),
        (dict(up_kernel=7, encoder_kernel=5, embedding_dim=6), (3, 3)),
        (dict(up_channels=10), (3, 4)),
        (dict(up_channels=10, gate=False), (1, 2)),
    ],
)
@torch.no_grad()
def test_pipeline_against_formulas(kwargs, size):
    pair = _pair(6, **kwargs).double()
    _randomise(pair, seed=len(kwargs))
    s = pair.scale_factor
    h, w = size
    en = torch.randn(2, 6, s * h, s * w, dtype=torch.float64)
    d = torch.randn(2, pair.up_channels, h, w, dtype=torch.float64)
    expected = _expected(pair.upsampler, d, en)
    assert_close(pair.upsampler(d, en), expected)
    _, guide = pair.down(en)
    assert_close(pair.up(d, guide), expected)


def test_constant_kernels_are_box_filter_then_nearest():
    pair = FADE(8, gate=False).double()
    with torch.no_grad():
        pair.ker_generator.content_encoder.weight.zero_()
    d = torch.randn(2, 8, 4, 5, dtype=torch.float64)
    en = torch.randn(2, 8, 8, 10, dtype=torch.float64)
    box = F.avg_pool2d(d, 5, stride=1, padding=2, count_include_pad=True)
    assert_close(pair(d, en), _nearest(box, 2))


@pytest.mark.parametrize("bias, expect_encoder", [(40.0, True), (-40.0, False)])
def test_gate_limits(bias, expect_encoder):
    pair = FADE(8).double()
    with torch.no_grad():
        pair.gate_generator.conv.weight.zero_()
        pair.gate_generator.conv.bias.fill_(bias)
    d = torch.randn(1, 8, 3, 4, dtype=torch.float64)
    en = torch.randn(1, 8, 6, 8, dtype=torch.float64)
    ungated = FADE(8, gate=False).double()
    ungated.load_state_dict({k: v for k, v in pair.state_dict().items() if not k.startswith("gate_generator")})
    assert_close(pair(d, en), en if expect_encoder else ungated(d, en))


@pytest.mark.parametrize("name, params", [("fade", 47_514), ("fade_no_gate", 47_257), ("fade_lite", 13_332)])
def test_parameter_counts(name, params):
    assert sum(p.numel() for p in create_pair(name, channels=256).parameters()) == params


def test_official_keys_and_h2l_checkpoints():
    pair = FADE(8).double()
    assert (
        set(pair.state_dict())
        == set(_pair(8).state_dict())
        == {
            "gate_generator.conv.weight",
            "gate_generator.conv.bias",
            "ker_generator.compressor_en.weight",
            "ker_generator.compressor_en.bias",
            "ker_generator.compressor_de.weight",
            "ker_generator.content_encoder.weight",
            "ker_generator.content_encoder.bias",
        }
    )
    _randomise(pair, seed=7)
    renamed = {
        "ker_generator.compressor_en.weight": "kernel_generator.conv1_en.weight",
        "ker_generator.compressor_en.bias": "kernel_generator.conv1_en.bias",
        "ker_generator.compressor_de.weight": "kernel_generator.conv1_de.weight",
        "ker_generator.content_encoder.weight": "kernel_generator.conv2_kernels",
        "ker_generator.content_encoder.bias": "kernel_generator.conv2_bias",
    }
    h2l_state = {renamed.get(k, k): v.clone() for k, v in pair.state_dict().items()}
    loaded = FADE(8).double()
    loaded.load_state_dict(h2l_state, strict=True)
    d = torch.randn(1, 8, 3, 5, dtype=torch.float64)
    en = torch.randn(1, 8, 6, 10, dtype=torch.float64)
    assert_close(loaded(d, en), pair(d, en))
    in_pair = _pair(8).double()
    in_pair.load_state_dict(h2l_state, strict=True)
    assert_close(in_pair.upsampler(d, en), pair(d, en))


def test_aligner_only_when_gated_channels_differ():
    assert not hasattr(FADE(8), "aligner")
    assert not hasattr(FADE(4, guide_channels=8, gate=False), "aligner")
    assert FADE(4, guide_channels=8).aligner.weight.shape == (4, 8, 1, 1)
    assert _pair(8, up_channels=4).upsampler.aligner.weight.shape == (4, 8, 1, 1)


def test_initialisation_is_xavier_uniform_with_zero_biases():
    torch.manual_seed(0)
    pair = FADE(64)
    w = pair.ker_generator.compressor_en.weight
    bound = (6 / (64 + 64)) ** 0.5
    assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound
    assert torch.count_nonzero(pair.ker_generator.content_encoder.bias) == 0
    assert torch.count_nonzero(pair.gate_generator.conv.bias) == 0


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        (dict(up_kernel=4), "up_kernel"),
        (dict(encoder_kernel=2), "encoder_kernel"),
        (dict(embedding_dim=0), "embedding_dim"),
    ],
)
def test_constructor_errors(kwargs, argument):
    with pytest.raises(ValueError, match=f"`{argument}`"):
        FADE(8, **kwargs)
