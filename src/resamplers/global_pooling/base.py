"""Base class of the global and pyramid pools (``create_pool``).

A pool maps a feature map of any spatial size to a fixed-size output: ``N x C' x h x w``
maps for the global and same-size pools, ``N x D`` vectors for SPP-net bins, NetVLAD and
bilinear pooling.  :meth:`GlobalPool.output_shape` states the exact shape, which the
shared test matrix checks.
"""

from __future__ import annotations

from ..base import Operator

__all__ = ["GlobalPool"]


class GlobalPool(Operator):
    """Common contract of the pools: an :class:`~resamplers.base.Operator` with one input
    of any size.

    Attributes:
        channels: required input channels, or ``None`` when any count works.
    """
