"""Fixed-kernel and argmax-kernel downsampling: average and max pooling."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch.nn.functional as F
from torch import Tensor

from ..base import Downsampler
from ..functional.windows import check_window, window_output_size
from ..registry import register_downsampler

__all__ = ["MaxPool", "AvgPool", "window_output_size"]


class _WindowPool(Downsampler):
    """Shared arguments of the window pools: ``kernel_size``, ``stride`` and ``padding`` as in torch.

    A subclass names its functional in ``_function``; :meth:`forward` checks the input and
    calls ``_function(x, kernel_size=..., stride=..., padding=..., **self._function_kwargs(x))``.
    ``_repr_attributes`` lists the attributes :meth:`extra_repr` adds (as ``name=repr(value)``)
    after the window.
    """

    _function: Callable[..., Tensor]
    _repr_attributes: tuple[str, ...] = ()

    def __init__(
        self,
        channels: int | None = None,
        scale_factor: int = 2,
        kernel_size: int | None = None,
        stride: int | None = None,
        padding: int = 0,
    ) -> None:
        super().__init__(channels, scale_factor)
        self.kernel_size, self.stride, self.padding = check_window(
            scale_factor if kernel_size is None else kernel_size, scale_factor if stride is None else stride, padding
        )

    def output_size(self, size: tuple[int, int]) -> tuple[int, int]:
        return window_output_size(size, self.kernel_size, self.stride, self.padding)

    def _function_kwargs(self, x: Tensor) -> dict[str, Any]:
        """Keyword arguments of ``_function`` besides the window (none by default)."""
        return {}

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        return self._function(
            x, kernel_size=self.kernel_size, stride=self.stride, padding=self.padding, **self._function_kwargs(x)
        )

    def extra_repr(self) -> str:
        extra = "".join(f", {name}={getattr(self, name)!r}" for name in self._repr_attributes)
        return (
            f"{super().extra_repr()}, kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
            f"{extra}"
        )


@register_downsampler("max", example={"channels": 8}, summary="Max pooling (window = stride = s by default)")
class MaxPool(_WindowPool):
    """Max pooling; padding never wins the max (implicit ``-inf`` padding).

    Args:
        channels: input channels, or ``None`` for any.
        scale_factor: ``s``; the default window and stride.
        kernel_size: window size (default ``s``); overlapping windows are allowed.
        stride: stride (default ``s``).
        padding: implicit ``-inf`` padding, at most ``kernel_size // 2``.

    Shape:
        ``N x C x H x W`` -> ``N x C x H' x W'`` with ``H' = floor((H + 2p - k) / stride) + 1``.
    """

    _function = staticmethod(F.max_pool2d)


@register_downsampler("avg", example={"channels": 8}, summary="Average pooling (window = stride = s by default)")
class AvgPool(_WindowPool):
    """Average pooling; zero padding is counted in the average (torch's default).

    Args:
        channels: input channels, or ``None`` for any.
        scale_factor: ``s``; the default window and stride.
        kernel_size: window size (default ``s``); overlapping windows are allowed.
        stride: stride (default ``s``).
        padding: zero padding, at most ``kernel_size // 2``.

    Shape:
        ``N x C x H x W`` -> ``N x C x H' x W'`` with ``H' = floor((H + 2p - k) / stride) + 1``.
    """

    _function = staticmethod(F.avg_pool2d)
