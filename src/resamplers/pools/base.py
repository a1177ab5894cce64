"""Base class of the global and pyramid pools (``create_pool``).

A pool maps a feature map of any spatial size to a fixed-size output: ``N x C' x h x w``
maps for the global and same-size pools, ``N x D`` vectors for SPP-net bins, NetVLAD and
bilinear pooling.  :meth:`GlobalPool.output_shape` states the exact shape, which the
shared test matrix checks.
"""
from __future__ import annotations

from torch import Tensor, nn

from .._checks import check_feature, check_int

__all__ = ["GlobalPool"]


class GlobalPool(nn.Module):
    """Common contract of the pools.

    Attributes:
        channels: required input channels, or ``None`` when any count works.
    """

    def __init__(self, channels: int | None = None) -> None:
        super().__init__()
        self.channels = None if channels is None else check_int(channels, "channels", minimum=1)

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:  # pragma: no cover - abstract
        """Output shape for an input of ``shape`` (``N x C x H x W``)."""
        raise NotImplementedError

    def check_input(self, x: Tensor, name: str = "x") -> Tensor:
        check_feature(x, name, channels=self.channels)
        return x

    def extra_repr(self) -> str:
        return f"channels={self.channels}"
