"""LP pooling on absolute values: ``(sum over the window of |x|^p)^(1/p)``."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import check_feature
from ._compute import upcast
from .windows import check_window

__all__ = ["lp_pool2d"]


def _check_norm_type(norm_type: float) -> float:
    if isinstance(norm_type, bool) or not isinstance(norm_type, (int, float)) or not norm_type >= 1:
        raise ValueError(f"argument `norm_type`: expected a number p >= 1 (or math.inf), got {norm_type!r}")
    return float(norm_type)


def lp_pool2d(x: Tensor, norm_type: float, kernel_size: int, stride: int | None = None, padding: int = 0) -> Tensor:
    """LP pooling: the p-norm of every window, ``(sum_i |x_i|^p)^(1/p)``.

    Unlike ``torch.nn.functional.lp_pool2d`` the norm is taken of ``|x|``, so negative
    inputs never give NaN, and it is a *sum* (not a mean) to the power ``1/p``, as in
    torch.  ``p = 1`` is sum pooling of ``|x|``; ``p = math.inf`` is max pooling of
    ``|x|`` (the limit).  Zero padding adds nothing to the sum.  Each plane is divided by
    its largest ``|x|`` before the power and multiplied back after it (the norm is
    1-homogeneous), so large ``p`` or large activations do not overflow; an all-zero
    window gives 0 with a zero gradient.  Half and bfloat16 inputs are computed in
    float32.

    Args:
        x: ``N x C x H x W``.
        norm_type: ``p >= 1``, or ``math.inf``.
        kernel_size: window ``k``.
        stride: stride (default ``k``).
        padding: zero padding on every side, at most ``k // 2``.

    Shape:
        ``N x C x H x W`` -> ``N x C x H_out x W_out``, ``H_out = floor((H + 2p - k) / stride) + 1``.

    Example:
        >>> x = torch.tensor([[[[3.0, -4.0], [0.0, 0.0]]]])
        >>> lp_pool2d(x, 2, 2)
        tensor([[[[5.]]]])
    """
    check_feature(x, "x")
    p = _check_norm_type(norm_type)
    k, s, pad = check_window(kernel_size, stride, padding)
    a = upcast(x).abs()
    if math.isinf(p):
        return F.max_pool2d(a, k, s, pad).to(x.dtype)
    scale = a.detach().amax(dim=(-2, -1), keepdim=True)
    scale = scale.masked_fill(scale == 0, 1.0)
    total = F.avg_pool2d((a / scale) ** p, k, s, pad, count_include_pad=True) * (k * k)
    # total ** (1/p) has an infinite derivative at 0: keep all-zero windows out of it.
    positive = total > 0
    root = torch.where(positive, torch.where(positive, total, 1.0) ** (1.0 / p), 0.0)
    return (scale * root).to(x.dtype)
