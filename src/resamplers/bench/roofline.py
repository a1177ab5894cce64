"""Roofline lower bounds: this machine's limits, measured in the same run as the operators,
and the least time a computation can take under them.

A computation that moves ``B`` bytes between memory and the cores and does ``F``
floating-point operations cannot finish faster than

.. math::

    t_{min} = \\max\\left(\\frac{B}{\\beta}, \\frac{F}{\\pi}\\right)

where ``β`` is the streaming bandwidth (bytes read plus bytes written per second, from a
large tensor copy) and ``π`` the multiply-add throughput for the dtype (FLOP/s of a large
matrix product, one multiply-add counted as two FLOPs).  Both are measured here, with the
threads the operators get, so the ratio ``measured / t_min`` says how far an operator is
from what this machine allows.  The bound is optimistic by construction: it counts each
tensor once per pass, as if caches held everything in between.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = [
    "MachineLimits",
    "Work",
    "measure_limits",
    "reassembly_work",
    "similarity_work",
    "module_work",
]

Shape = Sequence[int]


@dataclass(frozen=True)
class MachineLimits:
    """Measured limits: ``bandwidth_gbs`` in 1e9 bytes/s (read + write), ``gflops`` in 1e9 FLOP/s."""

    bandwidth_gbs: float
    gflops: float
    dtype: str
    threads: int


@dataclass(frozen=True)
class Work:
    """Bytes moved and floating-point operations of one computation."""

    bytes: int
    flops: int

    def bound_ms(self, limits: MachineLimits) -> float:
        """The roofline lower bound in milliseconds."""
        return 1e3 * max(self.bytes / (limits.bandwidth_gbs * 1e9), self.flops / (limits.gflops * 1e9))


def _best_seconds(fn: object, repeats: int) -> float:
    """The fastest of ``repeats`` runs after one warm-up: limits are best cases."""
    assert callable(fn)
    fn()
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def measure_limits(
    dtype: torch.dtype = torch.float32, *, repeats: int = 5, copy_mib: int = 256, matmul_size: int = 2048
) -> MachineLimits:
    """Measure streaming bandwidth (a ``copy_mib`` MiB tensor copy, far beyond the caches)
    and the matrix-product throughput for ``dtype`` (``matmul_size`` squared operands)."""
    numel = copy_mib * 2**20 // torch.empty((), dtype=dtype).element_size()
    source = torch.ones(numel, dtype=dtype)
    target = torch.empty_like(source)
    copy_s = _best_seconds(lambda: target.copy_(source), repeats)
    bandwidth = 2 * source.numel() * source.element_size() / copy_s
    a = torch.randn(matmul_size, matmul_size).to(dtype)
    b = torch.randn(matmul_size, matmul_size).to(dtype)
    matmul_s = _best_seconds(lambda: torch.mm(a, b), repeats)
    gflops = 2 * matmul_size**3 / matmul_s / 1e9
    return MachineLimits(bandwidth / 1e9, gflops, str(dtype).removeprefix("torch."), torch.get_num_threads())


def _numel(shape: Shape) -> int:
    return math.prod(shape)


def reassembly_work(
    features: Shape, kernels: Shape, kernel_size: int, itemsize: int, *, backward: bool = False
) -> Work:
    """Work of one reassembly (``N x C x H x W`` features, ``N x G*K^2 x H_out x W_out``
    kernels, ``N x C x H_out x W_out`` output).

    Forward: read features and kernels, write the output; ``2 * N*C*K^2*H_out*W_out``
    FLOPs.  Each gradient (features, kernels) reads two of the three tensors and writes
    the third, with the forward's FLOPs: forward+backward is three times the forward.
    """
    out = features[0] * features[1] * kernels[2] * kernels[3]
    moved = itemsize * (_numel(features) + _numel(kernels) + out)
    passes = 3 if backward else 1
    return Work(passes * moved, passes * 2 * out * kernel_size**2)


def similarity_work(
    query: Shape, keys: Shape, kernel_size: int, groups: int, itemsize: int, *, backward: bool = False
) -> Work:
    """Work of one window similarity: query ``N x C x H_out x W_out``, keys ``N x C x H x W``,
    output ``N x G*K^2 x H_out x W_out``; ``2 * N*C*K^2*H_out*W_out`` FLOPs.
    Forward+backward (a gradient for each input, each reading two tensors and writing
    one) is three times the forward."""
    taps = kernel_size**2
    out = query[0] * groups * taps * query[2] * query[3]
    moved = itemsize * (_numel(query) + _numel(keys) + out)
    passes = 3 if backward else 1
    return Work(passes * moved, passes * 2 * _numel(query) * taps)


def module_work(
    inputs: Sequence[Shape], outputs: Sequence[Shape], params: int, macs: int, itemsize: int, *, backward: bool = False
) -> Work:
    """Compulsory work of a whole operator: read every input and parameter, write every
    output once, and ``2 * MACs`` FLOPs; forward+backward three times that (the gradient of
    each input and parameter, written once, from reads of the same size).  Intermediate
    tensors are not counted, so this is a loose lower bound for multi-layer operators."""
    moved = itemsize * (sum(_numel(s) for s in inputs) + sum(_numel(s) for s in outputs) + params)
    passes = 3 if backward else 1
    return Work(passes * moved, passes * 2 * macs)
