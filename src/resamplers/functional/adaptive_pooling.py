"""Adaptive average pooling that exports with dynamic input sizes.

``torch.nn.functional.adaptive_avg_pool2d`` to a fixed ``k x k`` output exports to ONNX as
an ``AveragePool`` whose window is frozen at the example input's size, so the exported
model is wrong at any other size.  Written as two small pooling matrices, the same
operator is exact at every size: output cell ``i`` averages input rows
``floor(i H / k) <= r < ceil((i + 1) H / k)`` (torch's windows), and likewise for columns.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import check_feature, pair

__all__ = ["adaptive_avg_pool2d"]


def _exporting() -> bool:
    return torch.compiler.is_exporting() or torch.onnx.is_in_onnx_export()


def _pooling_matrix(size_in: int, size_out: int, like: Tensor) -> Tensor:
    """``size_out x size_in`` matrix averaging torch's adaptive windows."""
    cells = torch.arange(size_out, device=like.device)
    start = (cells * size_in).div(size_out, rounding_mode="floor")
    end = ((cells + 1) * size_in + size_out - 1).div(size_out, rounding_mode="floor")
    positions = torch.arange(size_in, device=like.device)
    inside = (positions[None, :] >= start[:, None]) & (positions[None, :] < end[:, None])
    return inside.to(like.dtype) / (end - start).to(like.dtype)[:, None]


def adaptive_avg_pool2d(x: Tensor, output_size: int | tuple[int, int]) -> Tensor:
    """``torch.nn.functional.adaptive_avg_pool2d`` that stays exact when exported.

    Eager and compiled code call torch's kernel; under ``torch.export`` / ONNX export the
    pooling is two matrix products with torch's windows, so dynamic input sizes work.

    Args:
        x: ``N x C x H x W``.
        output_size: ``k`` or ``(k_h, k_w)``.

    Shape:
        ``N x C x H x W`` -> ``N x C x k_h x k_w``.

    Example:
        >>> adaptive_avg_pool2d(torch.arange(5.0).reshape(1, 1, 1, 5), (1, 2))  # columns 0-2 and 2-4
        tensor([[[[1., 3.]]]])
    """
    check_feature(x, "x")
    kh, kw = pair(output_size, "output_size", minimum=1)
    if not _exporting():
        return F.adaptive_avg_pool2d(x, (kh, kw))
    rows = _pooling_matrix(x.shape[-2], kh, x)
    cols = _pooling_matrix(x.shape[-1], kw, x)
    return torch.matmul(torch.matmul(rows, x), cols.transpose(0, 1))
