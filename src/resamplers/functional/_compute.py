"""Small helpers shared by the pooling functionals: compute dtype and safe division."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["upcast", "safe_divide"]


def upcast(x: Tensor) -> Tensor:
    """``x`` in float32 when it is half or bfloat16 (powers, exponentials and ratios lose
    too much in 8 mantissa bits), else ``x`` itself."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def safe_divide(numerator: Tensor, denominator: Tensor) -> Tensor:
    """``numerator / denominator`` where ``denominator > 0``, else 0, with finite gradients.

    The double ``where`` keeps ``0 / 0`` out of the backward pass as well.
    """
    positive = denominator > 0
    return torch.where(positive, numerator / torch.where(positive, denominator, torch.ones_like(denominator)), 0.0)
