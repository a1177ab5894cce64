"""Stochastic pooling (a registered downsampler)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..functional.stochastic_pool import stochastic_pool2d
from ..registry import register_downsampler
from .pool import _WindowPool

__all__ = ["StochasticPool"]


@register_downsampler(
    "stochastic",
    example={"channels": 8, "kernel_size": 3, "stride": 2, "padding": 1},
    summary="Stochastic pooling: sample a ~ value in training, sum a^2 / sum a in eval",
)
class StochasticPool(_WindowPool):
    """Stochastic pooling (Zeiler and Fergus, ICLR 2013), see :func:`resamplers.functional.stochastic_pool2d`.

    In training mode one activation per window is sampled with probability proportional
    to ``max(x, 0)`` (through ``generator`` when given); in eval mode the output is the
    probability-weighted average ``sum a^2 / sum a``.  Windows without a positive value
    give 0.

    Args:
        channels: input channels, or ``None`` for any.
        scale_factor: ``s``; the default window and stride.
        kernel_size: window size (default ``s``); overlapping windows are allowed.
        stride: stride (default ``s``).
        padding: zero padding (probability 0), at most ``kernel_size // 2``.
        generator: random source for training-mode sampling (``None``: torch's global one).

    Shape:
        ``N x C x H x W`` -> ``N x C x H' x W'`` with ``H' = floor((H + 2p - k) / stride) + 1``.

    Example:
        >>> pool = StochasticPool(scale_factor=2).eval()
        >>> pool(torch.tensor([[[[1.0, 3.0], [0.0, -2.0]]]]))
        tensor([[[[2.5000]]]])
    """

    _function = staticmethod(stochastic_pool2d)

    def __init__(
        self,
        channels: int | None = None,
        scale_factor: int = 2,
        kernel_size: int | None = None,
        stride: int | None = None,
        padding: int = 0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(channels, scale_factor, kernel_size, stride, padding)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"argument `generator`: expected a torch.Generator or None, got {type(generator).__name__}")
        self.generator = generator

    def _function_kwargs(self, x: Tensor) -> dict[str, Any]:
        return {"training": self.training, "generator": self.generator}
