"""Spatial pyramid pooling: YOLO's same-size SPP/SPPF and SPP-net's fixed-length bins."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import check_choice, check_feature, check_int
from .adaptive_pool import adaptive_avg_pool2d, adaptive_max_pool2d

__all__ = ["SppOrder", "spp_yolo", "sppf", "spp_bins"]

SppOrder = Literal["ultralytics", "darknet"]


def _ordered(x: Tensor, pooled: list[Tensor], order: str) -> Tensor:
    """``[x, small .. large]`` (ultralytics) or ``[large .. small, x]`` (darknet cfg route -1,-3,-5,-6)."""
    check_choice(order, "order", ["ultralytics", "darknet"])
    parts = [x, *pooled] if order == "ultralytics" else [*reversed(pooled), x]
    return torch.cat(parts, dim=1)


def spp_yolo(x: Tensor, kernel_sizes: Sequence[int] = (5, 9, 13), order: SppOrder = "ultralytics") -> Tensor:
    """YOLOv3-SPP: stride-1 max pools of odd sizes (``-inf`` padding ``k // 2``), concatenated with ``x``.

    ``order="ultralytics"`` gives ``[x, mp5, mp9, mp13]`` (yolov5 ``SPP``),
    ``order="darknet"`` gives ``[mp13, mp9, mp5, x]`` (``yolov3-spp.cfg``: route
    ``-1, -3, -5, -6``).  Pools are given smallest first.

    Shape:
        ``N x C x H x W`` -> ``N x (len(kernel_sizes) + 1) C x H x W``.

    Example:
        >>> spp_yolo(torch.randn(1, 4, 7, 5)).shape
        torch.Size([1, 16, 7, 5])
    """
    check_feature(x, "x")
    for k in kernel_sizes:
        if check_int(k, "kernel_sizes", minimum=1) % 2 == 0:
            raise ValueError(
                f"argument `kernel_sizes`: expected odd sizes (same-size output), got {list(kernel_sizes)}"
            )
    return _ordered(x, [F.max_pool2d(x, k, 1, k // 2) for k in kernel_sizes], order)


def sppf(x: Tensor, kernel_size: int = 5, repeats: int = 3, order: SppOrder = "ultralytics") -> Tensor:
    """SPPF: one ``k x k`` stride-1 max pool applied ``repeats`` times in a chain, outputs concatenated.

    Because ``-inf``-padded stride-1 max pools compose (``mp_k o mp_k = mp_{2k-1}``),
    this equals :func:`spp_yolo` with kernels ``k, 2k-1, 3k-2, ...`` (5, 9, 13 for
    ``k = 5``) and the same ``order``, at a third of the comparisons.

    Shape:
        ``N x C x H x W`` -> ``N x (repeats + 1) C x H x W``.

    Example:
        >>> x = torch.randn(1, 4, 7, 5)
        >>> torch.equal(sppf(x), spp_yolo(x))
        True
    """
    check_feature(x, "x")
    k = check_int(kernel_size, "kernel_size", minimum=1)
    if k % 2 == 0:
        raise ValueError(f"argument `kernel_size`: expected an odd size (same-size output), got {k}")
    pooled = [x]
    for _ in range(check_int(repeats, "repeats", minimum=1)):
        pooled.append(F.max_pool2d(pooled[-1], k, 1, k // 2))
    return _ordered(x, pooled[1:], order)


def spp_bins(x: Tensor, levels: Sequence[int] = (1, 2, 4), mode: Literal["max", "avg"] = "max") -> Tensor:
    """SPP-net (He et al., ECCV 2014): pool into an ``n x n`` grid per level, flatten, concatenate.

    The output length ``C * sum(n^2)`` does not depend on the input size.  Bins are
    torch's adaptive bins (never empty, exportable for every size); the paper's sliding
    window (``ceil(a/n)`` window, ``floor(a/n)`` stride) gives fewer than ``n`` bins for
    some sizes (e.g. ``a = 7, n = 4``), which adaptive bins avoid.  Each level is
    flattened channel-major (``c * n * n + i * n + j``), levels in the given order.

    Shape:
        ``N x C x H x W`` -> ``N x C * sum(n^2 for n in levels)``.

    Example:
        >>> spp_bins(torch.randn(2, 3, 13, 9), levels=(1, 2, 4)).shape
        torch.Size([2, 63])
    """
    check_feature(x, "x")
    check_choice(mode, "mode", ["max", "avg"])
    if len(levels) == 0:
        raise ValueError("argument `levels`: expected at least one pyramid level")
    pool = adaptive_max_pool2d if mode == "max" else adaptive_avg_pool2d
    return torch.cat([pool(x, check_int(n, "levels", minimum=1)).flatten(1) for n in levels], dim=1)
