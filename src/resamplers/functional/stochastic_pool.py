"""Stochastic pooling (Zeiler and Fergus, ICLR 2013)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import check_feature
from ._compute import safe_divide, upcast
from .reassembly import reassemble_down
from .windows import check_window, window_taps

__all__ = ["stochastic_pool2d"]


def stochastic_pool2d(
    x: Tensor,
    kernel_size: int = 2,
    stride: int | None = None,
    padding: int = 0,
    *,
    training: bool = False,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Stochastic pooling: sample one activation per window with probability ``a_i / sum_j a_j``.

    The method assumes non-negative (post-ReLU) activations; this function uses
    ``a = max(x, 0)``, so negative values have probability 0 and a window without a
    positive value returns 0 (also in training).

    * ``training=True``: for every window, location ``l`` is drawn with probability
      ``p_l = a_l / sum_j a_j`` (Gumbel-max on ``log a``, noise from ``generator``) and the
      output is ``a_l``; the gradient flows to the sampled location only.  The selection
      is a one-hot kernel applied by the reassembly core.
    * ``training=False``: the probabilistic weighting of the paper's test time,
      ``sum_i p_i a_i = sum_i a_i^2 / sum_i a_i``, computed with two average pools.

    Zero padding adds windows' taps of probability 0.  Computed in float32 for half and
    bfloat16 inputs.

    Args:
        x: ``N x C x H x W``.
        kernel_size: window ``k`` (default 2).
        stride: stride (default ``k``).
        padding: zero padding on every side.
        training: sample (True) or take the expectation-weighted average (False).
        generator: random source for the sampling (``None``: the global generator).

    Shape:
        ``N x C x H x W`` -> ``N x C x H_out x W_out``, ``H_out = floor((H + 2p - k) / stride) + 1``.

    Example:
        >>> x = torch.tensor([[[[1.0, 3.0], [0.0, -2.0]]]])
        >>> stochastic_pool2d(x, 2)  # (1 + 9) / (1 + 3)
        tensor([[[[2.5000]]]])
    """
    check_feature(x, "x")
    k, s, p = check_window(kernel_size, stride, padding)
    a = upcast(x).relu()
    if not training:
        # Both average pools divide by the same window area, which cancels.
        return safe_divide(F.avg_pool2d(a * a, k, s, p), F.avg_pool2d(a, k, s, p)).to(x.dtype)
    taps = window_taps(a.detach(), k, s, p)  # N C K^2 H_out W_out, zero padded
    uniform = torch.rand(taps.shape, generator=generator, dtype=taps.dtype, device=taps.device)
    gumbel = -torch.log(-torch.log(uniform))
    choice = (taps.log() + gumbel).argmax(dim=2)  # log 0 = -inf is never drawn unless all are 0
    n, c = taps.shape[0], taps.shape[1]
    one_hot = F.one_hot(choice, k * k).to(a.dtype).permute(0, 1, 4, 2, 3)
    kernels = one_hot.reshape(n, c * k * k, taps.shape[-2], taps.shape[-1])
    return reassemble_down(a, kernels, k, c, s, p).to(x.dtype)
