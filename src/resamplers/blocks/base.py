"""Base class of the multi-scale blocks (``create_block``)."""
from __future__ import annotations

from torch import Tensor, nn

from .._checks import check_feature, check_int

__all__ = ["Block"]


class Block(nn.Module):
    """A block mapping ``N x C x H x W`` to ``N x C_out x H' x W'`` (same shape unless stated).

    Attributes:
        channels: required input channels.
        out_channels: output channels.
    """

    def __init__(self, channels: int, out_channels: int | None = None) -> None:
        super().__init__()
        self.channels = check_int(channels, "channels", minimum=1)
        self.out_channels = self.channels if out_channels is None else check_int(out_channels, "out_channels", minimum=1)

    def output_size(self, size: tuple[int, int]) -> tuple[int, int]:
        return size

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Output shape for an input of ``shape`` (``N x C x H x W``)."""
        n, _, h, w = shape
        return (n, self.out_channels, *self.output_size((h, w)))

    def check_input(self, x: Tensor, name: str = "x") -> Tensor:
        check_feature(x, name, channels=self.channels)
        return x

    def extra_repr(self) -> str:
        return f"channels={self.channels}, out_channels={self.out_channels}"
