"""Normalisation over the channels of ``N x C x H x W`` maps, and a factory by name."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_choice, check_int
from ..core.custom_ops import is_channels_last

__all__ = ["ChannelLayerNorm", "channel_norm"]


class ChannelLayerNorm(nn.LayerNorm):
    """``nn.LayerNorm(C)`` applied to every pixel of an ``N x C x H x W`` map.

    Normalises each pixel's ``C`` values (biased variance, ``eps`` inside the square
    root) and applies the per-channel affine; the same numbers as permuting to channels
    last, ``nn.LayerNorm(C)``, and permuting back, with the same state-dict keys.

    Shape:
        ``N x C x H x W`` -> ``N x C x H x W``.

    Example:
        >>> norm = ChannelLayerNorm(4)
        >>> y = norm(torch.randn(2, 4, 3, 5))
        >>> bool(y.mean(1).abs().max() < 1e-5)
        True
    """

    def forward(self, x: Tensor) -> Tensor:
        y = F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps)
        # The permuted result is channels-last; handed on as it is, that layout spreads into the
        # next convolutions and their gradients as transposing copies of wider tensors.
        layout = torch.channels_last if is_channels_last(x) else torch.contiguous_format
        return y.permute(0, 3, 1, 2).contiguous(memory_format=layout)


def channel_norm(kind: str, channels: int, groups: int = 32) -> nn.Module:
    """``'layer'`` (:class:`ChannelLayerNorm`), ``'group'`` (``nn.GroupNorm(groups, C)``) or ``'none'``.

    Example:
        >>> norm = channel_norm("group", 64)
        >>> type(norm).__name__, norm.num_groups
        ('GroupNorm', 32)
    """
    check_choice(kind, "norm", ["layer", "group", "none"])
    if kind == "layer":
        return ChannelLayerNorm(channels)
    if kind == "group":
        check_int(groups, "norm_groups", minimum=1)
        if channels % groups != 0:
            raise ValueError(f"argument `norm_groups`: expected a divisor of the {channels} channels, got {groups}")
        return nn.GroupNorm(groups, channels)
    return nn.Identity()
