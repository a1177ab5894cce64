"""Mixed precision in the core: under autocast, low-precision kernels next to float32
features are computed in float32 and returned in the features' dtype; gradients flow."""

from __future__ import annotations

import pytest
import torch

from conftest import assert_close
from resamplers.functional import carafe, native_available, reassemble, reassemble_down, window_similarity

BACKENDS = ["auto", "torch"] + (["native"] if native_available() else [])


def _conv_kernels(x: torch.Tensor, channels: int, stride: int = 1) -> tuple[torch.Tensor, torch.nn.Conv2d]:
    conv = torch.nn.Conv2d(x.shape[1], channels, 3, stride, 1)
    return conv(x), conv


CASES = {
    "carafe": (lambda x, k, b: carafe(x, k, 3, 1, 2, backend=b), 9, 2, "up"),
    "reassemble": (lambda x, k, b: reassemble(x, k, 3, 2, scale_factor=2, backend=b), 18, 2, "up"),
    "down": (lambda x, k, b: reassemble_down(x, k, 3, 1, 2, 1, backend=b), 9, 2, "down"),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_bf16_kernels_under_autocast(name, backend):
    fn, channels, factor, kind = CASES[name]
    torch.manual_seed(0)
    x = torch.randn(1, 4, 6, 8, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        if kind == "up":
            k, conv = _conv_kernels(torch.nn.functional.interpolate(x, scale_factor=factor), channels)
        else:
            k, conv = _conv_kernels(x, channels, stride=factor)
        assert k.dtype == torch.bfloat16 and x.dtype == torch.float32
        out = fn(x, k, backend)
    assert out.dtype == torch.float32
    assert_close(out, fn(x.detach(), k.detach().float(), "torch"))
    out.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.dtype == torch.float32
    assert conv.weight.grad is not None and torch.isfinite(conv.weight.grad).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_window_similarity_under_autocast(backend):
    torch.manual_seed(0)
    keys = torch.randn(1, 4, 5, 6, requires_grad=True)
    query = torch.randn(1, 4, 10, 12, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        sim = window_similarity(query, keys.bfloat16(), 3, 2, scale_factor=2, backend=backend)
    assert sim.dtype == torch.float32
    assert_close(sim, window_similarity(query.detach(), keys.detach().bfloat16().float(), 3, 2, scale_factor=2))
    sim.sum().backward()
    assert query.grad is not None and keys.grad is not None and keys.grad.dtype == torch.float32


def test_bf16_features_return_bf16_and_float64_wins():
    x = torch.randn(1, 2, 4, 4)
    k = torch.randn(1, 9, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert carafe(x.bfloat16(), k, 3, 1, 2).dtype == torch.bfloat16
        out = carafe(x.double(), k, 3, 1, 2)
    assert out.dtype == torch.float64
    assert_close(out, carafe(x.double(), k.double(), 3, 1, 2))


def test_strict_dtype_check_outside_autocast():
    x = torch.randn(1, 2, 4, 4)
    with pytest.raises(ValueError, match="`masks`.*dtype"):
        carafe(x, torch.randn(1, 9, 8, 8).bfloat16(), 3, 1, 2)
