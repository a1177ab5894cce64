"""Sub-pixel convolution upsampling (mmcv's ``PixelShufflePack``)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_odd
from ..base import Upsampler
from ..registry import register_upsampler

__all__ = ["PixelShuffleUpsample"]


@register_upsampler(
    "pixel_shuffle", example={"channels": 8}, summary="Conv to C*s^2 then pixel shuffle (PixelShufflePack)"
)
class PixelShuffleUpsample(Upsampler):
    """A ``k x k`` convolution to ``C * s^2`` channels followed by ``pixel_shuffle(s)``.

    Same layout and initialisation (Xavier-uniform, zero bias) as mmcv's
    ``PixelShufflePack(C, C, s, k)``; parameter key ``upsample_conv.*``.  2,360,320
    parameters at ``C = 256``, ``s = 2``, ``k = 3``.

    Args:
        channels: input and output channels.
        scale_factor: integer ``s >= 1``.
        kernel_size: odd convolution kernel ``k``.

    Shape:
        ``N x C x H x W`` -> ``N x C x sH x sW``.
    """

    def __init__(self, channels: int, scale_factor: int = 2, kernel_size: int = 3) -> None:
        super().__init__(channels, scale_factor)
        check_odd(kernel_size, "kernel_size")
        self.kernel_size = kernel_size
        self.upsample_conv = nn.Conv2d(
            channels, channels * scale_factor * scale_factor, kernel_size, padding=(kernel_size - 1) // 2
        )
        nn.init.xavier_uniform_(self.upsample_conv.weight)
        if self.upsample_conv.bias is not None:
            nn.init.zeros_(self.upsample_conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        return F.pixel_shuffle(self.upsample_conv(x), self.scale_factor)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, kernel_size={self.kernel_size}"
