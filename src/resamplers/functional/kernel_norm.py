"""Normalisation of predicted reassembly kernels."""

from __future__ import annotations

from torch import Tensor

from .._checks import check_feature, check_int

__all__ = ["softmax_kernels"]


def softmax_kernels(logits: Tensor, groups: int = 1) -> Tensor:
    """Softmax over each group's taps, computed in the input dtype.

    Args:
        logits: ``N x (G*T) x H x W`` with channel ``g*T + t`` for group ``g`` and tap ``t``.
        groups: ``G``.

    Returns:
        Same shape; for every pixel and group the ``T`` taps are positive and sum to 1.

    Example:
        >>> softmax_kernels(torch.zeros(1, 4, 1, 1), groups=2).flatten()
        tensor([0.5000, 0.5000, 0.5000, 0.5000])
    """
    check_feature(logits, "logits")
    check_int(groups, "groups", minimum=1)
    n, c, h, w = logits.shape
    if c % groups != 0:
        raise ValueError(f"argument `groups`: expected a divisor of the {c} logit channels, got {groups}")
    return logits.reshape(n, groups, c // groups, h, w).softmax(dim=2).reshape(n, c, h, w)
