"""Average-max combinations (registered downsamplers): ``avgmax``, ``catavgmax`` and learned ``mixed``."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..functional.avgmax_pool import avgmax_pool2d, catavgmax_pool2d, mixed_pool2d
from ..registry import register_downsampler
from .pool import _WindowPool

__all__ = ["AvgMaxPool", "CatAvgMaxPool", "MixedPool"]

_OVERLAP = {"kernel_size": 3, "stride": 2, "padding": 1}


@register_downsampler(
    "avgmax", example={"channels": 8, **_OVERLAP}, summary="0.5 * (average + max) pooling over the same windows"
)
class AvgMaxPool(_WindowPool):
    """``0.5 * (avg_pool2d(x) + max_pool2d(x))``, see :func:`resamplers.functional.avgmax_pool2d`.

    Padding is zeros for the average (counted) and ``-inf`` for the max, as torch.

    Args:
        channels: input channels, or ``None`` for any.
        scale_factor: ``s``; the default window and stride.
        kernel_size: window size (default ``s``); overlapping windows are allowed.
        stride: stride (default ``s``).
        padding: padding, at most ``kernel_size // 2``.

    Shape:
        ``N x C x H x W`` -> ``N x C x H' x W'`` with ``H' = floor((H + 2p - k) / stride) + 1``.

    Example:
        >>> AvgMaxPool(scale_factor=2)(torch.tensor([[[[1.0, 3.0], [0.0, 0.0]]]]))
        tensor([[[[2.]]]])
    """

    _function = staticmethod(avgmax_pool2d)


@register_downsampler(
    "catavgmax", example={"channels": 8}, summary="Average and max pooling concatenated (2C channels out)"
)
class CatAvgMaxPool(_WindowPool):
    """``cat([avg_pool2d(x), max_pool2d(x)], 1)``, see :func:`resamplers.functional.catavgmax_pool2d`.

    Doubles the channels: averages first, then maxima.

    Args:
        channels: input channels, or ``None`` for any.
        scale_factor: ``s``; the default window and stride.
        kernel_size: window size (default ``s``).
        stride: stride (default ``s``).
        padding: padding, at most ``kernel_size // 2``.

    Shape:
        ``N x C x H x W`` -> ``N x 2C x H' x W'`` with ``H' = floor((H + 2p - k) / stride) + 1``.

    Example:
        >>> CatAvgMaxPool(4)(torch.randn(1, 4, 6, 6)).shape
        torch.Size([1, 8, 3, 3])
    """

    _function = staticmethod(catavgmax_pool2d)

    @property
    def out_channels(self) -> int | None:
        return None if self.channels is None else 2 * self.channels

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        n, c, h, w = shape
        return (n, 2 * c, *self.output_size((h, w)))


@register_downsampler(
    "mixed",
    example={"channels": 8, "per_channel": True, **_OVERLAP},
    summary="Learned mix a*max + (1-a)*avg, a = sigmoid(w) per layer or channel",
)
class MixedPool(_WindowPool):
    """Mixed max-average pooling (Lee, Gallagher and Tu, AISTATS 2016).

    ``out = a * max_pool2d(x) + (1 - a) * avg_pool2d(x)`` with a learned mixing
    proportion ``a`` per layer (one scalar) or per channel.  The paper constrains
    ``a`` to ``[0, 1]``; here ``a = sigmoid(mix_logit)`` so that it stays there under
    any optimiser step (initially ``a = 0.5``).

    Args:
        channels: input channels (required when ``per_channel``).
        scale_factor: ``s``; the default window and stride.
        kernel_size: window size (default ``s``); overlapping windows are allowed.
        stride: stride (default ``s``).
        padding: padding, at most ``kernel_size // 2``.
        per_channel: one proportion per channel instead of one per layer.
        init_mix: initial ``a`` in ``(0, 1)``.

    Shape:
        ``N x C x H x W`` -> ``N x C x H' x W'`` with ``H' = floor((H + 2p - k) / stride) + 1``.

    Example:
        >>> pool = MixedPool(scale_factor=2, init_mix=0.25)
        >>> pool(torch.tensor([[[[1.0, 3.0], [0.0, 0.0]]]])).item()
        1.5
    """

    _function = staticmethod(mixed_pool2d)
    _repr_attributes = ("per_channel",)

    def __init__(
        self,
        channels: int | None = None,
        scale_factor: int = 2,
        kernel_size: int | None = None,
        stride: int | None = None,
        padding: int = 0,
        per_channel: bool = False,
        init_mix: float = 0.5,
    ) -> None:
        super().__init__(channels, scale_factor, kernel_size, stride, padding)
        if not isinstance(per_channel, bool):
            raise TypeError(f"argument `per_channel`: expected a bool, got {per_channel!r}")
        if per_channel and channels is None:
            raise ValueError("argument `channels`: required (an int) when per_channel=True")
        if not 0.0 < init_mix < 1.0:
            raise ValueError(f"argument `init_mix`: expected a proportion in (0, 1), got {init_mix!r}")
        self.per_channel = per_channel
        logit = torch.logit(torch.tensor(float(init_mix)))
        self.mix_logit = nn.Parameter(logit.expand(channels).clone() if per_channel and channels else logit.clone())

    @property
    def mix(self) -> Tensor:
        """The mixing proportion ``a`` in ``(0, 1)`` (a scalar or a ``C``-vector)."""
        return torch.sigmoid(self.mix_logit)

    def _function_kwargs(self, x: Tensor) -> dict[str, Any]:
        return {"mix": self.mix.to(x.dtype)}
