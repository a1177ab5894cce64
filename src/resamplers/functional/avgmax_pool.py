"""Combinations of average and max pooling: fixed (``avgmax``, ``catavgmax``) and learned (``mixed``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import check_feature
from .windows import check_window

__all__ = ["avgmax_pool2d", "catavgmax_pool2d", "mixed_pool2d"]


def _avg_and_max(x: Tensor, kernel_size: int, stride: int | None, padding: int) -> tuple[Tensor, Tensor]:
    check_feature(x, "x")
    k, s, p = check_window(kernel_size, stride, padding)
    # torch's conventions: zero padding counted in the average, -inf padding for the max.
    return F.avg_pool2d(x, k, s, p), F.max_pool2d(x, k, s, p)


def avgmax_pool2d(x: Tensor, kernel_size: int, stride: int | None = None, padding: int = 0) -> Tensor:
    """``0.5 * (avg_pool2d(x) + max_pool2d(x))`` over the same windows (timm's ``avgmax``).

    Args:
        x: ``N x C x H x W``.
        kernel_size: window ``k``.
        stride: stride (default ``k``).
        padding: padding on every side (zeros for the average, ``-inf`` for the max).

    Shape:
        ``N x C x H x W`` -> ``N x C x H_out x W_out``.

    Example:
        >>> avgmax_pool2d(torch.tensor([[[[1.0, 3.0], [0.0, 0.0]]]]), 2)
        tensor([[[[2.]]]])
    """
    avg, mx = _avg_and_max(x, kernel_size, stride, padding)
    return 0.5 * (avg + mx)


def catavgmax_pool2d(x: Tensor, kernel_size: int, stride: int | None = None, padding: int = 0) -> Tensor:
    """``cat([avg_pool2d(x), max_pool2d(x)], dim=1)``: doubles the channels (timm's ``catavgmax``).

    Channels ``0 .. C-1`` are the averages, ``C .. 2C-1`` the maxima.

    Shape:
        ``N x C x H x W`` -> ``N x 2C x H_out x W_out``.

    Example:
        >>> catavgmax_pool2d(torch.tensor([[[[1.0, 3.0], [0.0, 0.0]]]]), 2).flatten()
        tensor([1., 3.])
    """
    avg, mx = _avg_and_max(x, kernel_size, stride, padding)
    return torch.cat([avg, mx], dim=1)


def mixed_pool2d(
    x: Tensor, mix: Tensor | float, kernel_size: int, stride: int | None = None, padding: int = 0
) -> Tensor:
    """Mixed max-average pooling (Lee, Gallagher and Tu, AISTATS 2016).

    ``out = a * max_pool2d(x) + (1 - a) * avg_pool2d(x)`` with the mixing proportion
    ``a = mix``: a number, a 0-d tensor (one per layer) or a ``C``-vector (one per
    channel).  ``a`` is used as given (the module keeps it in ``[0, 1]``).

    Args:
        x: ``N x C x H x W``.
        mix: ``a``, scalar or shape ``(C,)``.
        kernel_size: window ``k``.
        stride: stride (default ``k``).
        padding: padding on every side (zeros for the average, ``-inf`` for the max).

    Shape:
        ``N x C x H x W`` -> ``N x C x H_out x W_out``.

    Example:
        >>> mixed_pool2d(torch.tensor([[[[1.0, 3.0], [0.0, 0.0]]]]), 0.25, 2)
        tensor([[[[1.5000]]]])
    """
    avg, mx = _avg_and_max(x, kernel_size, stride, padding)
    a = torch.as_tensor(mix, dtype=x.dtype, device=x.device)
    if a.dim() == 1:
        if a.shape[0] != x.shape[1]:
            raise ValueError(
                f"argument `mix`: expected a scalar or {x.shape[1]} values (one per channel), got {a.shape[0]}"
            )
        a = a.reshape(1, -1, 1, 1)
    elif a.dim() != 0:
        raise ValueError(f"argument `mix`: expected a scalar or a 1-D tensor of channels, got shape {tuple(a.shape)}")
    return avg + a * (mx - avg)
