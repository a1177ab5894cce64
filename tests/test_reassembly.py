"""The reassembly core: both backends against a slow loop, gradients, determinism, errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from conftest import assert_close
from reference import reassemble_loop
from resamplers.core import Geometry
from resamplers.core.torch_path import reassemble_torch
from resamplers.functional import native_available, reassemble, reassemble_down

BACKENDS = ["torch", pytest.param("native", marks=pytest.mark.skipif(not native_available(), reason="no native build"))]

# (kernel, groups, up, stride, padding, input size): upsampling, plain filtering,
# CARAFE++-style odd windows, A2U-style even windows, IndexNet-style 2x2 cells.
GEOMETRIES = [
    (5, 2, 2, 1, None, (3, 4)),
    (3, 1, 3, 1, None, (2, 5)),
    (1, 4, 2, 1, None, (3, 3)),
    (3, 1, 1, 1, None, (4, 5)),
    (5, 2, 1, 2, (2, 2), (7, 6)),
    (6, 1, 1, 2, (2, 2), (8, 6)),
    (2, 4, 1, 2, (0, 0), (4, 6)),
    (5, 1, 1, 3, (2, 2), (7, 8)),
    (3, 8, 4, 1, None, (1, 1)),
]


def _case(k, groups, up, stride, padding, size, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    h, w = size
    pt, pl = ((k - 1) // 2,) * 2 if padding is None else padding
    if up > 1:
        ho, wo = h * up, w * up
    else:
        ho, wo = (h + 2 * pt - k) // stride + 1, (w + 2 * pl - k) // stride + 1
    x = torch.randn(2, 8, h, w, generator=g, dtype=dtype)
    kernels = torch.randn(2, groups * k * k, ho, wo, generator=g, dtype=dtype)
    return x, kernels, dict(kernel_size=k, groups=groups, scale_factor=up, stride=stride, padding=(pt, pl))


def assert_same_at_thread_counts(x, kernels, kw, counts):
    """The native reassembly's output and both gradients, bit for bit, at each thread count."""
    results = []
    before = torch.get_num_threads()
    try:
        for threads in counts:
            torch.set_num_threads(threads)
            out = reassemble(x, kernels, **kw, backend="native")
            results.append((out, *torch.autograd.grad(out.square().sum(), (x, kernels))))
    finally:
        torch.set_num_threads(before)
    for other in results[1:]:
        for a, b in zip(results[0], other, strict=True):
            assert torch.equal(a, b)


def _loop(x, kernels, kw):
    return reassemble_loop(x, kernels, kw["kernel_size"], kw["groups"], kw["scale_factor"], kw["stride"], kw["padding"])


class TestReassemble:
    @pytest.mark.parametrize("backend", BACKENDS)
    @pytest.mark.parametrize("geometry", GEOMETRIES)
    def test_matches_loop(self, geometry, backend):
        x, kernels, kw = _case(*geometry)
        out = reassemble(x, kernels, **kw, backend=backend)
        assert_close(out, _loop(x, kernels, kw))

    @pytest.mark.parametrize("backend", BACKENDS)
    @pytest.mark.parametrize("geometry", GEOMETRIES[:8])
    def test_gradcheck(self, geometry, backend):
        x, kernels, kw = _case(*geometry)
        x.requires_grad_()
        kernels.requires_grad_()
        assert torch.autograd.gradcheck(lambda a, b: reassemble(a, b, **kw, backend=backend), (x, kernels))

    @pytest.mark.skipif(not native_available(), reason="no native build")
    @pytest.mark.parametrize("geometry", GEOMETRIES)
    def test_backends_agree_on_gradients(self, geometry):
        x, kernels, kw = _case(*geometry)
        grad_out = torch.randn(x.shape[0], x.shape[1], *kernels.shape[-2:], dtype=x.dtype)
        grads = []
        for backend in ("torch", "native"):
            a, b = x.clone().requires_grad_(), kernels.clone().requires_grad_()
            out = reassemble(a, b, **kw, backend=backend)
            grads.append(torch.autograd.grad(out, (a, b), grad_out))
        for ga, gb in zip(*grads):
            assert_close(ga, gb)

    @pytest.mark.skipif(not native_available(), reason="no native build")
    @pytest.mark.parametrize(
        "geometry",
        # stride-2 rows wide enough for whole vectors of both phases (the deinterleave and
        # the weave back) at every level, with even and odd left padding and row ends that
        # fall inside and past a vector
        [(5, 1, 1, 2, (2, 2), (5, 70)), (3, 2, 1, 2, (1, 1), (4, 67)), (4, 1, 1, 2, (1, 2), (3, 41))],
    )
    def test_wide_strided_rows_agree_with_the_torch_path(self, geometry):
        self.test_backends_agree_on_gradients(geometry)
        x, kernels, kw = _case(*geometry)
        assert_close(reassemble(x, kernels, **kw, backend="native"), _loop(x, kernels, kw))

    @pytest.mark.skipif(not native_available(), reason="no native build")
    @pytest.mark.parametrize(
        "channels, groups, up, size",
        # eight-channel blocks, where the AVX-512 kernels take two rows a step: rows whose
        # last vector is partial, an odd number of source rows in a tile (one unpaired),
        # row groups of three, and two groups of eight channels
        [(16, 1, 2, (11, 21)), (8, 1, 2, (9, 40)), (24, 1, 3, (5, 7)), (16, 2, 2, (10, 19))],
    )
    def test_paired_rows_agree_with_the_loop_and_the_torch_path(self, channels, groups, up, size):
        g = torch.Generator().manual_seed(3)
        h, w = size
        x = torch.randn(1, channels, h, w, generator=g, dtype=torch.float64, requires_grad=True)
        kernels = torch.randn(1, groups * 25, up * h, up * w, generator=g, dtype=torch.float64, requires_grad=True)
        kw = dict(kernel_size=5, groups=groups, scale_factor=up, stride=1, padding=(2, 2))
        grad_out = torch.randn(1, channels, up * h, up * w, generator=g, dtype=torch.float64)
        out = reassemble(x, kernels, **kw, backend="native")
        assert_close(out, _loop(x.detach(), kernels.detach(), kw))
        reference = reassemble(x, kernels, **kw, backend="torch")
        for got, expected in zip(
            torch.autograd.grad(out, (x, kernels), grad_out), torch.autograd.grad(reference, (x, kernels), grad_out)
        ):
            assert_close(got, expected)

    @pytest.mark.parametrize("needs", ["both", "features", "kernels"])
    @pytest.mark.parametrize("geometry", GEOMETRIES)
    def test_torch_backward_equals_autograd_of_the_composite(self, geometry, needs):
        """The torch path's hand-written backward (eager training) against plain autograd
        through the same multiply-adds, for each input alone and both."""
        x, kernels, kw = _case(*geometry)
        inputs = {"both": (x, kernels), "features": (x,), "kernels": (kernels,)}[needs]
        for t in inputs:
            t.requires_grad_()
        out = reassemble(x, kernels, **kw, backend="torch")
        assert type(out.grad_fn).__name__ == "TorchReassemblyBackward"
        geometry = Geometry(kw["kernel_size"], kw["groups"], kw["scale_factor"], kw["stride"], *kw["padding"])
        reference = reassemble_torch(x, kernels, geometry)
        grad_out = torch.randn_like(out)
        for got, want in zip(
            torch.autograd.grad(out, inputs, grad_out), torch.autograd.grad(reference, inputs, grad_out)
        ):
            assert_close(got, want)

    @pytest.mark.skipif(not native_available(), reason="no native build")
    def test_native_is_deterministic_across_thread_counts(self):
        x, kernels, kw = _case(5, 2, 2, 1, None, (9, 11), dtype=torch.float32)
        assert_same_at_thread_counts(x.requires_grad_(), kernels.requires_grad_(), kw, (1, 2, 2))

    @pytest.mark.parametrize("backend", BACKENDS)
    @pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
    def test_low_precision_keeps_dtype(self, dtype, backend):
        x, kernels, kw = _case(5, 2, 2, 1, None, (4, 5), dtype=torch.float32)
        out = reassemble(x.to(dtype), kernels.to(dtype), **kw, backend=backend)
        assert out.dtype == dtype
        expected = reassemble(x.to(dtype).float(), kernels.to(dtype).float(), **kw, backend="torch")
        assert_close(out, expected, dtype=dtype, scale=10.0)

    def test_empty_batch(self):
        x, kernels, kw = _case(3, 1, 2, 1, None, (3, 3))
        out = reassemble(x[:0], kernels[:0], **kw)
        assert out.shape == (0, 8, 6, 6)

    def test_reassemble_down_is_the_strided_caller(self):
        x, kernels, kw = _case(6, 1, 1, 2, (2, 2), (8, 6))
        out = reassemble_down(x, kernels, 6, 1, 2, (2, 2))
        assert_close(out, _loop(x, kernels, kw))

    @pytest.mark.skipif(not native_available(), reason="no native build")
    def test_compile_fullgraph_captures_native_op(self):
        x, kernels, kw = _case(5, 2, 2, 1, None, (4, 5), dtype=torch.float32)
        fn = torch.compile(lambda a, b: reassemble(a, b, **kw), backend="eager", fullgraph=True)
        assert_close(fn(x, kernels), reassemble(x, kernels, **kw))

    def test_export_uses_portable_path(self):
        x, kernels, kw = _case(5, 2, 2, 1, None, (4, 5), dtype=torch.float32)

        class Wrap(torch.nn.Module):
            def forward(self, a, b):
                return reassemble(a, b, **kw)

        program = torch.export.export(Wrap(), (x, kernels))
        targets = {str(node.target) for node in program.graph.nodes}
        assert not any("resamplers" in t for t in targets)
        assert_close(program.module()(x, kernels), reassemble(x, kernels, **kw))

    @pytest.mark.skipif(not native_available(), reason="no native build")
    def test_flop_counter_sees_reassembly(self):
        x, kernels, kw = _case(5, 2, 2, 1, None, (4, 5), dtype=torch.float32)
        with FlopCounterMode(display=False) as counter:
            reassemble(x, kernels, **kw, backend="native")
        assert counter.get_total_flops() == 2 * 2 * 8 * 25 * 8 * 10


class TestReassembleErrors:
    def _args(self):
        x, kernels, kw = _case(5, 2, 2, 1, None, (3, 4))
        return x, kernels, kw

    @pytest.mark.parametrize(
        "mutate, argument",
        [
            (lambda x, k, kw: (x[0], k, kw), "features"),
            (lambda x, k, kw: (x, k[:, :-1], kw), "kernels"),
            (lambda x, k, kw: (x, k[..., :-1], kw), "kernels"),
            (lambda x, k, kw: (x, k[:1], kw), "kernels"),
            (lambda x, k, kw: (x, k.float(), kw), "kernels"),
            (lambda x, k, kw: (x, k, {**kw, "groups": 4}), "kernels"),
            (lambda x, k, kw: (x, k, {**kw, "stride": 2}), "stride"),
            (lambda x, k, kw: (x, k, {**kw, "padding": (5, 0)}), "padding"),
            (lambda x, k, kw: (x.long(), k, kw), "features"),
        ],
    )
    def test_bad_input_names_argument(self, mutate, argument):
        x, kernels, kw = mutate(*self._args())
        with pytest.raises(ValueError, match=f"`{argument}`"):
            reassemble(x, kernels, **kw)

    def test_groups_must_divide_channels(self):
        x = torch.randn(1, 6, 3, 3)
        with pytest.raises(ValueError, match="`groups`"):
            reassemble(x, torch.randn(1, 4 * 9, 6, 6), 3, 4, scale_factor=2)

    def test_down_output_too_large(self):
        x = torch.randn(1, 2, 4, 4)
        with pytest.raises(ValueError, match="too large"):
            reassemble(x, torch.randn(1, 9, 4, 4), 3, 1, stride=2, padding=1)

    def test_unknown_backend(self):
        x, kernels, kw = self._args()
        with pytest.raises(ValueError, match="`backend`"):
            reassemble(x, kernels, **kw, backend="cuda")


def _run_python(code: str, env_extra: dict[str, str] | None = None) -> str:
    import os

    env = {**os.environ, **(env_extra or {})}
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_pure_fallback_when_native_disabled():
    out = _run_python(
        """
        import torch
        from resamplers.functional import native_available, carafe
        x = torch.randn(1, 4, 3, 3); m = torch.rand(1, 9, 6, 6)
        print(native_available(), tuple(carafe(x, m, 3, 1, 2).shape))
        try:
            carafe(x, m, 3, 1, 2, backend="native")
        except ValueError as e:
            print("refused", "`backend`" in str(e))
        """,
        {"RESAMPLERS_NATIVE": "0"},
    )
    assert out.split() == ["False", "(1,", "4,", "6,", "6)", "refused", "True"]


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_peak_memory_bounded_by_a_few_outputs(backend):
    """Peak extra memory of forward + backward stays within 2x the output size, for both
    backends (the torch path through its hand-written backward: ~1.2x measured, ~2.9x with
    plain autograd through the composite).

    Runs in a fresh process and compares the growth of the peak resident set with the
    output size.  The unfolded tensor (k^2 = 25 times the output here) would be far over.
    glibc's mmap threshold is fixed first (as ``resamplers bench`` does): otherwise freed
    blocks stay resident and the measure depends on the allocator's history.
    """
    out = _run_python(
        f"""
        import resource, torch
        from resamplers.bench.memory import fix_malloc_mmap_threshold
        from resamplers.functional import carafe
        fix_malloc_mmap_threshold()
        torch.set_num_threads(1)
        x = torch.randn(1, 64, 96, 96, requires_grad=True)
        m = torch.rand(1, 25, 192, 192, requires_grad=True)
        g = torch.randn(1, 64, 192, 192)
        warm = carafe(x[:, :, :8, :8], m[:, :, :16, :16], 5, 1, 2, backend="{backend}")
        warm.backward(g[:, :, :16, :16])
        x.grad = m.grad = None
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        out = carafe(x, m, 5, 1, 2, backend="{backend}")
        out.backward(g)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        grads = x.grad.numel() * 4 + m.grad.numel() * 4
        print(peak - base - grads, out.numel() * 4)
        """
    )
    extra, output_bytes = map(int, out.split())
    assert extra <= 2 * output_bytes, f"extra {extra / 2**20:.1f} MiB vs output {output_bytes / 2**20:.1f} MiB"


@pytest.mark.parametrize("kernel, stride, padding, groups", [(3, 2, 1, 1), (2, 2, 0, 8), (5, 3, 2, 8), (4, 2, 1, 1)])
def test_strided_reassembly_exports_with_dynamic_odd_sizes(kernel, stride, padding, groups):
    """Kernels predicted at floor-sized resolution (any input size) export with dynamic sizes."""

    class Down(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.predict = torch.nn.Conv2d(8, groups * kernel**2, kernel, stride, padding)

        def forward(self, x):
            return reassemble_down(x, self.predict(x), kernel, groups, stride, padding)

    torch.manual_seed(0)
    down = Down()
    x = torch.randn(2, 8, 7, 11)
    dims = {"x": {2: torch.export.Dim("h", min=6, max=512), 3: torch.export.Dim("w", min=6, max=512)}}
    program = torch.export.export(down, (x,), dynamic_shapes=dims)
    geometry = dict(kernel_size=kernel, groups=groups, scale_factor=1, stride=stride, padding=(padding, padding))
    for size in [(13, 6), (8, 9)]:
        x2 = torch.randn(2, 8, *size)
        with torch.no_grad():
            assert_close(program.module()(x2), _loop(x2, down.predict(x2), geometry))
