"""Bilinear (second-order) pooling."""

from __future__ import annotations

from torch import Tensor

from ..functional.bilinear_pool import bilinear_pool
from ..registry import register_pool
from .base import GlobalPool

__all__ = ["BilinearPool"]


@register_pool(
    "bilinear", example={"channels": 8}, summary="Bilinear pooling: X Y^T / HW, signed sqrt, L2 (C*C or C1*C2)"
)
class BilinearPool(GlobalPool):
    """Bilinear pooling (Lin et al., ICCV 2015), see :func:`resamplers.functional.bilinear_pool`.

    ``forward(x)`` is second-order pooling (``B = X X^T / HW``); ``forward(x, y)`` the
    two-stream form with features ``y`` from a second network (``B = X Y^T / HW``).  Then
    signed square root and L2 normalisation.  Parameter-free.  The output has ``C^2``
    entries (262,144 for ``C = 512``): reduce the channels first for large ``C``.

    Args:
        channels: channels of ``x``, or ``None`` for any.
        eps: inside the signed square root (default 1e-5), keeps its gradient finite at 0.

    Shape:
        ``N x C1 x H x W`` (and ``N x C2 x H x W``) -> ``N x C1*C2``.

    Example:
        >>> pool = BilinearPool()
        >>> pool(torch.randn(2, 3, 4, 5)).shape, pool(torch.randn(2, 3, 4, 5), torch.randn(2, 6, 4, 5)).shape
        (torch.Size([2, 9]), torch.Size([2, 18]))
    """

    def __init__(self, channels: int | None = None, eps: float = 1e-5) -> None:
        super().__init__(channels)
        if not eps >= 0:
            raise ValueError(f"argument `eps`: expected a non-negative number, got {eps!r}")
        self.eps = float(eps)

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return (shape[0], shape[1] * shape[1])

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        self.check_input(x)
        return bilinear_pool(x, y, self.eps)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, eps={self.eps}"
