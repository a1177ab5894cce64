"""Sliding windows: output sizes and the stack of window taps.

The local pools that are not a plain ``max``/``avg`` reduction (median, SoftPool,
stochastic pooling) need every value of every window.  :func:`window_taps` returns them
as one ``N x C x K*K x H_out x W_out`` stack built from ``K*K`` strided views, the same
traversal as the reassembly core's torch path, so it runs on every device and exports to
ONNX (Pad/Slice/Concat) with dynamic sizes.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from .._checks import check_choice, check_int

__all__ = ["PaddingMode", "window_output_size", "window_taps", "check_window"]

PaddingMode = Literal["constant", "reflect", "replicate"]


def window_output_size(
    size: tuple[int, int], kernel_size: int, stride: int, padding: int, name: str = "x"
) -> tuple[int, int]:
    """Output size of a sliding window, ``floor((n + 2p - k) / s) + 1`` per axis (torch's pools).

    Raises ``ValueError`` naming ``name`` when the padded input is smaller than the window.

    Example:
        >>> window_output_size((7, 8), kernel_size=3, stride=2, padding=1)
        (4, 4)
    """
    out = tuple((n + 2 * padding - kernel_size) // stride + 1 for n in size)
    if min(out) < 1:
        raise ValueError(
            f"argument `{name}`: spatial size {size[0]} x {size[1]} is smaller than the {kernel_size} x {kernel_size} "
            f"window (padding {padding}); expected height and width >= {kernel_size - 2 * padding}"
        )
    return out  # type: ignore[return-value]


def check_window(kernel_size: int, stride: int | None, padding: int) -> tuple[int, int, int]:
    """Validate torch-style window arguments; ``stride=None`` means ``kernel_size``."""
    k = check_int(kernel_size, "kernel_size", minimum=1)
    s = k if stride is None else check_int(stride, "stride", minimum=1)
    p = check_int(padding, "padding", minimum=0)
    if 2 * p > k:
        raise ValueError(f"argument `padding`: expected at most half the kernel size ({k // 2}), got {padding}")
    return k, s, p


def window_taps(
    x: Tensor,
    kernel_size: int,
    stride: int,
    padding: int = 0,
    *,
    padding_mode: PaddingMode = "constant",
    value: float = 0.0,
) -> Tensor:
    """Every value of every ``K x K`` window, stacked on a new dimension.

    ``taps[n, c, a*K + b, y, x] = padded[n, c, s*y + a, s*x + b]`` where ``padded`` is
    ``x`` padded by ``padding`` on each side (``padding_mode`` as in ``F.pad``; constant
    padding uses ``value``).  The output size is torch's pooling size.

    Args:
        x: ``N x C x H x W``.
        kernel_size: ``K``.
        stride: ``s``.
        padding: ``p`` on every side.
        padding_mode: ``"constant"``, ``"reflect"`` or ``"replicate"``.
        value: the constant padding value (e.g. ``-inf`` for max-type reductions).

    Shape:
        ``N x C x H x W`` -> ``N x C x K^2 x H_out x W_out``, ``H_out = floor((H + 2p - K) / s) + 1``.

    Example:
        >>> x = torch.arange(16.0).reshape(1, 1, 4, 4)
        >>> window_taps(x, 2, 2)[0, 0, :, 0, 0]  # the top-left 2 x 2 window
        tensor([0., 1., 4., 5.])
    """
    check_choice(padding_mode, "padding_mode", ["constant", "reflect", "replicate"])
    k, s, p = kernel_size, stride, padding
    h, w = x.shape[-2], x.shape[-1]
    h_out, w_out = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    if padding_mode != "constant" and p > 0:
        x = F.pad(x, (p, p, p, p), mode=padding_mode)
        h, w, p, value = h + 2 * p, w + 2 * p, 0, 0.0
    # Pad (or crop: negative amounts) to exactly the s * (H_out - 1) + K rows the windows
    # read: a size linear in H_out keeps the slices provable under torch.export.
    x = F.pad(x, (p, s * (w_out - 1) + k - p - w, p, s * (h_out - 1) + k - p - h), value=value)
    taps = [
        x[..., a : a + s * (h_out - 1) + 1 : s, b : b + s * (w_out - 1) + 1 : s] for a in range(k) for b in range(k)
    ]
    return torch.stack(taps, dim=2)
