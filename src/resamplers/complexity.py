"""Parameter and multiply-accumulate counts.

MACs come from ``torch.utils.flop_counter`` (convolutions, matmuls and this library's
reassembly op, which registers its own formula) plus the fixed-kernel resampling ops the
counter ignores: bilinear interpolation and bilinear ``grid_sample`` (4 MACs per output
element) and average pooling (``k*k`` per output element).  Max pooling and nearest
interpolation count zero: they select, they do not multiply.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_parameters", "count_macs"]


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters (shared parameters counted once)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _bilinear_flops(*args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    return 2 * 4 * math.prod(out_shape)


def _avg_pool_flops(x_shape: Any, kernel_size: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    k = kernel_size if isinstance(kernel_size, (list, tuple)) else (kernel_size, kernel_size)
    k = tuple(k) * (2 // len(k))
    return 2 * k[0] * k[1] * math.prod(out_shape)


def _grid_sample_flops(
    x_shape: Any, grid_shape: Any, interpolation_mode: int = 0, *args: Any, out_shape: Any = None, **kwargs: Any
) -> int:
    taps = {0: 4, 1: 0, 2: 16}.get(interpolation_mode, 4)  # bilinear, nearest, bicubic
    return 2 * taps * math.prod(out_shape)


_EXTRA_FORMULAS = {
    torch.ops.aten.upsample_bilinear2d: _bilinear_flops,
    torch.ops.aten._upsample_bilinear2d_aa: _bilinear_flops,
    torch.ops.aten.avg_pool2d: _avg_pool_flops,
    torch.ops.aten.grid_sampler_2d: _grid_sample_flops,
}


def count_macs(module: nn.Module, *inputs: Tensor) -> int:
    """Multiply-accumulates of one forward pass of ``module(*inputs)``."""
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=_EXTRA_FORMULAS) as counter:
        module(*inputs)
    return counter.get_total_flops() // 2
