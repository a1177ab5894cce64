"""The Triton kernels of the reassembly core (used through :mod:`.triton_path` only).

This module is imported on the first use of the Triton path, never by ``import resamplers``:
it imports ``triton`` at the top, so that ``triton.jit`` (which reads ``TRITON_INTERPRET``
when it decorates) sees the environment of that first use.  Without triton it still
imports (the kernels are then plain, unused functions and :data:`AVAILABLE` is false), so
that ``pytest --doctest-modules`` can collect it anywhere.

Three kernels compute the whole core; every one accumulates in ``ACC`` (float32 for half,
bfloat16 and float32 inputs, float64 for float64), reads contiguous ``N x C x H x W``
tensors and stores in the dtype of its output.  The grid is one axis (no limit of 65535
programs); a program id is split into a block of pixels, a block of channels (or taps)
and one ``(n, g)`` pair, pixels fastest so that neighbouring programs read neighbouring
memory.  Offsets of whole planes are 64-bit; offsets inside one plane are 32-bit.

* :func:`reassemble_kernel`: ``out[n, c, p]`` for a block of channels of one group and a
  block of output pixels, a loop over the ``K x K`` taps (the kernel weight is loaded
  once per tap and pixel and reused by every channel of the block);
* :func:`reassemble_grad_features_kernel`: the gradient with respect to the features in
  gather form: a program owns a block of *source* pixels and sums, tap by tap and output
  phase by phase, over the output pixels that read them, so there are no atomics and the
  result is deterministic;
* :func:`window_similarity_kernel`: ``sim[n, g K^2 + t, p] = sum_{c in g} q[n, c, p]
  k[n, c, src(t, p)]`` for a block of taps and a block of pixels, a loop over the group's
  channels; it is also the gradient of a reassembly with respect to its kernels.

Taps outside the image are masked loads (``other=0``): nothing is read there, so a
non-finite weight at such a tap contributes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

try:
    import triton
    import triton.language as tl
except ImportError:  # the library works without triton; the Triton path is then unavailable
    triton = None
    tl = None

__all__ = [
    "AVAILABLE",
    "INTERPRETED",
    "reassemble_kernel",
    "reassemble_grad_features_kernel",
    "window_similarity_kernel",
]

AVAILABLE = triton is not None


def _jit(fn: Callable[..., None]) -> Any:
    """``triton.jit`` when triton is installed, else the plain function (never launched)."""
    return triton.jit(fn) if triton is not None else fn


@_jit
def reassemble_kernel(
    x_ptr,
    w_ptr,
    out_ptr,
    C,
    H,
    W,
    H_OUT,
    W_OUT,
    GROUP_C,
    GROUPS,
    PAD_T,
    PAD_L,
    P_BLOCKS,
    C_BLOCKS,
    K: tl.constexpr,
    UP: tl.constexpr,
    STRIDE: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_P: tl.constexpr,
):
    """``out[n, c, y, x] = sum_{a, b} w[n, g K^2 + a K + b, y, x] x[n, c, (y // UP) STRIDE + a - PAD_T, ...]``."""
    pid = tl.program_id(0)
    pid_p = pid % P_BLOCKS
    rest = pid // P_BLOCKS
    pid_c = rest % C_BLOCKS
    ng = rest // C_BLOCKS  # n * GROUPS + g
    n = ng // GROUPS
    g = ng % GROUPS
    hw_out = H_OUT * W_OUT
    p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    p_ok = p < hw_out
    row0 = (p // W_OUT // UP) * STRIDE - PAD_T
    col0 = (p % W_OUT // UP) * STRIDE - PAD_L
    c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    c_ok = c < GROUP_C
    planes = (n * C + g * GROUP_C + c).to(tl.int64)
    sources = x_ptr + planes[:, None] * (H * W)
    tap0 = (ng * (K * K)).to(tl.int64)  # first kernel plane of the group
    acc = tl.zeros((BLOCK_C, BLOCK_P), dtype=ACC)
    for a in range(K):
        row = row0 + a
        row_ok = p_ok & (row >= 0) & (row < H)
        for b in range(K):
            col = col0 + b
            ok = row_ok & (col >= 0) & (col < W)
            weight = tl.load(w_ptr + (tap0 + a * K + b) * hw_out + p, mask=ok, other=0.0).to(ACC)
            source = tl.load(sources + (row * W + col)[None, :], mask=c_ok[:, None] & ok[None, :], other=0.0)
            acc += source.to(ACC) * weight[None, :]
    out = out_ptr + planes[:, None] * hw_out + p[None, :]
    tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=c_ok[:, None] & p_ok[None, :])


@_jit
def reassemble_grad_features_kernel(
    w_ptr,
    grad_ptr,
    out_ptr,
    C,
    H,
    W,
    H_OUT,
    W_OUT,
    H_CELLS,
    W_CELLS,
    GROUP_C,
    GROUPS,
    PAD_T,
    PAD_L,
    P_BLOCKS,
    C_BLOCKS,
    K: tl.constexpr,
    UP: tl.constexpr,
    STRIDE: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_P: tl.constexpr,
):
    """``d out / d x`` of :func:`reassemble_kernel` applied to ``grad``, gathered per source pixel.

    Source row ``r`` is read by tap ``a`` of the output cells ``yq = (r + PAD_T - a) / STRIDE``
    (when that is a whole number in ``[0, H_CELLS)``), i.e. by output rows ``yq UP + i``,
    ``i < UP``; columns alike.
    """
    pid = tl.program_id(0)
    pid_p = pid % P_BLOCKS
    rest = pid // P_BLOCKS
    pid_c = rest % C_BLOCKS
    ng = rest // C_BLOCKS
    n = ng // GROUPS
    g = ng % GROUPS
    hw_out = H_OUT * W_OUT
    p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    p_ok = p < H * W
    row = p // W
    col = p % W
    c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    c_ok = c < GROUP_C
    planes = (n * C + g * GROUP_C + c).to(tl.int64)
    grads = grad_ptr + planes[:, None] * hw_out
    tap0 = (ng * (K * K)).to(tl.int64)
    acc = tl.zeros((BLOCK_C, BLOCK_P), dtype=ACC)
    for a in range(K):
        rows = row + PAD_T - a
        yq = rows // STRIDE
        row_ok = p_ok & (rows >= 0) & (yq * STRIDE == rows) & (yq < H_CELLS)
        for b in range(K):
            cols = col + PAD_L - b
            xq = cols // STRIDE
            ok = row_ok & (cols >= 0) & (xq * STRIDE == cols) & (xq < W_CELLS)
            tap = w_ptr + (tap0 + a * K + b) * hw_out
            for i in range(UP):
                y = yq * UP + i
                for j in range(UP):
                    x = xq * UP + j
                    m = ok & (y < H_OUT) & (x < W_OUT)
                    o = y * W_OUT + x
                    weight = tl.load(tap + o, mask=m, other=0.0).to(ACC)
                    grad = tl.load(grads + o[None, :], mask=c_ok[:, None] & m[None, :], other=0.0)
                    acc += grad.to(ACC) * weight[None, :]
    out = out_ptr + planes[:, None] * (H * W) + p[None, :]
    tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=c_ok[:, None] & p_ok[None, :])


@_jit
def window_similarity_kernel(
    q_ptr,
    k_ptr,
    out_ptr,
    C,
    H,
    W,
    H_OUT,
    W_OUT,
    GROUP_C,
    GROUPS,
    PAD_T,
    PAD_L,
    P_BLOCKS,
    T_BLOCKS,
    K: tl.constexpr,
    UP: tl.constexpr,
    STRIDE: tl.constexpr,
    ACC: tl.constexpr,
    BLOCK_T: tl.constexpr,
    BLOCK_P: tl.constexpr,
):
    """``sim[n, g K^2 + t, y, x] = sum_{c in g} q[n, c, y, x] k[n, c, r, s]`` for the source pixel
    ``(r, s)`` of tap ``t`` (0 outside the image)."""
    pid = tl.program_id(0)
    pid_p = pid % P_BLOCKS
    rest = pid // P_BLOCKS
    pid_t = rest % T_BLOCKS
    ng = rest // T_BLOCKS
    n = ng // GROUPS
    g = ng % GROUPS
    hw_out = H_OUT * W_OUT
    p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    p_ok = p < hw_out
    t = pid_t * BLOCK_T + tl.arange(0, BLOCK_T)
    t_ok = t < K * K
    row = ((p // W_OUT // UP) * STRIDE - PAD_T)[None, :] + (t // K)[:, None]
    col = ((p % W_OUT // UP) * STRIDE - PAD_L)[None, :] + (t % K)[:, None]
    ok = t_ok[:, None] & p_ok[None, :] & (row >= 0) & (row < H) & (col >= 0) & (col < W)
    source = row * W + col
    plane0 = (n * C + g * GROUP_C).to(tl.int64)
    acc = tl.zeros((BLOCK_T, BLOCK_P), dtype=ACC)
    for c in range(GROUP_C):
        plane = plane0 + c
        query = tl.load(q_ptr + plane * hw_out + p, mask=p_ok, other=0.0).to(ACC)
        keys = tl.load(k_ptr + plane * (H * W) + source, mask=ok, other=0.0).to(ACC)
        acc += keys * query[None, :]
    out = out_ptr + (ng * (K * K) + t).to(tl.int64)[:, None] * hw_out + p[None, :]
    tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=t_ok[:, None] & p_ok[None, :])


def _interpreted() -> bool:
    if triton is None:
        return False
    from triton.runtime.interpreter import InterpretedFunction

    return isinstance(reassemble_kernel, InterpretedFunction)


# Whether ``triton.jit`` gave interpreter functions (``TRITON_INTERPRET=1`` when this module
# was imported): they run on CPU tensors through numpy, launching compiled kernels needs a GPU.
INTERPRETED = _interpreted()
