"""Global (adaptive) pools: average, max, their mean and concatenation, and GeM."""

from __future__ import annotations

import torch
from torch import Tensor

from ..components.gem_exponent import init_gem_exponent
from ..functional.adaptive_pool import OutputSize, adaptive_avg_pool2d, adaptive_max_pool2d, normalize_output_size
from ..functional.gem import adaptive_gem_pool2d
from ..registry import register_pool
from .base import GlobalPool

__all__ = ["AdaptivePool", "GlobalAvgPool", "GlobalMaxPool", "GlobalAvgMaxPool", "GlobalCatAvgMaxPool", "GlobalGeMPool"]


class AdaptivePool(GlobalPool):
    """A pool to a fixed ``output_size`` (1 x 1: global) with torch's adaptive bins.

    Every size exports to ONNX (see :mod:`resamplers.functional.adaptive_pool`), also
    when the output size does not divide the input size.

    Attributes:
        feature_multiplier: output channels per input channel.
    """

    feature_multiplier = 1

    def __init__(self, channels: int | None = None, output_size: OutputSize = 1) -> None:
        super().__init__(channels)
        self.output_hw = normalize_output_size(output_size)

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        n, c, h, w = shape
        h_o, w_o = self.output_hw
        return (n, c * self.feature_multiplier, h if h_o is None else h_o, w if w_o is None else w_o)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, output_size={self.output_hw}"


@register_pool(
    "gap", example={"channels": 8}, summary="Global average pooling (adaptive output size, ONNX for any size)"
)
class GlobalAvgPool(AdaptivePool):
    """Global (adaptive) average pooling; ``output_size = 1`` is ``x.mean((2, 3), keepdim=True)``.

    Args:
        channels: input channels, or ``None`` for any.
        output_size: ``o`` or ``(h_o, w_o)`` (default 1: global); ``None`` keeps an axis.

    Shape:
        ``N x C x H x W`` -> ``N x C x h_o x w_o``.

    Example:
        >>> GlobalAvgPool()(torch.ones(2, 3, 5, 7)).shape
        torch.Size([2, 3, 1, 1])
    """

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        return adaptive_avg_pool2d(x, self.output_hw)


@register_pool(
    "gmp", example={"channels": 8, "output_size": (2, 3)}, summary="Global max pooling (adaptive output size)"
)
class GlobalMaxPool(AdaptivePool):
    """Global (adaptive) max pooling; ``output_size = 1`` is ``x.amax((2, 3), keepdim=True)``.

    Args:
        channels: input channels, or ``None`` for any.
        output_size: ``o`` or ``(h_o, w_o)`` (default 1: global); ``None`` keeps an axis.

    Shape:
        ``N x C x H x W`` -> ``N x C x h_o x w_o``.

    Example:
        >>> GlobalMaxPool(output_size=(2, 3))(torch.randn(2, 3, 5, 7)).shape
        torch.Size([2, 3, 2, 3])
    """

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        return adaptive_max_pool2d(x, self.output_hw)


@register_pool("avgmax", example={"channels": 8, "output_size": (3, 5)}, summary="0.5 * (global average + global max)")
class GlobalAvgMaxPool(AdaptivePool):
    """``0.5 * (adaptive_avg + adaptive_max)`` over the same bins (timm's ``avgmax``).

    Args:
        channels: input channels, or ``None`` for any.
        output_size: ``o`` or ``(h_o, w_o)`` (default 1: global); ``None`` keeps an axis.

    Shape:
        ``N x C x H x W`` -> ``N x C x h_o x w_o``.

    Example:
        >>> GlobalAvgMaxPool()(torch.tensor([[[[1.0, 3.0]]]])).flatten()
        tensor([2.5000])
    """

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        return 0.5 * (adaptive_avg_pool2d(x, self.output_hw) + adaptive_max_pool2d(x, self.output_hw))


@register_pool("catavgmax", example={"channels": 8}, summary="Global average and max concatenated (2C channels)")
class GlobalCatAvgMaxPool(AdaptivePool):
    """``cat([adaptive_avg, adaptive_max], 1)`` (timm's ``catavgmax``; fastai's ``AdaptiveConcatPool2d``
    puts the max first): averages in channels ``0 .. C-1``, maxima in ``C .. 2C-1``.

    Args:
        channels: input channels, or ``None`` for any.
        output_size: ``o`` or ``(h_o, w_o)`` (default 1: global); ``None`` keeps an axis.

    Shape:
        ``N x C x H x W`` -> ``N x 2C x h_o x w_o``.

    Example:
        >>> GlobalCatAvgMaxPool()(torch.tensor([[[[1.0, 3.0]]]])).flatten()
        tensor([2., 3.])
    """

    feature_multiplier = 2

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        return torch.cat([adaptive_avg_pool2d(x, self.output_hw), adaptive_max_pool2d(x, self.output_hw)], dim=1)


@register_pool("gem", example={"channels": 8}, summary="GeM: (mean of x^p)^(1/p), learnable p (cirtorch)")
class GlobalGeMPool(AdaptivePool):
    """Generalized-mean pooling (Radenovic et al.), equal to cirtorch's ``GeM`` for ``output_size = 1``.

    ``(mean over H, W of clamp(x, eps)^p)^(1/p)`` with a learnable ``p`` stored as
    cirtorch's ``p`` parameter of shape ``(1,)`` (its state dicts load directly),
    clamped to ``>= 1`` in the forward pass.  The mean is a ``mean`` (ONNX ReduceMean),
    not an ``avg_pool2d`` whose kernel is the input size (an export hazard).  Computed
    in float32 under half and bfloat16 (``eps^p`` underflows in half precision).

    Args:
        channels: input channels, or ``None`` for any.
        output_size: ``o`` or ``(h_o, w_o)`` (default 1: global).
        p: initial exponent (default 3).
        eps: clamp value of the inputs (default 1e-6).
        learn_p: whether ``p`` is trained.

    Shape:
        ``N x C x H x W`` -> ``N x C x h_o x w_o``.

    Example:
        >>> GlobalGeMPool(p=1.0)(torch.tensor([[[[1.0, 2.0], [2.0, 3.0]]]])).item()
        2.0
    """

    def __init__(
        self,
        channels: int | None = None,
        output_size: OutputSize = 1,
        p: float = 3.0,
        eps: float = 1e-6,
        learn_p: bool = True,
    ) -> None:
        super().__init__(channels, output_size)
        init_gem_exponent(self, p, eps, learn_p)

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        return adaptive_gem_pool2d(x, self.p.clamp(min=1.0), self.output_hw, self.eps)  # type: ignore[arg-type]  # a float attribute

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, eps={self.eps}"
