"""The native core in channels-last layout: the pixel-major kernels against the slow loop
and the plane-major path, every mix of layouts, gradients, determinism and compile."""

from __future__ import annotations

import itertools

import pytest
import torch

from conftest import assert_close
from reference import reassemble_loop
from resamplers.core import Geometry
from resamplers.core.torch_path import reassemble_torch
from resamplers.functional import native_available, reassemble, window_similarity
from test_reassembly import GEOMETRIES, _case, assert_same_at_thread_counts

pytestmark = pytest.mark.skipif(not native_available(), reason="no native build")

CL = torch.channels_last
LAYOUTS = {"planes": torch.contiguous_format, "pixels": CL}


def _in(t: torch.Tensor, layout: str) -> torch.Tensor:
    return t.detach().clone(memory_format=LAYOUTS[layout])


def _reference(x, kernels, kw):
    return reassemble_loop(x, kernels, kw["kernel_size"], kw["groups"], kw["scale_factor"], kw["stride"], kw["padding"])


# Channels a group: planes for every op (8), pixel-major forward and feature gradient (16),
# pixel-major everything (64); see PIXEL_MAJOR_MIN_GROUP_CHANNELS.
GROUP_CHANNELS = [8, 16, 64]


def _wide_case(geometry, group_channels, batch=2, dtype=torch.float64, seed=0):
    """A case of test_reassembly's geometry with ``group_channels`` channels a group."""
    k, groups, up, stride, padding, size = geometry
    x, kernels, kw = _case(k, groups, up, stride, padding, size, dtype=dtype, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(batch, groups * group_channels, *size, generator=g, dtype=dtype)
    return x, kernels[:batch].clone(), kw


def _geometry(kw) -> Geometry:
    return Geometry(kw["kernel_size"], kw["groups"], kw["scale_factor"], kw["stride"], *kw["padding"])


@pytest.mark.parametrize("group_channels", GROUP_CHANNELS)
def test_pixel_major_kernels_match_the_loop(group_channels):
    x, kernels, kw = _wide_case(GEOMETRIES[0], group_channels, batch=1)
    out = reassemble(_in(x, "pixels"), _in(kernels, "pixels"), **kw, backend="native")
    assert_close(out, _reference(x, kernels, kw))


@pytest.mark.parametrize("group_channels", GROUP_CHANNELS)
@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_every_mix_of_layouts_gives_the_torch_values_and_gradients(geometry, group_channels):
    """features, kernels and the incoming gradient each contiguous or channels-last, against
    the torch path on contiguous tensors (itself checked against the loop)."""
    x, kernels, kw = _wide_case(geometry, group_channels)
    grad_out = torch.randn(x.shape[0], x.shape[1], *kernels.shape[-2:], dtype=x.dtype)
    a0, b0 = x.clone().requires_grad_(), kernels.clone().requires_grad_()
    expected = reassemble_torch(a0, b0, _geometry(kw))
    want = torch.autograd.grad(expected, (a0, b0), grad_out)
    for layouts in itertools.product(LAYOUTS, repeat=3):
        a = _in(x, layouts[0]).requires_grad_()
        b = _in(kernels, layouts[1]).requires_grad_()
        out = reassemble(a, b, **kw, backend="native")
        assert_close(out, expected.detach())
        got = torch.autograd.grad(out, (a, b), _in(grad_out, layouts[2]))
        for g, w in zip(got, want, strict=True):
            assert_close(g, w)


@pytest.mark.parametrize("group_channels", GROUP_CHANNELS)
def test_outputs_are_channels_last_where_the_pixel_major_kernels_run(group_channels):
    x, kernels, kw = _wide_case(GEOMETRIES[0], group_channels)
    a, b = _in(x, "pixels").requires_grad_(), _in(kernels, "pixels").requires_grad_()
    out = reassemble(a, b, **kw, backend="native")
    grad_a, grad_b = torch.autograd.grad(out.square().sum(), (a, b))
    layouts = [t.is_contiguous(memory_format=CL) and not t.is_contiguous() for t in (out, grad_a, grad_b)]
    assert layouts == [group_channels >= 16, group_channels >= 16, group_channels >= 64]


@pytest.mark.parametrize(
    "geometry, group_channels", [(g, 16) for g in GEOMETRIES[:8]] + [(GEOMETRIES[1], 64), (GEOMETRIES[4], 64)]
)
def test_gradcheck_in_channels_last(geometry, group_channels):
    x, kernels, kw = _wide_case(geometry, group_channels, batch=1)
    a, b = _in(x, "pixels").requires_grad_(), _in(kernels, "pixels").requires_grad_()
    assert torch.autograd.gradcheck(lambda p, q: reassemble(p, q, **kw, backend="native"), (a, b))


@pytest.mark.parametrize("geometry", [GEOMETRIES[1], GEOMETRIES[6]])
def test_gradgradcheck_in_channels_last(geometry):
    x, kernels, kw = _wide_case(geometry, 16, batch=1)
    a, b = _in(x, "pixels").requires_grad_(), _in(kernels, "pixels").requires_grad_()
    assert torch.autograd.gradgradcheck(lambda p, q: reassemble(p, q, **kw, backend="native"), (a, b))


def test_pixel_major_kernels_do_not_depend_on_the_thread_count():
    x, kernels, kw = _wide_case((5, 2, 2, 1, None, (9, 11)), 64, dtype=torch.float32)
    a, b = _in(x, "pixels").requires_grad_(), _in(kernels, "pixels").requires_grad_()
    assert_same_at_thread_counts(a, b, kw, (1, 2, 3))


@pytest.mark.parametrize("groups, scale, kernel_size, channels", [(1, 2, 5, 72), (2, 2, 3, 128), (4, 1, 3, 24)])
def test_window_similarity_in_channels_last_equals_the_planes(groups, scale, kernel_size, channels):
    g = torch.Generator().manual_seed(0)
    query = torch.randn(2, channels, 6 * scale, 7 * scale, generator=g, dtype=torch.float64)
    keys = torch.randn(2, channels, 6, 7, generator=g, dtype=torch.float64)
    kw = dict(groups=groups, scale_factor=scale)
    results = []
    for layout in LAYOUTS:
        q, k = _in(query, layout).requires_grad_(), _in(keys, layout).requires_grad_()
        sim = window_similarity(q, k, kernel_size, **kw, backend="native")
        results.append((sim, *torch.autograd.grad(sim, (q, k), torch.ones_like(sim))))
    assert results[1][0].is_contiguous(memory_format=CL) == (channels // groups >= 64)
    for a, b in zip(*results, strict=True):
        assert_close(a, b)


@pytest.mark.parametrize("group_channels", GROUP_CHANNELS)
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_the_fakes_give_the_strides_of_the_real_ops(layout, group_channels):
    """torch.compile plans with the fakes' strides: they must be the real outputs' strides."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    x, kernels, kw = _wide_case((3, 2, 2, 1, None, (5, 6)), group_channels, dtype=torch.float32)
    a, b = _in(x, layout), _in(kernels, "pixels")
    grad_out = torch.randn(x.shape[0], x.shape[1], *kernels.shape[-2:]).contiguous(memory_format=CL)
    geometry = [3, 2, 2, 1, 1, 1]
    ops = torch.ops.resamplers
    calls = {
        "reassemble": lambda p, q, g: ops.reassemble(p, q, geometry),
        "grad_features": lambda p, q, g: ops.reassemble_grad_features(g, p, q, geometry),
        "grad_kernels": lambda p, q, g: ops.reassemble_grad_kernels(g, p, q, geometry),
        "similarity": lambda p, q, g: ops.window_similarity(g, p, [3, 2, 2, 1, 1, 1]),
    }
    for name, call in calls.items():
        real = call(a, b, grad_out)
        with FakeTensorMode(allow_non_fake_inputs=True) as mode:
            fake = call(mode.from_tensor(a), mode.from_tensor(b), mode.from_tensor(grad_out))
        assert fake.shape == real.shape and fake.stride() == real.stride(), name


def test_layout_benchmark_tool_runs():
    """``tools/bench_channels_last.py`` at tiny sizes: a row per op and shape, the kernel named."""
    import subprocess
    import sys
    from pathlib import Path

    tool = Path(__file__).resolve().parents[1] / "tools" / "bench_channels_last.py"
    args = [sys.executable, str(tool), "--rounds", "1", "--shape", "1x8x4", "--shape", "1x64x4"]
    printed = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    rows = [line for line in printed.splitlines() if line.startswith("| 1x")]
    assert len(rows) == 8
    assert all(float(row.split("|")[5].strip().rstrip("x")) > 0 for row in rows)
    assert sum("pixel-major" in row for row in rows) == 4  # 8 channels: none; 64: all four
    with pytest.raises(subprocess.CalledProcessError):
        subprocess.run([sys.executable, str(tool), "--shape", "8x64"], capture_output=True, check=True)
