"""Generalized-mean (GeM) pooling (Radenovic, Tolias and Chum, TPAMI 2018)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import check_feature
from ._compute import upcast
from .adaptive_pool import OutputSize, adaptive_avg_pool2d
from .windows import check_window

__all__ = ["gem_pool2d", "adaptive_gem_pool2d"]


def _powered(x: Tensor, p: Tensor | float, eps: float) -> tuple[Tensor, Tensor]:
    check_feature(x, "x")
    if not isinstance(p, Tensor) and not p > 0:
        raise ValueError(f"argument `p`: expected a positive exponent, got {p!r}")
    if not eps > 0:
        raise ValueError(f"argument `eps`: expected a positive clamp value, got {eps!r}")
    # In float32 under half/bfloat16: eps ** p underflows to 0 in half precision, where
    # the derivative of t ** (1/p) is infinite.
    x32 = upcast(x)
    p = torch.as_tensor(p, dtype=x32.dtype, device=x32.device)
    return x32.clamp(min=eps) ** p, p


def gem_pool2d(
    x: Tensor,
    p: Tensor | float = 3.0,
    kernel_size: int = 2,
    stride: int | None = None,
    padding: int = 0,
    eps: float = 1e-6,
) -> Tensor:
    """Local GeM pooling: ``(mean over the window of clamp(x, eps)^p)^(1/p)``.

    ``p = 1`` is average pooling (of ``clamp(x, eps)``), ``p -> inf`` tends to max
    pooling.  Zero padding is counted in the mean (as ``avg_pool2d``), clamped values are
    not padded.  Computed in float32 for half and bfloat16 inputs.

    Args:
        x: ``N x C x H x W``.
        p: the exponent, a number or a 0-d tensor (learnable in :class:`~resamplers.downsampling.GeMPool`).
        kernel_size: window ``k``.
        stride: stride (default ``k``).
        padding: zero padding on every side.
        eps: inputs are clamped to ``>= eps`` (GeM is defined for positive activations).

    Shape:
        ``N x C x H x W`` -> ``N x C x H_out x W_out``.

    Example:
        >>> gem_pool2d(torch.tensor([[[[1.0, 2.0], [2.0, 3.0]]]]), p=1.0, kernel_size=2)
        tensor([[[[2.]]]])
    """
    k, s, pad = check_window(kernel_size, stride, padding)
    powered, p = _powered(x, p, eps)
    return (F.avg_pool2d(powered, k, s, pad) ** (1.0 / p)).to(x.dtype)


def adaptive_gem_pool2d(x: Tensor, p: Tensor | float = 3.0, output_size: OutputSize = 1, eps: float = 1e-6) -> Tensor:
    """Global (adaptive) GeM pooling, cirtorch's ``gem`` for ``output_size = 1``.

    ``(mean over each adaptive bin of clamp(x, eps)^p)^(1/p)``; the global case is a
    ``mean`` over ``H, W`` (ONNX ReduceMean, not an ``avg_pool2d`` whose kernel is the
    input size), other sizes use :func:`~resamplers.functional.adaptive_avg_pool2d`.

    Shape:
        ``N x C x H x W`` -> ``N x C x h_o x w_o``.

    Example:
        >>> adaptive_gem_pool2d(torch.tensor([[[[1.0, 2.0], [2.0, 3.0]]]]), p=1.0).flatten()
        tensor([2.])
    """
    powered, p = _powered(x, p, eps)
    return (adaptive_avg_pool2d(powered, output_size) ** (1.0 / p)).to(x.dtype)
