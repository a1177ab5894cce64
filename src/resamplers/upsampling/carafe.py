"""CARAFE: content-aware reassembly of features (Wang et al., ICCV 2019).

The module reproduces mmcv's ``CARAFEPack`` exactly (layers, initialisation and
state-dict keys), so checkpoints trained with mmcv / mmdetection load with
``load_state_dict`` and give the same output, on CPU and in ONNX Runtime too.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ..base import Upsampler
from ..components.kernel_predictor import (
    add_kernel_predictor,
    check_kernel_predictor_args,
    check_same_size_encoder,
    kernel_logits,
    reset_kernel_predictor,
)
from ..functional import carafe, softmax_kernels
from ..registry import register_upsampler

__all__ = ["CARAFEPack"]


@register_upsampler(
    "carafe", example={"channels": 8}, summary="CARAFE: predicted k x k kernels, reassembly (mmcv CARAFEPack)"
)
class CARAFEPack(Upsampler):
    """CARAFE upsampler, equivalent to ``mmcv.ops.CARAFEPack``.

    Pipeline: ``channel_compressor`` (1x1 conv ``C -> C_m``, bias, no activation) ->
    ``content_encoder`` (``k_e x k_e`` conv ``C_m -> s^2 k^2 G``, dilation ``d``, bias) ->
    ``pixel_shuffle(s)`` -> softmax over each group's ``k^2`` taps (input dtype) ->
    :func:`resamplers.functional.carafe` (contiguous channel groups, zero padding).

    Initialisation as mmcv: Xavier-uniform weights and zero biases for both convolutions,
    then the encoder weights drawn from ``N(0, 0.001^2)``, so initial kernels are nearly
    uniform (``1 / k^2``).  74,148 parameters at ``C = 256`` with the defaults.

    Args:
        channels: input channels ``C``.
        scale_factor: integer ``s >= 1``.
        up_kernel: reassembly kernel ``k`` (odd).
        up_group: kernel groups ``G`` (a divisor of ``C``).
        encoder_kernel: content-encoder kernel ``k_e``.
        encoder_dilation: content-encoder dilation ``d``; ``(k_e - 1) * d`` must be even.
        compressed_channels: ``C_m``.

    Shape:
        ``N x C x H x W`` -> ``N x C x sH x sW``.

    Example:
        >>> up = CARAFEPack(channels=16, scale_factor=2)
        >>> up(torch.randn(2, 16, 5, 7)).shape
        torch.Size([2, 16, 10, 14])
    """

    def __init__(
        self,
        channels: int,
        scale_factor: int = 2,
        up_kernel: int = 5,
        up_group: int = 1,
        encoder_kernel: int = 3,
        encoder_dilation: int = 1,
        compressed_channels: int = 64,
    ) -> None:
        super().__init__(channels, scale_factor)
        check_kernel_predictor_args(
            channels, "up", up_kernel, up_group, encoder_kernel, compressed_channels, encoder_dilation
        )
        check_same_size_encoder(encoder_kernel, encoder_dilation)
        self.up_kernel = up_kernel
        self.up_group = up_group
        self.encoder_kernel = encoder_kernel
        self.encoder_dilation = encoder_dilation
        self.compressed_channels = compressed_channels
        taps = up_kernel * up_kernel * up_group * scale_factor * scale_factor
        add_kernel_predictor(
            self, channels, compressed_channels, taps, encoder_kernel, stride=1, dilation=encoder_dilation
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        reset_kernel_predictor(self)

    def init_weights(self) -> None:
        """mmcv's name for :meth:`reset_parameters`: OpenMMLab necks (FPN_CARAFE) call it
        after their own re-initialisation of every convolution."""
        self.reset_parameters()

    def kernels(self, x: Tensor) -> Tensor:
        """Normalised reassembly kernels, ``N x (G*k*k) x sH x sW``."""
        logits = F.pixel_shuffle(kernel_logits(self, x), self.scale_factor)
        return softmax_kernels(logits, self.up_group)

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        return carafe(x, self.kernels(x), self.up_kernel, self.up_group, self.scale_factor)

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, up_kernel={self.up_kernel}, up_group={self.up_group}, "
            f"encoder_kernel={self.encoder_kernel}, encoder_dilation={self.encoder_dilation}, "
            f"compressed_channels={self.compressed_channels}"
        )
