"""Adaptive (output-size) average and max pooling that export to ONNX for every size.

Bin ``i`` of ``o`` along an axis of length ``n`` covers ``[floor(i n / o), ceil((i+1) n / o))``,
torch's definition: bins are never empty, overlap when ``o`` does not divide ``n``, and
repeat pixels when ``o > n``.

``torch.onnx`` exports ``adaptive_avg_pool2d`` only when the output size divides the
input size.  So when a model is exported the bins are built from index ranges instead:
a ``o x n`` membership matrix made of ``arange`` comparisons (shape arithmetic on the
runtime size, no data-dependent control flow).  Averages are two small matrix products
with that matrix scaled by ``1 / bin length``; maxima take ``amax`` of the input masked
with ``-inf`` outside each bin.  Both are exact for every input and output size (the
average up to float summation order, ~1 ulp); in eager mode and under ``torch.compile``
torch's own kernels run.  A global pool (output ``1 x 1``) is always a ``mean``/``amax``
over ``H, W`` (ONNX ``ReduceMean``/``ReduceMax``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import check_feature, check_int
from ..core import is_exporting

__all__ = ["OutputSize", "adaptive_avg_pool2d", "adaptive_max_pool2d", "adaptive_bins", "normalize_output_size"]

OutputSize = int | Sequence[int | None]


def normalize_output_size(output_size: OutputSize, name: str = "output_size") -> tuple[int | None, int | None]:
    """``(h_o, w_o)`` from an int or a pair; ``None`` keeps that axis of the input."""
    if isinstance(output_size, Sequence) and not isinstance(output_size, str):
        if len(output_size) != 2:
            raise ValueError(f"argument `{name}`: expected an int or a pair (h, w), got {output_size!r}")
        return tuple(None if v is None else check_int(v, name, minimum=1) for v in output_size)  # type: ignore[return-value]
    v = check_int(output_size, name, minimum=1)
    return (v, v)


def adaptive_bins(length: int, bins: int, *, device: torch.device | None = None) -> tuple[Tensor, Tensor]:
    """Start (inclusive) and end (exclusive) indices of ``bins`` adaptive bins over ``length``.

    Example:
        >>> adaptive_bins(5, 3)
        (tensor([0, 1, 3]), tensor([2, 4, 5]))
    """
    i = torch.arange(bins, device=device)
    return (i * length) // bins, ((i + 1) * length + bins - 1) // bins


def _membership(length: int, bins: int, device: torch.device) -> Tensor:
    """``bins x length`` boolean matrix: ``[i, j]`` is True when index ``j`` lies in bin ``i``."""
    start, end = adaptive_bins(length, bins, device=device)
    j = torch.arange(length, device=device)
    return (j >= start[:, None]) & (j < end[:, None])


def _pooling_matrix(length: int, bins: int, like: Tensor) -> Tensor:
    """``bins x length`` matrix averaging each adaptive bin (rows sum to 1)."""
    member = _membership(length, bins, like.device).to(like.dtype)
    return member / member.sum(dim=1, keepdim=True)


def _avg_axis(x: Tensor, bins: int, dim: int) -> Tensor:
    weights = _pooling_matrix(x.shape[dim], bins, x)
    if dim == -2:
        return torch.matmul(weights, x)
    return torch.matmul(x, weights.transpose(0, 1))


def _max_axis(x: Tensor, bins: int, dim: int) -> Tensor:
    member = _membership(x.shape[dim], bins, x.device)
    if dim == -2:  # N C 1 H W masked by bins x H x 1 -> N C bins W
        return x.unsqueeze(-3).masked_fill(~member[:, :, None], float("-inf")).amax(dim=-2)
    return x.unsqueeze(-2).masked_fill(~member, float("-inf")).amax(dim=-1)  # N C H bins


def _adaptive(x: Tensor, output_size: OutputSize, mode: str) -> Tensor:
    check_feature(x, "x")
    h_o, w_o = normalize_output_size(output_size)
    h, w = x.shape[-2], x.shape[-1]
    if h_o == 1 and w_o == 1:
        return x.mean(dim=(-2, -1), keepdim=True) if mode == "avg" else x.amax(dim=(-2, -1), keepdim=True)
    if not is_exporting():
        size = (h if h_o is None else h_o, w if w_o is None else w_o)
        return F.adaptive_avg_pool2d(x, size) if mode == "avg" else F.adaptive_max_pool2d(x, size)
    axis = _avg_axis if mode == "avg" else _max_axis
    if h_o is not None:
        x = x.mean(dim=-2, keepdim=True) if h_o == 1 and mode == "avg" else axis(x, h_o, -2)
    if w_o is not None:
        x = x.mean(dim=-1, keepdim=True) if w_o == 1 and mode == "avg" else axis(x, w_o, -1)
    return x


def adaptive_avg_pool2d(x: Tensor, output_size: OutputSize) -> Tensor:
    """Adaptive average pooling with torch's bins, exportable to ONNX for every size.

    Args:
        x: ``N x C x H x W``.
        output_size: ``o`` or ``(h_o, w_o)``; ``None`` keeps that axis (``(None, 1)``
            averages each row: strip pooling).

    Shape:
        ``N x C x H x W`` -> ``N x C x h_o x w_o``.

    Example:
        >>> x = torch.arange(5.0).reshape(1, 1, 1, 5)
        >>> adaptive_avg_pool2d(x, (1, 3))  # bins [0, 2), [1, 4), [3, 5)
        tensor([[[[0.5000, 2.0000, 3.5000]]]])
    """
    return _adaptive(x, output_size, "avg")


def adaptive_max_pool2d(x: Tensor, output_size: OutputSize) -> Tensor:
    """Adaptive max pooling with torch's bins, exportable to ONNX for every size.

    Args:
        x: ``N x C x H x W``.
        output_size: ``o`` or ``(h_o, w_o)``; ``None`` keeps that axis.

    Shape:
        ``N x C x H x W`` -> ``N x C x h_o x w_o``.

    Example:
        >>> x = torch.tensor([[[[1.0, 5.0, 2.0, 0.0, 3.0]]]])
        >>> adaptive_max_pool2d(x, (1, 3))
        tensor([[[[5., 5., 3.]]]])
    """
    return _adaptive(x, output_size, "max")
