"""A2U: affinity-aware downsampling and upsampling (Dai, Lu, Shen, CVPR 2021).

The kernel generator reproduces the official ``InterChannelUpDown`` (layers, keys,
released defaults ``up_kernel=3``, ``encoder_kernel=6``, ``groups=1``, ``share=True``,
rank 1), vectorised over the batch; the two reassemblies run on the reassembly core
(:mod:`resamplers.functional.a2u`).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from .._checks import check_choice, check_int
from ..base import Downsampler, Guide, Upsampler
from ..functional import (
    a2u_downsample,
    a2u_upsample,
    adaptive_avg_pool2d,
    affinity_kernels,
    dynamic_depthwise_conv2d,
)
from ..registry import register_downsampler, register_pair
from .base import ResamplerPair

__all__ = ["A2UPair", "A2UDownsample", "A2UUpsample"]

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


@register_downsampler(
    "a2u",
    # The pair covers the released configuration; this example exercises s = 1 (sigmoid-only up kernels) and k = 4.
    example={"channels": 32, "up_kernel": 1, "encoder_kernel": 4, "share": False},
    summary="A2U downsampling: affinity-aware 2s x 2s kernels reassembling each 2 x 2 cell's neighbourhood",
)
class A2UDownsample(Downsampler):
    """A2U's down step: affinity-aware ``2s x 2s`` kernels reassembling each ``2 x 2`` cell's neighbourhood.

    Steps 1-5 of :class:`A2UPair` without the up kernels: ``forward(x)`` is the
    downsampled map.  Built with ``with_up_weights=True`` (as inside :class:`A2UPair`) it
    also holds the up step's ``P`` weights (``bconv_UP``) and :meth:`down` puts the up
    kernels in the guide (``tensors['up_kernels']``, ``N x s^2G x H x W``) for
    :class:`A2UUpsample`; alone it has no up-step parameters and computes no up kernels
    (loading a whole A2U state dict skips the ``bconv_UP`` keys).

    Args:
        channels: input channels ``C`` (see :class:`A2UPair` for ``norm_groups``).
        scale_factor: 2.
        up_kernel: ``s``; the down kernel is ``2s``.
        encoder_kernel, groups, share, norm_groups, official_group_order: as :class:`A2UPair`.
        with_up_weights: also predict the up kernels of the matching up step.

    Shape:
        ``N x C x H x W`` -> ``N x C x H/2 x W/2`` (``H``, ``W`` even).

    Example:
        >>> A2UDownsample(channels=32)(torch.randn(1, 32, 6, 4)).shape
        torch.Size([1, 32, 3, 2])
    """

    size_multiple = 2

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
        with_up_weights: bool = False,
    ) -> None:
        check_choice(scale_factor, "scale_factor", [2])
        norm_groups = default_norm_groups(channels) if norm_groups is None else norm_groups
        super().__init__(check_int(channels, "channels", minimum=1), scale_factor)
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
        self.with_up_weights = bool(with_up_weights)
        if self.with_up_weights:  # registered here to keep the official parameter order
            self.bconv_UP = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, taps, 1))
        self.bconv_DP = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, taps, 1))
        self.bconv_U = nn.Sequential(_AdaptiveAvgPool(encoder_kernel), nn.Conv2d(channels, filters, 1))
        self.bconv_V = nn.Sequential(_AdaptiveAvgPool(encoder_kernel), nn.Conv2d(channels, filters, 1))
        self.reset_parameters()

    @property
    def down_kernel(self) -> int:
        """The down kernel size ``2s``."""
        return 2 * self.up_kernel

    def reset_parameters(self) -> None:
        gain = nn.init.calculate_gain("leaky_relu", LEAKY_SLOPE)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_normal_(m.weight, gain)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.GroupNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def output_size(self, size: tuple[int, int]) -> tuple[int, int]:
        return (size[0] // 2, size[1] // 2)

    def kernels(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """``(down_kernels, up_kernels)`` for encoder feature ``x``, as the official module returns
        them (``up_kernels`` is ``None`` without ``with_up_weights``)."""
        self.check_input(x)
        n = x.shape[0]
        padding = (self.encoder_kernel - 1) // 2
        xu = self.bnu(dynamic_depthwise_conv2d(x, self.bconv_U(x), stride=2, padding=padding))
        xv = self.bnv(dynamic_depthwise_conv2d(x, self.bconv_V(x), stride=2, padding=padding))
        return affinity_kernels(
            xu,
            xv,
            self.bconv_UP(x).reshape(n, -1) if self.with_up_weights else None,
            self.bconv_DP(x).reshape(n, -1),
            self.up_kernel,
            self.groups,
            self.official_group_order,
        )

    def down(self, x: Tensor) -> tuple[Tensor, Guide]:
        down_kernels, up_kernels = self.kernels(x)
        y = a2u_downsample(x, down_kernels, self.down_kernel, self.groups)
        tensors = {"down_kernels": down_kernels}
        if up_kernels is not None:
            tensors["up_kernels"] = up_kernels
        return y, self.make_guide(x, y, tensors=tensors)

    def forward(self, x: Tensor) -> Tensor:
        return self.down(x)[0]

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        # A checkpoint of the whole A2U module also holds the up step's P weights: not ours to load.
        if not self.with_up_weights:
            for key in [k for k in state_dict if k.startswith(f"{prefix}bconv_UP.")]:
                del state_dict[key]
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, up_kernel={self.up_kernel}, encoder_kernel={self.encoder_kernel}, "
            f"groups={self.groups}, share={self.share}"
        )


class A2UUpsample(Upsampler):
    """A2U's up step: CARAFE reassembly of ``d`` with the ``s x s`` up kernels in the guide.

    ``up(d, guide)`` reads ``guide.tensors['up_kernels']`` (made by an
    :class:`A2UDownsample` with ``with_up_weights=True``); ``d`` may have any channel
    count divisible by ``groups``.

    Shape:
        ``N x C_d x H/2 x W/2`` -> ``N x C_d x H x W``.
    """

    def __init__(self, scale_factor: int = 2, up_kernel: int = 3, groups: int = 1) -> None:
        super().__init__(None, scale_factor)
        self.up_kernel, self.groups = up_kernel, groups

    def forward(self, d: Tensor, up_kernels: Tensor) -> Tensor:
        if d.shape[1] % self.groups:
            raise ValueError(
                f"argument `d`: expected a channel count divisible by groups={self.groups}, got {d.shape[1]}"
            )
        return a2u_upsample(d, up_kernels, self.up_kernel, self.groups)

    def up(self, d: Tensor, guide: Guide) -> Tensor:
        return self(d, guide.tensor("up_kernels", "A2U's up step"))


@register_pair(
    "a2u",
    example={"channels": 32},
    summary="A2U: affinity-aware (rank-1 bilinear) down/up kernels; 2s x 2s reassembly down, CARAFE-style up",
)
class A2UPair(ResamplerPair):
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
        down = A2UDownsample(
            channels,
            scale_factor,
            up_kernel,
            encoder_kernel,
            groups,
            share,
            norm_groups,
            official_group_order,
            with_up_weights=True,
        )
        up = A2UUpsample(scale_factor, down.up_kernel, down.groups)
        # up() accepts any decoder channel count divisible by groups.
        super().__init__(down, up, up_channels, up_channels_fixed=False, flat_children=("downsampler",))

    def kernels(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """``(down_kernels, up_kernels)`` for encoder feature ``x``, as the official module returns them."""
        return self.downsampler.kernels(x)
