"""Base classes that state each operator's input and output contract.

Every registered resampler is an ``nn.Module`` whose constructor takes ``channels`` and
``scale_factor`` and which implements :meth:`Resampler.output_size`.  ``forward`` checks
its input with :meth:`Resampler.check_input` (rank, channel count, spatial divisibility
and minimum size) so that bad input raises a ``ValueError`` naming the argument.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn
from torch.fx.experimental.symbolic_shapes import statically_known_true

from .._checks import check_feature, check_int

__all__ = ["Resampler", "Upsampler", "Downsampler"]


class Resampler(nn.Module):
    """Common contract of upsamplers and downsamplers.

    Attributes:
        channels: required input channel count, or ``None`` when any count works.
        scale_factor: integer resampling factor.
        size_multiple: input height and width must be multiples of this.
    """

    size_multiple: int = 1

    def __init__(self, channels: int | None, scale_factor: int) -> None:
        super().__init__()
        if channels is not None:
            check_int(channels, "channels", minimum=1)
        self.channels = channels
        self.scale_factor = check_int(scale_factor, "scale_factor", minimum=1)

    @property
    def out_channels(self) -> int | None:
        """Output channel count (``None`` means "same as the input")."""
        return self.channels

    def output_size(self, size: tuple[int, int]) -> tuple[int, int]:  # pragma: no cover - abstract
        """Output ``(H, W)`` for an input of spatial ``size``; ``ValueError`` if unsupported."""
        raise NotImplementedError

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Output shape for an input of ``shape`` (``N x C x H x W``); ``ValueError`` if unsupported."""
        n, c, h, w = shape
        out_channels = self.out_channels if self.out_channels is not None else c
        return (n, out_channels, *self.output_size((h, w)))

    def check_input(self, x: Tensor, name: str = "x") -> Tensor:
        check_feature(x, name, channels=self.channels, size_multiple=self.size_multiple)
        self.output_size((x.shape[-2], x.shape[-1]))
        return x

    def extra_repr(self) -> str:
        return f"channels={self.channels}, scale_factor={self.scale_factor}"


class Upsampler(Resampler):
    """An operator mapping ``N x C x H x W`` to ``N x C x sH x sW``."""

    def output_size(self, size: tuple[int, int]) -> tuple[int, int]:
        return (size[0] * self.scale_factor, size[1] * self.scale_factor)

    def upsample_to(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        """Upsample ``x`` to exactly ``size``, for maps whose size was rounded up on the way down.

        A stride-``s`` layer maps ``H`` to ``ceil(H / s)``, so ``s`` times that can exceed
        ``H``: the default upsamples by ``s`` and keeps the top-left ``size`` (output pixel
        ``p`` still reads the source pixel it would read at scale ``s``).  Interpolating
        upsamplers override this to resample to ``size`` directly.
        """
        self.check_reachable(x, size)
        y = self(x)
        # Crop by negative padding: unlike a slice, it needs no provable bound under export.
        return F.pad(y, (0, size[1] - y.shape[-1], 0, size[0] - y.shape[-2]))

    def check_reachable(self, x: Tensor, size: tuple[int, int]) -> None:
        """``ValueError`` unless ``s`` times the size of ``x`` covers ``size``."""
        s, (h, w) = self.scale_factor, size
        # statically_known_true: under torch.export a bound it cannot prove is not a guard.
        if statically_known_true(x.shape[-2] * s < h) or statically_known_true(x.shape[-1] * s < w):
            raise ValueError(
                f"argument `size`: {s}x upsampling of {x.shape[-2]} x {x.shape[-1]} cannot reach {h} x {w}"
            )


class Downsampler(Resampler):
    """An operator mapping ``N x C x H x W`` to a map about ``s`` times smaller.

    Subclasses define the exact output size (floor or ceil) in :meth:`output_size`.
    """
