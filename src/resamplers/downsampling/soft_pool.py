"""SoftPool (a registered downsampler)."""

from __future__ import annotations

from ..functional.soft_pool import soft_pool2d
from ..registry import register_downsampler
from .pool import _WindowPool

__all__ = ["SoftPool"]


@register_downsampler(
    "softpool",
    example={"channels": 8, "kernel_size": 3, "stride": 2, "padding": 1},
    summary="SoftPool: softmax-weighted window sum (per-window max shift, stable)",
)
class SoftPool(_WindowPool):
    """SoftPool (Stergiou et al., ICCV 2021), see :func:`resamplers.functional.soft_pool2d`.

    ``sum_i e^{x_i} x_i / sum_j e^{x_j}`` per channel and window, computed as a softmax
    (shifted by each window's maximum, so it never overflows) applied by the reassembly
    core.  Padded taps get weight 0.

    Args:
        channels: input channels, or ``None`` for any.
        scale_factor: ``s``; the default window and stride.
        kernel_size: window size (default ``s``); overlapping windows are allowed.
        stride: stride (default ``s``).
        padding: padding (excluded from the weights), at most ``kernel_size // 2``.

    Shape:
        ``N x C x H x W`` -> ``N x C x H' x W'`` with ``H' = floor((H + 2p - k) / stride) + 1``.

    Example:
        >>> SoftPool(scale_factor=2)(torch.tensor([[[[0.0, 0.0], [0.0, 1000.0]]]]))
        tensor([[[[1000.]]]])
    """

    _function = staticmethod(soft_pool2d)
