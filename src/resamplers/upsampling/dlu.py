"""DLU: dynamic lightweight upsampling (Fu et al., "Lighten CARAFE", ICPR 2024).

CARAFE with a small kernel space: instead of predicting ``s^2`` reassembly kernels per
input pixel, DLU predicts one normalised ``k x k`` kernel per input pixel (the kernel
space) and samples each output pixel's kernel from it at a learned offset.

The module follows the official ``DLUPack`` (``Fu0511/Dynamic-Lightweight-Upsampling``,
``custom/ops/dlu.py`` at commit ``c451f6f5e2214f77e2bde14aaa1da42721e6997c``; the same
module as ``light_CARAFEPack`` in ``custom/ops/dlu_original.py``): layers, initialisation
and state-dict keys, so official checkpoints load with ``load_state_dict`` and give the
same output.  Unlike the official code (whose CARAFE is mmcv's compiled CUDA op, backward
on CUDA only) it runs on every device, exports, and also accepts ``H = 1`` or ``W = 1``
and ``up_group > 1`` (see :class:`DLUPack`).
"""

from __future__ import annotations

from torch import Tensor, nn

from ..base import Upsampler
from ..components.kernel_predictor import (
    add_kernel_predictor,
    check_kernel_predictor_args,
    check_same_size_encoder,
    reset_kernel_predictor,
)
from ..functional import carafe, dynamic_sample, softmax_kernels
from ..registry import register_upsampler

__all__ = ["DLUPack"]


@register_upsampler(
    "dlu",
    # A non-zero offset start keeps the matrix's numerical gradient checks off the
    # bilinear kinks at pixel centres, where the all-zero official start puts them.
    example={"channels": 8, "offset_init_std": 0.01},
    summary="DLU: one k x k kernel a pixel, sampled at learned offsets, CARAFE reassembly (official DLUPack)",
)
class DLUPack(Upsampler):
    """DLU upsampler, equivalent to the official ``DLUPack``.

    With ``k = up_kernel``, ``G = up_group``, ``r = (k - 1) / 2`` and input ``x``
    (``N x C x H x W``):

    1. ``z = channel_compressor(x)``: 1x1 conv ``C -> C_m``, bias, no activation.
    2. Kernel space ``S = softmax(kernel_space_generator(z))``: a ``k_e x k_e`` conv
       ``C_m -> G k^2`` (dilation ``d``, padding ``(k_e - 1) d / 2``, bias), softmax over
       each group's ``k^2`` taps, channel ``g k^2 + t`` (tap ``t = a k + b``, row ``a``
       first); ``N x G k^2 x H x W``, at the input resolution.
    3. Offsets ``O = conv_offset(z)``: a ``k_e x k_e`` conv ``C_m -> 2 G s^2`` (same
       dilation and padding, bias), in input pixel units, channel ``(e G + g) s^2 + i s + j``
       with ``e = 0`` the column (x) and ``e = 1`` the row (y) component.
    4. Kernels at the output resolution: ``K[n, g k^2 + t, s h + i, s w + j]`` is
       ``S[n, g k^2 + t]`` sampled bilinearly at column ``w + O[n, (0 G + g) s^2 + i s + j, h, w]``
       and row ``h + O[n, (1 G + g) s^2 + i s + j, h, w]`` (integer coordinates are pixel
       centres), the position clamped to ``[0, W - 1] x [0, H - 1]`` (border replicated;
       :func:`resamplers.functional.dynamic_sample`).  The official code does the same
       with ``grid_sample(padding_mode='border', align_corners=True)`` on the grid
       ``linspace(-1, 1, .)`` repeated ``s`` times plus ``2 O / (W - 1)`` and
       ``2 O / (H - 1)``, which are these pixel positions.  Bilinear weights are convex,
       so every group's ``k^2`` taps of ``K`` still sum to 1.
    5. Reassembly ``out = carafe(x, K, k, G, s)`` (:func:`resamplers.functional.carafe`,
       mmcv's CARAFE): ``out[n, c, Y, X] = sum_{a, b} K[n, g k^2 + a k + b, Y, X] *
       x[n, c, Y // s + a - r, X // s + b - r]`` with ``g = c // (C / G)`` (contiguous
       channel groups) and zero padding outside the input.

    With zero offsets (the initial state) ``K`` is ``S`` nearest-upsampled by ``s``, and
    DLU is CARAFE whose ``s^2`` sub-pixel kernels share their input pixel's kernel.

    Initialisation as the official code: Xavier-uniform weights and zero biases for the
    compressor and the kernel-space generator, then the generator's weights drawn from
    ``N(0, 0.001^2)`` (nearly uniform initial kernels), and ``conv_offset`` all zero.
    ``offset_init_std > 0`` (an addition, default 0) draws ``conv_offset``'s weights from
    ``N(0, offset_init_std^2)`` instead: at zero offsets every sampling position is a pixel
    centre, where bilinear sampling is not differentiable (autograd returns a one-sided
    derivative, as ``grid_sample`` does for the official code), so numerical gradient
    checks need a start off those points; the registry example uses 0.01.
    35,489 parameters at ``C = 256``, ``s = 2`` with the defaults (CARAFE: 74,148).

    Departures from the official code, where it fails: at ``H = 1`` or ``W = 1`` the
    official offsets are divided by ``W - 1`` (NaN or infinite grid; its forward still
    reads the one column, its CPU backward crashed the process with torch 2.13), here the
    clamped sampling reads the one row or column and its gradients are finite;
    ``up_group > 1`` (the official code cannot add its ``2 G`` offset channels to the
    two-channel grid) gives every group its own offsets as in step 3 (with ``G = 1`` the
    layout is the official one); the sampling grid is built on the input's device and in
    its dtype (the official grid is float32, on CUDA whenever CUDA is available).

    Gradients: bilinear sampling is not differentiable where a position is a pixel centre
    (every position at zero offsets).  There autograd returns a one-sided derivative, and
    which side depends on how the normalised grid rounds, here as in the official code, so
    at the all-zero start ``conv_offset``'s gradients agree with the official ones only up
    to that choice; elsewhere outputs and all gradients agree to rounding.

    Dtypes: the kernel space, offsets and kernels are in the dtype the convolutions
    return (the input dtype outside autocast; the softmax is computed in it); under
    autocast the offsets are cast to the kernel space's dtype before sampling.

    Checkpoints: the official state dict (``channel_compressor.*``,
    ``kernel_space_generator.*``, ``conv_offset.*``) loads key for key, and this module's
    loads into the official one.

    Args:
        channels: input channels ``C``.
        scale_factor: integer ``s >= 1`` (the official FPN neck uses 2).
        up_kernel: reassembly kernel ``k`` (odd).
        up_group: kernel groups ``G`` (a divisor of ``C``).
        encoder_kernel: kernel ``k_e`` of the kernel-space generator and of the offset conv.
        encoder_dilation: their dilation ``d``; ``(k_e - 1) * d`` must be even.
        compressed_channels: ``C_m``.
        offset_init_std: standard deviation of ``conv_offset``'s initial weights (0: the
            official all-zero start).

    Shape:
        ``N x C x H x W`` -> ``N x C x sH x sW``.

    Example:
        >>> up = DLUPack(channels=16, scale_factor=2)
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
        offset_init_std: float = 0.0,
    ) -> None:
        super().__init__(channels, scale_factor)
        if isinstance(offset_init_std, bool) or not isinstance(offset_init_std, (int, float)):
            raise TypeError(f"argument `offset_init_std`: expected a float, got {offset_init_std!r}")
        if not offset_init_std >= 0.0:  # also rejects NaN
            raise ValueError(f"argument `offset_init_std`: expected a float >= 0, got {offset_init_std}")
        check_kernel_predictor_args(
            channels, "up", up_kernel, up_group, encoder_kernel, compressed_channels, encoder_dilation
        )
        check_same_size_encoder(encoder_kernel, encoder_dilation)
        self.up_kernel = up_kernel
        self.up_group = up_group
        self.encoder_kernel = encoder_kernel
        self.encoder_dilation = encoder_dilation
        self.compressed_channels = compressed_channels
        self.offset_init_std = float(offset_init_std)
        add_kernel_predictor(
            self,
            channels,
            compressed_channels,
            up_kernel * up_kernel * up_group,
            encoder_kernel,
            stride=1,
            dilation=encoder_dilation,
            encoder="kernel_space_generator",
        )
        self.conv_offset = nn.Conv2d(
            compressed_channels,
            2 * up_group * scale_factor * scale_factor,
            encoder_kernel,
            padding=(encoder_kernel - 1) * encoder_dilation // 2,
            dilation=encoder_dilation,
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        reset_kernel_predictor(self, encoder="kernel_space_generator")
        if self.offset_init_std > 0:
            nn.init.normal_(self.conv_offset.weight, std=self.offset_init_std)
        else:
            nn.init.zeros_(self.conv_offset.weight)
        if self.conv_offset.bias is not None:
            nn.init.zeros_(self.conv_offset.bias)

    def init_weights(self) -> None:
        """The official name for :meth:`reset_parameters`: OpenMMLab necks call it after
        their own re-initialisation of every convolution."""
        self.reset_parameters()

    def kernel_space(self, z: Tensor) -> Tensor:
        """The normalised kernel space ``S`` of the compressed input ``z``, ``N x (G*k*k) x H x W``."""
        return softmax_kernels(self.kernel_space_generator(z), self.up_group)

    def offsets(self, z: Tensor) -> Tensor:
        """The guidance offsets ``O`` of the compressed input ``z``, ``N x (2*G*s*s) x H x W``."""
        return self.conv_offset(z)

    def kernels(self, x: Tensor) -> Tensor:
        """Normalised reassembly kernels ``K``, ``N x (G*k*k) x sH x sW``."""
        z = self.channel_compressor(x)
        space = self.kernel_space(z)
        return dynamic_sample(space, self.offsets(z).to(space.dtype), self.scale_factor, self.up_group)

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        return carafe(x, self.kernels(x), self.up_kernel, self.up_group, self.scale_factor)

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, up_kernel={self.up_kernel}, up_group={self.up_group}, "
            f"encoder_kernel={self.encoder_kernel}, encoder_dilation={self.encoder_dilation}, "
            f"compressed_channels={self.compressed_channels}"
            + (f", offset_init_std={self.offset_init_std}" if self.offset_init_std else "")
        )
