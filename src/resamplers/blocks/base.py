"""Base classes of the multi-scale blocks (``create_block``)."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

from .._checks import check_int
from ..base import Operator, Shape

__all__ = ["Block", "MultiResolutionBlock"]


class Block(Operator):
    """A block mapping ``N x C x H x W`` to ``N x C_out x H' x W'`` (same shape unless stated).

    Attributes:
        channels: required input channels.
        out_channels: output channels.
    """

    def __init__(self, channels: int, out_channels: int | None = None) -> None:
        super().__init__(check_int(channels, "channels", minimum=1))
        self._out_channels = channels if out_channels is None else check_int(out_channels, "out_channels", minimum=1)

    @property
    def out_channels(self) -> int:
        return self._out_channels

    def output_size(self, size: tuple[int, int]) -> tuple[int, int]:
        return size

    def output_shape(self, shape: Shape) -> Shape:
        n, _, h, w = shape
        return (n, self.out_channels, *self.output_size((h, w)))

    def extra_repr(self) -> str:
        return f"channels={self.channels}, out_channels={self.out_channels}"


def half_size(n: int) -> int:
    """Size after a 3x3 stride-2 convolution with padding 1: ``ceil(n / 2)``."""
    return (n - 1) // 2 + 1


class MultiResolutionBlock(Operator):
    """A block over parallel branches: ``forward(features)`` takes one map per branch,
    branch ``j + 1`` at half the resolution of branch ``j`` (``ceil(H_j / 2)``), and returns
    a list of maps.

    Attributes:
        channels: ``C_j`` of every input branch, highest resolution first.
    """

    input_names = ("features",)
    list_input = True

    def __init__(self, channels: Sequence[int]) -> None:
        super().__init__(None)
        self.channels = tuple(check_int(c, "channels", minimum=1) for c in channels)  # type: ignore[assignment]

    def input_channels(self) -> tuple[int | None, ...]:
        return tuple(self.channels)  # type: ignore[arg-type]

    def input_scales(self) -> tuple[Fraction, ...]:
        return tuple(Fraction(1, 2**j) for j in range(len(self.input_channels())))

    def output_shapes(self, shapes: Sequence[Shape]) -> list[Shape]:  # pragma: no cover - abstract
        raise NotImplementedError
