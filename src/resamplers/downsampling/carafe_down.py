"""Content-aware downsampling: the CARAFE++ down operator (Wang et al., TPAMI 2021).

CARAFE++ predicts a ``k_down x k_down`` kernel per *output* pixel with the same
compressor / content-encoder / softmax pipeline as CARAFE, the encoder running with
stride ``s``, and reassembles the input neighbourhood centred on the corresponding input
pixel.  No official code exists (mmcv and mmdetection implement only the upsampler), so
the exact definition below is this library's, written from the paper's description.
"""

from __future__ import annotations

from torch import Tensor

from ..base import Downsampler
from ..components.kernel_predictor import (
    add_kernel_predictor,
    check_kernel_predictor_args,
    kernel_logits,
    reset_kernel_predictor,
)
from ..functional import reassemble_down, softmax_kernels
from ..registry import register_downsampler

__all__ = ["CARAFEDown"]


@register_downsampler(
    "carafe",
    example={"channels": 8, "down_kernel": 3},
    summary="CARAFE++ downsampling: predicted k x k kernels, strided reassembly",
)
class CARAFEDown(Downsampler):
    """CARAFE++ content-aware downsampling (no official code; exact definition below).

    With ``s`` the scale, ``k = down_kernel``, ``G = down_group``, ``k_e = encoder_kernel``:

    1. ``channel_compressor``: 1x1 conv ``C -> C_m`` with bias, no activation;
    2. ``content_encoder``: ``k_e x k_e`` conv ``C_m -> G*k^2``, stride ``s``, padding
       ``(k_e - 1) // 2``, bias: one kernel per output pixel, ``ceil(H / s) x ceil(W / s)``;
    3. softmax over each group's ``k^2`` taps (input dtype);
    4. reassembly (:func:`resamplers.functional.reassemble_down`): output pixel ``(y, x)``
       of channel ``c`` in group ``g = c // (C / G)`` is
       ``sum_{a,b} w[g*k^2 + a*k + b, y, x] * x[c, s*y + a - r, s*x + b - r]`` with
       ``r = (k - 1) // 2``: a ``k x k`` window *centred on input pixel* ``(s*y, s*x)``,
       zero padding (outside taps contribute nothing, the kernel is not renormalised).

    Output size ``ceil(H / s) x ceil(W / s)`` for any input size (the last window is
    centred on the last input pixel it covers).  Initialisation as CARAFE's upsampler:
    Xavier-uniform weights and zero biases, then encoder weights ``N(0, 0.001^2)`` (nearly
    uniform initial kernels, i.e. a zero-padded ``k x k`` box filter sampled with stride
    ``s``).  ``C_m = 16`` and ``k_e = k - 2`` follow the paper's downsampling setting as
    reported by unofficial code (the defaults give ``k_e = 3``); 7,737 parameters at
    ``C = 256``.

    Args:
        channels: input channels ``C``.
        scale_factor: stride ``s >= 1``.
        down_kernel: reassembly kernel ``k`` (odd).
        down_group: kernel groups ``G`` (a divisor of ``C``).
        encoder_kernel: content-encoder kernel ``k_e`` (odd).
        compressed_channels: ``C_m``.

    Shape:
        ``N x C x H x W`` -> ``N x C x ceil(H/s) x ceil(W/s)``.

    Example:
        >>> down = CARAFEDown(channels=16, scale_factor=2)
        >>> down(torch.randn(2, 16, 5, 8)).shape
        torch.Size([2, 16, 3, 4])
    """

    def __init__(
        self,
        channels: int,
        scale_factor: int = 2,
        down_kernel: int = 5,
        down_group: int = 1,
        encoder_kernel: int = 3,
        compressed_channels: int = 16,
    ) -> None:
        super().__init__(channels, scale_factor)
        check_kernel_predictor_args(channels, "down", down_kernel, down_group, encoder_kernel, compressed_channels)
        self.down_kernel = down_kernel
        self.down_group = down_group
        self.encoder_kernel = encoder_kernel
        self.compressed_channels = compressed_channels
        taps = down_kernel * down_kernel * down_group
        add_kernel_predictor(self, channels, compressed_channels, taps, encoder_kernel, stride=scale_factor, dilation=1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        reset_kernel_predictor(self)

    def output_size(self, size: tuple[int, int]) -> tuple[int, int]:
        s = self.scale_factor
        return (-(-size[0] // s), -(-size[1] // s))

    def kernels(self, x: Tensor) -> Tensor:
        """Normalised kernels, ``N x (G*k*k) x ceil(H/s) x ceil(W/s)``."""
        return softmax_kernels(kernel_logits(self, x), self.down_group)

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        k = self.down_kernel
        return reassemble_down(x, self.kernels(x), k, self.down_group, self.scale_factor, (k - 1) // 2)

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, down_kernel={self.down_kernel}, down_group={self.down_group}, "
            f"encoder_kernel={self.encoder_kernel}, compressed_channels={self.compressed_channels}"
        )
