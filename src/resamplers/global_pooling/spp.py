"""Spatial pyramid pools: YOLO's SPP and SPPF, SPP-net's fixed-length bins."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from torch import Tensor

from .._checks import check_choice, check_int
from ..functional.spatial_pyramid_pool import SppOrder, spp_bins, spp_yolo, sppf
from ..registry import register_pool
from .base import GlobalPool

__all__ = ["SPP", "SPPF", "SPPBins"]


def _check_odd_sizes(sizes: Sequence[int], name: str) -> tuple[int, ...]:
    sizes = tuple(check_int(k, name, minimum=1) for k in sizes)
    if not sizes or any(k % 2 == 0 for k in sizes):
        raise ValueError(f"argument `{name}`: expected odd window sizes, got {list(sizes)}")
    return sizes


@register_pool("spp", example={"channels": 8}, summary="YOLOv3-SPP: max pools 5/9/13 (stride 1) concatenated with x")
class SPP(GlobalPool):
    """YOLOv3-SPP: stride-1 max pools (5, 9, 13; ``-inf`` padding ``k // 2``) concatenated with the input.

    The pooling part of ultralytics' ``SPP`` and of ``yolov3-spp.cfg`` (which wrap it in
    1x1 convolutions); parameter-free.  ``order="ultralytics"`` gives
    ``[x, mp5, mp9, mp13]``, ``order="darknet"`` ``[mp13, mp9, mp5, x]`` (route
    ``-1, -3, -5, -6``), which matters when converting weights of the following conv.

    Args:
        channels: input channels, or ``None`` for any.
        kernel_sizes: odd window sizes, smallest first.
        order: ``"ultralytics"`` or ``"darknet"``.

    Shape:
        ``N x C x H x W`` -> ``N x (len(kernel_sizes) + 1) C x H x W``.

    Example:
        >>> SPP()(torch.randn(1, 4, 7, 5)).shape
        torch.Size([1, 16, 7, 5])
    """

    def __init__(
        self, channels: int | None = None, kernel_sizes: Sequence[int] = (5, 9, 13), order: SppOrder = "ultralytics"
    ) -> None:
        super().__init__(channels)
        self.kernel_sizes = _check_odd_sizes(kernel_sizes, "kernel_sizes")
        self.order = check_choice(order, "order", ["ultralytics", "darknet"])

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        n, c, h, w = shape
        return (n, c * (len(self.kernel_sizes) + 1), h, w)

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        return spp_yolo(x, self.kernel_sizes, self.order)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, kernel_sizes={self.kernel_sizes}, order={self.order!r}"


@register_pool("sppf", example={"channels": 8}, summary="SPPF: three chained 5x5 max pools (equals spp 5/9/13)")
class SPPF(GlobalPool):
    """SPPF (ultralytics): one ``k x k`` stride-1 max pool applied ``repeats`` times in a chain.

    Equals :class:`SPP` with kernels ``k, 2k-1, 3k-2, ...`` (5, 9, 13 for the defaults)
    and the same ``order``, exactly, because ``-inf``-padded stride-1 max pools compose.

    Args:
        channels: input channels, or ``None`` for any.
        kernel_size: odd ``k`` (default 5).
        repeats: chain length (default 3).
        order: ``"ultralytics"`` (``[x, y1, y2, y3]``) or ``"darknet"`` (``[y3, y2, y1, x]``).

    Shape:
        ``N x C x H x W`` -> ``N x (repeats + 1) C x H x W``.

    Example:
        >>> x = torch.randn(1, 4, 7, 5)
        >>> torch.equal(SPPF()(x), SPP()(x))
        True
    """

    def __init__(
        self, channels: int | None = None, kernel_size: int = 5, repeats: int = 3, order: SppOrder = "ultralytics"
    ) -> None:
        super().__init__(channels)
        (self.kernel_size,) = _check_odd_sizes([kernel_size], "kernel_size")
        self.repeats = check_int(repeats, "repeats", minimum=1)
        self.order = check_choice(order, "order", ["ultralytics", "darknet"])

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        n, c, h, w = shape
        return (n, c * (self.repeats + 1), h, w)

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        return sppf(x, self.kernel_size, self.repeats, self.order)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, kernel_size={self.kernel_size}, repeats={self.repeats}, order={self.order!r}"


@register_pool(
    "spp_bins", example={"channels": 8}, summary="SPP-net: max pool into 1x1, 2x2, 4x4 bins, fixed-length vector"
)
class SPPBins(GlobalPool):
    """SPP-net's spatial pyramid pooling (He et al., ECCV 2014): a fixed-length vector for any input size.

    Each level ``n`` max-pools (or averages) the map into ``n x n`` adaptive bins; the
    levels are flattened channel-major and concatenated (see
    :func:`resamplers.functional.spp_bins` for the bin definition and the difference from
    the paper's sliding-window bins).

    Args:
        channels: input channels, or ``None`` for any.
        levels: grid sizes (default ``(1, 2, 4)``; the paper's ZF-5 used ``(6, 3, 2, 1)``).
        mode: ``"max"`` (the paper) or ``"avg"``.

    Shape:
        ``N x C x H x W`` -> ``N x C * sum(n^2 for n in levels)``.

    Example:
        >>> pool = SPPBins(levels=(1, 2, 4))
        >>> pool(torch.randn(2, 3, 13, 9)).shape, pool(torch.randn(2, 3, 6, 30)).shape
        (torch.Size([2, 63]), torch.Size([2, 63]))
    """

    def __init__(
        self, channels: int | None = None, levels: Sequence[int] = (1, 2, 4), mode: Literal["max", "avg"] = "max"
    ) -> None:
        super().__init__(channels)
        self.levels = tuple(check_int(n, "levels", minimum=1) for n in levels)
        if not self.levels:
            raise ValueError("argument `levels`: expected at least one pyramid level")
        self.mode = check_choice(mode, "mode", ["max", "avg"])

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return (shape[0], shape[1] * sum(n * n for n in self.levels))

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        return spp_bins(x, self.levels, self.mode)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, levels={self.levels}, mode={self.mode!r}"
