"""Median pooling (a registered downsampler)."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from .._checks import check_choice
from ..functional.median_pool import median_pool2d
from ..functional.windows import PaddingMode
from ..registry import register_downsampler
from .pool import _WindowPool

__all__ = ["MedianPool"]


@register_downsampler(
    "median", example={"channels": 8}, summary="Median pooling (lower median for even windows; reflect padding)"
)
class MedianPool(_WindowPool):
    """Median pooling: the lower median of each window, see :func:`resamplers.functional.median_pool2d`.

    For even windows (the default ``2 x 2``) the output is the lower of the two middle
    values.  Without padding (the default) there are no border rules; with ``padding``
    the map is extended by ``padding_mode`` (``"reflect"`` as timm's ``MedianPool2d``).

    Args:
        channels: input channels, or ``None`` for any.
        scale_factor: ``s``; the default window and stride.
        kernel_size: window size (default ``s``).
        stride: stride (default ``s``).
        padding: padding on every side, at most ``kernel_size // 2``.
        padding_mode: ``"reflect"`` (needs ``H, W > padding``), ``"replicate"`` or ``"constant"`` (zeros).

    Shape:
        ``N x C x H x W`` -> ``N x C x H' x W'`` with ``H' = floor((H + 2p - k) / stride) + 1``.

    Example:
        >>> MedianPool(scale_factor=2)(torch.tensor([[[[4.0, 1.0], [3.0, 2.0]]]]))
        tensor([[[[2.]]]])
    """

    _function = staticmethod(median_pool2d)
    _repr_attributes = ("padding_mode",)

    def __init__(
        self,
        channels: int | None = None,
        scale_factor: int = 2,
        kernel_size: int | None = None,
        stride: int | None = None,
        padding: int = 0,
        padding_mode: PaddingMode = "reflect",
    ) -> None:
        super().__init__(channels, scale_factor, kernel_size, stride, padding)
        self.padding_mode = check_choice(padding_mode, "padding_mode", ["reflect", "replicate", "constant"])

    def output_size(self, size: tuple[int, int]) -> tuple[int, int]:
        if self.padding_mode == "reflect" and self.padding >= min(size):
            raise ValueError(
                f"argument `x`: reflect padding {self.padding} needs height and width > {self.padding}, "
                f"got {size[0]} x {size[1]}"
            )
        return super().output_size(size)

    def _function_kwargs(self, x: Tensor) -> dict[str, Any]:
        return {"padding_mode": self.padding_mode}
