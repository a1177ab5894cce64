"""Learned fixed-kernel downsampling: a strided convolution."""

from __future__ import annotations

from torch import Tensor, nn

from .._checks import check_odd
from ..base import Downsampler
from ..registry import register_downsampler
from .pool import window_output_size

__all__ = ["StridedConv"]


@register_downsampler("strided_conv", example={"channels": 8}, summary="k x k convolution with stride s (C -> C)")
class StridedConv(Downsampler):
    """``Conv2d(C, C, k, stride=s, padding=(k-1)//2)``: output ``ceil(H / s)`` for ``k = 3, s = 2``.

    Args:
        channels: input and output channels.
        scale_factor: stride ``s``.
        kernel_size: odd kernel ``k`` (default 3).

    Shape:
        ``N x C x H x W`` -> ``N x C x H' x W'``, ``H' = floor((H + 2*((k-1)//2) - k) / s) + 1``.
    """

    def __init__(self, channels: int, scale_factor: int = 2, kernel_size: int = 3) -> None:
        super().__init__(channels, scale_factor)
        self.kernel_size = check_odd(kernel_size, "kernel_size")
        self.conv = nn.Conv2d(channels, channels, kernel_size, stride=scale_factor, padding=(kernel_size - 1) // 2)

    def output_size(self, size: tuple[int, int]) -> tuple[int, int]:
        return window_output_size(size, self.kernel_size, self.scale_factor, (self.kernel_size - 1) // 2)

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        return self.conv(x)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, kernel_size={self.kernel_size}"
