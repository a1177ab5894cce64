"""Every instruction-set level of the native kernels against the torch path.

The build holds one copy of the kernels per level and runs the highest this CPU has;
``RESAMPLERS_NATIVE_ISA`` lowers it, so a machine with AVX-512 checks the AVX2 and the
baseline copies too (each in a fresh process: the level is chosen when the library loads).
"""

import os
import subprocess
import sys
import textwrap

import pytest

from conftest import import_error_with
from resamplers.functional import native_available

pytestmark = pytest.mark.skipif(not native_available(), reason="native kernels not built")

CHECK = textwrap.dedent(
    """
    import torch
    from resamplers.functional import native_isa, reassemble, window_similarity

    assert native_isa() == {label!r}, native_isa()
    torch.manual_seed(0)
    # (channels, groups, kernel, scale, stride, size, channels_last): upsampling, strided
    # downsampling, many groups, partial vectors, widths past one and two vectors
    cases = [
        (16, 1, 5, 2, 1, 9, False), (12, 3, 3, 1, 2, 11, False), (8, 8, 2, 1, 2, 6, False),
        (5, 1, 3, 3, 1, 7, False), (32, 2, 5, 2, 1, 20, True), (64, 1, 3, 1, 1, 13, True),
        (8, 1, 5, 1, 2, 37, False),  # stride-2 rows of whole vectors of both phases
    ]
    for c, g, k, up, stride, size, cl in cases:
        x = torch.randn(2, c, size, size + 3, dtype=torch.float64)
        h_out, w_out = (size * up, (size + 3) * up) if stride == 1 else (-(-size // stride), -(-(size + 3) // stride))
        m = torch.randn(2, g * k * k, h_out, w_out, dtype=torch.float64)
        if cl:
            x, m = x.contiguous(memory_format=torch.channels_last), m.contiguous(memory_format=torch.channels_last)
        outs = {{}}
        for backend in ("native", "torch"):
            xb, mb = x.clone().requires_grad_(), m.clone().requires_grad_()
            out = reassemble(xb, mb, k, g, scale_factor=up, stride=stride, backend=backend)
            out.backward(torch.cos(torch.arange(out.numel(), dtype=out.dtype)).view_as(out))
            outs[backend] = (out.detach(), xb.grad, mb.grad)
        for a, b in zip(outs["native"], outs["torch"]):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
        q = torch.randn(2, c, h_out, w_out, dtype=torch.float32)
        keys = x.float().detach()
        sims = [window_similarity(q, keys, k, g, scale_factor=up, stride=stride, backend=b) for b in ("native", "torch")]
        torch.testing.assert_close(sims[0], sims[1], rtol=1e-4, atol=1e-4)
    print("ok")
    """
)


@pytest.mark.parametrize(
    ("level", "label"), [("x86-64-v3", "x86-64-v3 (AVX2, FMA)"), ("baseline", "baseline")], ids=["v3", "baseline"]
)
def test_lower_levels_equal_the_torch_path(level, label):
    from resamplers.core.native import _LIB

    top = int(_LIB.native_isa_level())
    if level == "x86-64-v3" and top < 3:
        pytest.skip("this CPU has no AVX2")
    env = {**os.environ, "RESAMPLERS_NATIVE_ISA": level}
    result = subprocess.run(
        [sys.executable, "-c", CHECK.format(label=label)], capture_output=True, text=True, timeout=300, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "ok"


def test_an_unknown_level_is_refused_by_name():
    error = import_error_with("RESAMPLERS_NATIVE_ISA", "avx9000")
    assert "RESAMPLERS_NATIVE_ISA" in error and "x86-64-v3" in error
