"""CARAFE++ content-aware downsampling against its written definition."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from conftest import assert_close
from reference import reassemble_loop
from resamplers import create_downsampler
from resamplers.downsampling import CARAFEDown
from resamplers.functional import native_available, reassemble_down


def _state(c: int, cm: int, k: int, groups: int, k_enc: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "channel_compressor.weight": torch.randn(cm, c, 1, 1, generator=g, dtype=torch.float64),
        "channel_compressor.bias": torch.randn(cm, generator=g, dtype=torch.float64),
        "content_encoder.weight": torch.randn(groups * k * k, cm, k_enc, k_enc, generator=g, dtype=torch.float64) * 0.5,
        "content_encoder.bias": torch.randn(groups * k * k, generator=g, dtype=torch.float64),
    }


@pytest.mark.parametrize(
    "scale, k, groups, k_enc, size",
    [(2, 5, 1, 3, (6, 8)), (2, 3, 2, 1, (5, 7)), (3, 5, 1, 3, (7, 4)), (2, 7, 4, 5, (1, 3)), (1, 3, 1, 3, (3, 3))],
)
def test_pipeline_against_definition(scale, k, groups, k_enc, size):
    """compressor -> strided encoder -> per-group softmax -> window centred on (s*y, s*x)."""
    c, cm = 8, 6
    state = _state(c, cm, k, groups, k_enc, seed=scale + k)
    down = CARAFEDown(c, scale, k, groups, k_enc, cm).double()
    down.load_state_dict(state, strict=True)
    x = torch.randn(2, c, *size, dtype=torch.float64)
    compressed = F.conv2d(x, state["channel_compressor.weight"], state["channel_compressor.bias"])
    logits = F.conv2d(
        compressed, state["content_encoder.weight"], state["content_encoder.bias"], stride=scale, padding=k_enc // 2
    )
    n, _, ho, wo = logits.shape
    kernels = logits.reshape(n, groups, k * k, ho, wo).softmax(2).reshape(n, -1, ho, wo)
    expected = reassemble_loop(x, kernels, k, groups, stride=scale, pad=(k // 2, k // 2))
    out = down(x)
    assert out.shape == (2, c, -(-size[0] // scale), -(-size[1] // scale))
    assert_close(out, expected)


BACKENDS = ["torch", pytest.param("native", marks=pytest.mark.skipif(not native_available(), reason="no native build"))]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("scale, k", [(2, 5), (2, 3), (3, 5), (4, 7)])
def test_uniform_kernels_are_zero_padded_box_filter_with_stride(scale, k, backend):
    down = CARAFEDown(6, scale, down_kernel=k).double()
    with torch.no_grad():  # constant logits -> uniform 1/k^2 kernels
        down.content_encoder.weight.zero_()
    x = torch.randn(2, 6, 9, 10, dtype=torch.float64)
    expected = F.avg_pool2d(x, k, stride=scale, padding=k // 2, count_include_pad=True)
    assert_close(reassemble_down(x, down.kernels(x), k, 1, scale, k // 2, backend=backend), expected)
    assert_close(down(x), expected)


@pytest.mark.parametrize("size", [(1, 1), (2, 2), (5, 7), (8, 8), (9, 1), (16, 13)])
@pytest.mark.parametrize("scale", [1, 2, 3])
def test_output_size_is_ceil_and_consistent(size, scale):
    down = CARAFEDown(4, scale)
    expected = (-(-size[0] // scale), -(-size[1] // scale))
    assert down.output_size(size) == expected
    assert tuple(down(torch.randn(1, 4, *size)).shape[-2:]) == expected


def test_parameter_count_and_keys():
    down = create_downsampler("carafe", channels=256)
    # compressor 256*16 + 16, encoder 16*25*9 + 25
    assert sum(p.numel() for p in down.parameters()) == 7_737
    assert set(down.state_dict()) == {
        "channel_compressor.weight",
        "channel_compressor.bias",
        "content_encoder.weight",
        "content_encoder.bias",
    }


def test_initial_kernels_are_nearly_uniform():
    torch.manual_seed(0)
    down = CARAFEDown(32, 2)
    kernels = down.kernels(torch.randn(1, 32, 8, 8))
    assert kernels.shape == (1, 25, 4, 4)
    assert (kernels * 25 - 1).abs().max() < 0.2


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        (dict(down_kernel=4), "down_kernel"),
        (dict(encoder_kernel=2), "encoder_kernel"),
        (dict(down_group=3), "down_group"),
        (dict(compressed_channels=0), "compressed_channels"),
        (dict(scale_factor=0), "scale_factor"),
    ],
)
def test_constructor_errors(kwargs, argument):
    with pytest.raises(ValueError, match=f"`{argument}`"):
        CARAFEDown(8, **kwargs)


@pytest.mark.parametrize("scale, k, k_enc", [(2, 5, 3), (3, 7, 5)])
def test_torch_export_with_dynamic_sizes_is_right_at_other_sizes(scale, k, k_enc):
    """Strided reassembly spans and the size check are written so export needs no guards."""
    from torch.export import Dim

    torch.manual_seed(0)
    down = CARAFEDown(4, scale, down_kernel=k, encoder_kernel=k_enc).eval()
    dims = {"x": {0: Dim("n", min=1, max=8), 2: Dim("h", min=6, max=512), 3: Dim("w", min=6, max=512)}}
    program = torch.export.export(down, (torch.randn(2, 4, 8, 9),), dynamic_shapes=dims)
    for size in ((7, 6), (13, 16)):
        x = torch.randn(1, 4, *size)
        with torch.no_grad():
            assert_close(program.module()(x), down(x))
