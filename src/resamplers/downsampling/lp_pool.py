"""LP pooling on absolute values (a registered downsampler)."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from ..functional.lp_pool import _check_norm_type, lp_pool2d
from ..registry import register_downsampler
from .pool import _WindowPool

__all__ = ["LPPool"]


@register_downsampler(
    "lp",
    example={"channels": 8, "kernel_size": 3, "stride": 2, "padding": 1, "norm_type": 3.0},
    summary="LP pooling (sum_i |x_i|^p)^(1/p) on |x|; p = inf is max of |x|",
)
class LPPool(_WindowPool):
    """LP pooling: the p-norm of each window, see :func:`resamplers.functional.lp_pool2d`.

    Defined on ``|x|`` (no NaN for negative inputs), a sum to the power ``1/p`` like
    ``torch.nn.LPPool2d``; ``p = 1`` is sum pooling of ``|x|`` and ``p = math.inf`` max
    pooling of ``|x|``.  Zero padding.

    Args:
        channels: input channels, or ``None`` for any.
        scale_factor: ``s``; the default window and stride.
        kernel_size: window size (default ``s``); overlapping windows are allowed.
        stride: stride (default ``s``).
        padding: zero padding, at most ``kernel_size // 2``.
        norm_type: ``p >= 1`` or ``math.inf`` (default 2).

    Shape:
        ``N x C x H x W`` -> ``N x C x H' x W'`` with ``H' = floor((H + 2p - k) / stride) + 1``.

    Example:
        >>> pool = LPPool(scale_factor=2, norm_type=2.0)
        >>> pool(torch.tensor([[[[3.0, -4.0], [0.0, 0.0]]]]))
        tensor([[[[5.]]]])
    """

    _function = staticmethod(lp_pool2d)
    _repr_attributes = ("norm_type",)

    def __init__(
        self,
        channels: int | None = None,
        scale_factor: int = 2,
        kernel_size: int | None = None,
        stride: int | None = None,
        padding: int = 0,
        norm_type: float = 2.0,
    ) -> None:
        super().__init__(channels, scale_factor, kernel_size, stride, padding)
        self.norm_type = _check_norm_type(norm_type)

    def _function_kwargs(self, x: Tensor) -> dict[str, Any]:
        return {"norm_type": self.norm_type}
