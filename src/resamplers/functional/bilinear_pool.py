"""Bilinear (second-order) pooling (Lin, RoyChowdhury and Maji, ICCV 2015)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import check_feature
from ._compute import upcast

__all__ = ["bilinear_pool"]


def bilinear_pool(x: Tensor, y: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Bilinear pooling: the averaged outer product of two feature maps, signed square root, L2.

    With ``X`` (``C1 x HW``) and ``Y`` (``C2 x HW``, ``Y = X`` by default: second-order
    pooling), ``B = X Y^T / (H W)``, flattened row-major (``i * C2 + j``), then
    ``sign(b) sqrt(|b| + eps)`` elementwise (``eps`` keeps the derivative finite at 0)
    and L2 normalisation of each sample's vector.  Computed in float32 for half and
    bfloat16 inputs.

    Args:
        x: ``N x C1 x H x W``.
        y: ``N x C2 x H x W`` from a second stream (same batch and size), or ``None``.
        eps: inside the square root.

    Shape:
        ``N x C1 x H x W`` (and ``N x C2 x H x W``) -> ``N x C1*C2``.

    Example:
        >>> bilinear_pool(torch.randn(2, 3, 4, 5)).shape
        torch.Size([2, 9])
    """
    check_feature(x, "x")
    if y is None:
        y = x
    else:
        check_feature(y, "y")
        if y.shape[0] != x.shape[0] or y.shape[-2:] != x.shape[-2:]:
            raise ValueError(
                f"argument `y`: expected batch {x.shape[0]} and spatial size {x.shape[-2]} x {x.shape[-1]} "
                f"(those of `x`), got shape {tuple(y.shape)}"
            )
    if not eps >= 0:
        raise ValueError(f"argument `eps`: expected a non-negative number, got {eps!r}")
    dtype = x.dtype
    xf, yf = upcast(x).flatten(2), upcast(y).flatten(2)
    b = torch.bmm(xf, yf.transpose(1, 2)).flatten(1) / xf.shape[-1]
    b = torch.sign(b) * torch.sqrt(b.abs() + eps)
    return F.normalize(b, p=2, dim=1).to(dtype)
