"""Property-based fuzzing of the core's entry points: the ``torch.ops.resamplers`` custom
ops (forward, both gradients, the similarity) and the public functions.  Every call must
give the right answer (against the torch path) or raise a clean exception with a message;
the body runs in a subprocess so that a crash of the process (a signal) fails the test."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from resamplers.functional import native_available

BODY = textwrap.dedent(
    """
    import torch
    from hypothesis import HealthCheck, given, settings, strategies as st

    from resamplers import functional as F
    from resamplers.core import Geometry
    from resamplers.core.torch_path import reassemble_torch, similarity_torch

    CLEAN = (ValueError, TypeError, MemoryError, RuntimeError)
    DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.int64]
    torch.set_num_threads(2)

    def tensor(draw, shape, dtype):
        shape = [max(0, s) for s in shape]
        if draw(st.booleans()):  # non-contiguous: every other column of a wider tensor
            t = torch.randn(*shape[:-1], 2 * shape[-1] + 1, dtype=torch.float64)[..., ::2][..., : shape[-1]]
        else:
            t = torch.randn(*shape, dtype=torch.float64)
        return (t * 10).to(dtype) if dtype == torch.int64 else t.to(dtype)

    @st.composite
    def case(draw):
        n, c = draw(st.integers(0, 2)), draw(st.integers(0, 6))
        h, w = draw(st.integers(0, 6)), draw(st.integers(0, 6))
        k, g = draw(st.integers(0, 4)), draw(st.integers(-1, 4))
        up, s = draw(st.integers(0, 3)), draw(st.integers(0, 3))
        pt, pl = draw(st.integers(-1, 4)), draw(st.integers(-1, 4))
        geometry = [k, g, up, s, pt, pl]
        if draw(st.integers(0, 9)) == 0:
            geometry = draw(st.sampled_from([[3, 1, 2], [3.0, 1, 2, 1, 1, 1], "abc", [True, 1, 1, 1, 0, 0]]))
        kc = max(g, 0) * k * k + draw(st.sampled_from([0, 0, 0, -1, 1, 9]))
        u = max(up, 1)
        ho = h * u if up > 1 else (h - 1 + max(pt, 0)) // max(s, 1) + 1
        wo = w * u if up > 1 else (w - 1 + max(pl, 0)) // max(s, 1) + 1
        ho, wo = ho + draw(st.sampled_from([0, 0, 0, -1, 1, 5])), wo + draw(st.sampled_from([0, 0, 0, 1]))
        d1 = draw(st.sampled_from(DTYPES[:2])) if draw(st.booleans()) else draw(st.sampled_from(DTYPES))
        d2 = d1 if draw(st.booleans()) else draw(st.sampled_from(DTYPES))
        x = tensor(draw, [n, c, h, w], d1)
        m = tensor(draw, [n, kc, ho, wo], d2)
        if draw(st.integers(0, 19)) == 0:
            m = draw(st.sampled_from([None, 3.0, torch.randn(2, 2), torch.randn(1, 1, 1, 1, 1)]))
        target = draw(st.sampled_from(["op", "grad_features", "grad_kernels", "similarity", "reassemble", "carafe",
                                       "down", "window_similarity"]))
        return target, x, m, geometry

    def close(a, b):
        return torch.allclose(a.double(), b.double(), rtol=1e-3, atol=1e-3)

    def reference(x, m, geometry):
        return reassemble_torch(x.double(), m.double(), Geometry(*geometry))

    def like(x, m):
        # a tensor shaped like the output of reassembling x with m (m itself if garbage)
        if not (isinstance(m, torch.Tensor) and m.dim() == 4 and x.dim() == 4):
            return m
        return torch.randn(x.shape[0], x.shape[1], m.shape[-2], m.shape[-1]).to(x.dtype)

    def run(target, x, m, geometry):
        ops = torch.ops.resamplers
        if target == "op":
            out = ops.reassemble(x, m, geometry)
            assert close(out, reference(x, m, geometry)), "op result differs from the torch path"
        elif target in ("grad_features", "grad_kernels"):
            go = like(x, m)
            out = getattr(ops, "reassemble_" + target)(go, x, m, geometry)
            a, b = x.double().requires_grad_(), m.double().requires_grad_()
            ga, gb = torch.autograd.grad(reassemble_torch(a, b, Geometry(*geometry)), (a, b), go.double())
            assert close(out, ga if target == "grad_features" else gb), target + " differs"
        elif target == "similarity":
            q = like(x, m)
            out = ops.window_similarity(q, x, geometry)
            assert close(out, similarity_torch(q.double(), x.double(), Geometry(*geometry))), "similarity differs"
        else:
            k, g, up, s, pt, pl = (list(geometry) + [0] * 6)[:6] if isinstance(geometry, list) else [3, 1, 1, 1, 1, 1]
            calls = {
                "reassemble": lambda b: F.reassemble(x, m, k, g, scale_factor=up, stride=s, padding=(pt, pl), backend=b),
                "carafe": lambda b: F.carafe(x, m, k, g, up, backend=b),
                "down": lambda b: F.reassemble_down(x, m, k, g, s, (pt, pl), backend=b),
                "window_similarity": lambda b: F.window_similarity(
                    like(x, m), x, k, g, scale_factor=up, stride=s, padding=(pt, pl), backend=b
                ),
            }
            results = []
            for b in ("native", "torch"):
                try:
                    results.append(calls[target](b))
                except CLEAN as e:
                    assert str(e), "exception without a message"
                    results.append(type(e))
            if all(isinstance(r, torch.Tensor) for r in results):
                assert close(*results), "backends disagree"
            elif any(isinstance(r, torch.Tensor) for r in results):
                # native refuses half and bfloat16 only through the same checks: both must agree
                raise AssertionError(f"one backend raised, the other did not: {results}")

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(case())
    def fuzz(args):
        try:
            run(*args)
        except AssertionError:
            raise
        except CLEAN as e:
            assert str(e), "exception without a message"

    fuzz()
    print("fuzz ok")
    """
)


@pytest.mark.slow
@pytest.mark.skipif(not native_available(), reason="the native kernels are not built")
def test_fuzz_core_entry_points():
    proc = subprocess.run([sys.executable, "-c", BODY], capture_output=True, text=True, timeout=300)
    assert proc.returncode >= 0, f"the process died with signal {-proc.returncode}:\\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "fuzz ok" in proc.stdout


@pytest.mark.skipif(not native_available(), reason="the native kernels are not built")
def test_c_functions_return_an_error_code_for_bad_geometry():
    """The C functions check the geometry themselves: a divide by zero (G = 0) or groups not
    dividing C come back as an error code, not a crash."""
    code = textwrap.dedent(
        """
        import torch
        from resamplers.core import native
        x, m, out = torch.zeros(4), torch.zeros(4), torch.zeros(4)
        for geo in ([1, 4, 0, 2, 2, 4, 4, 3, 2, 1, 1, 1], [1, 4, 3, 2, 2, 4, 4, 3, 2, 1, 1, 1], [1, 4, 1, 2, 2, 4, 4, 3, 0, 1, 1, 1]):
            g = torch.tensor(geo, dtype=torch.int64)
            for kind in ("forward", "grad_kernels", "grad_features"):
                fn = getattr(native._LIB, "reassemble_" + kind + "_f32")
                assert fn(x.data_ptr(), m.data_ptr(), out.data_ptr(), g.data_ptr(), 0, 1) == 2, (kind, geo)
        print("ok")
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-2000:]
