"""Fixed-kernel and argmax-kernel downsampling: average and max pooling."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from .._checks import check_int
from ..functional.windows import window_output_size
from ..registry import register_downsampler
from .base import Downsampler

__all__ = ["MaxPool", "AvgPool", "window_output_size"]


class _WindowPool(Downsampler):
    """Shared arguments of the window pools: ``kernel_size``, ``stride`` and ``padding`` as in torch."""

    def __init__(
        self,
        channels: int | None = None,
        scale_factor: int = 2,
        kernel_size: int | None = None,
        stride: int | None = None,
        padding: int = 0,
    ) -> None:
        super().__init__(channels, scale_factor)
        self.kernel_size = check_int(scale_factor if kernel_size is None else kernel_size, "kernel_size", minimum=1)
        self.stride = check_int(scale_factor if stride is None else stride, "stride", minimum=1)
        self.padding = check_int(padding, "padding", minimum=0)
        if 2 * self.padding > self.kernel_size:
            raise ValueError(
                f"argument `padding`: expected at most half the kernel size ({self.kernel_size // 2}), got {padding}"
            )

    def output_size(self, size: tuple[int, int]) -> tuple[int, int]:
        return window_output_size(size, self.kernel_size, self.stride, self.padding)

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
        )


@register_downsampler("max", example={"channels": 8}, summary="Max pooling (window = stride = s by default)")
class MaxPool(_WindowPool):
    """Max pooling; padding never wins the max (implicit ``-inf`` padding).

    Args:
        channels: input channels, or ``None`` for any.
        scale_factor: ``s``; the default window and stride.
        kernel_size: window size (default ``s``); overlapping windows are allowed.
        stride: stride (default ``s``).
        padding: implicit ``-inf`` padding, at most ``kernel_size // 2``.

    Shape:
        ``N x C x H x W`` -> ``N x C x H' x W'`` with ``H' = floor((H + 2p - k) / stride) + 1``.
    """

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding)


@register_downsampler("avg", example={"channels": 8}, summary="Average pooling (window = stride = s by default)")
class AvgPool(_WindowPool):
    """Average pooling; zero padding is counted in the average (torch's default).

    Args:
        channels: input channels, or ``None`` for any.
        scale_factor: ``s``; the default window and stride.
        kernel_size: window size (default ``s``); overlapping windows are allowed.
        stride: stride (default ``s``).
        padding: zero padding, at most ``kernel_size // 2``.

    Shape:
        ``N x C x H x W`` -> ``N x C x H' x W'`` with ``H' = floor((H + 2p - k) / stride) + 1``.
    """

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding)
