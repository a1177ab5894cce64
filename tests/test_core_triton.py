"""The Triton path of the core against the torch path, run on the CPU in Triton's interpreter.

``triton.jit`` reads ``TRITON_INTERPRET`` when it decorates the kernels (on the first use
of the Triton path in a process), so the checks run in fresh processes with the variable
set: each test below runs this file as a script on one group of checks (``python
tests/test_core_triton.py GROUP``), which prints the result of every check as JSON; a
test fails with the traceback of each failing check.  One process per group keeps the
groups parallel under pytest-xdist and runs no check twice.  The tests are skipped when
triton is not installed, except the one that checks that the library works without it.

Tolerances: float64 and float32 as everywhere in the suite (``conftest.TOLERANCES``);
float16 and bfloat16 outputs are compared with the float32 torch path on the same
(rounded) inputs within one unit in the last place (relative ``2**-10`` and ``2**-7``,
absolute ``1e-5``); one case is built so that a sum accumulated in the input dtype would
be wrong (every ``+ 1`` rounds away) and must come out exact.

To run one group by hand: ``TRITON_INTERPRET=1 python tests/test_core_triton.py reassembly``
(groups: ``reassembly``, ``similarity``, ``autograd``, ``second_derivatives``).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from conftest import assert_close
from test_reassembly import GEOMETRIES as CORE_GEOMETRIES
from test_sapa import GEOMETRIES as SAPA_GEOMETRIES

HAS_TRITON = importlib.util.find_spec("triton") is not None
needs_triton = pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed (pip install 'resamplers[gpu]')")

HERE = Path(__file__).resolve()
RESULT_MARK = "TRITON-CHECKS "

# name -> check, by group; every check raises on failure.
CHECKS: dict[str, dict[str, Callable[[], None]]] = {}


def _register(group: str, name: str, fn: Callable[[], None]) -> None:
    CHECKS.setdefault(group, {})[name] = fn


def check(group: str) -> Callable[[Callable[[], None]], Callable[[], None]]:
    def decorate(fn: Callable[[], None]) -> Callable[[], None]:
        _register(group, fn.__name__.removeprefix("check_"), fn)
        return fn

    return decorate


# ---------------------------------------------------------------------------------------
# Inputs and references.


def _sizes(k, up, stride, pad, size):
    pt, pl = ((k - 1) // 2,) * 2 if pad is None else pad
    h, w = size
    if up > 1:
        return (pt, pl), (h * up, w * up)
    return (pt, pl), ((h - 1 + pt) // stride + 1, (w - 1 + pl) // stride + 1)


def _reassembly_case(k, groups, up, stride, pad, size, channels=8, dtype=torch.float64, seed=0, crop=0, batch=2):
    """Features, kernels and a gradient for one geometry; ``crop`` output rows fewer than
    the most the geometry allows (strided calls accept any smaller output)."""
    from resamplers.core import Geometry

    g = torch.Generator().manual_seed(seed)
    (pt, pl), (ho, wo) = _sizes(k, up, stride, pad, size)
    ho -= crop
    x = torch.randn(batch, channels, *size, generator=g, dtype=torch.float64)
    kernels = torch.randn(batch, groups * k * k, ho, wo, generator=g, dtype=torch.float64)
    grad = torch.randn(batch, channels, ho, wo, generator=g, dtype=torch.float64)
    geometry = Geometry(k, groups, up, stride, pt, pl)
    return x.to(dtype), kernels.to(dtype), grad.to(dtype), geometry


def _call(geometry):
    k, groups, up, stride, pt, pl = geometry
    return dict(kernel_size=k, groups=groups, scale_factor=up, stride=stride, padding=(pt, pl))


def _forward_and_grads(fn, inputs, grad):
    leaves = [t.detach().clone().requires_grad_() for t in inputs]
    out = fn(*leaves)
    return (out, *torch.autograd.grad(out, leaves, grad))


def _compare_reassembly(x, kernels, grad, geometry, compute=None, **tolerance):
    """Forward and both gradients of ``backend="triton"`` against the torch path (computed in
    ``compute``, default the inputs' dtype)."""
    from resamplers.functional import reassemble

    kw = _call(geometry)
    got = _forward_and_grads(lambda a, b: reassemble(a, b, **kw, backend="triton"), (x, kernels), grad)
    c = compute or x.dtype
    want = _forward_and_grads(
        lambda a, b: reassemble(a, b, **kw, backend="torch"), (x.to(c), kernels.to(c)), grad.to(c)
    )
    for name, a, b in zip(("output", "grad features", "grad kernels"), got, want):
        assert a.dtype == x.dtype, f"{name}: dtype {a.dtype}"
        _close(a, b, name, **tolerance)


def _close(actual, expected, name, rtol=None, atol=None):
    try:
        if rtol is None:
            assert_close(actual, expected)
        else:
            torch.testing.assert_close(actual.to(expected.dtype), expected, rtol=rtol, atol=atol, check_stride=False)
    except AssertionError as error:
        raise AssertionError(f"{name}: {error}") from None


def _similarity_case(k, groups, up, stride, pad, size, channels=8, dtype=torch.float64, seed=0, batch=2):
    from resamplers.core import Geometry

    g = torch.Generator().manual_seed(seed)
    (pt, pl), (ho, wo) = _sizes(k, up, stride, pad, size)
    keys = torch.randn(batch, channels, *size, generator=g, dtype=torch.float64)
    query = torch.randn(batch, channels, ho, wo, generator=g, dtype=torch.float64)
    grad = torch.randn(batch, groups * k * k, ho, wo, generator=g, dtype=torch.float64)
    return query.to(dtype), keys.to(dtype), grad.to(dtype), Geometry(k, groups, up, stride, pt, pl)


def _compare_similarity(query, keys, grad, geometry, compute=None, **tolerance):
    from resamplers.functional import window_similarity

    kw = _call(geometry)
    got = _forward_and_grads(lambda q, s: window_similarity(q, s, **kw, backend="triton"), (query, keys), grad)
    c = compute or query.dtype
    want = _forward_and_grads(
        lambda q, s: window_similarity(q, s, **kw, backend="torch"), (query.to(c), keys.to(c)), grad.to(c)
    )
    for name, a, b in zip(("similarity", "grad query", "grad keys"), got, want):
        assert a.dtype == query.dtype, f"{name}: dtype {a.dtype}"
        _close(a, b, name, **tolerance)


# ---------------------------------------------------------------------------------------
# Group "reassembly": forward and both gradients, float32 and float64, every geometry.

# (kernel, groups, up, stride, padding, input size): every geometry of the native and torch
# tests (upsampling, plain filtering, CARAFE++-style odd and A2U-style even strided
# windows, IndexNet-style 2x2 cells), those of tests/test_core_gradients.py, and more.
GEOMETRIES = [
    *CORE_GEOMETRIES,
    (3, 2, 2, 1, None, (3, 4)),
    (3, 1, 1, 2, (1, 1), (3, 4)),
    (2, 4, 1, 2, (0, 0), (2, 4)),
    # A2U: even K = 2s, padding s - 1; CARAFE++: odd K centred; asymmetric padding
    (4, 2, 1, 2, (1, 1), (6, 7)),
    (6, 1, 1, 3, (2, 2), (9, 7)),
    (3, 2, 1, 2, (1, 1), (5, 6)),
    (3, 1, 1, 2, (0, 2), (5, 6)),
    (7, 1, 2, 1, None, (2, 3)),
]

# Every geometry in float64 (one image: the interpreter runs programs one by one), the
# main kinds also in float32 with a batch of two.
for _geometry in GEOMETRIES:
    _register(
        "reassembly",
        f"{_geometry}-float64",
        functools.partial(lambda g: _compare_reassembly(*_reassembly_case(*g, batch=1)), _geometry),
    )
for _geometry in [GEOMETRIES[i] for i in (0, 4, 5, 6)]:
    _register(
        "reassembly",
        f"{_geometry}-float32",
        functools.partial(lambda g: _compare_reassembly(*_reassembly_case(*g, dtype=torch.float32)), _geometry),
    )

# CARAFE upsampling (padding (K - 1) // 2): K = 1..5 times up = 1..4, two groups.
for _k in range(1, 6):
    for _up in range(1, 5):
        _register(
            "reassembly",
            f"upsample-k{_k}-up{_up}",
            functools.partial(
                lambda k, up: _compare_reassembly(*_reassembly_case(k, 2, up, 1, None, (2, 3), channels=4, batch=1)),
                _k,
                _up,
            ),
        )


@check("reassembly")
def check_smaller_strided_output():
    """A strided output smaller than the most the geometry allows (the last rows unread)."""
    _compare_reassembly(*_reassembly_case(3, 2, 1, 2, (1, 1), (7, 6), crop=1))
    _compare_reassembly(*_reassembly_case(4, 1, 1, 2, (1, 1), (8, 6), crop=2))


@check("reassembly")
def check_several_blocks_of_pixels_channels_and_taps():
    """More channels per group than one block (16), more pixels than one block, more taps
    than one block of the similarity kernel (32), a batch of 3."""
    from resamplers.core import Geometry

    g = torch.Generator().manual_seed(3)
    for geometry, c, size, ho_wo in [
        (Geometry(3, 1, 2, 1, 1, 1), 20, (6, 11), (12, 22)),  # 2 channel blocks, 3 (forward) pixel blocks
        (Geometry(7, 1, 1, 1, 3, 3), 2, (5, 6), (5, 6)),  # 49 taps: 2 tap blocks
        (Geometry(2, 2, 1, 2, 0, 0), 36, (12, 23), (6, 11)),  # 2 channel blocks, 3 source pixel blocks
    ]:
        x = torch.randn(3, c, *size, generator=g)
        kernels = torch.randn(3, geometry.groups * geometry.kernel_size**2, *ho_wo, generator=g)
        grad = torch.randn(3, c, *ho_wo, generator=g)
        _compare_reassembly(x, kernels, grad, geometry)


@check("reassembly")
def check_carafe_and_reassemble_down_take_the_backend():
    from resamplers.functional import carafe, reassemble, reassemble_down

    x, kernels, _, geometry = _reassembly_case(5, 2, 2, 1, None, (3, 4))
    assert_close(carafe(x, kernels, 5, 2, 2, backend="triton"), carafe(x, kernels, 5, 2, 2, backend="torch"))
    x, kernels, _, geometry = _reassembly_case(6, 1, 1, 2, (2, 2), (8, 6))
    assert_close(
        reassemble_down(x, kernels, 6, 1, 2, (2, 2), backend="triton"),
        reassemble(x, kernels, **_call(geometry), backend="torch"),
    )


# ---------------------------------------------------------------------------------------
# Group "similarity": the window similarity and its two gradients.

# kernel, groups, up, stride, padding, key size: those of tests/test_sapa.py and more
SIMILARITY_GEOMETRIES = [
    *((k, groups, up, stride, pad, size) for k, groups, up, stride, size, pad in SAPA_GEOMETRIES),
    (3, 2, 2, 1, None, (3, 4)),
    (2, 8, 1, 2, (0, 0), (4, 6)),
    (7, 2, 1, 1, None, (4, 5)),
    (3, 1, 4, 1, None, (2, 2)),
]

for _geometry in SIMILARITY_GEOMETRIES:
    _register(
        "similarity",
        f"{_geometry}-float64",
        functools.partial(lambda g: _compare_similarity(*_similarity_case(*g, batch=1)), _geometry),
    )
for _geometry in [SIMILARITY_GEOMETRIES[i] for i in (0, 4, 8)]:
    _register(
        "similarity",
        f"{_geometry}-float32",
        functools.partial(lambda g: _compare_similarity(*_similarity_case(*g, dtype=torch.float32)), _geometry),
    )


@check("similarity")
def check_similarity_is_the_adjoint_of_reassembly():
    """<q, reassemble(keys, w)> == <window_similarity(q, keys), w>, both on Triton."""
    from resamplers.functional import reassemble, window_similarity

    query, keys, w, geometry = _similarity_case(3, 2, 2, 1, None, (3, 4))
    kw = _call(geometry)
    lhs = (query * reassemble(keys, w, **kw, backend="triton")).sum()
    rhs = (window_similarity(query, keys, **kw, backend="triton") * w).sum()
    assert_close(lhs, rhs)


@check("similarity")
def check_out_of_image_keys_give_zero():
    from resamplers.functional import window_similarity

    sim = window_similarity(torch.ones(1, 2, 2, 2), torch.ones(1, 2, 1, 1), 3, scale_factor=2, backend="triton")
    expected = torch.zeros(9)
    expected[4] = 2.0
    assert torch.equal(sim[0, :, 1, 1], expected)


# ---------------------------------------------------------------------------------------
# Group "similarity" too: float16 and bfloat16 in, float32 accumulation; autocast.

ULP = {torch.float16: 2.0**-10, torch.bfloat16: 2.0**-7}

for _dtype in (torch.float16, torch.bfloat16):
    for _geometry in [(5, 2, 2, 1, None, (3, 4)), (6, 1, 1, 2, (2, 2), (8, 6)), (3, 2, 3, 1, None, (2, 2))]:
        _register(
            "similarity",
            f"reassemble-{_geometry}-{str(_dtype).removeprefix('torch.')}",
            functools.partial(
                lambda g, d: _compare_reassembly(
                    *_reassembly_case(*g, dtype=d, batch=1), compute=torch.float32, rtol=ULP[d], atol=1e-5
                ),
                _geometry,
                _dtype,
            ),
        )
    for _geometry in [(5, 1, 2, 1, None, (3, 4)), (4, 2, 1, 2, (1, 1), (6, 5))]:
        _register(
            "similarity",
            f"similarity-{_geometry}-{str(_dtype).removeprefix('torch.')}",
            functools.partial(
                lambda g, d: _compare_similarity(
                    *_similarity_case(*g, dtype=d, batch=1), compute=torch.float32, rtol=ULP[d], atol=1e-5
                ),
                _geometry,
                _dtype,
            ),
        )


@check("similarity")
def check_low_precision_accumulates_in_float32():
    """One tap of weight 2**8 (bfloat16) or 2**11 (float16) then 24 of weight 1 on features of
    ones: exactly 2**8 + 24 (representable); summed in the input dtype, each ``+ 1`` would
    round back to the large value (ties to even) and give 2**8."""
    from resamplers.functional import reassemble

    for dtype, big in ((torch.bfloat16, 256.0), (torch.float16, 2048.0)):
        x = torch.ones(1, 1, 5, 5, dtype=dtype)
        kernels = torch.ones(1, 25, 5, 5, dtype=dtype)
        kernels[:, 0] = big
        out = reassemble(x, kernels, 5, backend="triton")
        assert out.dtype == dtype
        assert out[0, 0, 2, 2].item() == big + 24, (dtype, out[0, 0, 2, 2].item())
        naive = torch.tensor(big, dtype=dtype)
        for _ in range(24):
            naive = naive + torch.tensor(1.0, dtype=dtype)
        assert naive.item() == big, "the premise: a sum in the low-precision dtype loses the ones"


@check("similarity")
def check_autocast_computes_in_float32():
    """Under CPU autocast, bfloat16 kernels next to float32 features: both go to float32."""
    from resamplers.functional import reassemble

    x, kernels, _, geometry = _reassembly_case(5, 2, 2, 1, None, (3, 4), dtype=torch.float32)
    kernels = kernels.bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = reassemble(x, kernels, **_call(geometry), backend="triton")
        want = reassemble(x, kernels, **_call(geometry), backend="torch")
    assert got.dtype == torch.float32
    assert_close(got, want)


# ---------------------------------------------------------------------------------------
# Group "autograd" (first part): non-finite weights outside the image, layouts, empty
# inputs, errors.


def _inf_outside():
    """4 x 4 input, k = 3, stride 2: output (0, 0) reads row -1 (taps 0-2) and column -1
    (taps 0, 3, 6), both outside the image (as in tests/test_core_gradients.py)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 2, 4, 4, generator=g)
    k = torch.randn(1, 9, 2, 2, generator=g)
    k[0, 1, 0, 0] = float("inf")
    k[0, 3, 0, 0] = float("-inf")
    k[0, 0, 0, 0] = float("nan")
    clean = k.clone()
    clean[0, [0, 1, 3], 0, 0] = 0.0
    return x, k, clean


@check("autograd")
def check_non_finite_weights_outside_the_image_contribute_nothing():
    from resamplers.functional import reassemble_down

    x, k, clean = _inf_outside()
    grad = torch.randn(1, 2, 2, 2)
    got = _forward_and_grads(lambda a, b: reassemble_down(a, b, 3, 1, 2, 1, backend="triton"), (x, k), grad)
    want = _forward_and_grads(lambda a, b: reassemble_down(a, b, 3, 1, 2, 1, backend="torch"), (x, clean), grad)
    for name, a, b in zip(("output", "grad features", "grad kernels"), got, want):
        assert torch.isfinite(a).all(), name
        _close(a, b, name)
    # the kernel gradient is 0 at the taps outside the image
    assert torch.equal(got[2][0, [0, 1, 2, 3, 6], 0, 0], torch.zeros(5))


@check("autograd")
def check_non_contiguous_inputs():
    """Channels-last features, kernels that are every other column of a wider tensor, a
    transposed query, and the expanded (stride 0) gradient of ``out.sum()``."""
    from resamplers.functional import reassemble, window_similarity

    x, kernels, _, geometry = _reassembly_case(5, 2, 2, 1, None, (3, 4))
    kw = _call(geometry)
    x_cl = x.to(memory_format=torch.channels_last).requires_grad_()
    wide = torch.zeros(*kernels.shape[:-1], 2 * kernels.shape[-1], dtype=kernels.dtype)
    wide[..., ::2] = kernels
    wide.requires_grad_()
    assert not x_cl.is_contiguous() and not wide[..., ::2].is_contiguous()
    out = reassemble(x_cl, wide[..., ::2], **kw, backend="triton").sum()
    got = (out, *torch.autograd.grad(out, (x_cl, wide)))
    got = (got[0], got[1], got[2][..., ::2])
    want = _forward_and_grads(lambda a, b: reassemble(a, b, **kw, backend="torch").sum(), (x, kernels), None)
    for name, a, b in zip(("sum", "grad features", "grad kernels"), got, want):
        _close(a, b, name)

    query, keys, _, geometry = _similarity_case(3, 2, 1, 1, None, (5, 5))
    query_t = query.transpose(-1, -2).contiguous().transpose(-1, -2)
    assert not query_t.is_contiguous()
    kw = _call(geometry)
    assert_close(
        window_similarity(query_t, keys, **kw, backend="triton"), window_similarity(query, keys, **kw, backend="torch")
    )


@check("autograd")
def check_empty_inputs():
    from resamplers.functional import reassemble

    x, kernels, _, geometry = _reassembly_case(3, 1, 2, 1, None, (3, 3))
    out = reassemble(x[:0], kernels[:0], **_call(geometry), backend="triton")
    assert out.shape == (0, 8, 6, 6)
    # no input rows, padding 1: one output row, every tap outside: zeros (the op: the public
    # functions refuse empty images)
    out = torch.ops.resamplers.triton_reassemble(torch.randn(1, 2, 0, 3), torch.randn(1, 9, 1, 3), [3, 1, 1, 1, 1, 1])
    assert out.shape == (1, 2, 1, 3) and torch.equal(out, torch.zeros_like(out))


@check("autograd")
def check_op_errors_are_clean():
    ops = torch.ops.resamplers
    x = torch.randn(1, 2, 3, 3)
    k = torch.randn(1, 9, 6, 6)
    for args, error, text in [
        ((x.long(), k.long(), [3, 1, 2, 1, 1, 1]), TypeError, "`features`"),
        ((x, k.double(), [3, 1, 2, 1, 1, 1]), TypeError, "`kernels`"),
        ((x, k, [3, 1, 2, 1, 3, 1]), ValueError, "`geometry`"),
        ((x, k[..., :5], [3, 1, 2, 1, 1, 1]), ValueError, "`kernels`"),
        ((x, k, [3, 2, 2, 1, 1, 1]), ValueError, "`kernels`"),
        ((x, k, [3, 3, 2, 1, 1, 1]), ValueError, "`geometry`"),
    ]:
        try:
            ops.triton_reassemble(*args)
        except error as e:
            assert text in str(e), str(e)
        else:
            raise AssertionError(f"no {error.__name__} for {text}")


@check("autograd")
def check_auto_keeps_cpu_tensors_off_triton():
    from resamplers.core import use_triton

    assert use_triton(torch.randn(1, 1, 2, 2), "triton")
    assert not use_triton(torch.randn(1, 1, 2, 2), "auto")
    assert not use_triton(torch.randn(1, 1, 2, 2), "native")


@check("autograd")
def check_flop_counter_counts_the_ops():
    from torch.utils.flop_counter import FlopCounterMode

    from resamplers.functional import reassemble, window_similarity

    x, kernels, _, geometry = _reassembly_case(5, 2, 2, 1, None, (4, 5), dtype=torch.float32)
    with FlopCounterMode(display=False) as counter:
        reassemble(x, kernels, **_call(geometry), backend="triton")
        window_similarity(torch.randn(2, 8, 8, 10), x, **_call(geometry), backend="triton")
    assert counter.get_total_flops() == 2 * (2 * 2 * 8 * 25 * 8 * 10)


# ---------------------------------------------------------------------------------------
# Group "autograd" (second part): second derivatives, torch.compile, export; group
# "second_derivatives" (slow): gradgradcheck.


@check("second_derivatives")
def check_gradgradcheck_reassemble_and_similarity():
    """Second derivatives (fast mode: random projections; the full Jacobians would take
    minutes in the interpreter)."""
    from resamplers.functional import reassemble, window_similarity

    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, 2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    for shape, kw in [
        ((1, 18, 4, 6), dict(kernel_size=3, groups=2, scale_factor=2)),
        ((1, 16, 1, 1), dict(kernel_size=2, groups=4, stride=2, padding=0)),
    ]:
        k = torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradgradcheck(
            lambda a, b, kw=kw: reassemble(a, b, **kw, backend="triton"), (x, k), fast_mode=True
        )
    q = torch.randn(1, 4, 4, 6, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(
        lambda a, b: window_similarity(a, b, 3, 2, scale_factor=2, backend="triton"), (q, x), fast_mode=True
    )


@check("autograd")
def check_mixed_second_derivative():
    from resamplers.functional import carafe

    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, 5, 5, generator=g, dtype=torch.float64, requires_grad=True)
    k = torch.randn(1, 9, 10, 10, generator=g, dtype=torch.float64, requires_grad=True)
    results = []
    for backend in ("triton", "torch"):
        (gx,) = torch.autograd.grad(carafe(x, k, 3, 1, 2, backend=backend).pow(2).sum(), x, create_graph=True)
        results.append(torch.autograd.grad(gx.sum(), k))
    assert results[0][0].abs().sum() > 0
    assert_close(results[0][0], results[1][0])


@check("autograd")
def check_compile_fullgraph_captures_the_triton_ops():
    """``torch.compile(fullgraph=True)``: the forward graph holds the custom op (dynamo
    only), and AOT autograd compiles forward and backward through the fake kernels."""
    from resamplers.functional import reassemble, window_similarity

    x, kernels, grad, geometry = _reassembly_case(5, 2, 2, 1, None, (3, 4), dtype=torch.float32)
    kw = _call(geometry)
    graphs = []

    def record(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    def fn(a, b):
        return reassemble(a, b, **kw, backend="triton")

    torch._dynamo.reset()
    out = torch.compile(fn, backend=record, fullgraph=True)(x, kernels)
    assert_close(out, reassemble(x, kernels, **kw, backend="torch"))
    targets = {str(node.target) for gm in graphs for node in gm.graph.nodes}
    assert any("triton_reassemble" in t for t in targets), targets

    got = _forward_and_grads(torch.compile(fn, backend="aot_eager", fullgraph=True), (x, kernels), grad)
    want = _forward_and_grads(lambda a, b: reassemble(a, b, **kw, backend="torch"), (x, kernels), grad)
    for name, a, b in zip(("output", "grad features", "grad kernels"), got, want):
        _close(a, b, name)

    query = torch.randn(2, 8, 6, 8)
    sim = torch.compile(
        lambda q, s: window_similarity(q, s, **kw, backend="triton"), backend="aot_eager", fullgraph=True
    )
    assert_close(sim(query, x), window_similarity(query, x, **kw, backend="torch"))


@check("autograd")
def check_export_refuses_a_forced_triton_backend_and_auto_exports():
    from resamplers.functional import reassemble

    x, kernels, _, geometry = _reassembly_case(3, 1, 2, 1, None, (3, 3), dtype=torch.float32)
    kw = _call(geometry)

    class Wrap(torch.nn.Module):
        def __init__(self, backend):
            super().__init__()
            self.backend = backend

        def forward(self, a, b):
            return reassemble(a, b, **kw, backend=self.backend)

    try:
        torch.export.export(Wrap("triton"), (x, kernels))
    except Exception as e:  # dynamo wraps the ValueError of the check
        assert "`backend`" in str(e) and "export" in str(e), str(e)
    else:
        raise AssertionError("export with backend='triton' did not raise")
    program = torch.export.export(Wrap("auto"), (x, kernels))
    assert not any("triton" in str(node.target) for node in program.graph.nodes)


# ---------------------------------------------------------------------------------------
# The script: run one group in this process (TRITON_INTERPRET=1 set by the caller).


def _run_group(group: str) -> dict[str, dict[str, object]]:
    from resamplers.core.triton_path import triton_available, triton_interpreted

    if not (triton_available() and triton_interpreted()):
        raise SystemExit("run with triton installed and TRITON_INTERPRET=1")
    results: dict[str, dict[str, object]] = {}
    for name, fn in CHECKS[group].items():
        start = time.perf_counter()
        try:
            fn()
            results[name] = {"ok": True}
        except Exception:
            results[name] = {"ok": False, "error": traceback.format_exc()}
        results[name]["seconds"] = round(time.perf_counter() - start, 3)
    return results


def _python(args: list[str], env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=HERE.parent
    )


def _interpreter_env() -> dict[str, str]:
    return {**os.environ, "TRITON_INTERPRET": "1", "RESAMPLERS_TEST_THREADS": "1", "OMP_NUM_THREADS": "1"}


@needs_triton
@pytest.mark.parametrize(
    "group", ["reassembly", "similarity", "autograd", pytest.param("second_derivatives", marks=pytest.mark.slow)]
)
def test_triton_interpreter_matches_the_torch_path(group):
    proc = _python([str(HERE), group], _interpreter_env())
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_MARK)]
    assert proc.returncode == 0 and lines, f"the check process failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    results = json.loads(lines[-1].removeprefix(RESULT_MARK))
    assert set(results) == set(CHECKS[group])
    failed = {name: r["error"] for name, r in results.items() if not r["ok"]}
    assert not failed, f"{len(failed)} of {len(results)} checks failed:\n" + "\n".join(
        f"--- {name}\n{error}" for name, error in failed.items()
    )


@needs_triton
def test_forced_triton_on_cpu_without_the_interpreter_names_the_argument():
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    code = """
        import torch
        from resamplers.functional import carafe, triton_available, window_similarity
        x = torch.randn(1, 4, 3, 3); m = torch.rand(1, 9, 6, 6)
        print("available", triton_available(), tuple(carafe(x, m, 3, 1, 2).shape))
        for call in (lambda: carafe(x, m, 3, 1, 2, backend="triton"),
                     lambda: window_similarity(torch.randn(1, 4, 6, 6), x, 3, scale_factor=2, backend="triton")):
            try:
                call()
            except ValueError as e:
                print("refused", "`backend`" in str(e) and "TRITON_INTERPRET=1" in str(e) and "CUDA" in str(e))
        """
    proc = _python(["-c", textwrap.dedent(code)], env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["available", "True", "(1,", "4,", "6,", "6)", "refused", "True", "refused", "True"]


def test_library_works_without_triton():
    """``import triton`` failing (as without the package): the library imports and computes,
    ``"auto"`` never needs triton, and ``backend="triton"`` is refused by name."""
    code = """
        import sys
        sys.modules["triton"] = None  # `import triton` raises ImportError
        import torch
        import resamplers
        from resamplers.functional import carafe, triton_available
        x = torch.randn(1, 4, 3, 3); m = torch.rand(1, 9, 6, 6)
        print("available", triton_available(), tuple(carafe(x, m, 3, 1, 2).shape))
        try:
            carafe(x, m, 3, 1, 2, backend="triton")
        except ValueError as e:
            print("refused", "`backend`" in str(e) and "pip install" in str(e))
        """
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    proc = _python(["-c", textwrap.dedent(code)], env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["available", "False", "(1,", "4,", "6,", "6)", "refused", "True"]


def test_unknown_backend_lists_triton():
    from resamplers.functional import reassemble

    with pytest.raises(ValueError, match="`backend`.*'triton'"):
        reassemble(torch.randn(1, 1, 2, 2), torch.randn(1, 9, 4, 4), 3, scale_factor=2, backend="cuda")


if __name__ == "__main__":
    torch.manual_seed(0)
    print(RESULT_MARK + json.dumps(_run_group(sys.argv[1])))


@needs_triton
@pytest.mark.slow
def test_the_gpu_check_script_runs_dry_on_the_interpreter(tmp_path):
    """``tools/gpu_check.py --dry-run``: the script a GPU machine runs, on CPU tensors."""
    proc = _python([str(HERE.parents[1] / "tools" / "gpu_check.py"), str(tmp_path), "--dry-run"], _interpreter_env())
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["dry_run"] and report["compile"]["passed"]
    assert len(report["correctness"]) == 24 and all(row["passed"] for row in report["correctness"])
    assert "DRY RUN" in (tmp_path / "gpu_check.md").read_text()
