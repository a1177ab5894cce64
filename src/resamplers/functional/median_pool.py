"""Median pooling: the lower median of every window."""

from __future__ import annotations

from torch import Tensor

from .._checks import check_choice, check_feature
from .windows import PaddingMode, check_window, window_taps

__all__ = ["median_pool2d"]


def median_pool2d(
    x: Tensor,
    kernel_size: int,
    stride: int | None = None,
    padding: int = 0,
    padding_mode: PaddingMode = "reflect",
) -> Tensor:
    """Median pooling: the *lower* median of each ``k x k`` window.

    For a window of ``n = k*k`` values sorted ascending, the output is the value of rank
    ``(n - 1) // 2``: the median for odd ``n``, the lower of the two middle values for
    even ``n`` (``torch.median``'s convention, not their mean).  The gradient goes to the
    selected element, like max pooling.

    Edges: with ``padding = 0`` (the default) every window lies inside the image and no
    border rule applies.  With ``padding > 0`` the input is extended by
    ``padding_mode``: ``"reflect"`` (timm's ``MedianPool2d``; mirrors without repeating
    the edge, needs ``padding < H, W``), ``"replicate"`` (repeats the edge pixel, works
    for any size) or ``"constant"`` (zeros, as kornia's ``median_blur``; biases border
    medians towards 0).

    Args:
        x: ``N x C x H x W``.
        kernel_size: window ``k``.
        stride: stride (default ``k``).
        padding: padding on every side, at most ``k // 2``.
        padding_mode: ``"reflect"``, ``"replicate"`` or ``"constant"``.

    Shape:
        ``N x C x H x W`` -> ``N x C x H_out x W_out``, ``H_out = floor((H + 2p - k) / stride) + 1``.

    Example:
        >>> x = torch.tensor([[[[4.0, 1.0], [3.0, 2.0]]]])
        >>> median_pool2d(x, 2)  # sorted 1, 2, 3, 4: the lower median is 2
        tensor([[[[2.]]]])
    """
    check_feature(x, "x")
    k, s, p = check_window(kernel_size, stride, padding)
    check_choice(padding_mode, "padding_mode", ["reflect", "replicate", "constant"])
    if padding_mode == "reflect" and p >= min(x.shape[-2], x.shape[-1]):
        raise ValueError(
            f"argument `x`: reflect padding {p} needs height and width > {p}, got {x.shape[-2]} x {x.shape[-1]} "
            f"(use padding_mode='replicate' for tiny maps)"
        )
    taps = window_taps(x, k, s, p, padding_mode=padding_mode)
    # Sort and pick, not torch.median: ONNX has no median operator.
    return taps.sort(dim=2).values[:, :, (k * k - 1) // 2]
