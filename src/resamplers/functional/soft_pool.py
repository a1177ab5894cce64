"""SoftPool (Stergiou, Poppe and Kalliatakis, ICCV 2021): exponentially weighted pooling."""

from __future__ import annotations

from torch import Tensor

from .._checks import check_feature
from ._compute import upcast
from .reassembly import reassemble_down
from .windows import check_window, window_taps

__all__ = ["soft_pool2d"]


def soft_pool2d(x: Tensor, kernel_size: int = 2, stride: int | None = None, padding: int = 0) -> Tensor:
    """SoftPool: each window's values weighted by their softmax, ``sum_i e^{x_i} x_i / sum_j e^{x_j}``.

    Per channel and per window, as in the paper (Eq. 1-2) and the official CUDA kernel.
    The weights are a softmax over the window, i.e. ``e^{x_i - m}`` with ``m`` the
    window's own maximum, so large activations never overflow and no window underflows
    to ``0 / 0`` (the official code computes ``e^x`` unshifted and patches NaN
    afterwards).  Padded taps get weight 0.  The weighted sum is the reassembly core
    (:func:`~resamplers.functional.reassemble_down`, one kernel group per channel);
    gradients flow through both the weights and the values.  Computed in float32 for
    half and bfloat16 inputs.

    Differences from the official code (alexandrosstergiou/SoftPool): its CPU fallback
    sums ``e^x`` over *channels* before pooling and both paths clamp the output at 0;
    its CUDA path sizes the output ``H // stride`` whatever the kernel.  This function
    follows the paper's per-channel formula with torch's output size and no clamp.

    Args:
        x: ``N x C x H x W``.
        kernel_size: window ``k`` (default 2).
        stride: stride (default ``k``).
        padding: padding on every side (excluded from the softmax).

    Shape:
        ``N x C x H x W`` -> ``N x C x H_out x W_out``, ``H_out = floor((H + 2p - k) / stride) + 1``.

    Example:
        >>> x = torch.tensor([[[[0.0, 0.0], [0.0, 1000.0]]]])
        >>> soft_pool2d(x, 2)  # no overflow: the weights are a softmax
        tensor([[[[1000.]]]])
    """
    check_feature(x, "x")
    k, s, p = check_window(kernel_size, stride, padding)
    x32 = upcast(x)
    n, c = x32.shape[0], x32.shape[1]
    weights = window_taps(x32, k, s, p, value=float("-inf")).softmax(dim=2)  # N C K^2 H_out W_out
    kernels = weights.reshape(n, c * k * k, weights.shape[-2], weights.shape[-1])
    return reassemble_down(x32, kernels, k, c, s, p).to(x.dtype)
