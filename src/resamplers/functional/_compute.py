"""Small helpers shared by the pooling functionals: export detection and compute dtype."""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["is_exporting", "upcast", "safe_divide"]


def is_exporting() -> bool:
    """Whether the caller is being traced for export (``torch.export``, ONNX, TorchScript)."""
    return torch.jit.is_scripting() or torch.compiler.is_exporting() or torch.onnx.is_in_onnx_export()


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
