"""Sliding windows: output sizes, argument checks and the stack of window taps.

The local pools that are not a plain ``max``/``avg`` reduction (median, SoftPool,
stochastic pooling) need every value of every window.  :func:`window_taps` (from
:mod:`resamplers.core.taps`) returns them as one ``N x C x K*K x H_out x W_out`` stack
built from ``K*K`` strided views by the reassembly core's own tap traversal, so it runs
on every device and exports to ONNX with dynamic sizes.
"""

from __future__ import annotations

from .._checks import check_int
from ..core import PaddingMode, window_taps

__all__ = ["PaddingMode", "window_output_size", "window_taps", "check_window"]


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
