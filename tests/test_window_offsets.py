"""The core's window sampled at offsets (``offsets=`` of ``reassemble`` and ``window_similarity``):
slow loops from the formula, the plain window at zero offsets, gradients, the adjoint
identity, dtypes, backends and errors.  Each test runs on both paths that sample at
offsets: the native kernels and the torch composite."""

from __future__ import annotations

import pytest
import torch

from conftest import assert_close
from offset_reference import reassemble_offsets_loop, window_similarity_offsets_loop
from reference import reassemble_loop, window_similarity_loop
from resamplers.core.geometry import Geometry
from resamplers.core.offset_path import reassemble_offsets_torch, similarity_offsets_torch
from resamplers.functional import native_available, reassemble, window_similarity

BACKENDS = [
    pytest.param("native", marks=pytest.mark.skipif(not native_available(), reason="native kernels not built")),
    "torch",
]
needs_native = pytest.mark.skipif(not native_available(), reason="native kernels not built")

# kernel, groups, up, stride, key size, padding
GEOMETRIES = [
    (3, 1, 2, 1, (3, 4), None),
    (3, 2, 3, 1, (2, 3), None),
    (2, 2, 1, 1, (3, 4), (0, 1)),
    (3, 1, 1, 2, (5, 4), None),
    (1, 4, 2, 1, (2, 2), None),
]


def _inputs(k, groups, up, stride, size, pad, seed=0, offset_std=1.5):
    """Features/keys, kernels, a query and offsets of a few pixels (some positions outside)."""
    g = torch.Generator().manual_seed(seed)
    pt, pl = ((k - 1) // 2,) * 2 if pad is None else pad
    h, w = size
    ho, wo = (h * up, w * up) if up > 1 else ((h - 1 + pt) // stride + 1, (w - 1 + pl) // stride + 1)

    def rand(*shape, std=1.0):
        return torch.randn(*shape, generator=g, dtype=torch.float64) * std

    return (
        rand(2, 4, h, w),
        rand(2, groups * k * k, ho, wo),
        rand(2, 4, ho, wo),
        rand(2, 2 * groups * k * k, ho, wo, std=offset_std),
    )


def _geometry(k, groups, up, stride, pad):
    pt, pl = ((k - 1) // 2,) * 2 if pad is None else pad
    return Geometry(k, groups, up, stride, pt, pl)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("k, groups, up, stride, size, pad", GEOMETRIES)
class TestAgainstTheFormula:
    def test_reassembly_slow_loop(self, k, groups, up, stride, size, pad, backend):
        x, w, _, o = _inputs(k, groups, up, stride, size, pad)
        out = reassemble(x, w, k, groups, scale_factor=up, stride=stride, padding=pad, offsets=o, backend=backend)
        assert_close(out, reassemble_offsets_loop(x, w, o, k, groups, up, stride, pad))

    def test_similarity_slow_loop(self, k, groups, up, stride, size, pad, backend):
        x, _, q, o = _inputs(k, groups, up, stride, size, pad)
        out = window_similarity(
            q, x, k, groups, scale_factor=up, stride=stride, padding=pad, offsets=o, backend=backend
        )
        assert_close(out, window_similarity_offsets_loop(q, x, o, k, groups, up, stride, pad))

    def test_zero_offsets_give_the_plain_window(self, k, groups, up, stride, size, pad, backend):
        x, w, q, o = _inputs(k, groups, up, stride, size, pad)
        zero = torch.zeros_like(o)
        geometry = dict(scale_factor=up, stride=stride, padding=pad)
        assert_close(
            reassemble(x, w, k, groups, offsets=zero, backend=backend, **geometry),
            reassemble(x, w, k, groups, **geometry),
        )
        assert_close(
            window_similarity(q, x, k, groups, offsets=zero, backend=backend, **geometry),
            window_similarity(q, x, k, groups, **geometry),
        )

    def test_integer_offsets_move_the_window(self, k, groups, up, stride, size, pad, backend):
        """Whole-pixel offsets (row -1, column +1) read the plain window with padding (p_t + 1, p_l - 1)."""
        x, w, q, o = _inputs(k, groups, up, stride, size, pad)
        o = torch.zeros_like(o).reshape(2, -1, 2, *o.shape[-2:])
        o[:, :, 0], o[:, :, 1] = 1.0, -1.0
        o = o.flatten(1, 2)
        pt, pl = ((k - 1) // 2,) * 2 if pad is None else pad
        geometry = dict(scale_factor=up, stride=stride, padding=pad)
        moved = (pt + 1, pl - 1)
        assert_close(
            reassemble(x, w, k, groups, offsets=o, backend=backend, **geometry),
            reassemble_loop(x, w, k, groups, up, stride, moved),
        )
        assert_close(
            window_similarity(q, x, k, groups, offsets=o, backend=backend, **geometry),
            window_similarity_loop(q, x, k, groups, up, stride, moved),
        )

    def test_gradcheck(self, k, groups, up, stride, size, pad, backend):
        """Eager path (tap-by-tap backward): features/keys, kernels/query and offsets.  The
        random offsets keep every position off the bilinear kinks at whole pixels."""
        x, w, q, o = (t.requires_grad_() for t in _inputs(k, groups, up, stride, size, pad, seed=1))
        geometry = dict(scale_factor=up, stride=stride, padding=pad)
        assert torch.autograd.gradcheck(
            lambda a, b, c: reassemble(a, b, k, groups, offsets=c, backend=backend, **geometry),
            (x, w, o),
            fast_mode=True,
        )
        assert torch.autograd.gradcheck(
            lambda a, b, c: window_similarity(a, b, k, groups, offsets=c, backend=backend, **geometry),
            (q, x, o),
            fast_mode=True,
        )


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["reassemble", "similarity"])
def test_eager_backward_equals_autograd_through_the_composite(kind, backend):
    x, w, q, o = (t.requires_grad_() for t in _inputs(3, 2, 2, 1, (3, 4), None, seed=2))
    geometry = _geometry(3, 2, 2, 1, None)
    if kind == "reassemble":
        inputs, eager = (x, w, o), reassemble(x, w, 3, 2, scale_factor=2, offsets=o, backend=backend)
        composite = reassemble_offsets_torch(x, w, o, geometry)
    else:
        inputs, eager = (q, x, o), window_similarity(q, x, 3, 2, scale_factor=2, offsets=o, backend=backend)
        composite = similarity_offsets_torch(q, x, o, geometry)
    expected_function = "NativeOffsetTaps" if backend == "native" else "OffsetTaps"
    assert eager.grad_fn is not None and type(eager.grad_fn).__name__.startswith(expected_function)
    grad = torch.randn_like(eager)
    for a, b in zip(torch.autograd.grad(eager, inputs, grad), torch.autograd.grad(composite, inputs, grad)):
        assert_close(a, b)


def test_composite_gradcheck():
    """The composite (what compile and export trace) differentiated by autograd."""
    x, w, q, o = (t.requires_grad_() for t in _inputs(3, 1, 2, 1, (2, 3), None, seed=3))
    geometry = _geometry(3, 1, 2, 1, None)
    assert torch.autograd.gradcheck(lambda a, b, c: reassemble_offsets_torch(a, b, c, geometry), (x, w, o))
    assert torch.autograd.gradcheck(lambda a, b, c: similarity_offsets_torch(a, b, c, geometry), (q, x, o))


@pytest.mark.parametrize("backend", BACKENDS)
def test_second_derivatives(backend):
    x, w, q, o = (t.requires_grad_() for t in _inputs(3, 2, 2, 1, (2, 2), None, seed=4))
    assert torch.autograd.gradgradcheck(
        lambda a, b, c: reassemble(a, b, 3, 2, scale_factor=2, offsets=c, backend=backend), (x, w, o), fast_mode=True
    )
    assert torch.autograd.gradgradcheck(
        lambda a, b, c: window_similarity(a, b, 3, 2, scale_factor=2, offsets=c, backend=backend),
        (q, x, o),
        fast_mode=True,
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_only_some_inputs_need_gradients(backend):
    x, w, q, o = _inputs(3, 2, 2, 1, (3, 3), None, seed=5)
    o.requires_grad_()
    (grad,) = torch.autograd.grad(reassemble(x, w, 3, 2, scale_factor=2, offsets=o, backend=backend).sum(), o)
    ref = o.detach().requires_grad_()
    (want,) = torch.autograd.grad(reassemble_offsets_torch(x, w, ref, _geometry(3, 2, 2, 1, None)).sum(), ref)
    assert_close(grad, want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_offsets_gradient_is_the_bilinear_slope(backend):
    """d sample / d column offset inside a cell is the difference of the two columns."""
    x = torch.tensor([[[[0.0, 2.0, 7.0]]]], dtype=torch.float64)
    w = torch.ones(1, 1, 1, 3, dtype=torch.float64)
    o = torch.zeros(1, 2, 1, 3, dtype=torch.float64)
    o[0, 0] = 0.25  # every pixel a quarter column to the right
    o.requires_grad_()
    out = reassemble(x, w, 1, offsets=o, backend=backend)
    assert_close(out.detach(), torch.tensor([[[[0.5, 3.25, 5.25]]]], dtype=torch.float64))
    (grad,) = torch.autograd.grad(out.sum(), o)
    # the last position's right corner is outside the image: its slope is 0 - 7
    assert_close(grad[0, 0, 0], torch.tensor([2.0, 5.0, -7.0], dtype=torch.float64))
    # row 0 is a kink: the one-sided derivative of the cell floor picks (rows 0 and 1, row 1
    # outside), 0 - sample, as the official deformable kernels compute it
    assert_close(grad[0, 1, 0], -out.detach()[0, 0, 0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_adjoint_identity(backend):
    """<q, reassemble(keys, w, offsets)> == <window_similarity(q, keys, offsets), w>."""
    x, w, q, o = _inputs(3, 2, 2, 1, (3, 4), None, seed=6)
    lhs = (q * reassemble(x, w, 3, 2, scale_factor=2, offsets=o, backend=backend)).sum()
    rhs = (window_similarity(q, x, 3, 2, scale_factor=2, offsets=o, backend=backend) * w).sum()
    assert_close(lhs, rhs)


@pytest.mark.parametrize("backend", BACKENDS)
def test_positions_far_outside_read_zero(backend):
    x, w, q, o = _inputs(3, 1, 2, 1, (3, 3), None)
    far = torch.full_like(o, 50.0)
    assert reassemble(x, w, 3, scale_factor=2, offsets=far, backend=backend).abs().max() == 0
    assert window_similarity(q, x, 3, scale_factor=2, offsets=far, backend=backend).abs().max() == 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("backend", BACKENDS)
def test_dtype_follows_the_features(dtype, backend):
    x, w, q, o = _inputs(3, 1, 2, 1, (3, 3), None)
    out = reassemble(x.to(dtype), w.to(dtype), 3, scale_factor=2, offsets=o.to(dtype), backend=backend)
    assert out.dtype == dtype
    # half precision inputs are sampled in float32: only the inputs' rounding remains
    want = reassemble_offsets_loop(x.to(dtype), w.to(dtype), o.to(dtype), 3, 1, 2)
    assert_close(out.double(), want, dtype=dtype)
    sim = window_similarity(q.to(dtype), x.to(dtype), 3, scale_factor=2, offsets=o.to(dtype), backend=backend)
    assert sim.dtype == dtype


@pytest.mark.parametrize("backend", BACKENDS)
def test_autocast_accepts_low_precision_kernels_and_offsets(backend):
    x, w, q, o = _inputs(3, 1, 2, 1, (3, 3), None)
    x, w, q, o = x.float(), w.float(), q.float(), o.float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = reassemble(x, w.bfloat16(), 3, scale_factor=2, offsets=o.bfloat16(), backend=backend)
    assert out.dtype == torch.float32
    assert_close(
        out, reassemble(x, w.bfloat16().float(), 3, scale_factor=2, offsets=o.bfloat16().float(), backend=backend)
    )


def test_triton_rejects_offsets():
    x, w, q, o = _inputs(3, 1, 2, 1, (3, 3), None)
    with pytest.raises(ValueError, match="`backend`.*offsets.*not Triton"):
        reassemble(x, w, 3, scale_factor=2, offsets=o, backend="triton")
    with pytest.raises(ValueError, match="`backend`.*offsets.*not Triton"):
        window_similarity(q, x, 3, scale_factor=2, offsets=o, backend="triton")


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda o: o[:, :-2], "`offsets`.*shape"),
        (lambda o: o[:, :, :-1], "`offsets`.*shape"),
        (lambda o: o[:1], "`offsets`.*shape"),
        (lambda o: o.float(), "`offsets`.*dtype"),
        (lambda o: o[0], "`offsets`.*4-D"),
    ],
    ids=["channels", "height", "batch", "dtype", "dims"],
)
def test_bad_offsets_name_the_argument(change, match):
    x, w, q, o = _inputs(3, 1, 2, 1, (3, 3), None)
    with pytest.raises(ValueError, match=match):
        reassemble(x, w, 3, scale_factor=2, offsets=change(o))
    with pytest.raises(ValueError, match=match):
        window_similarity(q, x, 3, scale_factor=2, offsets=change(o))


# The native kernels against the torch composite, and what only the native path has.

NATIVE_GEOMETRIES = [(k, g, up, s) for k in (1, 3, 5) for g in (1, 2) for up, s in ((1, 1), (2, 1), (1, 2), (3, 1))]


@needs_native
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("k, groups, up, stride", NATIVE_GEOMETRIES)
def test_native_equals_the_composite_values_and_gradients(k, groups, up, stride, dtype):
    """Values and all three gradients of both kinds, offsets of about a pixel (positions off
    the whole-pixel kinks, some outside the image)."""
    x, w, q, o = (
        t.to(dtype).requires_grad_() for t in _inputs(k, groups, up, stride, (6, 7), None, seed=7, offset_std=1.0)
    )
    geometry = dict(scale_factor=up, stride=stride)
    tolerance = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=2e-5, atol=2e-5)
    for fn, inputs in ((reassemble, (x, w, o)), (window_similarity, (q, x, o))):
        native = fn(*inputs[:2], k, groups, offsets=o, backend="native", **geometry)
        torch_path = fn(*inputs[:2], k, groups, offsets=o, backend="torch", **geometry)
        torch.testing.assert_close(native, torch_path, **tolerance)
        grad = torch.randn_like(native)
        for a, b in zip(torch.autograd.grad(native, inputs, grad), torch.autograd.grad(torch_path, inputs, grad)):
            torch.testing.assert_close(a, b, **tolerance)


@needs_native
def test_native_offset_gradient_at_whole_pixels_is_the_right_sided_slope():
    """At zero offsets every position is a whole pixel: the native path takes the cell that
    ``floor`` of the exact position picks (to the right and below).  The composite's
    positions pass through ``grid_sample``'s normalised coordinates, whose rounding can pick
    the cell on the other side, so only the native path is checked against the slope."""
    x = torch.randn(1, 2, 4, 5, dtype=torch.float64)
    w = torch.randn(1, 9, 4, 5, dtype=torch.float64)
    o = torch.zeros(1, 18, 4, 5, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(reassemble(x, w, 3, offsets=o, backend="native").sum(), o)
    step = 1e-7
    for channel in range(18):
        shifted = o.detach().clone()
        shifted[:, channel] += step
        forward = reassemble(x, w, 3, offsets=shifted, backend="native").sum()
        base = reassemble(x, w, 3, offsets=o.detach(), backend="native").sum()
        # a common shift of one channel's offsets: the sum of that channel's gradient
        torch.testing.assert_close((forward - base) / step, grad[:, channel].sum(), rtol=1e-5, atol=1e-5)


@needs_native
@pytest.mark.parametrize("kind", ["reassemble", "similarity"])
def test_native_results_do_not_depend_on_the_thread_count(kind):
    x, w, q, o = (t.float().requires_grad_() for t in _inputs(3, 2, 2, 1, (9, 11), None, seed=8))

    def run():
        if kind == "reassemble":
            inputs, out = (x, w, o), reassemble(x, w, 3, 2, scale_factor=2, offsets=o, backend="native")
        else:
            inputs, out = (q, x, o), window_similarity(q, x, 3, 2, scale_factor=2, offsets=o, backend="native")
        return (out, *torch.autograd.grad(out, inputs, torch.ones_like(out)))

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = run()
        torch.set_num_threads(3)
        three = run()
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(one, three):
        assert torch.equal(a, b)


@needs_native
def test_native_non_finite_positions_read_zero():
    """A NaN or infinite offset puts its tap nowhere: it reads zero and scatters nothing."""
    x, w, q, o = (t.requires_grad_() for t in _inputs(3, 1, 2, 1, (3, 3), None))
    bad = torch.full_like(o, float("nan"))
    bad[:, 1::4] = float("inf")
    bad.requires_grad_()
    out = reassemble(x, w, 3, scale_factor=2, offsets=bad, backend="native")
    assert out.abs().max() == 0
    grad_x, grad_w = torch.autograd.grad(out.sum(), (x, w))
    assert grad_x.abs().max() == 0 and grad_w.abs().max() == 0


@needs_native
def test_native_compiles_fullgraph():
    x, w, q, o = (t.float().requires_grad_() for t in _inputs(3, 2, 2, 1, (3, 4), None, seed=9))
    run = torch.compile(
        lambda a, b, c: reassemble(a, b, 3, 2, scale_factor=2, offsets=c, backend="native"), fullgraph=True
    )
    compiled = run(x, w, o)
    eager = reassemble(x, w, 3, 2, scale_factor=2, offsets=o, backend="native")
    assert torch.equal(compiled, eager)
    for a, b in zip(torch.autograd.grad(compiled.sum(), (x, w, o)), torch.autograd.grad(eager.sum(), (x, w, o))):
        assert torch.equal(a, b)


@needs_native
@pytest.mark.parametrize(
    "op, args, match",
    [
        ("offset_reassemble", lambda x, w, q, o: (x, w, o[:, :-2], [3, 1, 2, 1, 1, 1]), "`offsets`: expected shape"),
        ("offset_reassemble", lambda x, w, q, o: (x, w[:, :-1], o, [3, 1, 2, 1, 1, 1]), "`weights`"),
        ("offset_reassemble", lambda x, w, q, o: (x, w, o.float(), [3, 1, 2, 1, 1, 1]), "`offsets`: expected dtype"),
        ("offset_correlate", lambda x, w, q, o: (x, w, o, [3, 1, 2, 1, 1, 1], False), "`weights`: expected shape"),
        ("offset_scatter", lambda x, w, q, o: (w, q[:, :, :-1], o, x, [3, 1, 2, 1, 1, 1]), "`grad`: expected shape"),
        ("offset_scatter", lambda x, w, q, o: (w, q, o, x, [3, 1, 2, 1, 5, 1]), "`geometry`"),
    ],
    ids=["offsets-shape", "weights-channels", "offsets-dtype", "correlate-weights", "scatter-grad", "geometry"],
)
def test_native_offset_ops_name_bad_arguments(op, args, match):
    """The custom ops check what their kernels index, whoever calls them."""
    x, w, q, o = _inputs(3, 1, 2, 1, (3, 3), None)
    with pytest.raises((ValueError, TypeError), match=match):
        getattr(torch.ops.resamplers, op)(*args(x, w, q, o))


@needs_native
def test_offset_benchmark_tool_runs(tmp_path):
    """``tools/bench_offset_taps.py`` at a tiny size: every row printed, ratios positive."""
    import subprocess
    import sys
    from pathlib import Path

    tool = Path(__file__).resolve().parents[1] / "tools" / "bench_offset_taps.py"
    args = [sys.executable, str(tool), "--threads", "1", "--rounds", "1", "--channels", "8", "--size", "6"]
    printed = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    rows = [
        line
        for line in printed.splitlines()
        if line.startswith("| window_similarity") or line.startswith("| reassemble")
    ]
    assert len(rows) == 4
    assert all(float(row.split("|")[-2].strip().rstrip("x")) > 0 for row in rows)


@needs_native
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "transposed"])
def test_native_takes_any_memory_layout(layout):
    """The kernels copy their inputs pixel-major; results (and their layout) follow the input."""
    x, w, q, o = _inputs(3, 2, 2, 1, (5, 6), None, seed=10)

    def arrange(t):
        if layout == "channels_last":
            return t.contiguous(memory_format=torch.channels_last)
        if layout == "transposed":
            return t.transpose(2, 3).contiguous().transpose(2, 3)
        return t

    inputs = [arrange(t).requires_grad_() for t in (x, w, q, o)]
    ax, aw, aq, ao = inputs
    out = reassemble(ax, aw, 3, 2, scale_factor=2, offsets=ao, backend="native")
    sim = window_similarity(aq, ax, 3, 2, scale_factor=2, offsets=ao, backend="native")
    assert_close(out, reassemble(x, w, 3, 2, scale_factor=2, offsets=o, backend="torch"))
    assert_close(sim, window_similarity(q, x, 3, 2, scale_factor=2, offsets=o, backend="torch"))
    if layout == "channels_last":
        assert out.is_contiguous(memory_format=torch.channels_last)
    grads = torch.autograd.grad((out.sum() + sim.square().sum()), inputs)
    plain = [t.clone().requires_grad_() for t in (x, w, q, o)]
    px, pw, pq, po = plain
    expected = (
        reassemble(px, pw, 3, 2, scale_factor=2, offsets=po, backend="torch").sum()
        + window_similarity(pq, px, 3, 2, scale_factor=2, offsets=po, backend="torch").square().sum()
    )
    for a, b in zip(grads, torch.autograd.grad(expected, plain)):
        assert_close(a, b)
