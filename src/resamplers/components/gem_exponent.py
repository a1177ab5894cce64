"""The learnable GeM exponent shared by local and global GeM pooling."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["init_gem_exponent"]


def init_gem_exponent(module: nn.Module, p: float, eps: float, learn_p: bool) -> None:
    """Give ``module`` cirtorch's GeM state: a ``p`` parameter of shape ``(1,)`` and ``eps``."""
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not p >= 1:
        raise ValueError(f"argument `p`: expected a number >= 1, got {p!r}")
    if not eps > 0:
        raise ValueError(f"argument `eps`: expected a positive clamp value, got {eps!r}")
    module.p = nn.Parameter(torch.ones(1) * float(p), requires_grad=bool(learn_p))
    setattr(module, "eps", float(eps))  # noqa: B010 - a plain float attribute, not a parameter or buffer
