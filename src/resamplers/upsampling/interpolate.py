"""Fixed-kernel upsampling: nearest and bilinear interpolation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..base import Upsampler
from ..registry import register_upsampler

__all__ = ["NearestUpsample", "BilinearUpsample"]


@register_upsampler(
    "nearest", example={"channels": 8}, summary="Nearest-neighbour upsampling (source pixel floor(p/s))"
)
class NearestUpsample(Upsampler):
    """Nearest-neighbour upsampling by an integer factor.

    Output pixel ``(y, x)`` copies input pixel ``(y // s, x // s)``: the same source pixel
    as CARAFE, so CARAFE with a one-hot centre kernel equals this operator.

    Args:
        channels: input channels, or ``None`` for any.
        scale_factor: integer ``s >= 1``.

    Shape:
        ``N x C x H x W`` -> ``N x C x sH x sW``.
    """

    def __init__(self, channels: int | None = None, scale_factor: int = 2) -> None:
        super().__init__(channels, scale_factor)

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        return F.interpolate(x, scale_factor=float(self.scale_factor), mode="nearest")

    def upsample_to(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        """Output pixel ``p < size`` copies source pixel ``p // s`` (the crop of ``s``-times upsampling)."""
        self.check_input(x)
        self.check_reachable(x, size)
        rows = torch.arange(size[0], device=x.device) // self.scale_factor
        cols = torch.arange(size[1], device=x.device) // self.scale_factor
        return x.index_select(-2, rows).index_select(-1, cols)


@register_upsampler("bilinear", example={"channels": 8}, summary="Bilinear interpolation (align_corners explicit)")
class BilinearUpsample(Upsampler):
    """Bilinear upsampling by an integer factor.

    Args:
        channels: input channels, or ``None`` for any.
        scale_factor: integer ``s >= 1``.
        align_corners: torch's ``align_corners``; ``False`` (the default) samples output
            pixel centres at ``(p + 0.5) / s - 0.5`` with border replication.

    Shape:
        ``N x C x H x W`` -> ``N x C x sH x sW``.
    """

    def __init__(self, channels: int | None = None, scale_factor: int = 2, align_corners: bool = False) -> None:
        super().__init__(channels, scale_factor)
        if not isinstance(align_corners, bool):
            raise TypeError(f"argument `align_corners`: expected a bool, got {align_corners!r}")
        self.align_corners = align_corners

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        h, w = self.output_size((x.shape[-2], x.shape[-1]))
        return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=self.align_corners)

    def upsample_to(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        """Bilinear resampling to exactly ``size`` (``F.interpolate(x, size=size)``, HRNet-seg's fuse)."""
        self.check_input(x)
        return F.interpolate(x, size=size, mode="bilinear", align_corners=self.align_corners)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, align_corners={self.align_corners}"
