"""GeM pooling over local windows (a registered downsampler)."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from ..components.gem_exponent import init_gem_exponent
from ..functional.gem import gem_pool2d
from ..registry import register_downsampler
from .pool import _WindowPool

__all__ = ["GeMPool"]


@register_downsampler("gem", example={"channels": 8}, summary="GeM pooling (mean of x^p)^(1/p) per window, learnable p")
class GeMPool(_WindowPool):
    """Generalized-mean pooling over local windows, see :func:`resamplers.functional.gem_pool2d`.

    ``(mean over the window of clamp(x, eps)^p)^(1/p)`` with a learnable ``p``
    (cirtorch's parameter: shape ``(1,)``, key ``p``).  ``p`` is clamped to ``>= 1`` in the
    forward pass, so a training step cannot drive it towards 0 (where ``1/p`` blows up);
    cirtorch does not clamp, and for ``p >= 1`` the two agree.  Computed in float32 under
    half and bfloat16.

    Args:
        channels: input channels, or ``None`` for any.
        scale_factor: ``s``; the default window and stride.
        kernel_size: window size (default ``s``); overlapping windows are allowed.
        stride: stride (default ``s``).
        padding: zero padding (counted in the mean), at most ``kernel_size // 2``.
        p: initial exponent (default 3, as cirtorch).
        eps: clamp value of the inputs (default 1e-6).
        learn_p: whether ``p`` is trained.

    Shape:
        ``N x C x H x W`` -> ``N x C x H' x W'`` with ``H' = floor((H + 2p - k) / stride) + 1``.

    Example:
        >>> GeMPool(scale_factor=2, p=1.0)(torch.tensor([[[[1.0, 2.0], [2.0, 3.0]]]])).item()
        2.0
    """

    _function = staticmethod(gem_pool2d)
    _repr_attributes = ("eps",)

    def __init__(
        self,
        channels: int | None = None,
        scale_factor: int = 2,
        kernel_size: int | None = None,
        stride: int | None = None,
        padding: int = 0,
        p: float = 3.0,
        eps: float = 1e-6,
        learn_p: bool = True,
    ) -> None:
        super().__init__(channels, scale_factor, kernel_size, stride, padding)
        init_gem_exponent(self, p, eps, learn_p)

    def _function_kwargs(self, x: Tensor) -> dict[str, Any]:
        return {"p": self.p.clamp(min=1.0), "eps": self.eps}
