"""Second derivatives of the core on both backends, and non-finite weights at taps
outside the image (skipped on every path, as mmcv does)."""

from __future__ import annotations

import warnings

import pytest
import torch

from conftest import assert_close
from resamplers.functional import carafe, native_available, reassemble, reassemble_down, window_similarity

BACKENDS = ["torch", "native"] if native_available() else ["torch"]
GEOMETRIES = [
    ((1, 18, 6, 8), dict(kernel_size=3, groups=2, scale_factor=2)),
    ((1, 9, 2, 2), dict(kernel_size=3, groups=1, stride=2, padding=1)),
    ((1, 16, 1, 2), dict(kernel_size=2, groups=4, stride=2, padding=0)),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kernel_shape, kw", GEOMETRIES)
def test_gradgradcheck_reassemble(backend, kernel_shape, kw):
    torch.manual_seed(0)
    x = torch.randn(1, 4, 3, 4, dtype=torch.float64, requires_grad=True)
    k = torch.randn(*kernel_shape, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda a, b: reassemble(a, b, **kw, backend=backend), (x, k))


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradgradcheck_window_similarity(backend):
    torch.manual_seed(0)
    q = torch.randn(1, 4, 6, 8, dtype=torch.float64, requires_grad=True)
    keys = torch.randn(1, 4, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(
        lambda a, b: window_similarity(a, b, 3, 2, scale_factor=2, backend=backend), (q, keys)
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_mixed_second_derivative_is_not_dropped(backend):
    """d/dk of (d/dx sum(out^2)) is nonzero; it used to come back None on the torch path."""
    torch.manual_seed(0)
    x = torch.randn(1, 4, 5, 5, requires_grad=True)
    k = torch.randn(1, 9, 10, 10, requires_grad=True)
    (gx,) = torch.autograd.grad(carafe(x, k, 3, 1, 2, backend=backend).pow(2).sum(), x, create_graph=True)
    (gk,) = torch.autograd.grad(gx.sum(), k, allow_unused=True)
    assert gk is not None and gk.abs().sum() > 0


def _inf_outside():
    """4 x 4 input, k = 3, stride 2: output (0, 0) reads row -1 (taps 0-2) and column -1
    (taps 0, 3, 6), both outside the image."""
    torch.manual_seed(0)
    x = torch.randn(1, 2, 4, 4)
    k = torch.randn(1, 9, 2, 2)
    k[0, 1, 0, 0] = float("inf")  # above the image
    k[0, 3, 0, 0] = float("-inf")  # left of it
    k[0, 0, 0, 0] = float("nan")  # the corner
    clean = k.clone()
    clean[0, [0, 1, 3], 0, 0] = 0.0
    return x, k, clean


def test_non_finite_weights_outside_the_image_contribute_nothing():
    x, k, clean = _inf_outside()
    expected = reassemble_down(x, clean, 3, 1, 2, 1, backend="torch")
    assert torch.isfinite(expected).all()
    results = {backend: reassemble_down(x, k, 3, 1, 2, 1, backend=backend) for backend in BACKENDS}
    # torch eager training path (hand-written autograd function)
    results["torch-grad"] = reassemble_down(x, k.clone().requires_grad_(), 3, 1, 2, 1, backend="torch").detach()

    def fn(a, b):
        return reassemble_down(a, b, 3, 1, 2, 1)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(fn, (x, k))
    results["traced"] = traced(x, k)

    class Wrap(torch.nn.Module):
        def forward(self, a, b):
            return fn(a, b)

    results["exported"] = torch.export.export(Wrap(), (x, k)).module()(x, k)
    for name, out in results.items():
        assert torch.isfinite(out).all(), name
        assert_close(out, expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_non_finite_outside_weights_keep_gradients_finite(backend):
    x, k, clean = _inf_outside()
    x.requires_grad_()
    out = reassemble_down(x, k, 3, 1, 2, 1, backend=backend)
    (gx,) = torch.autograd.grad(out.sum(), x)
    x2 = x.detach().requires_grad_()
    (want,) = torch.autograd.grad(reassemble_down(x2, clean, 3, 1, 2, 1, backend="torch").sum(), x2)
    assert torch.isfinite(gx).all()
    assert_close(gx, want)
