"""Learned fixed-kernel upsampling: transposed convolution."""

from __future__ import annotations

from torch import Tensor, nn

from .._checks import check_int
from ..base import Upsampler
from ..registry import register_upsampler

__all__ = ["DeconvUpsample"]


@register_upsampler("deconv", example={"channels": 8}, summary="Transposed convolution (kernel 3, stride s)")
class DeconvUpsample(Upsampler):
    """Transposed convolution upsampling ``C -> C`` with output exactly ``s`` times larger.

    ``ConvTranspose2d(C, C, k, stride=s, padding=(k-1)//2, output_padding=s - k + 2*((k-1)//2))``;
    the default ``k = 3`` is the 3x3 deconvolution of the CARAFE paper's comparison
    (590,080 parameters at ``C = 256``).

    Args:
        channels: input and output channels.
        scale_factor: integer ``s >= 1``.
        kernel_size: transposed-convolution kernel ``k``; needs ``0 <= s - k + 2*((k-1)//2) < s``.

    Shape:
        ``N x C x H x W`` -> ``N x C x sH x sW``.
    """

    def __init__(self, channels: int, scale_factor: int = 2, kernel_size: int = 3) -> None:
        super().__init__(channels, scale_factor)
        check_int(kernel_size, "kernel_size", minimum=1)
        padding = (kernel_size - 1) // 2
        output_padding = scale_factor - kernel_size + 2 * padding
        if not 0 <= output_padding < scale_factor:
            raise ValueError(
                f"argument `kernel_size`: {kernel_size} cannot give exactly {scale_factor}x upsampling "
                f"(needs 0 <= scale_factor - kernel_size + 2*((kernel_size-1)//2) < scale_factor)"
            )
        self.kernel_size = kernel_size
        self.deconv = nn.ConvTranspose2d(
            channels, channels, kernel_size, stride=scale_factor, padding=padding, output_padding=output_padding
        )

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        return self.deconv(x)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, kernel_size={self.kernel_size}"
