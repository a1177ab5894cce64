"""A2U: affinity-aware downsampling and upsampling (Dai, Lu, Shen, CVPR 2021).

The kernel generator reproduces the official ``InterChannelUpDown`` (layers, keys,
released defaults ``up_kernel=3``, ``encoder_kernel=6``, ``groups=1``, ``share=True``,
rank 1), vectorised over the batch; the two reassemblies run on the reassembly core
(:mod:`resamplers.functional.a2u`).
"""
from __future__ import annotations

from torch import Tensor, nn

from .._checks import check_choice, check_int
from ..functional.a2u import a2u_downsample, a2u_upsample, affinity_kernels, dynamic_depthwise_conv2d
from ..functional.adaptive_pool import adaptive_avg_pool2d
from ..registry import register_downsampler, register_pair
from .base import Guide, ResamplerPair, spatial_size

__all__ = ["A2UPair", "A2UDownsample"]

LEAKY_SLOPE = 0.01  # nn.LeakyReLU's default, as in the official code


class _AdaptiveAvgPool(nn.Module):
    """``nn.AdaptiveAvgPool2d`` that stays exact under export at any input size."""

    def __init__(self, output_size: int) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, x: Tensor) -> Tensor:
        return adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


def default_norm_groups(channels: int) -> int:
    """32 GroupNorm groups (the official value) or, when ``channels`` is not a multiple of 32,
    the largest power of two dividing it."""
    return 32 if channels % 32 == 0 else channels & -channels


@register_pair(
    "a2u",
    example={"channels": 32},
    summary="A2U: affinity-aware (rank-1 bilinear) down/up kernels; 2s x 2s reassembly down, CARAFE-style up",
)
class A2UPair(ResamplerPair):
    """A2U: one affinity map drives a learned downsampling and the matching upsampling.

    From the encoder feature ``x`` (``N x C x H x W``, ``H`` and ``W`` even):

    1. dynamic ``P`` weights ``p_up, p_down = Conv1x1(GAP(x))`` (``4 s^2 G`` each, biased);
    2. dynamic filters ``u, v = Conv1x1(AdaptiveAvgPool_{k x k}(x))`` (``1`` shared filter
       with ``share=True``, else one per channel);
    3. ``XU = LeakyReLU(GN(depthwise_conv(x, u, stride 2, padding (k-1)//2)))``, ``XV`` likewise
       (GroupNorm with ``norm_groups`` groups, eps 1e-5; LeakyReLU slope 0.01);
    4. affinity ``A = sum_c (XU * XV) / sqrt(C)`` (rank 1);
    5. down kernels ``softmax(A * p_down)`` over ``(2s)^2`` taps at ``H/2 x W/2``; up kernels
       ``softmax(sigmoid(pixel_shuffle(A * p_up, 2)))`` over ``s^2`` taps at ``H x W``.

    ``down(x)`` reassembles ``x`` with the ``2s x 2s`` kernels (window rows
    ``2i - (s-1) .. 2i + s``, zero padding, no renormalisation); ``up(d, guide)``
    reassembles the decoder feature with the ``s x s`` kernels (CARAFE semantics).  ``d``
    may have any channel count divisible by ``groups``.  Channel ``c`` uses kernel group
    ``c // (C / G)``; kernels are normalised over the taps each group actually reads
    (group-major).  The official code normalises ``G > 1`` kernels kernel-major while its
    CUDA op reads them group-major; ``official_group_order=True`` reproduces that (no
    difference at ``G = 1``, the released configuration).

    All-zero weights give box kernels (``1 / s^2`` up, ``1 / (2s)^2`` down).  Parameters:
    ``4C + 2 (4 s^2 G C + 4 s^2 G) + 2 (C r + r)`` with ``r = 1`` (share) or ``C``; for the
    defaults ``78 C + 74`` (share) and ``2 C^2 + 78 C + 72`` (unshare).  Initialisation
    as the released model: Xavier-normal convolutions with the LeakyReLU(0.01) gain, zero
    biases, GroupNorm ``(1, 0)``.  The state dict has the official keys (``bnu.0.*``,
    ``bnv.0.*``, ``bconv_UP.1.*``, ``bconv_DP.1.*``, ``bconv_U.1.*``, ``bconv_V.1.*``).

    Args:
        channels: encoder channels ``C`` (a multiple of ``norm_groups`` when that is given).
        scale_factor: 2.
        up_kernel: ``s``, the up kernel size (odd); the down kernel is ``2s``.
        encoder_kernel: ``k``, the size of the dynamic U/V filters.
        groups: kernel groups ``G`` (``downupsample_group``).
        share: one U/V filter shared by every channel, else one per channel.
        norm_groups: GroupNorm groups.  ``None`` (default): 32 as in the official code when
            ``C`` is a multiple of 32, otherwise the largest power of two dividing ``C`` (e.g.
            8 for MobileNetV2's 24 channels), so A2U fits networks the official ResNet-34
            widths do not describe.  An explicit value must divide ``C``.
        official_group_order: reproduce the official ``G > 1`` normalisation order.
        up_channels: decoder channels (informational: ``up`` accepts any multiple of ``G``).

    Shape:
        ``down``: ``N x C x H x W`` -> ``N x C x H/2 x W/2`` and a :class:`Guide` holding
        ``down_kernels`` (``N x 4s^2G x H/2 x W/2``) and ``up_kernels`` (``N x s^2G x H x W``);
        ``up``: ``N x C_d x H/2 x W/2`` -> ``N x C_d x H x W``.

    Example:
        >>> pair = A2UPair(channels=32)
        >>> y, guide = pair.down(torch.randn(2, 32, 8, 6))
        >>> y.shape, pair.up(torch.randn(2, 5, 4, 3), guide).shape
        (torch.Size([2, 32, 4, 3]), torch.Size([2, 5, 8, 6]))
    """

    def __init__(
        self,
        channels: int,
        scale_factor: int = 2,
        up_kernel: int = 3,
        encoder_kernel: int = 6,
        groups: int = 1,
        share: bool = True,
        norm_groups: int | None = None,
        official_group_order: bool = False,
        up_channels: int | None = None,
    ) -> None:
        check_choice(scale_factor, "scale_factor", [2])
        norm_groups = default_norm_groups(channels) if norm_groups is None else norm_groups
        super().__init__(channels, scale_factor, up_channels)
        self.up_kernel = check_int(up_kernel, "up_kernel", minimum=1)
        if up_kernel % 2 == 0:
            raise ValueError(f"argument `up_kernel`: expected an odd int >= 1, got {up_kernel}")
        self.encoder_kernel = check_int(encoder_kernel, "encoder_kernel", minimum=1)
        self.groups = check_int(groups, "groups", minimum=1)
        self.norm_groups = check_int(norm_groups, "norm_groups", minimum=1)
        for value, name in ((share, "share"), (official_group_order, "official_group_order")):
            if not isinstance(value, bool):
                raise TypeError(f"argument `{name}`: expected a bool, got {value!r}")
        if channels % norm_groups:
            raise ValueError(
                f"argument `channels`: GroupNorm with norm_groups={norm_groups} needs a multiple of {norm_groups}, "
                f"got {channels}"
            )
        if channels % groups:
            raise ValueError(f"argument `groups`: expected a divisor of channels={channels}, got {groups}")
        self.share, self.official_group_order = share, official_group_order
        taps = 4 * up_kernel * up_kernel * groups
        filters = 1 if share else channels
        self.bnu = nn.Sequential(nn.GroupNorm(norm_groups, channels), nn.LeakyReLU(LEAKY_SLOPE))
        self.bnv = nn.Sequential(nn.GroupNorm(norm_groups, channels), nn.LeakyReLU(LEAKY_SLOPE))
        self.bconv_UP = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, taps, 1))
        self.bconv_DP = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, taps, 1))
        self.bconv_U = nn.Sequential(_AdaptiveAvgPool(encoder_kernel), nn.Conv2d(channels, filters, 1))
        self.bconv_V = nn.Sequential(_AdaptiveAvgPool(encoder_kernel), nn.Conv2d(channels, filters, 1))
        self.reset_parameters()

    @property
    def up_channels_fixed(self) -> bool:  # type: ignore[override]
        return False

    @property
    def down_kernel(self) -> int:
        """The down kernel size ``2s``."""
        return 2 * self.up_kernel

    def reset_parameters(self) -> None:
        gain = nn.init.calculate_gain("leaky_relu", LEAKY_SLOPE)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_normal_(m.weight, gain)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.GroupNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def kernels(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(down_kernels, up_kernels)`` for encoder feature ``x``, as the official module returns them."""
        self.check_input(x)
        n = x.shape[0]
        padding = (self.encoder_kernel - 1) // 2
        xu = self.bnu(dynamic_depthwise_conv2d(x, self.bconv_U(x), stride=2, padding=padding))
        xv = self.bnv(dynamic_depthwise_conv2d(x, self.bconv_V(x), stride=2, padding=padding))
        return affinity_kernels(
            xu,
            xv,
            self.bconv_UP(x).reshape(n, -1),
            self.bconv_DP(x).reshape(n, -1),
            self.up_kernel,
            self.groups,
            self.official_group_order,
        )

    def down(self, x: Tensor) -> tuple[Tensor, Guide]:
        down_kernels, up_kernels = self.kernels(x)
        y = a2u_downsample(x, down_kernels, self.down_kernel, self.groups)
        guide = Guide(
            size=spatial_size(x),
            low_size=spatial_size(y),
            skip=x,
            tensors={"down_kernels": down_kernels, "up_kernels": up_kernels},
        )
        return y, guide

    def up(self, d: Tensor, guide: Guide) -> Tensor:
        self.check_up_input(d, guide)
        if d.shape[1] % self.groups:
            raise ValueError(
                f"argument `d`: expected a channel count divisible by groups={self.groups}, got {d.shape[1]}"
            )
        return a2u_upsample(d, guide.tensors["up_kernels"], self.up_kernel, self.groups)

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, up_kernel={self.up_kernel}, encoder_kernel={self.encoder_kernel}, "
            f"groups={self.groups}, share={self.share}"
        )


@register_downsampler(
    "a2u",
    # The pair covers the released configuration; this example exercises s = 1 (sigmoid-only up kernels) and k = 4.
    example={"channels": 32, "up_kernel": 1, "encoder_kernel": 4, "share": False},
    summary="A2U downsampling: affinity-aware 2s x 2s kernels reassembling each 2 x 2 cell's neighbourhood",
)
class A2UDownsample(A2UPair):
    """A2U's down step alone: a learned downsampler with affinity-aware ``2s x 2s`` kernels.

    The same module as :class:`A2UPair` (same options, parameters and checkpoint keys)
    whose ``forward`` is ``down(x)[0]``; the up kernels it also computes are discarded.

    Args:
        channels: input channels ``C`` (see :class:`A2UPair` for ``norm_groups``).
        scale_factor: 2.
        up_kernel, encoder_kernel, groups, share, norm_groups, official_group_order,
            up_channels: as :class:`A2UPair`.

    Shape:
        ``N x C x H x W`` -> ``N x C x H/2 x W/2`` (``H``, ``W`` even).

    Example:
        >>> A2UDownsample(channels=32)(torch.randn(1, 32, 6, 4)).shape
        torch.Size([1, 32, 3, 2])
    """

    def output_size(self, size: tuple[int, int]) -> tuple[int, int]:
        return (size[0] // 2, size[1] // 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.down(x)[0]
