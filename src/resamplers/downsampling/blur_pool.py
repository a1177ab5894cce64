"""Anti-aliased downsampling: BlurPool (a registered downsampler)."""

from __future__ import annotations

import math

from torch import Tensor

from .._checks import check_choice, check_int
from ..base import Downsampler
from ..functional.blur_pool import PAD_MODES, binomial_filter, blur_pad, blur_pool2d
from ..registry import register_downsampler

__all__ = ["BlurPool"]


@register_downsampler(
    "blur", example={"channels": 8}, summary="BlurPool: binomial low-pass (reflect pad) then subsample (anti-aliased)"
)
class BlurPool(Downsampler):
    """BlurPool (Zhang, ICML 2019), equal to adobe/antialiased-cnns ``BlurPool``.

    A depthwise normalised ``f x f`` binomial filter on the input padded by
    ``floor((f-1)/2)`` before and ``ceil((f-1)/2)`` after (``pad_mode``, reflect by
    default), evaluated every ``s`` pixels.  The filter is a buffer named ``filt`` of
    shape ``C x 1 x f x f``, as in the reference, so its state dicts load directly; it is
    built at construction (``channels`` is required), never sized from the input at run
    time (which breaks ONNX export).

    Args:
        channels: input channels.
        scale_factor: stride ``s``.
        filt_size: ``f`` in ``1 .. 7`` (default 4, the reference's models).
        pad_mode: ``"reflect"`` (needs ``H, W > ceil((f-1)/2)``), ``"replicate"`` or ``"constant"``.

    Shape:
        ``N x C x H x W`` -> ``N x C x ceil(H/s) x ceil(W/s)``.

    Example:
        >>> BlurPool(4)(torch.randn(1, 4, 7, 6)).shape
        torch.Size([1, 4, 4, 3])
    """

    def __init__(self, channels: int, scale_factor: int = 2, filt_size: int = 4, pad_mode: str = "reflect") -> None:
        super().__init__(check_int(channels, "channels", minimum=1), scale_factor)
        self.filt_size = check_int(filt_size, "filt_size", minimum=1)
        if filt_size > 7:
            raise ValueError(f"argument `filt_size`: expected 1 to 7, got {filt_size}")
        self.pad_mode = check_choice(pad_mode, "pad_mode", PAD_MODES)
        filt = binomial_filter(filt_size)
        self.register_buffer("filt", filt[None, None].repeat(channels, 1, 1, 1))

    def output_size(self, size: tuple[int, int]) -> tuple[int, int]:
        after = blur_pad(self.filt_size)[1]
        if self.filt_size > 1 and self.pad_mode == "reflect" and after >= min(size):
            raise ValueError(
                f"argument `x`: reflect padding by {after} needs height and width > {after}, got {size[0]} x {size[1]}"
            )
        return (math.ceil(size[0] / self.scale_factor), math.ceil(size[1] / self.scale_factor))

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        return blur_pool2d(x, self.filt_size, self.scale_factor, self.pad_mode, weight=self.get_buffer("filt"))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, filt_size={self.filt_size}, pad_mode={self.pad_mode!r}"
